"""The part of ``anypool lockcheck`` that runs inside the checked program.

``anypool lockcheck -- CMD`` runs CMD with a ``sitecustomize`` module on PYTHONPATH
that imports ``anypool.sync``; its environment variables then turn checking on, and
this module makes ``threading.Lock``/``threading.RLock`` create checked locks and
appends the process's findings to the report file at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from typing import Any

__all__ = ["SITECUSTOMIZE", "patch_threading", "write_report_at_exit"]


def patch_threading() -> None:
    """From now on ``threading.Lock()`` and ``threading.RLock()`` (and so Condition,
    Event, Semaphore, queue.Queue ...) create anypool.sync locks. Locks created before
    (while anypool itself was imported) stay plain."""
    from ._locks import Lock, RLock

    threading.Lock = Lock  # type: ignore[assignment]
    threading.RLock = RLock  # type: ignore[assignment]


def write_report_at_exit(checker: Any, path: str) -> None:
    atexit.register(_write_report, checker, path)


def _write_report(checker: Any, path: str) -> None:
    report = checker.report()
    record = {
        "pid": os.getpid(),
        "argv": sys.argv,
        "locks": report.locks,
        "edges": report.edges,
        "inversions": [inv.summary() for inv in report.inversions],
    }
    # One short line per process, appended: processes of one run never interleave.
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


#: The sitecustomize module ``anypool lockcheck`` puts first on PYTHONPATH.
SITECUSTOMIZE = """\
# Written by `anypool lockcheck`: turns lock-order checking on in every Python process
# the checked command starts, then runs the sitecustomize module this one hides.
import importlib.machinery
import importlib.util
import os
import sys

try:
    import anypool.sync
except Exception as exc:
    sys.stderr.write(
        "anypool lockcheck: this Python process is not checked: importing anypool "
        f"failed in {sys.executable}: {exc!r}\\n"
    )

_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None:
    # The import system reads sys.modules["sitecustomize"] when this module finishes:
    # it then finds the one this module hid, run here.
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["sitecustomize"] = _module
    _spec.loader.exec_module(_module)
"""
