"""Semaphore, BoundedSemaphore, Condition, Event and Barrier with names and statistics.

Each wraps its ``threading`` counterpart, which does the real work, and times the waits.
Semaphore acquisitions also report to the watchdog. Only Lock and RLock take part in
lock-order checking: a semaphore is often released by another thread than the one that
acquired it (as a signal), and an order between signals is no deadlock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ._locks import RLock
from ._stats import LockStats, Waits, creation_site, next_serial
from ._watchdog import blocking_acquire

__all__ = ["Barrier", "BoundedSemaphore", "Condition", "Event", "Semaphore"]

T = TypeVar("T")
_clock = time.perf_counter


def _default_name(kind: str, name: str | None) -> str:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    return name if name is not None else f"{kind}#{next_serial()} ({creation_site()})"


class Semaphore:
    """``threading.Semaphore`` with a name, statistics and the watchdog.

    ``acquire(blocking=True, timeout=None)``, ``release(n=1)`` and the context manager,
    as threading's. Limits how many threads are inside at once (the guide's §3.3).

    Example::

        import anypool.sync

        db_slots = anypool.sync.Semaphore(3, name="db")
        with db_slots:   # at most 3 threads in here at once
            pass
        print(db_slots.stats().acquisitions)   # 1
    """

    _factory: Callable[[int], Any] = threading.Semaphore
    _kind = "Semaphore"

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"semaphore value must be an int, got {value!r}")
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, got {value}")
        self._inner = type(self)._factory(value)
        self._name = _default_name(self._kind, name)
        self._waits = Waits()

    @property
    def name(self) -> str:
        """The name given, or kind, number and creation site."""
        return self._name

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one unit, waiting (at most ``timeout`` s) unless ``blocking`` is false."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self._inner.acquire(False):
            self._waits.acquired()
            return True
        if not blocking:
            self._waits.failed()
            return False
        start = _clock()
        got = blocking_acquire(self._acquire_for, -1 if timeout is None else timeout, self)
        self._waits.waited(_clock() - start, success=got)
        return got

    def _acquire_for(self, blocking: bool, timeout: float) -> bool:
        return bool(self._inner.acquire(blocking, None if timeout < 0 else timeout))

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units, waking as many waiting threads."""
        self._inner.release(n)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._inner.release()

    def stats(self) -> LockStats:
        """Counts and times since creation; see :class:`LockStats`."""
        return self._waits.snapshot(self._name)

    def __repr__(self) -> str:
        return f"<anypool.sync.{type(self).__name__} {self._name!r} value={self._inner._value}>"


class BoundedSemaphore(Semaphore):
    """``threading.BoundedSemaphore``: a Semaphore that may not be released above its
    initial value (``ValueError``, which catches a release without an acquire).

    Example::

        import anypool.sync

        slots = anypool.sync.BoundedSemaphore(2, name="slots")
        with slots:
            pass
        try:
            slots.release()          # one more release than acquisitions
        except ValueError as exc:
            print(exc)
    """

    _factory = threading.BoundedSemaphore
    _kind = "BoundedSemaphore"


class Condition:
    """``threading.Condition`` over an anypool lock (an :class:`RLock` by default).

    ``wait``, ``wait_for``, ``notify``, ``notify_all``, ``acquire``/``release`` and the
    context manager, as threading's. ``stats()`` describes the waits (``wait`` calls):
    ``acquisitions`` counts those that were notified, ``timeouts`` those that timed out;
    ``lock.stats()`` describes the lock.

    Example::

        import threading
        import anypool.sync

        items = []
        ready = anypool.sync.Condition(name="items")

        def producer():
            with ready:
                items.append(1)
                ready.notify()

        threading.Thread(target=producer).start()
        with ready:
            ready.wait_for(lambda: items, timeout=10)
        print(items)   # [1]
    """

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        self._name = _default_name("Condition", name)
        self.lock: Any = RLock(name=f"{self._name}.lock") if lock is None else lock
        # threading.Condition takes any lock-like object; its stub names only its own.
        self._inner = threading.Condition(self.lock)  # type: ignore[arg-type]
        self._waits = Waits()

    @property
    def name(self) -> str:
        """The name given, or kind, number and creation site."""
        return self._name

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the underlying lock."""
        return bool(self.lock.acquire(blocking, timeout))

    def release(self) -> None:
        """Release the underlying lock."""
        self.lock.release()

    def __enter__(self) -> bool:
        return bool(self.lock.__enter__())

    def __exit__(self, *exc_info: object) -> None:
        self.lock.__exit__(*exc_info)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or the timeout), re-acquire; False on
        timeout. ``RuntimeError`` if the lock is not held."""
        start = _clock()
        notified = self._inner.wait(timeout)
        self._waits.waited(_clock() - start, success=notified)
        return notified

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true (or the timeout); return its last value."""
        start = _clock()
        result = self._inner.wait_for(predicate, timeout)
        self._waits.waited(_clock() - start, success=bool(result))
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting threads; the lock must be held."""
        self._inner.notify(n)

    def notify_all(self) -> None:
        """Wake every waiting thread; the lock must be held."""
        self._inner.notify_all()

    def stats(self) -> LockStats:
        """The waits so far; see the class docstring and :class:`LockStats`."""
        return self._waits.snapshot(self._name)

    def __repr__(self) -> str:
        return f"<anypool.sync.Condition {self._name!r} over {self.lock!r}>"


