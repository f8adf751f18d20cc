"""Overhead of anypool.sync locks against threading's: uncontended acquire/release.

Run: .venv/bin/python benchmarks/sync_overhead.py [--loops N] [--rounds N]
     (ANYPOOL_SYNC_PURE_PYTHON=1 measures the pure-Python core instead of the C one)

Prints nanoseconds per acquire+release pair (``with lock: pass`` and explicit
``acquire(); release()``), the best of several rounds with the loop's own cost
subtracted, and the ratio to ``threading.Lock``, with lock checking off (plain) and on
(``anypool.sync.lockcheck()``, with no other lock held, the common case).

Each round times ``threading.Lock`` and the lock measured back to back, so that load
from other processes falls on both alike; the ratio is of the two best times.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import anypool.sync
from anypool.sync import _core


def with_statement(lock: Any, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        with lock:
            pass
    return time.perf_counter() - start


def acquire_release(lock: Any, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        lock.acquire()
        lock.release()
    return time.perf_counter() - start


def empty_loop(loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        pass
    return time.perf_counter() - start


def best_pair(
    fn: Callable[[Any, int], float], lock: Any, checking: bool, loops: int, rounds: int
) -> tuple[float, float]:
    """Best ns per pair of threading.Lock and of ``lock``, timed alternately."""
    base_lock = threading.Lock()
    loop_cost = min(empty_loop(loops) for _ in range(rounds))
    base = mine = float("inf")
    for _ in range(rounds):
        base = min(base, fn(base_lock, loops))
        with anypool.sync.lockcheck() if checking else contextlib.nullcontext():
            mine = min(mine, fn(lock, loops))
    return (base - loop_cost) / loops * 1e9, (mine - loop_cost) / loops * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()}, anypool.sync core: {_core.IMPLEMENTATION}, "
        f"{args.loops:,} pairs per round, best of {args.rounds}"
    )
    rows: list[tuple[str, Callable[[], Any], bool]] = [
        ("threading.Lock", threading.Lock, False),
        ("threading.RLock", threading.RLock, False),
        ("anypool.sync.Lock", anypool.sync.Lock, False),
        ("anypool.sync.RLock", anypool.sync.RLock, False),
        ("anypool.sync.Lock", anypool.sync.Lock, True),
        ("anypool.sync.RLock", anypool.sync.RLock, True),
    ]
    header = f"{'lock':20} {'checking':8} {'with (ns)':>10} {'ratio':>6}"
    print(header + f" {'acq/rel (ns)':>13} {'ratio':>6}")
    for name, factory, checking in rows:
        cells = []
        for fn in (with_statement, acquire_release):
            base, mine = best_pair(fn, factory(), checking, args.loops, args.rounds)
            cells.append((mine, mine / base))
        (w, ratio_w), (a, ratio_a) = cells
        label = "on" if checking else "off"
        print(f"{name:20} {label:8} {w:10.0f} {ratio_w:5.2f}x {a:13.0f} {ratio_a:5.2f}x")


if __name__ == "__main__":
    main()
