"""Drop-in threading primitives that find deadlocks and show contention.

``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition``, ``Event`` and
``Barrier`` have the API and semantics of ``threading``'s, plus ``name=`` and
``stats()``. Lock-order checking (``lockcheck()``, ``ANYPOOL_LOCKCHECK=1``, or
``anypool lockcheck -- python app.py``) reports an acquisition order that can deadlock
even in a run that did not hang; the watchdog (``set_watchdog(seconds)`` or
``ANYPOOL_LOCK_WATCHDOG=seconds``) prints every thread's stack and which thread holds
which lock when an acquisition waits too long.

Example::

    import anypool.sync

    lock_a = anypool.sync.Lock(name="lock_a")
    lock_b = anypool.sync.Lock(name="lock_b")
    with anypool.sync.lockcheck() as check:
        with lock_a, lock_b:
            pass
    print(check.report().summary())
"""

from __future__ import annotations

import atexit
import sys

from . import _state
from ._check import (
    Edge,
    Inversion,
    LockCheckReport,
    LockOrderError,
    LockOrderWarning,
    lockcheck,
)
from ._locks import Lock, RLock
from ._others import Barrier, BoundedSemaphore, Condition, Event, Semaphore
from ._stats import LockStats

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Edge",
    "Event",
    "Inversion",
    "Lock",
    "LockCheckReport",
    "LockOrderError",
    "LockOrderWarning",
    "LockStats",
    "RLock",
    "Semaphore",
    "lockcheck",
    "set_watchdog",
]


def set_watchdog(seconds: float | None) -> float | None:
    """Print every thread's stack when an acquisition waits more than ``seconds``.

    Applies to Lock, RLock, Semaphore and BoundedSemaphore acquisitions in every thread;
    the report (on standard error, once per stuck acquisition) says which thread holds
    which anypool lock and which lock each waits for. ``None`` turns it off. Returns the
    previous setting. ``ANYPOOL_LOCK_WATCHDOG=seconds`` sets it for a whole program.

    Example::

        import anypool.sync

        previous = anypool.sync.set_watchdog(30.0)   # a hang is explained after 30 s
        anypool.sync.set_watchdog(previous)
    """
    return _state.set_watchdog(seconds)


def _apply_environment() -> None:
    """``ANYPOOL_LOCKCHECK`` and ``ANYPOOL_LOCK_WATCHDOG``, read once at import.

    ``anypool lockcheck`` also sets two private variables in the processes it starts:
    ``ANYPOOL_LOCKCHECK_THREADING=1`` (check plain threading locks too) and
    ``ANYPOOL_LOCKCHECK_REPORT=path`` (where to append this process's findings).
    """
    import os

    from ._check import Checker

    settings = _state.env_settings()
    if settings["watchdog"] is not None:
        _state.set_watchdog(settings["watchdog"])
    if settings["lockcheck"] is None:
        return
    checker = Checker(strict=settings["lockcheck"] == "strict")
    _state.install_checker(checker)
    report_path = os.environ.get("ANYPOOL_LOCKCHECK_REPORT")
    if report_path:
        from ._bootstrap import write_report_at_exit

        write_report_at_exit(checker, report_path)
    else:
        atexit.register(_summary_at_exit, checker)
    if os.environ.get("ANYPOOL_LOCKCHECK_THREADING") == "1":
        from ._bootstrap import patch_threading

        patch_threading()


def _summary_at_exit(checker: object) -> None:
    report = checker.report()  # type: ignore[attr-defined]
    if report.inversions:
        print(report.summary(), file=sys.stderr)


# Public objects say they come from `anypool.sync`, not the private module defining them.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("anypool.sync._"):
        _obj.__module__ = __name__
del _name, _obj

_apply_environment()