class Event:
    """``threading.Event`` with a name and statistics of its waits.

    ``set``, ``clear``, ``is_set`` and ``wait(timeout=None)``, as threading's (§3.4).
    ``stats()``: ``acquisitions`` are waits that saw the event set, ``contended`` those
    that had to block for it, ``timeouts`` those that gave up.

    Example::

        import threading
        import anypool.sync

        stop = anypool.sync.Event(name="stop")
        threading.Timer(0.01, stop.set).start()
        print(stop.wait(timeout=10))   # True
    """

    def __init__(self, *, name: str | None = None) -> None:
        self._name = _default_name("Event", name)
        self._inner = threading.Event()
        self._waits = Waits()

    @property
    def name(self) -> str:
        """The name given, or kind, number and creation site."""
        return self._name

    def is_set(self) -> bool:
        """True once set (and until cleared)."""
        return self._inner.is_set()

    def set(self) -> None:
        """Set the event, waking every waiting thread."""
        self._inner.set()

    def clear(self) -> None:
        """Reset the event: later waits block until it is set again."""
        self._inner.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the event is set (or the timeout); True if it is set."""
        if self._inner.is_set():
            self._waits.acquired()
            return True
        start = _clock()
        got = self._inner.wait(timeout)
        self._waits.waited(_clock() - start, success=got)
        return got

    def stats(self) -> LockStats:
        """The waits so far; see the class docstring and :class:`LockStats`."""
        return self._waits.snapshot(self._name)

    def __repr__(self) -> str:
        state = "set" if self._inner.is_set() else "unset"
        return f"<anypool.sync.Event {self._name!r} {state}>"


class Barrier:
    """``threading.Barrier`` with a name and statistics of its waits (§3.6).

    ``wait(timeout=None)`` returns an index in ``range(parties)``; ``reset()``,
    ``abort()``, ``parties``, ``n_waiting``, ``broken``; a broken barrier raises
    ``threading.BrokenBarrierError``, as threading's.

    Example::

        import threading
        import anypool.sync

        start_line = anypool.sync.Barrier(3, timeout=10, name="start")
        runners = [threading.Thread(target=start_line.wait) for _ in range(2)]
        for r in runners:
            r.start()
        start_line.wait()        # the third party: everyone goes
        for r in runners:
            r.join()
        print(start_line.stats().acquisitions)   # 3
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int, got {parties!r}")
        if parties < 1:
            raise ValueError(f"parties must be >= 1, got {parties}")
        self._name = _default_name("Barrier", name)
        self._inner = threading.Barrier(parties, action, timeout)  # type: ignore[arg-type]
        self._waits = Waits()

    @property
    def name(self) -> str:
        """The name given, or kind, number and creation site."""
        return self._name

    def wait(self, timeout: float | None = None) -> int:
        """Wait until ``parties`` threads have called ``wait``; return this one's index."""
        start = _clock()
        try:
            index = self._inner.wait(timeout)
        except threading.BrokenBarrierError:
            self._waits.waited(_clock() - start, success=False)
            raise
        self._waits.waited(_clock() - start, success=True)
        return index

    def reset(self) -> None:
        """Return the barrier to its initial state (waiting threads get BrokenBarrierError)."""
        self._inner.reset()

    def abort(self) -> None:
        """Break the barrier: current and future waits raise BrokenBarrierError."""
        self._inner.abort()

    @property
    def parties(self) -> int:
        """How many threads must call ``wait``."""
        return self._inner.parties

    @property
    def n_waiting(self) -> int:
        """How many threads are waiting now."""
        return self._inner.n_waiting

    @property
    def broken(self) -> bool:
        """True if the barrier is broken."""
        return self._inner.broken

    def stats(self) -> LockStats:
        """The waits so far (every wait blocks, but the last party's only briefly)."""
        return self._waits.snapshot(self._name)

    def __repr__(self) -> str:
        return (
            f"<anypool.sync.Barrier {self._name!r} {self._inner.n_waiting}/"
            f"{self._inner.parties} waiting>"
        )
