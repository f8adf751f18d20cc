"""Channel: a bounded, closeable queue between threads or between processes.

Two implementations behind one class, chosen by ``processes=``:

* **between threads** (the default): a deque guarded by one lock and two conditions,
  as in ``queue.Queue``. Nothing is copied; a put or get costs about a microsecond.
* **between processes** (``processes=True``): built only from ``multiprocessing``
  primitives that travel to a child process when it starts, so that no thread and no
  server process is needed::

      put(item)                                        get()
      ─────────                                        ─────
      free.acquire()        (waits while full)         items.acquire()   (waits while empty)
      write_lock:                                      read_lock:
        closed? -> ChannelClosed                         drained? -> ChannelClosed
        items.release()                                  message = pipe.recv_bytes()
        pipe.send_bytes(pickled item)  ─── OS pipe ──►   END? -> drained, ChannelClosed
                                                       free.release(); unpickle

  ``items`` is released *before* the bytes are written, so that a reader is already
  draining the pipe while a message larger than the pipe's buffer is being written.
  ``close()`` writes an END message under the write lock: every item put before it is
  read before it, and a put after it fails. Waiters blocked on a semaphore are woken by
  one extra release, which each woken waiter passes on (a chain), because a semaphore
  cannot wake "everyone".
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import pickle
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from multiprocessing.context import BaseContext, get_spawning_popen
from multiprocessing.sharedctypes import RawArray
from typing import Any, Generic, TypeVar

from ._errors import AnypoolError

__all__ = ["Channel", "ChannelClosed", "ChannelStats"]

T = TypeVar("T")

# The pickled marker that ends the stream of a process channel. A bytes constant that no
# pickled item can equal (a pickle always starts with the protocol opcode b"\x80").
_END = b"anypool.Channel:END"


class ChannelClosed(AnypoolError):
    """The channel is closed: ``put`` after ``close()``, or ``get`` once it is drained.

    Example::

        channel = anypool.Channel(2)
        channel.close()
        try:
            channel.put("late")
        except anypool.ChannelClosed:
            print("closed")
    """


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelStats:
    """A snapshot of a channel (see ``Channel.stats()``).

    Attributes:
        maxsize: how many items the channel holds before ``put`` waits.
        queued: items put and not yet taken.
        closed: whether ``close()`` was called.
        processes: whether the channel connects processes (else threads).

    Example::

        channel = anypool.Channel(4)
        channel.put("a")
        channel.stats()   # ChannelStats(maxsize=4, queued=1, closed=False, processes=False)
    """

    maxsize: int
    queued: int
    closed: bool
    processes: bool


class Channel(Generic[T]):
    """A bounded, closeable channel between threads, or between processes.

    ``put(item)`` waits while the channel holds ``maxsize`` items (back-pressure: a fast
    producer is slowed to the pace of its consumers instead of filling memory).
    ``get()`` waits for an item. ``close()`` says that no more items will come: items
    already in the channel are still delivered, then ``get()`` raises
    :class:`ChannelClosed` and iteration ends; ``put()`` on a closed channel raises
    :class:`ChannelClosed` at once, and so does a ``put()`` that was waiting for room.
    Used as a context manager, the channel is closed when the block ends.

    Args:
        maxsize: how many items the channel holds (at least 1).
        processes: ``False`` (default): a channel between threads of this process;
            nothing is copied. ``True``: a channel that also works between processes;
            items are pickled. Such a channel reaches another process only when that
            process starts: as an argument of ``multiprocessing.Process``, or in the
            ``initargs`` of an anypool processes ``Executor``/``TaskGroup``/pipeline
            stage (see docs/channel.md). After that, tasks in those workers may take
            it as an argument; a worker that did not receive it at start fails such a
            task with a ``RuntimeError`` that says so.

    Example::

        import threading
        import anypool

        channel = anypool.Channel(3)

        def produce():
            with channel:                  # closes the channel when done
                for i in range(5):
                    channel.put(f"item-{i}")   # waits while 3 items are queued

        producer = threading.Thread(target=produce)
        producer.start()
        print([item for item in channel])  # ['item-0', ..., 'item-4']
        producer.join()
    """

    # For anypool's pickling diagnosis: name the channel, not the lock inside it.
    _refuses_pickling = True

    def __init__(self, maxsize: int, *, processes: bool = False) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(
                f"maxsize must be a positive integer (the number of items the channel holds "
                f"before put() waits), got {maxsize!r}"
            )
        if not isinstance(processes, bool):
            raise TypeError(f"processes must be True or False, got {processes!r}")
        self._impl: _ThreadChannel | _ProcessChannel = (
            _ProcessChannel(maxsize) if processes else _ThreadChannel(maxsize)
        )

    @property
    def maxsize(self) -> int:
        """How many items the channel holds before ``put`` waits."""
        return self._impl.maxsize

    @property
    def processes(self) -> bool:
        """Whether this channel works between processes (``processes=True``)."""
        return isinstance(self._impl, _ProcessChannel)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (items may still be waiting to be read)."""
        return self._impl.is_closed()

    def put(self, item: T, timeout: float | None = None) -> None:
        """Add ``item``; wait while the channel is full.

        Raises :class:`ChannelClosed` if the channel is closed (also while waiting), and
        ``TimeoutError`` if there is still no room after ``timeout`` seconds.
        """
        self._impl.put(item, _check_timeout(timeout))

    def get(self, timeout: float | None = None) -> T:
        """Remove and return the oldest item; wait while the channel is empty.

        Raises :class:`ChannelClosed` once the channel is closed and drained, and
        ``TimeoutError`` if no item came within ``timeout`` seconds.
        """
        item: T = self._impl.get(_check_timeout(timeout))
        return item

    def close(self) -> None:
        """No more items: readers get what is queued, then :class:`ChannelClosed`.

        Closing twice is harmless.
        """
        self._impl.close()

    def stats(self) -> ChannelStats:
        """A snapshot: maxsize, items queued, closed or not."""
        return ChannelStats(
            self.maxsize, self._impl.queued(), self._impl.is_closed(), self.processes
        )

    def __iter__(self) -> Iterator[T]:
        """Yield items until the channel is closed and drained."""
        while True:
            try:
                yield self.get()
            except ChannelClosed:
                return

    def __len__(self) -> int:
        return self._impl.queued()

    def __enter__(self) -> Channel[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "processes" if self.processes else "threads"
        state = " closed" if self.closed else ""
        return f"<anypool.Channel {kind} {len(self)}/{self.maxsize}{state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        if isinstance(self._impl, _ThreadChannel):
            raise TypeError(
                "this Channel connects threads of one process; to share a channel with "
                "other processes create it with anypool.Channel(maxsize, processes=True)"
            )
        return (_restore, (self._impl,))


def _restore(impl: _ProcessChannel) -> Channel[Any]:
    channel: Channel[Any] = Channel.__new__(Channel)
    channel._impl = impl
    return channel


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, or None, got {timeout!r}")
    return float(timeout)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _timed_out(what: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"Channel.{what}() timed out after {timeout:g} s")


# ── between threads ─────────────────────────────────────────────────────────────


class _ThreadChannel:
    """A deque with a lock and two conditions: cheap, nothing is copied."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def put(self, item: Any, timeout: float | None) -> None:
        with self._not_full:
            if not self._not_full.wait_for(self._has_room, timeout):
                raise _timed_out("put", timeout)
            if self._closed:
                raise ChannelClosed("put() on a closed Channel")
            self._items.append(item)
            self._not_empty.notify()

    def _has_room(self) -> bool:
        return self._closed or len(self._items) < self.maxsize

    def get(self, timeout: float | None) -> Any:
        with self._not_empty:
            if not self._not_empty.wait_for(self._has_item, timeout):
                raise _timed_out("get", timeout)
            if not self._items:
                raise ChannelClosed("the Channel is closed and drained")
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def _has_item(self) -> bool:
        return self._closed or bool(self._items)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def is_closed(self) -> bool:
        return self._closed

    def queued(self) -> int:
        return len(self._items)


# ── between processes ───────────────────────────────────────────────────────────


def _context() -> BaseContext:
    # Semaphores of a 'fork' context cannot be sent to a spawned or forkserver child;
    # those of the forkserver/spawn contexts reach children of every start method.
    from ._backends._processes import default_start_method

    return multiprocessing.get_context(default_start_method())


class _ProcessChannel:
    """A pipe, two locks and two semaphores; see the module docstring for the protocol."""

    def __init__(self, maxsize: int) -> None:
        ctx = _context()
        self.maxsize = maxsize
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._read_lock = ctx.Lock()
        self._write_lock = ctx.Lock()
        self._free = ctx.Semaphore(maxsize)  # room left; put takes, get gives back
        self._items = ctx.Semaphore(0)  # messages in the pipe, END included
        self._flags = RawArray("b", 2)  # [closed, drained], shared memory
        self.id = secrets.token_hex(8)
        _created[self.id] = self

    # The pipe, locks and semaphores pickle only while a child process is being started
    # (they hand it file descriptors); then the whole channel travels. At any other time
    # (an argument of submit()) only its id does, and the receiving process must already
    # hold the channel: received when it started, or created there.
    def __reduce__(self) -> tuple[Any, ...]:
        if get_spawning_popen() is None:
            return (_shared_channel, (self.id,))
        state = (
            self.id,
            self.maxsize,
            self._reader,
            self._writer,
            self._read_lock,
            self._write_lock,
            self._free,
            self._items,
            self._flags,
        )
        return (_rebuild_process_channel, state)

    def put(self, item: Any, timeout: float | None) -> None:
        if self._flags[0]:
            raise ChannelClosed("put() on a closed Channel")
        data = pickle.dumps(item, 5)  # before taking any lock: pickling may be slow
        deadline = _deadline(timeout)
        if not self._free.acquire(timeout=timeout):
            raise _timed_out("put", timeout)
        if not self._write_lock.acquire(timeout=_remaining(deadline)):
            self._free.release()
            raise _timed_out("put", timeout)
        try:
            if self._flags[0]:
                self._free.release()  # pass the wake-up on to the next waiting put
                raise ChannelClosed("put() on a closed Channel")
            self._items.release()
            self._writer.send_bytes(data)
        finally:
            self._write_lock.release()

    def get(self, timeout: float | None) -> Any:
        deadline = _deadline(timeout)
        if not self._items.acquire(timeout=timeout):
            raise _timed_out("get", timeout)
        if not self._read_lock.acquire(timeout=_remaining(deadline)):
            self._items.release()
            raise _timed_out("get", timeout)
        try:
            if self._flags[1]:
                self._items.release()  # pass the wake-up on to the next waiting get
                raise ChannelClosed("the Channel is closed and drained")
            data = self._reader.recv_bytes()
            if data == _END:
                self._flags[1] = 1
                self._items.release()
                raise ChannelClosed("the Channel is closed and drained")
        finally:
            self._read_lock.release()
        self._free.release()
        return pickle.loads(data)

    def close(self) -> None:
        with self._write_lock:
            if self._flags[0]:
                return
            self._flags[0] = 1
            self._items.release()
            self._writer.send_bytes(_END)
        self._free.release()  # wake a put waiting for room; it passes the wake-up on

    def is_closed(self) -> bool:
        return bool(self._flags[0])

    def queued(self) -> int:
        try:
            waiting = self._items.get_value()
        except NotImplementedError:  # macOS has no sem_getvalue
            return 0
        # Once closed, one token stands for END (or, once drained, for the wake-up chain).
        return max(0, int(waiting) - (1 if self._flags[0] else 0))


# Process channels this process created (weakly held: the user owns them) and those it
# received when it started (held for the life of the process: a worker's tasks refer to
# them by id, possibly long after its initializer returned).
_created: weakref.WeakValueDictionary[str, _ProcessChannel] = weakref.WeakValueDictionary()
_received: dict[str, _ProcessChannel] = {}

NOT_SHARED = (
    "this process has not received that Channel(processes=True): a process channel "
    "reaches another process only as that process starts. Pass it to "
    "multiprocessing.Process(args=...), or to an anypool processes pool in its "
    "initargs=, e.g. TaskGroup('processes', initializer=keep, initargs=(channel,)) with "
    "def keep(*channels): pass; after that, tasks may take the channel as an argument"
)


def _shared_channel(channel_id: str) -> _ProcessChannel:
    impl = _received.get(channel_id) or _created.get(channel_id)
    if impl is None:
        raise RuntimeError(NOT_SHARED)
    return impl


def _rebuild_process_channel(
    channel_id: str,
    maxsize: int,
    reader: Any,
    writer: Any,
    read_lock: Any,
    write_lock: Any,
    free: Any,
    items: Any,
    flags: Any,
) -> _ProcessChannel:
    known = _received.get(channel_id) or _created.get(channel_id)
    if known is not None:
        return known  # the same channel, received again: keep one set of handles
    impl = _ProcessChannel.__new__(_ProcessChannel)
    impl.id = channel_id
    impl.maxsize = maxsize
    impl._reader, impl._writer = reader, writer
    impl._read_lock, impl._write_lock = read_lock, write_lock
    impl._free, impl._items = free, items
    impl._flags = flags
    _received[channel_id] = impl
    return impl
