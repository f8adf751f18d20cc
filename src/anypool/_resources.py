"""ResourcePool: the guide's thread-safe connection pool (§8.3), done properly.

No thread of its own. Idle resources wait in a ``queue.SimpleQueue`` (C code: taking
one, and waiting for one, run no Python and hold no Python lock)::

    acquire() ─► idle queue ──► check(resource) ──ok──► lent to the borrower
                   │ empty, fewer than size exist: create()   │ failed: close, create
                   │ empty, size exist: wait on the queue (timeout: PoolTimeout)
    exit ──────► back on the idle queue (or closed: pool closed, too old)

A small lock guards only the counts and the records of loans. create, check and close
run outside it, so a slow database never blocks the threads giving resources back.

A loan is a small object; the pool keeps only a record of it. When the loan is garbage
collected without having been exited, or its thread has ended without exiting it, the
record says so: the leak is reported with the stack where the resource was acquired and
its place in the pool is freed (the resource itself is never lent again).
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from ._errors import AnypoolError

__all__ = [
    "PoolClosed",
    "PoolTimeout",
    "ResourceLeakWarning",
    "ResourcePool",
    "ResourcePoolStats",
]

R = TypeVar("R")

#: How often a waiting borrower looks for loans whose thread has ended. Shorter frees
#: a leaked resource sooner; longer wakes waiting threads less often.
DEAD_BORROWER_POLL = 0.1
#: Frames kept of each borrower's stack for leak reports. More shows more of the
#: caller's context; each frame costs about a microsecond on every acquire.
MAX_STACK_FRAMES = 32
_HERE = str(Path(__file__).resolve())


class PoolTimeout(AnypoolError, TimeoutError):
    """No resource became free within ``acquire``'s timeout.

    The message says where the resources in use were borrowed, which is usually where
    they are being held too long (or forgotten).

    Example::

        pool = anypool.ResourcePool(object, size=1)
        with pool.acquire():
            try:
                with pool.acquire(timeout=0.01):
                    pass
            except anypool.PoolTimeout as exc:
                print(exc)
    """


class PoolClosed(AnypoolError, RuntimeError):
    """``acquire`` on a pool that was closed (or closed while waiting)."""


class ResourceLeakWarning(UserWarning):
    """A borrowed resource was never given back; says where it was acquired."""


@dataclasses.dataclass(frozen=True, slots=True)
class ResourcePoolStats:
    """A snapshot of a :class:`ResourcePool` (``pool.stats()``).

    Attributes:
        size: the most resources the pool holds at once.
        created: resources created so far.
        closed: resources closed so far (failed checks, too old, pool closed, leaks).
        idle: resources ready to lend now.
        in_use: resources lent now.
        waiting: threads waiting in ``acquire`` now.
        borrows: successful acquisitions.
        timeouts: acquisitions that raised PoolTimeout.
        replaced: resources closed because ``check`` failed.
        expired: resources closed for ``max_lifetime`` or ``max_idle``.
        leaked: loans never given back (reported as ResourceLeakWarning).
    """

    size: int
    created: int
    closed: int
    idle: int
    in_use: int
    waiting: int
    borrows: int
    timeouts: int
    replaced: int
    expired: int
    leaked: int


_RESERVED: Any = object()


class _Slot:
    """One resource and its times."""

    __slots__ = ("created_at", "lent", "resource", "returned_at")

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.created_at = self.returned_at = time.monotonic()
        self.lent = False


class _Record:
    """The pool's record of one loan: what, to whom, from where."""

    __slots__ = ("done", "slot", "stack", "thread")

    def __init__(self, slot: _Slot, stack: list[tuple[str, int, str]]) -> None:
        self.slot = slot
        self.stack = stack
        self.thread = threading.current_thread()
        self.done = False

    def where(self) -> str:
        """The innermost frame outside anypool: where the borrower called acquire."""
        for filename, lineno, name in self.stack:
            if filename != _HERE and "contextlib" not in filename:
                return f"{Path(filename).name}:{lineno} in {name}"
        return "?"

    def formatted_stack(self) -> str:
        frames = [(*f, None) for f in reversed(self.stack) if f[0] != _HERE]
        summary = traceback.StackSummary.from_list(frames)
        return "".join(summary.format())


