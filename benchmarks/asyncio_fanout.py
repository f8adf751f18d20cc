"""10,000 waits of 50 ms from synchronous code, on the asyncio backend (issue 3).

Run: .venv/bin/python benchmarks/asyncio_fanout.py

Prints, best of 5: the time of one such wait through ``anypool.map`` (the ideal 0.05 s
plus start-up), of 10,000 with ``workers=10000``, and, for comparison, of 10,000 on a bare
event loop with ``asyncio.gather`` (no anypool at all).
"""

from __future__ import annotations

import asyncio
import time

import anypool

WAIT = 0.05
COUNT = 10_000


async def nap(i: int) -> int:
    await asyncio.sleep(WAIT)
    return i


def best_of(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def bare_loop() -> None:
    async def main() -> None:
        await asyncio.gather(*(nap(i) for i in range(COUNT)))

    loop = anypool._backends._asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


if __name__ == "__main__":
    one = best_of(5, lambda: anypool.map(nap, [0], backend="asyncio"))
    many = best_of(5, lambda: anypool.map(nap, range(COUNT), backend="asyncio", workers=COUNT))
    capped = best_of(3, lambda: anypool.map(nap, range(COUNT), backend="asyncio"))
    bare = best_of(5, bare_loop)
    print(f"1 wait (ideal {WAIT} s + start-up):        {one:.3f} s")
    print(
        f"{COUNT} waits, workers={COUNT}:           {many:.3f} s ({many / one:.2f}x the one wait)"
    )
    print(f"{COUNT} waits, default workers (1000):  {capped:.3f} s")
    print(f"{COUNT} waits, bare event loop (gather): {bare:.3f} s")
