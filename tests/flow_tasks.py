"""Task functions for the TaskGroup, Channel and Pipeline tests (importable by workers)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import anypool

# ── the guide's section 7.3 ────────────────────────────────────────────────────


def io_heavy(n: int) -> str:
    """The guide's I/O-bound work (shortened)."""
    time.sleep(0.01)
    return f"io-task-{n}"


def cpu_heavy(text: str) -> int:
    """The guide's CPU-bound work, on the number in ``io-task-<n>``."""
    n = int(text.rsplit("-", 1)[1])
    return sum(i * i for i in range(n * 1000))


# ── stage functions ─────────────────────────────────────────────────────────────


def double(x: int) -> int:
    return 2 * x


def long_wait(seconds: float = 30) -> None:
    """Wait long: in a process until killed; on a thread until the group is cancelled."""
    deadline = time.monotonic() + seconds
    while not anypool.cancelled() and time.monotonic() < deadline:
        time.sleep(0.005)


def fail_at(x: int, bad: int = 3) -> int:
    """Raise on ``bad``; items after it take long, so that they are running meanwhile."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    if x > bad:
        long_wait()
    return x


def crash_at(x: int, bad: int = 3) -> int:
    """Kill the worker process on ``bad``; items after it take long."""
    if x == bad:
        os._exit(3)
    if x > bad:
        long_wait()
    return x


def slow_after(x: int, first: int = 1) -> int:
    """Fast for the first items, then long: something is running when we interrupt."""
    if x >= first:
        long_wait()
    return x


def interrupt_at(x: int, pid: int, at: int = 3) -> int:
    """Send Ctrl-C to process ``pid`` on item ``at`` (then wait long)."""
    if x == at:
        os.kill(pid, signal.SIGINT)
    if x >= at:
        long_wait()
    return x


def first_passes(x: int) -> int:
    """Item 0 passes at once; the others wait until the run is cancelled."""
    if x != 0:
        poll_cancelled()
    return x


def sleep_ms(x: Any, ms: float = 20) -> Any:
    time.sleep(ms / 1000)
    return x


def poll_cancelled(x: Any = None) -> str:
    """Wait (up to 30 s) until the group or pipeline is cancelled."""
    deadline = time.monotonic() + 30
    while not anypool.cancelled():
        if time.monotonic() > deadline:
            return "never cancelled"
        time.sleep(0.005)
    return "cancelled"


def raise_value(message: str) -> None:
    raise ValueError(message)


def sleep_long(_: Any = None) -> str:
    time.sleep(30)
    return "slept"


# ── channels ────────────────────────────────────────────────────────────────────


def produce(channel: anypool.Channel[Any], n: int, big: bool = False) -> int:
    """Put 0..n-1 (every third one 200 kB, if ``big``), then close the channel."""
    with channel:
        for i in range(n):
            channel.put((i, b"x" * 200_000) if big and i % 3 == 0 else (i, b""))
    return n


def produce_open(channel: anypool.Channel[Any], start: int, n: int) -> int:
    """Put start..start+n-1 and leave the channel open (several producers)."""
    for i in range(start, start + n):
        channel.put(i)
    return n


def consume(channel: anypool.Channel[Any]) -> list[Any]:
    assert type(channel._impl).__name__ in ("_ThreadChannel", "_ProcessChannel")
    return [item[0] if isinstance(item, tuple) else item for item in list(channel)]


def put_after_close(channel: anypool.Channel[Any]) -> str:
    try:
        channel.put("late")
    except anypool.ChannelClosed as exc:
        return f"ChannelClosed: {exc}"
    return "accepted"


def keep(*shared: Any) -> None:
    """An initializer that only receives what a worker must hold from its start."""


# ── multiprocessing objects in initargs ─────────────────────────────────────────

_shared: list[Any] = []


def remember(*objects: Any) -> None:
    _shared[:] = objects


def bump_shared(_: Any = None) -> int:
    value, lock = _shared
    with lock:
        value.value += 1
        return int(value.value)
