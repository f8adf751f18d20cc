"""What backend="dask" costs next to backend="processes", on this machine.

Measures, for each backend: starting the executor, one ``submit(...).result()`` round
trip (median of many), and a ``map`` over many tiny items (batching at work). With
``--address`` the dask rows use that cluster; without, the LocalCluster anypool starts.

    python benchmarks/dask_overhead.py                       # LocalCluster of 2 workers
    python benchmarks/dask_overhead.py --address tcp://127.0.0.1:8786 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import anypool


def square(x: int) -> int:
    return x * x


def measure(
    backend: str, workers: int | None, tiny: int, options: dict[str, Any]
) -> dict[str, Any]:
    start = time.perf_counter()
    ex = anypool.Executor(backend, workers, **options)
    started = time.perf_counter() - start
    try:
        ex.submit(square, 1).result()  # warm: workers up, function cached
        trips = []
        for i in range(50):
            t = time.perf_counter()
            ex.submit(square, i).result()
            trips.append(time.perf_counter() - t)
        t = time.perf_counter()
        total = sum(ex.map(square, range(tiny)))
        mapped = time.perf_counter() - t
        assert total == sum(i * i for i in range(tiny))
    finally:
        ex.shutdown()
    return {
        "backend": backend,
        "workers": ex.workers,
        "start_s": round(started, 3),
        "submit_round_trip_ms": round(statistics.median(trips) * 1000, 2),
        "tiny_items": tiny,
        "tiny_map_s": round(mapped, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", help="a Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tiny", type=int, default=200_000, help="items in the tiny-items map")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    dask_options = {"address": args.address} if args.address else {}
    rows = [
        measure("processes", args.workers, args.tiny, {}),
        measure("dask", None if args.address else args.workers, args.tiny, dask_options),
    ]
    for row in rows:
        print(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
