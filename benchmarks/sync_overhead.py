"""Overhead of anypool.sync locks against threading's: uncontended acquire/release.

Run: .venv/bin/python benchmarks/sync_overhead.py [--loops N]

Prints nanoseconds per acquire+release pair (``with lock: pass`` and explicit
``acquire(); release()``), best of several rounds, and the ratio to ``threading.Lock``,
with lock checking off (plain) and on (``anypool.sync.lockcheck()``, with no other lock
held, the common case).
"""

from __future__ import annotations

import argparse
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import anypool.sync

ROUNDS = 7


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


def best_ns(fn: Callable[[Any, int], float], lock: Any, loops: int) -> float:
    loop_cost = min(empty_loop(loops) for _ in range(ROUNDS))
    return min(fn(lock, loops) - loop_cost for _ in range(ROUNDS)) / loops * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=300_000)
    loops = parser.parse_args().loops
    print(f"Python {platform.python_version()}, {loops:,} pairs per round, best of {ROUNDS}")
    base = {fn: best_ns(fn, threading.Lock(), loops) for fn in (with_statement, acquire_release)}
    rows = [("threading.Lock", threading.Lock, False), ("threading.RLock", threading.RLock, False)]
    rows += [
        ("anypool.sync.Lock", anypool.sync.Lock, False),
        ("anypool.sync.RLock", anypool.sync.RLock, False),
    ]
    rows += [
        ("anypool.sync.Lock", anypool.sync.Lock, True),
        ("anypool.sync.RLock", anypool.sync.RLock, True),
    ]
    header = f"{'lock':20} {'checking':8} {'with (ns)':>10} {'ratio':>6}"
    print(header + f" {'acq/rel (ns)':>13} {'ratio':>6}")
    for name, factory, checking in rows:
        lock = factory()
        if checking:
            with anypool.sync.lockcheck():
                w, a = best_ns(with_statement, lock, loops), best_ns(acquire_release, lock, loops)
        else:
            w, a = best_ns(with_statement, lock, loops), best_ns(acquire_release, lock, loops)
        ratio_w, ratio_a = w / base[with_statement], a / base[acquire_release]
        label = "on" if checking else "off"
        print(f"{name:20} {label:8} {w:10.0f} {ratio_w:5.2f}x {a:13.0f} {ratio_a:5.2f}x")


if __name__ == "__main__":
    main()
