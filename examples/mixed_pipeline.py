"""The guide's section 7.3, threads and processes together, as one Pipeline.

The guide runs I/O work on a ThreadPoolExecutor and CPU work on a ProcessPoolExecutor
side by side, and collects both by hand. Here each item flows through both: fetched on
threads (waiting releases the GIL), computed on processes (one GIL each), then stored by
a single sink thread, in input order, with at most a bounded number of items in flight.

Run: python examples/mixed_pipeline.py
"""

from __future__ import annotations

import time

import anypool


def io_heavy(n: int) -> tuple[int, str]:
    """I/O-bound work: waits (a network call, a disk read)."""
    time.sleep(0.05)
    return n, f"io-task-{n}"


def cpu_heavy(fetched: tuple[int, str]) -> tuple[int, int]:
    """CPU-bound work: pure-Python arithmetic."""
    n, _ = fetched
    return n, sum(i * i for i in range(n * 10000))


def main() -> None:
    stored: list[tuple[int, int]] = []
    pipeline = (
        anypool.Pipeline(range(16))
        .stage(io_heavy, backend="threads", workers=10)
        .stage(cpu_heavy, backend="processes", workers=2)
        .stage(stored.append, workers=1, name="store")  # a sink: one thread, in order
    )
    start = time.perf_counter()
    pipeline.collect(progress=True)
    elapsed = time.perf_counter() - start
    for n, total in stored[:3]:
        print(f"CPU result for {n}: {total}")
    print(f"{len(stored)} items in {elapsed:.2f} s (waiting alone, one by one: 0.8 s)")
    print(pipeline.stats())


if __name__ == "__main__":
    main()
