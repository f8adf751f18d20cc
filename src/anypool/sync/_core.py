"""Which core anypool.sync's Lock and RLock are built on: C, or the same in Python.

The C extension ``_fastlock`` (compiled by ``pip install``; see ``_fastlock.c``) is used
when it imports. Where it does not (no compiler at install time, a free-threaded build,
an import error), the pure-Python ``_pycore`` is used instead, silently: it behaves the
same and only costs more per acquisition (``benchmarks/RESULTS.md``). ``IMPLEMENTATION``
says which one this process runs.

``ANYPOOL_SYNC_PURE_PYTHON=1``, read once at import, forces the pure-Python core: for
tests, and to rule the extension out when hunting a bug.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from . import _state
from ._watchdog import dump

__all__ = ["IMPLEMENTATION", "LockCore", "native", "specialize"]

LockClass = TypeVar("LockClass", bound=type)


def _load_native(environ: dict[str, str] | os._Environ[str] = os.environ) -> ModuleType | None:
    setting = environ.get("ANYPOOL_SYNC_PURE_PYTHON", "").strip()
    if setting not in ("", "0", "1"):
        raise ValueError(
            f"ANYPOOL_SYNC_PURE_PYTHON={setting!r} is not understood: use 1 (anypool.sync "
            "locks in pure Python) or 0 (the C extension where it is built, the default)"
        )
    if setting == "1":
        return None
    try:
        from . import _fastlock
    except ImportError:
        return None
    return _fastlock


def specialize(cls: LockClass) -> LockClass:
    """Class decorator for the public lock classes: on the C core, gives the class its
    own descriptors of the hot methods, which the interpreter calls faster (see
    ``fastlock_specialize`` in ``_fastlock.c``); nothing on the pure-Python core."""
    if native is not None:
        native.specialize(cls)
    return cls


def _mirror_settings() -> None:
    """Copy _state's settings into the C core, which cannot read Python globals cheaply."""
    assert native is not None
    native.set_mode(_state.tracking, _state.generation, _state.checker, _state.watchdog)


#: The C extension module, or None when the pure-Python core is used.
native = _load_native()
#: "c" or "python": the core this process's locks use.
IMPLEMENTATION = "python" if native is None else "c"

if native is not None:
    native.configure(_state.threads, dump)
    _state.on_change(_mirror_settings)

if TYPE_CHECKING or native is None:
    from ._pycore import LockCore
else:
    LockCore = native.LockCore
