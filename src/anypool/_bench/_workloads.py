"""The bench workloads. Module-level functions, so worker processes can import them.

Each workload is a function of one argument (the task's index) and a description of
what it stresses. Later issues add workloads here; the runner and report need no change.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WORKLOADS", "Workload", "cpu_task", "fib", "io_task"]

#: fib(FIB_N) takes about 0.1-0.2 s of pure-Python work on a 2020s CPU.
FIB_N = 30
#: Each I/O task waits this long, like the guide's simulated network request.
IO_SECONDS = 0.1


def fib(n: int) -> int:
    """Naive Fibonacci: pure Python, holds the GIL the whole time."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def cpu_task(_: Any) -> int:
    return fib(FIB_N)


def io_task(_: Any) -> str:
    time.sleep(IO_SECONDS)  # releases the GIL while it waits, like a socket read
    return "done"


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable[[Any], Any]
    description: str
    #: Pool workers when --workers is not given: "cpus" or "tasks" (one per task, as in
    #: the guide, capped at 64).
    workers: str


WORKLOADS: dict[str, Workload] = {
    "cpu": Workload("cpu", cpu_task, f"pure-Python fib({FIB_N}) per task (holds the GIL)", "cpus"),
    "io": Workload("io", io_task, f"time.sleep({IO_SECONDS}) per task (releases the GIL)", "tasks"),
}
