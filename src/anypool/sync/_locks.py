"""Lock and RLock: threading's locks, with statistics, lock-order checking and a watchdog.

Each wraps the interpreter's own lock (``_thread.allocate_lock`` / ``_thread.RLock``),
which does the real locking; the wrapper only counts and, when asked, records.

Two sets of methods, swapped on the shared base class by :func:`_set_mode` when lock
checking or the watchdog is switched on or off (see ``_state``):

* plain (the default): ``acquire``/``__enter__`` try the lock without blocking and count;
  only a failed try (contention) takes the slow path that measures the wait.
  ``release``/``__exit__`` are the C lock's own methods, reached through a property, so
  releasing runs no Python code at all.
* tracked: every acquisition also records the thread, the locks it holds (for the
  lock-order checker and the watchdog's report) and how long the lock is held.
"""

from __future__ import annotations

import _thread
import itertools
import time
from operator import attrgetter
from typing import Any, ClassVar

from . import _state
from ._stats import LockStats, _value, creation_site, next_serial
from ._watchdog import blocking_acquire

__all__ = ["Lock", "RLock", "TrackedLock"]

_clock = time.perf_counter


def check_timeout(blocking: bool, timeout: float) -> None:
    """The argument checks threading's locks make, with the same errors."""
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")


class TrackedLock:
    """What Lock and RLock share. Not public: use :class:`Lock` or :class:`RLock`."""

    __slots__ = (
        "__weakref__",
        "_acquired_at",
        "_acquisitions",
        "_contended",
        "_failed",
        "_hold_max",
        "_holder",
        "_holder_generation",
        "_inner",
        "_name",
        "_serial",
        "_wait_max",
        "_wait_total",
    )
    _kind: ClassVar[str] = "Lock"

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self._inner: Any = self._allocate()
        self._serial = next_serial()
        self._name = name if name is not None else f"{self._kind}#{self._serial}"
        if name is None:
            self._name += f" ({creation_site()})"
        self._acquisitions = 0
        self._contended = 0
        self._failed = itertools.count()
        self._wait_total = 0.0
        self._wait_max = 0.0
        self._hold_max = -1.0  # < 0: never measured
        self._acquired_at = 0.0
        self._holder: _state.ThreadState | None = None
        self._holder_generation = 0

    def _allocate(self) -> Any:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The name given with ``name=``, or ``"Lock#7 (app.py:12)"``: kind, number, site."""
        return self._name

    def stats(self) -> LockStats:
        """Counts and times since creation; see :class:`LockStats`."""
        return LockStats(
            name=self._name,
            acquisitions=self._acquisitions,
            contended=self._contended,
            timeouts=_value(self._failed),
            total_wait=self._wait_total,
            max_wait=self._wait_max,
            max_hold=None if self._hold_max < 0 else self._hold_max,
        )

    # -- plain mode -------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, as ``threading.Lock.acquire``: block (for at most
        ``timeout`` seconds, if given) unless ``blocking`` is false; True if acquired.

        With lock checking on, an acquisition that inverts an earlier lock order is
        reported first (a warning, or :class:`LockOrderError` in strict mode).
        """
        if timeout != -1:
            check_timeout(blocking, timeout)
        if self._inner.acquire(False):
            self._acquisitions += 1
            return True
        return self._acquire_slow(blocking, timeout, None)

    def __enter__(self) -> bool:
        if self._inner.acquire(False):
            self._acquisitions += 1
            return True
        return self._acquire_slow(True, -1, None)

    def release(self) -> None:
        """Release the lock; ``RuntimeError`` if it is not held (as threading's)."""
        self._inner.release()

    def __exit__(self, *exc_info: object) -> None:
        self._inner.release()

    def _acquire_slow(self, blocking: bool, timeout: float, me: _state.ThreadState | None) -> bool:
        """Someone else holds the lock: wait (watchdog permitting) and time the wait."""
        if not blocking:
            next(self._failed)
            return False
        if me is not None:
            me.waiting = self
        start = _clock()
        try:
            got = blocking_acquire(self._inner.acquire, timeout, self)
        finally:
            if me is not None:
                me.waiting = None
        if not got:
            next(self._failed)
            return False
        # We hold the lock now, so these updates cannot race.
        waited = _clock() - start
        self._acquisitions += 1
        self._contended += 1
        self._wait_total += waited
        self._wait_max = max(self._wait_max, waited)
        return True

    # -- tracked mode -----------------------------------------------------------------

    def _tracked_acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1:
            check_timeout(blocking, timeout)
        me = _state.thread_state()
        if self._owned_by_caller():  # RLock re-entry: no new order, nothing to wait for
            self._inner.acquire()
            self._acquisitions += 1
            return True
        checker = _state.checker
        if checker is not None and not me.busy:
            checker.before_acquire(self, me, blocking and timeout == -1)
        if self._inner.acquire(False):
            self._acquisitions += 1
        elif not self._acquire_slow(blocking, timeout, me):
            return False
        self._took(me)
        return True

    def _tracked_enter(self) -> bool:
        return self._tracked_acquire()

    def _tracked_release(self) -> None:
        if self._last_level():
            self._forget()
        self._inner.release()

    def _tracked_exit(self, *exc_info: object) -> None:
        if self._last_level():
            self._forget()
        self._inner.release()

    def _took(self, me: _state.ThreadState) -> None:
        self._holder = me
        self._holder_generation = me.generation
        me.held.append(self)
        self._acquired_at = _clock()

    def _forget(self) -> None:
        """About to be released for good: note the hold time, drop it from its holder."""
        holder = self._holder
        if holder is None:
            return
        self._holder = None
        if self._holder_generation != _state.generation:
            return  # acquired in an earlier tracked period: its record is gone
        hold = _clock() - self._acquired_at
        self._hold_max = max(self._hold_max, hold)
        held = holder.held
        for i in range(len(held) - 1, -1, -1):  # usually the last one taken
            if held[i] is self:
                del held[i]
                break

    def _owned_by_caller(self) -> bool:
        return False

    def _last_level(self) -> bool:
        return True

    def holder(self) -> int | None:
        """Ident of the thread holding this lock, when known (lock checking or the
        watchdog on when it was acquired); else None."""
        holder = self._holder
        if holder is None or self._holder_generation != _state.generation:
            return None
        return holder.ident

    def _at_fork_reinit(self) -> None:
        # After fork only the forking thread exists: the lock is free and unowned.
        self._inner._at_fork_reinit()
        self._holder = None

    def __repr__(self) -> str:
        return (
            f"<anypool.sync.{type(self).__name__} {self._name!r} "
            f"{self._state_word()}, {self._acquisitions} acquisitions>"
        )

    def _state_word(self) -> str:
        raise NotImplementedError


