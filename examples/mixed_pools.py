"""The guide's §7.3: processes for CPU work and threads for I/O, at the same time.

Two anypool executors side by side, as the guide does with ProcessPoolExecutor and
ThreadPoolExecutor; both run while the main thread collects. Sleeps are the guide's.

Run: python examples/mixed_pools.py
"""

from __future__ import annotations

import time

import anypool


def cpu_heavy(n: int) -> int:
    return sum(i * i for i in range(n * 10_000))


def io_heavy(n: int) -> str:
    time.sleep(0.1)
    return f"io-task-{n}"


def main() -> None:
    start = time.perf_counter()
    with (
        anypool.Executor("processes", workers=2) as cpu_pool,
        anypool.Executor("threads", workers=10) as io_pool,
    ):
        cpu_futures = [cpu_pool.submit(cpu_heavy, i) for i in range(8)]
        io_futures = [io_pool.submit(io_heavy, i) for i in range(20)]
        for f in cpu_futures:
            print(f"CPU result: {f.result()}")
        for g in io_futures:
            print(f"IO result: {g.result()}")
    # 20 waits of 0.1 s on 10 threads take 0.2 s, overlapping the CPU work on processes.
    print(f"total: {time.perf_counter() - start:.2f}s")


if __name__ == "__main__":
    main()
