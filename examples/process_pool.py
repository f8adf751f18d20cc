"""The guide's §6.2: a process pool, submit + as_completed, then map.

``anypool.Executor("processes")`` replaces ``ProcessPoolExecutor``. What it adds shows
at the end: a function that cannot be sent to a process (a lambda works: cloudpickle
sends it by value) or an argument that cannot (a lock) fails at ``submit`` with an error
naming the culprit, not later in a worker.

Run: python examples/process_pool.py
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import as_completed

import anypool


def cpu_task(n: int) -> str:
    return f"PID {os.getpid()}: {n}^2 = {n * n}"


def uses(lock: object) -> None:
    pass


def main() -> None:
    with anypool.Executor("processes", workers=2) as executor:
        # submit
        futures = [executor.submit(cpu_task, i) for i in range(20)]
        for future in as_completed(futures):
            print(future.result())
        # map
        for line in executor.map(cpu_task, range(10, 15)):
            print(line)
        # the guide's §9.5 pitfall, found before anything runs
        print(executor.submit(lambda x: x + 1, 41).result())  # 42: lambdas travel too
        try:
            executor.submit(uses, threading.Lock())
        except anypool.SerializationError as exc:
            print(f"SerializationError: {exc}")


if __name__ == "__main__":
    main()