class _Loan(Generic[R]):
    """What ``acquire`` returns: use it in a ``with`` statement."""

    __slots__ = ("__weakref__", "_pool", "_record", "_timeout")

    def __init__(self, pool: ResourcePool[R], timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._record: _Record | None = None

    def __enter__(self) -> R:
        if self._record is not None:
            raise RuntimeError("this loan is already in use: call pool.acquire() again")
        self._record = self._pool._borrow(self._timeout)
        return self._record.slot.resource  # type: ignore[no-any-return]

    def __exit__(self, *exc_info: object) -> None:
        if self._record is not None:
            self._pool._give_back(self._record)

    def __del__(self) -> None:
        record = self._record
        if record is not None and not record.done:
            self._pool._leak(record, "its loan was garbage-collected without being exited")


class ResourcePool(Generic[R]):
    """A bounded, thread-safe pool of reusable resources: connections, sessions, sockets.

    ``with pool.acquire(timeout=...) as conn:`` lends a resource and takes it back on
    exit. Resources are created lazily with ``create()``, up to ``size`` at once.

    Args:
        create: makes a new resource (e.g. ``lambda: sqlite3.connect(path)``).
        size: the most resources in existence at once (in use plus idle).
        close: called with a resource the pool discards; default: its ``close()``
            method, if it has one.
        check: called with a resource before each loan; if it returns false or raises,
            the resource is closed and replaced by a new one.
        max_lifetime: seconds after creation when a resource is replaced.
        max_idle: seconds a resource may sit unused before it is closed.

    Example::

        import sqlite3
        import anypool

        pool = anypool.ResourcePool(
            lambda: sqlite3.connect(":memory:", check_same_thread=False),
            size=4,
            check=lambda conn: conn.execute("select 1").fetchone() == (1,),
        )
        with pool.acquire(timeout=5) as conn:
            print(conn.execute("select 40 + 2").fetchone())   # (42,)
        pool.close()
    """

    def __init__(
        self,
        create: Callable[[], R],
        *,
        size: int,
        close: Callable[[R], object] | None = None,
        check: Callable[[R], object] | None = None,
        max_lifetime: float | None = None,
        max_idle: float | None = None,
    ) -> None:
        _check_options(create, size, close, check, max_lifetime, max_idle)
        self.size = size
        self._create, self._close, self._check = create, close, check
        self._max_lifetime, self._max_idle = max_lifetime, max_idle
        self._mutex = threading.Lock()
        self._idle: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()  # None: closed
        self._lent: dict[int, _Record] = {}
        self._count = 0  # resources in existence or being created
        self._closed_pool = False
        self._waiting = 0
        self._counts = dict.fromkeys(
            ("created", "closed", "borrows", "timeouts", "replaced", "expired", "leaked"), 0
        )

    # -- public -----------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> _Loan[R]:
        """A context manager that lends a resource for the ``with`` block.

        Waits at most ``timeout`` seconds for a free resource (``None``: forever), then
        raises :class:`PoolTimeout`. :class:`PoolClosed` if the pool is closed.
        """
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
            if timeout < 0:
                raise ValueError(f"timeout must be >= 0, got {timeout}")
        return _Loan(self, timeout)

    def stats(self) -> ResourcePoolStats:
        """Counts since creation and the state now (dead borrowers reported first)."""
        with self._mutex:
            dead = self._reap_dead_borrowers()
        self._settle_dead(dead)
        with self._mutex:
            return ResourcePoolStats(
                size=self.size,
                idle=max(0, self._idle.qsize() - self._closed_pool),
                in_use=len(self._lent),
                waiting=self._waiting,
                **self._counts,
            )

    def close(self) -> None:
        """Close every idle resource now and every lent one when it comes back; later
        (and waiting) ``acquire`` calls raise :class:`PoolClosed`. Idempotent."""
        with self._mutex:
            if self._closed_pool:
                return
            self._closed_pool = True
            idle = []
            while True:
                try:
                    slot = self._idle.get_nowait()
                except queue.Empty:
                    break
                if slot is not None:
                    idle.append(slot)
            self._count -= len(idle)
            self._idle.put(None)  # wakes a waiter, which passes it on to the next
        for slot in idle:
            self._discard(slot.resource)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed_pool

    def __enter__(self) -> ResourcePool[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed_pool else f"{len(self._lent)}/{self.size} in use"
        return f"<anypool.ResourcePool {state}>"

    # -- borrowing --------------------------------------------------------------------

    def _borrow(self, timeout: float | None) -> _Record:
        stack = _cheap_stack()
        dead: list[_Record] = []
        expired: list[_Slot] = []
        try:
            slot = self._take(timeout, expired, dead)
        finally:
            self._settle_dead(dead)
            for old in expired:
                self._discard(old.resource)
        try:
            slot = self._ready(slot)
        except BaseException:
            with self._mutex:
                self._count -= 1
            raise
        record = _Record(slot, stack)
        with self._mutex:
            if slot.lent:  # the invariant every test leans on
                raise AssertionError("anypool bug: a resource was lent twice")
            slot.lent = True
            self._lent[id(record)] = record
            self._counts["borrows"] += 1
        return record

    def _take(
        self, timeout: float | None, expired: list[_Slot], dead: list[_Record]
    ) -> _Slot | None:
        """An idle slot, or None meaning "create one". Adds the slots that expired and
        the loans of dead threads found on the way to the lists."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                slot = self._reserve_or_reap(dead)
                if slot is _RESERVED:
                    return None
                if slot is None:
                    slot = self._wait(deadline, timeout)
                    if slot is None:
                        continue
            if self._usable(slot, expired):
                return slot

    def _reserve_or_reap(self, dead: list[_Record]) -> Any:
        """No idle slot: reserve a place to create one, else free the places of dead
        borrowers (None: then the caller should wait)."""
        with self._mutex:
            if self._closed_pool:
                raise PoolClosed("the ResourcePool is closed")
            if self._count < self.size:
                self._count += 1
                return _RESERVED
            found = self._reap_dead_borrowers()
        if found:
            dead.extend(found)
            return self._reserve_or_reap(dead)
        return None

    def _wait(self, deadline: float | None, timeout: float | None) -> _Slot | None:
        """Wait on the idle queue for a while; a slot, or None to look again."""
        remaining = DEAD_BORROWER_POLL
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                with self._mutex:
                    self._counts["timeouts"] += 1
                    message = self._timeout_message(timeout)
                raise PoolTimeout(message)
            remaining = min(remaining, left)
        with self._mutex:
            self._waiting += 1
        try:
            return self._idle.get(timeout=remaining)
        except queue.Empty:
            return None
        finally:
            with self._mutex:
                self._waiting -= 1

    def _usable(self, slot: _Slot | None, expired: list[_Slot]) -> bool:
        """Whether a slot taken from the queue may be lent (raises if the pool closed)."""
        if slot is None:
            self._idle.put(None)  # pass the news on to the next waiter
            raise PoolClosed("the ResourcePool is closed")
        if not self._is_expired(slot, time.monotonic()):
            return True
        expired.append(slot)
        with self._mutex:
            self._count -= 1
            self._counts["expired"] += 1
        return False

    def _timeout_message(self, timeout: float | None) -> str:
        sites = collections.Counter(record.where() for record in self._lent.values())
        where = ", ".join(f"{site} ({n}x)" if n > 1 else site for site, n in sites.items())
        return (
            f"no resource became free within {timeout:g} s: all {self.size} are in use, "
            f"borrowed at: {where or '(being created)'}. Give them back sooner, raise "
            "size=, or wait longer."
        )

    def _is_expired(self, slot: _Slot, now: float) -> bool:
        if self._max_lifetime is not None and now - slot.created_at > self._max_lifetime:
            return True
        return self._max_idle is not None and now - slot.returned_at > self._max_idle

    def _ready(self, slot: _Slot | None) -> _Slot:
        """Outside the lock: create a resource, or check an idle one (replace it if bad)."""
        if slot is not None:
            if self._passes_check(slot.resource):
                return slot
            self._discard(slot.resource)
            with self._mutex:
                self._counts["replaced"] += 1
        slot = _Slot(self._create())
        with self._mutex:
            self._counts["created"] += 1
        return slot

    def _passes_check(self, resource: R) -> bool:
        if self._check is None:
            return True
        try:
            return bool(self._check(resource))
        except Exception:  # a broken resource often fails its check by raising
            return False

    # -- giving back ------------------------------------------------------------------

    def _give_back(self, record: _Record) -> None:
        slot = record.slot
        with self._mutex:
            if record.done:
                return
            self._finish(record)
            now = time.monotonic()
            keep = not self._closed_pool and not self._is_expired(slot, now)
            if keep:
                slot.returned_at = now
                self._idle.put(slot)  # under the mutex, so close() cannot miss it
            else:
                self._count -= 1
                if not self._closed_pool:
                    self._counts["expired"] += 1
        if not keep:
            self._discard(slot.resource)

    def _finish(self, record: _Record) -> None:
        record.done = True
        record.slot.lent = False
        self._lent.pop(id(record), None)

    def _discard(self, resource: R) -> None:
        with self._mutex:
            self._counts["closed"] += 1
        try:
            if self._close is not None:
                self._close(resource)
            elif callable(getattr(resource, "close", None)):
                resource.close()  # type: ignore[attr-defined]
        except Exception as exc:  # closing a broken resource may fail: say so, go on
            warnings.warn(f"closing a pooled resource failed: {exc!r}", stacklevel=3)

    # -- leaks ------------------------------------------------------------------------

    def _reap_dead_borrowers(self) -> list[_Record]:
        """Under the lock: free the places of loans whose thread has ended."""
        dead = [r for r in self._lent.values() if not r.thread.is_alive()]
        for record in dead:
            self._release_leaked(record)
        return dead

    def _settle_dead(self, dead: list[_Record]) -> None:
        """Outside the lock: report each dead thread's loan and close its resource (its
        borrower is gone, so nobody can be using it)."""
        for record in dead:
            reason = f"thread {record.thread.name!r} ended without giving it back"
            self._report_leak(record, reason)
            self._discard(record.slot.resource)

    def _leak(self, record: _Record, reason: str) -> None:
        with self._mutex:
            if record.done:
                return
            self._release_leaked(record)
        self._report_leak(record, reason)

    def _release_leaked(self, record: _Record) -> None:
        self._finish(record)
        record.slot.lent = True  # never to be lent again: it may still be in use
        self._count -= 1
        self._counts["leaked"] += 1

    def _report_leak(self, record: _Record, reason: str) -> None:
        message = (
            f"a resource from an anypool.ResourcePool was never given back: {reason}. "
            "Use it in a `with pool.acquire() as resource:` block. It was acquired at "
            f"(most recent call last):\n{record.formatted_stack()}"
        )
        warnings.warn(ResourceLeakWarning(message), stacklevel=2)


def _cheap_stack() -> list[tuple[str, int, str]]:
    """(file, line, function) of every frame, innermost first: about a microsecond per
    frame, where traceback.extract_stack() reads source lines for each."""
    frames: list[tuple[str, int, str]] = []
    frame = sys._getframe(2)
    while frame is not None and len(frames) < MAX_STACK_FRAMES:
        frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back  # type: ignore[assignment]
    return frames


def _check_options(
    create: object,
    size: object,
    close: object,
    check: object,
    max_lifetime: object,
    max_idle: object,
) -> None:
    if not callable(create):
        raise TypeError(f"create must be a callable that makes a resource, got {create!r}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, got {size!r}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    for label, fn in (("close", close), ("check", check)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{label} must be a callable taking a resource, got {fn!r}")
    for label, seconds in (("max_lifetime", max_lifetime), ("max_idle", max_idle)):
        if seconds is None:
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"{label} must be a number of seconds or None, got {seconds!r}")
        if seconds <= 0:
            raise ValueError(f"{label} must be > 0, got {seconds}")
