"""Running the bench: every workload on every backend, timed on a warm pool."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._backends import available_cpus
from .._executor import Executor
from ._workloads import WORKLOADS, Workload

__all__ = ["Measurement", "run"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    workload: str
    backend: str
    workers: int
    tasks: int
    seconds: float
    speedup: float | None = None

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def workers_for(
    workload: Workload, backend: str, tasks: int, workers: int | None, address: str | None = None
) -> int:
    if backend == "serial":
        return 1
    if workers is not None:
        return workers
    if backend == "dask":
        return dask_workers(address)
    if workload.workers == "tasks":
        return max(1, min(tasks, 64))
    return available_cpus()


def dask_workers(address: str | None) -> int:
    """A Dask cluster's threads (it is already running), or a LocalCluster's processes."""
    from .._backends._dask import ADDRESS_ENV

    if not address and not os.environ.get(ADDRESS_ENV):
        return available_cpus()  # the LocalCluster anypool starts: one process per CPU
    with Executor("dask", address=address) as ex:
        return ex.workers


def time_once(
    workload: Workload, backend: str, workers: int, tasks: int, address: str | None = None
) -> float:
    """Seconds to run ``tasks`` tasks on a warm pool.

    Before the clock starts every worker has started and run one task of the workload,
    so the figure is the steady state the guide's experiment is about, not start-up.
    ``address`` is the Dask scheduler for the dask backend.
    """
    options: dict[str, Any] = {"address": address} if backend == "dask" and address else {}
    with Executor(backend, workers, chunksize=1, **options) as ex:
        list(ex.map(workload.fn, range(workers)))
        start = time.perf_counter()
        list(ex.map(workload.fn, range(tasks)))
        return time.perf_counter() - start


def run(
    workloads: Sequence[str],
    backends: Sequence[str],
    *,
    tasks: int,
    workers: int | None,
    repeat: int,
    on_result: Callable[[Measurement], None] = lambda m: None,
    address: str | None = None,
) -> list[Measurement]:
    """Median of ``repeat`` runs of each workload on each backend; serial is the baseline."""
    results: list[Measurement] = []
    for name in workloads:
        workload = WORKLOADS[name]
        baseline: float | None = None
        order = sorted(backends, key=lambda b: b != "serial")  # serial first: the baseline
        for backend in order:
            n = workers_for(workload, backend, tasks, workers, address)
            seconds = statistics.median(
                time_once(workload, backend, n, tasks, address) for _ in range(repeat)
            )
            if backend == "serial":
                baseline = seconds
            speedup = None if baseline is None else round(baseline / seconds, 2)
            m = Measurement(name, backend, n, tasks, round(seconds, 4), speedup)
            results.append(m)
            on_result(m)
    return results
