"""Fault tolerance under load: a 10,000-task map with 100 crashing and 20 hanging tasks.

Run: .venv/bin/python benchmarks/faults.py [--workers N] [--repeat R]

Prints the wall time of the map with faults and of the same map without faults (same
pool settings, same run), the number of correct results and of Failures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import anypool

N = 10_000
CRASHES = set(range(50, N, 100))  # 100 items whose worker dies (os._exit)
HANGS = set(range(275, N, 500))  # 20 items that spin forever (killed by task_timeout)
TIMEOUT = 1.0


def task(i: int) -> int:
    if i in CRASHES:
        os._exit(1)
    if i in HANGS:
        while True:
            pass
    return i * i


def clean(i: int) -> int:
    return i * i


def run(fn: object, workers: int) -> tuple[float, list[object]]:
    start = time.perf_counter()
    results = anypool.map(
        fn,
        range(N),
        backend="processes",
        workers=workers,
        task_timeout=TIMEOUT,
        on_error="collect",
    )
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    faulty, plain = [], []
    for _ in range(args.repeat):
        seconds, results = run(task, args.workers)
        failures = [r for r in results if isinstance(r, anypool.Failure)]
        correct = sum(1 for i, r in enumerate(results) if r == i * i)
        crashed = sum(isinstance(f.exception, anypool.WorkerCrashed) for f in failures)
        timed_out = sum(isinstance(f.exception, anypool.TaskTimeout) for f in failures)
        assert correct == N - len(CRASHES) - len(HANGS), correct
        assert {f.index for f in failures} == CRASHES | HANGS
        faulty.append(seconds)
        plain.append(run(clean, args.workers)[0])
        print(
            f"with faults {seconds:6.2f} s: {correct} correct, {len(failures)} Failures "
            f"({crashed} WorkerCrashed, {timed_out} TaskTimeout); without faults {plain[-1]:.2f} s"
        )
    print(
        f"median of {args.repeat}: with faults {statistics.median(faulty):.2f} s, "
        f"without {statistics.median(plain):.2f} s, workers={args.workers}"
    )


if __name__ == "__main__":
    main()
