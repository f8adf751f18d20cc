"""The statistics record every anypool.sync primitive returns from ``stats()``."""

from __future__ import annotations

import _thread
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Any

__all__ = ["LockStats", "Waits", "creation_site", "next_serial"]

_serials = itertools.count(1)
_HERE = str(Path(__file__).resolve().parent)
_THREADING = str(Path(sys.modules["threading"].__file__ or "threading.py").resolve())


def next_serial() -> int:
    # itertools.count's next() is atomic under the GIL: no two locks share a serial.
    return next(_serials)


def creation_site() -> str:
    """``file:line`` of the first caller outside anypool.sync and threading.py."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_HERE) and filename != _THREADING:
            return f"{Path(filename).name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@dataclasses.dataclass(frozen=True, slots=True)
class LockStats:
    """What a primitive has seen since it was created (``stats()`` of every primitive).

    Attributes:
        name: the primitive's name (``name=``, or its kind, number and creation site).
        acquisitions: successful acquisitions (for Event and Barrier: completed waits;
            for Condition: its lock's).
        contended: those of them that had to wait because another thread held it.
        timeouts: attempts that gave up (a timeout, or ``blocking=False`` that failed).
        total_wait: seconds spent waiting in contended acquisitions, summed.
        max_wait: the longest single wait, in seconds.
        max_hold: the longest time a Lock or RLock was held, in seconds; ``None`` when
            not measured. Hold times are measured while lock checking or the watchdog is
            on (measuring them costs two clock reads per acquisition).

    Example::

        lock = anypool.sync.Lock(name="db")
        with lock:
            pass
        lock.stats().acquisitions   # 1
    """

    name: str
    acquisitions: int
    contended: int
    timeouts: int
    total_wait: float
    max_wait: float
    max_hold: float | None


class Waits:
    """Counters of waits for primitives built on a threading primitive.

    Several threads may finish waiting at once (a Semaphore of 3, an Event), so the
    counters are ``itertools.count`` objects, whose ``next()`` is atomic, and the wait
    times are summed under a raw lock (only on the slow path, after a real wait).
    """

    __slots__ = ("_acquired", "_contended", "_failed", "_mutex", "max_wait", "total_wait")

    def __init__(self) -> None:
        self._acquired = itertools.count()
        self._contended = itertools.count()
        self._failed = itertools.count()
        self._mutex = _thread.allocate_lock()
        self.total_wait = 0.0
        self.max_wait = 0.0

    def acquired(self) -> None:
        next(self._acquired)

    def waited(self, seconds: float, *, success: bool) -> None:
        if success:
            next(self._acquired)
            next(self._contended)
        else:
            next(self._failed)
        with self._mutex:
            self.total_wait += seconds
            self.max_wait = max(self.max_wait, seconds)

    def failed(self) -> None:
        next(self._failed)

    def snapshot(self, name: str) -> LockStats:
        return LockStats(
            name=name,
            acquisitions=_value(self._acquired),
            contended=_value(self._contended),
            timeouts=_value(self._failed),
            total_wait=self.total_wait,
            max_wait=self.max_wait,
            max_hold=None,
        )


def _value(counter: itertools.count[int]) -> int:
    # A count's current value without advancing it: its repr is "count(N)".
    return int(repr(counter)[6:-1])