_PLAIN = {
    "acquire": TrackedLock.acquire,
    "__enter__": TrackedLock.__enter__,
    "release": property(attrgetter("_inner.release"), doc=TrackedLock.release.__doc__),
    "__exit__": property(attrgetter("_inner.__exit__")),
}
_TRACKED = {
    "acquire": TrackedLock._tracked_acquire,
    "__enter__": TrackedLock._tracked_enter,
    "release": TrackedLock._tracked_release,
    "__exit__": TrackedLock._tracked_exit,
}
TrackedLock._tracked_acquire.__doc__ = TrackedLock.acquire.__doc__
TrackedLock._tracked_release.__doc__ = TrackedLock.release.__doc__


def _set_mode(tracking: bool) -> None:
    for name, method in (_TRACKED if tracking else _PLAIN).items():
        setattr(TrackedLock, name, method)


class Lock(TrackedLock):
    """``threading.Lock`` with a name, statistics, lock-order checking and a watchdog.

    Same API and semantics: ``acquire(blocking=True, timeout=-1)``, ``release()``,
    ``locked()``, the context manager; any thread may release it. Adds ``name``,
    ``stats()`` and ``holder()``.

    Example::

        import anypool.sync

        lock = anypool.sync.Lock(name="counter")
        with lock:
            pass
        if lock.acquire(timeout=2.0):
            lock.release()
        print(lock.stats())
    """

    __slots__ = ()
    _kind = "Lock"

    def _allocate(self) -> Any:
        return _thread.allocate_lock()

    def locked(self) -> bool:
        """True if some thread holds the lock."""
        return bool(self._inner.locked())

    def _is_owned(self) -> bool:
        # For threading.Condition: a Lock has no owner, so "locked" is the best answer
        # (threading's own fallback says the same, but by acquiring and releasing).
        return bool(self._inner.locked())

    def _state_word(self) -> str:
        return "locked" if self._inner.locked() else "unlocked"


class RLock(TrackedLock):
    """``threading.RLock`` with a name, statistics, lock-order checking and a watchdog.

    The thread that holds it may acquire it again; it is released when released as
    many times. Only the holder may release it (``RuntimeError`` otherwise).

    Example::

        import anypool.sync

        rlock = anypool.sync.RLock(name="tree")

        def visit(depth):
            with rlock:   # re-entered by the same thread: no deadlock
                return depth if depth == 3 else visit(depth + 1)

        print(visit(0), rlock.stats().acquisitions)   # 3 4
    """

    __slots__ = ()
    _kind = "RLock"

    def _allocate(self) -> Any:
        return _thread.RLock()

    def _owned_by_caller(self) -> bool:
        return bool(self._inner._is_owned())

    def _last_level(self) -> bool:
        return bool(self._inner._recursion_count() == 1)

    # threading.Condition uses these three when its lock has them (an RLock must be
    # released completely while waiting, and restored to the same depth).
    def _is_owned(self) -> bool:
        return bool(self._inner._is_owned())

    def _recursion_count(self) -> int:
        return int(self._inner._recursion_count())

    def _release_save(self) -> Any:
        if self._inner._is_owned():
            self._forget()
        return self._inner._release_save()

    def _acquire_restore(self, saved: Any) -> None:
        if not _state.tracking:
            self._inner._acquire_restore(saved)
            self._acquisitions += 1
            return
        me = _state.thread_state()
        checker = _state.checker
        if checker is not None and not me.busy:
            checker.before_acquire(self, me, True)
        self._inner._acquire_restore(saved)
        self._acquisitions += 1
        self._took(me)

    def _state_word(self) -> str:
        count = self._inner._recursion_count()
        if count:
            return f"held {count}x by this thread"
        if self._inner.acquire(False):
            self._inner.release()
            return "unlocked"
        return "locked"


_state.on_mode_change(_set_mode)
