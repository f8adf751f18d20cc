"""The pure-Python core of Lock and RLock: what ``_fastlock.c`` does, for where it is
not built (no compiler), cannot be imported, or is not wanted
(``ANYPOOL_SYNC_PURE_PYTHON=1``; free-threaded builds always use this one).

It wraps the interpreter's own lock (``_thread.allocate_lock`` / ``_thread.RLock``),
which does the real locking; the core only counts and, when asked, records. Two sets of
methods, swapped on the class by :func:`_set_mode` when lock checking or the watchdog is
switched on or off (see ``_state``):

* plain (the default): ``acquire``/``__enter__`` try the lock without blocking and count;
  only a failed try (contention) takes the slow path that measures the wait.
  ``release``/``__exit__`` are the C lock's own methods, reached through a property, so
  releasing runs no Python code at all.
* tracked: every acquisition also records the thread, the locks it holds (for the
  lock-order checker and the watchdog's report) and how long the lock is held. The
  common case (no other lock held, no contention) is written out inline: each helper
  call would cost a Python frame.

The interface (the same as ``_fastlock.LockCore``'s; see ``_fastlock.pyi``) is what
``_locks.TrackedLock`` builds on.
"""

from __future__ import annotations

import _thread
import itertools
import time
from operator import attrgetter
from typing import Any, ClassVar, Self

from . import _state
from ._stats import _value
from ._watchdog import blocking_acquire

__all__ = ["LockCore", "check_timeout"]

_clock = time.perf_counter
_local = _state.local


def check_timeout(blocking: bool, timeout: float) -> None:
    """The argument checks threading's locks make, with the same errors (made here
    because the lock is first tried without blocking, which ignores the timeout)."""
    if timeout != timeout:  # noqa: PLR0124 (NaN is the one value unequal to itself)
        raise ValueError("Invalid value NaN (not a number)")
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    if timeout > _thread.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")


class LockCore:
    """A lock with counters; a subclass's ``_reentrant`` says Lock or RLock."""

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
        "_wait_max",
        "_wait_total",
    )
    _reentrant: ClassVar[bool] = False
    _inner: Any
    _acquisitions: int
    _contended: int
    _failed: itertools.count[int]
    _wait_total: float
    _wait_max: float
    _hold_max: float
    _acquired_at: float
    _holder: _state.ThreadState | None
    _holder_generation: int

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls)
        self._inner = _thread.RLock() if cls._reentrant else _thread.allocate_lock()
        self._acquisitions = 0
        self._contended = 0
        # Failed tries happen without the lock, possibly in several threads at once:
        # next() on a count is atomic, `+= 1` is not.
        self._failed = itertools.count()
        self._wait_total = 0.0
        self._wait_max = 0.0
        self._hold_max = -1.0  # < 0: never measured
        self._acquired_at = 0.0
        self._holder = None
        self._holder_generation = 0
        return self

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
        inner = self._inner
        if self._reentrant and inner._is_owned():  # re-entry: no new order, no wait
            inner.acquire()
            self._acquisitions += 1
            return True
        try:
            me: _state.ThreadState = _local.state
        except AttributeError:
            me = _state.thread_state()
        if me.generation != _state.generation:
            me = _state.thread_state()
        if me.held and not me.busy:
            checker = _state.checker
            if checker is not None:
                checker.before_acquire(self, me, blocking and timeout == -1)
        if inner.acquire(False):
            self._acquisitions += 1
        elif not self._acquire_slow(blocking, timeout, me):
            return False
        self._holder = me
        self._holder_generation = me.generation
        me.held.append(self)
        self._acquired_at = _clock()
        return True

    def _tracked_enter(self) -> bool:
        return self._tracked_acquire()

    def _tracked_release(self) -> None:
        inner = self._inner
        if self._holder is not None and (not self._reentrant or inner._recursion_count() == 1):
            self._forget()
        inner.release()

    def _tracked_exit(self, *exc_info: object) -> None:
        self._tracked_release()

    def _forget(self) -> None:
        """About to be released for good: note the hold time, drop it from its holder
        (the holder's list, not the caller's: a Lock may be released by any thread)."""
        holder = self._holder
        if holder is None:
            return
        self._holder = None
        if self._holder_generation != _state.generation:
            return  # acquired in an earlier tracked period: its record is gone
        hold = _clock() - self._acquired_at
        if hold > self._hold_max:  # noqa: PLR1730 (cheaper than calling max(), per release)
            self._hold_max = hold
        held = holder.held
        if held[-1] is self:  # usually the last one taken
            del held[-1]
            return
        for i in range(len(held) - 2, -1, -1):
            if held[i] is self:
                del held[i]
                break

    # -- what the rest of anypool.sync reads --------------------------------------------

    def locked(self) -> bool:
        """True if some thread holds the lock."""
        if not self._reentrant:
            return bool(self._inner.locked())
        if self._inner._is_owned():
            return True
        if self._inner.acquire(False):
            self._inner.release()
            return False
        return True

    def _snapshot(self) -> tuple[int, int, int, float, float, float]:
        return (
            self._acquisitions,
            self._contended,
            _value(self._failed),
            self._wait_total,
            self._wait_max,
            self._hold_max,
        )

    def _holder_ident(self) -> int | None:
        # Not once tracking is off: a release in plain mode does not clear _holder.
        holder = self._holder
        if holder is None or not _state.tracking or self._holder_generation != _state.generation:
            return None
        return holder.ident

    def __reduce_ex__(self, protocol: Any) -> Any:
        # As threading's locks (and the C core): a lock means nothing in another process.
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def _at_fork_reinit(self) -> None:
        # After fork only the forking thread exists: the lock is free and unowned.
        self._inner._at_fork_reinit()
        self._holder = None

    # -- RLock's part of the protocol threading.Condition uses ---------------------------

    def _rlock_is_owned(self) -> bool:
        return bool(self._inner._is_owned())

    def _rlock_recursion_count(self) -> int:
        return int(self._inner._recursion_count())

    def _rlock_release_save(self) -> Any:
        if self._inner._is_owned():
            self._forget()
        return self._inner._release_save()

    def _rlock_acquire_restore(self, saved: Any) -> None:
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
        self._holder = me
        self._holder_generation = me.generation
        me.held.append(self)
        self._acquired_at = _clock()


_PLAIN = {
    "acquire": LockCore.acquire,
    "__enter__": LockCore.__enter__,
    "release": property(attrgetter("_inner.release"), doc=LockCore.release.__doc__),
    "__exit__": property(attrgetter("_inner.__exit__")),
}
_TRACKED = {
    "acquire": LockCore._tracked_acquire,
    "__enter__": LockCore._tracked_enter,
    "release": LockCore._tracked_release,
    "__exit__": LockCore._tracked_exit,
}
LockCore._tracked_acquire.__doc__ = LockCore.acquire.__doc__
LockCore._tracked_release.__doc__ = LockCore.release.__doc__


def _set_mode() -> None:
    for name, method in (_TRACKED if _state.tracking else _PLAIN).items():
        setattr(LockCore, name, method)


_state.on_change(_set_mode)
