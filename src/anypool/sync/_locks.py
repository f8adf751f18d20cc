"""Lock and RLock: threading's locks, with statistics, lock-order checking and a watchdog.

The locking, counting and recording happen in the core they subclass (``_core``): the C
extension ``_fastlock``, or where it is not available the same in pure Python
(``_pycore``). This module adds what is not on the hot path: names, ``stats()``
records, ``holder()``, ``repr``, and the methods threading.Condition looks for.
"""

from __future__ import annotations

from typing import ClassVar

from ._core import LockCore, specialize
from ._stats import LockStats, creation_site, next_serial

__all__ = ["Lock", "RLock", "TrackedLock"]


class TrackedLock(LockCore):
    """What Lock and RLock share. Not public: use :class:`Lock` or :class:`RLock`."""

    __slots__ = ("_name", "_serial")
    _kind: ClassVar[str] = "Lock"

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self._serial = next_serial()
        if name is None:
            name = f"{self._kind}#{self._serial} ({creation_site()})"
        self._name = name

    @property
    def name(self) -> str:
        """The name given with ``name=``, or ``"Lock#7 (app.py:12)"``: kind, number, site."""
        return self._name

    def stats(self) -> LockStats:
        """Counts and times since creation; see :class:`LockStats`."""
        acquisitions, contended, timeouts, total_wait, max_wait, max_hold = self._snapshot()
        return LockStats(
            name=self._name,
            acquisitions=acquisitions,
            contended=contended,
            timeouts=timeouts,
            total_wait=total_wait,
            max_wait=max_wait,
            max_hold=None if max_hold < 0 else max_hold,
        )

    def holder(self) -> int | None:
        """Ident of the thread holding this lock, while lock checking or the watchdog
        is on (and was when the lock was acquired); else None."""
        return self._holder_ident()

    def __repr__(self) -> str:
        acquisitions = self._snapshot()[0]
        return (
            f"<anypool.sync.{type(self).__name__} {self._name!r} "
            f"{self._state_word()}, {acquisitions} acquisitions>"
        )

    def _state_word(self) -> str:
        return "locked" if self.locked() else "unlocked"


@specialize
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
    _reentrant = False

    # For threading.Condition: a Lock has no owner, so "locked" is the best answer
    # (threading's own fallback says the same, but by acquiring and releasing).
    _is_owned = LockCore.locked


@specialize
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
    _reentrant = True

    # threading.Condition uses these when its lock has them (an RLock must be released
    # completely while waiting, and restored to the same depth).
    _is_owned = LockCore._rlock_is_owned
    _recursion_count = LockCore._rlock_recursion_count
    _release_save = LockCore._rlock_release_save
    _acquire_restore = LockCore._rlock_acquire_restore

    def _state_word(self) -> str:
        count = self._recursion_count()
        if count:
            return f"held {count}x by this thread"
        return super()._state_word()
