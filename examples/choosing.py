"""The guide's §7.1-7.2 decision tree, measured instead of guessed.

The guide asks you to decide: CPU-bound -> processes, a little I/O -> threads, very many
waits -> asyncio. ``backend="auto"`` (the default) runs each call's first items, measures
them, and decides; ``explain()`` says what it saw. Four kinds of work, one executor.

Run: python examples/choosing.py
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import anypool


def cpu_heavy(n: int) -> int:
    """Pure Python arithmetic: holds the GIL."""
    return sum(i * i for i in range(n * 10_000))


def io_heavy(n: int) -> str:
    """Waiting (a network call, a disk): releases the GIL."""
    time.sleep(0.02)
    return f"io-task-{n}"


def digest(n: int) -> str:
    """C code that releases the GIL while it works (hashlib on a large buffer)."""
    return hashlib.sha256(bytes(n % 256 for _ in range(1)) * 4_000_000).hexdigest()[:8]


async def many_waits(n: int) -> int:
    """A coroutine: thousands can wait at once on one thread."""
    await asyncio.sleep(0.05)
    return n


def main() -> None:
    with anypool.Executor() as ex:
        for fn, items in [
            (cpu_heavy, [50] * 32),
            (io_heavy, range(40)),
            (digest, range(16)),
            (many_waits, range(2000)),
            (abs, range(-50_000, 50_000)),
        ]:
            start = time.perf_counter()
            results = list(ex.map(fn, items))
            choice = ex.explain()
            took = time.perf_counter() - start
            print(f"{fn.__name__:10s} {len(results):6d} items {took:5.2f}s -> {choice.backend}")
            print(f"           {choice.reason}")


if __name__ == "__main__":
    main()
