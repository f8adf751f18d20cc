"""The bench workloads. Module-level functions, so worker processes can import them.

Each workload is a function of one argument (the task's index), a description of what it
stresses, and how it is run: how many items make one of the bench's "tasks", the batch
size, and an ``async def`` variant for the asyncio backend where the work has one. A
backend that cannot run a workload (asyncio without an async variant) is skipped with a
note. Later issues add workloads here; the runner and report need no change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "WORKLOADS",
    "Workload",
    "cpu_task",
    "fib",
    "hash_task",
    "io_task",
    "io_task_async",
    "tiny_task",
]

#: fib(FIB_N) takes about 0.1-0.2 s of pure-Python work on a 2020s CPU.
FIB_N = 30
#: Each I/O task waits this long, like the guide's simulated network request.
IO_SECONDS = 0.1
#: Bytes each hash task digests: about 50 ms of SHA-256 with the GIL released (hashlib
#: releases it for buffers over 2 KiB). Zero pages cost no memory until written.
HASH_BYTES = 64 * 2**20
#: Items per task of the tiny workload: 16 tasks make 100,000 items of x*x.
TINY_ITEMS = 6250

_BUFFER = bytes(HASH_BYTES)


def fib(n: int) -> int:
    """Naive Fibonacci: pure Python, holds the GIL the whole time."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def cpu_task(_: Any) -> int:
    return fib(FIB_N)


def io_task(_: Any) -> str:
    time.sleep(IO_SECONDS)  # releases the GIL while it waits, like a socket read
    return "done"


async def io_task_async(_: Any) -> str:
    await asyncio.sleep(IO_SECONDS)  # the same wait, as a coroutine: no thread needed
    return "done"


def hash_task(i: Any) -> str:
    digest = hashlib.sha256(_BUFFER)  # C code that releases the GIL while it hashes
    digest.update(str(i).encode())
    return digest.hexdigest()


def tiny_task(x: int) -> int:
    return x * x


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable[[Any], Any]
    description: str
    #: Pool workers when --workers is not given: "cpus" or "tasks" (one per task, as in
    #: the guide, capped at 64).
    workers: str
    #: The same work as a coroutine function, for the asyncio backend; None: skipped.
    async_fn: Callable[[Any], Awaitable[Any]] | None = None
    #: Items per bench task: tiny work needs many items to be measurable at all.
    items_per_task: int = 1
    #: Batch size: 1 sends each task on its own (the guide's experiment); "auto" lets
    #: anypool batch, as tiny items need.
    chunksize: int | str = 1


WORKLOADS: dict[str, Workload] = {
    "cpu": Workload("cpu", cpu_task, f"pure-Python fib({FIB_N}) per task (holds the GIL)", "cpus"),
    "io": Workload(
        "io",
        io_task,
        f"time.sleep({IO_SECONDS}) per task (releases the GIL)",
        "tasks",
        async_fn=io_task_async,
    ),
    "hash": Workload(
        "hash",
        hash_task,
        f"hashlib.sha256 over {HASH_BYTES // 2**20} MiB per task (C code, releases the GIL)",
        "cpus",
    ),
    "tiny": Workload(
        "tiny",
        tiny_task,
        f"x*x, {TINY_ITEMS} items per task (pool overhead dwarfs the work)",
        "cpus",
        items_per_task=TINY_ITEMS,
        chunksize="auto",
    ),
}
