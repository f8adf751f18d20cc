"""Warm process pools, kept between the module-level calls (``anypool.map`` & co).

Starting a process pool costs tens to hundreds of milliseconds; a program that calls
``anypool.map(f, xs, backend="processes")`` in a loop would pay it every time. Instead,
the module-level calls borrow a pool from here and give it back when they return. A pool
given back waits for the next call with the same settings; after ``IDLE_TIMEOUT`` seconds
without work its workers (and its dispatcher thread) exit by themselves, and the next
call starts them again. ``Executor`` objects you create yourself never come from here:
their pools are theirs, and stop at ``shutdown``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

from ._backends import Backend

__all__ = ["IDLE_TIMEOUT", "WARM", "close_pools"]


def _idle_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get("ANYPOOL_IDLE_TIMEOUT", "60")))
    except ValueError:
        return 60.0


#: Seconds a warm pool's workers stay alive without work (``ANYPOOL_IDLE_TIMEOUT``).
IDLE_TIMEOUT = _idle_timeout()


class WarmPools:
    """Idle pools by their settings. Thread-safe; each pool is lent to one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Hashable, Backend] = {}

    def borrow(self, key: Hashable | None, make: Callable[[], Backend]) -> Backend:
        """An idle pool with these settings, or a new one (``key`` None: never shared)."""
        if key is not None:
            with self._lock:
                backend = self._idle.pop(key, None)
            if backend is not None and backend.usable():
                return backend
            if backend is not None:
                backend.shutdown(wait=False)
        return make()

    def give_back(self, key: Hashable | None, backend: Backend) -> None:
        """Keep ``backend`` for the next call with the same settings (or shut it down)."""
        spare: Backend | None = backend
        if key is not None and backend.usable():
            with self._lock:
                if key not in self._idle:
                    self._idle[key] = backend
                    spare = None
        if spare is not None:
            spare.shutdown(wait=True)

    def close(self) -> None:
        with self._lock:
            pools, self._idle = list(self._idle.values()), {}
        for backend in pools:
            backend.shutdown(wait=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._idle)


WARM = WarmPools()


def close_pools() -> None:
    """Stop the warm process pools kept between ``anypool.map`` calls, now.

    The module-level ``anypool.map``, ``imap`` and ``imap_unordered`` reuse their worker
    processes from one call to the next (idle workers exit by themselves after
    ``ANYPOOL_IDLE_TIMEOUT`` seconds, 60 by default, and at interpreter exit). Call this
    to release them earlier, e.g. before forking, or at the end of a test.

    Example::

        anypool.map(work, items, backend="processes")   # starts worker processes
        anypool.map(work, items, backend="processes")   # reuses them
        anypool.close_pools()                           # and now they are gone
    """
    WARM.close()


def key_for(
    name: str, workers: int, options: dict[str, Any], initializer: Any, initargs: Any
) -> Hashable | None:
    """The settings that make two pools interchangeable, or None if they cannot be."""
    try:
        key = (name, workers, tuple(sorted(options.items())), initializer, initargs)
        hash(key)
    except TypeError:  # unhashable initargs or options: do not share
        return None
    return key
