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


def skip_reason(workload: Workload, backend: str) -> str | None:
    """Why ``backend`` cannot run ``workload``, or None."""
    if backend == "asyncio" and workload.async_fn is None:
        return (
            f"asyncio skipped for {workload.name}: the asyncio backend runs coroutine "
            "functions, and this work has none (it would block the event loop)"
        )
    return None


def time_once(
    workload: Workload, backend: str, workers: int, tasks: int, address: str | None = None
) -> tuple[float, str]:
    """Seconds to run ``tasks`` tasks on a warm pool, and the backend that ran them.

    Before the clock starts every worker has started and run one task of the workload,
    so the figure is the steady state the guide's experiment is about, not start-up.
    ``address`` is the Dask scheduler for the dask backend. ``auto`` is warmed by one
    whole run (its measuring then starts the pool it chooses);
    the timed run measures again, and that is in its time.
    """
    fn = workload.async_fn if backend == "asyncio" else workload.fn
    assert fn is not None
    items = range(tasks * workload.items_per_task)
    chunksize: Any = workload.chunksize
    options: dict[str, Any] = {"address": address} if backend == "dask" and address else {}
    with Executor(backend, workers, chunksize=chunksize, **options) as ex:
        warm = items if backend == "auto" else range(workers)
        list(ex.map(fn, warm))
        start = time.perf_counter()
        list(ex.map(fn, items))
        seconds = time.perf_counter() - start
        return seconds, ex.backend


def run(
    workloads: Sequence[str],
    backends: Sequence[str],
    *,
    tasks: int,
    workers: int | None,
    repeat: int,
    on_result: Callable[[Measurement], None] = lambda m: None,
    notes: list[str] | None = None,
    address: str | None = None,
) -> list[Measurement]:
    """Median of ``repeat`` runs of each workload on each backend; serial is the baseline.

    Combinations that make no sense are skipped, with a line added to ``notes``; so is
    what ``auto`` chose for each workload.
    """
    results: list[Measurement] = []
    for name in workloads:
        workload = WORKLOADS[name]
        baseline: float | None = None
        order = sorted(backends, key=lambda b: b != "serial")  # serial first: the baseline
        for backend in order:
            reason = skip_reason(workload, backend)
            if reason is not None:
                if notes is not None:
                    notes.append(reason)
                continue
            n = workers_for(workload, backend, tasks, workers, address)
            runs = [time_once(workload, backend, n, tasks, address) for _ in range(repeat)]
            seconds = statistics.median(s for s, _ in runs)
            if backend == "auto" and notes is not None:
                chosen = sorted({b for _, b in runs})
                notes.append(f"auto chose {' and '.join(chosen)} for {name}")
            if backend == "serial":
                baseline = seconds
            speedup = None if baseline is None else round(baseline / seconds, 2)
            count = tasks * workload.items_per_task
            m = Measurement(name, backend, n, count, round(seconds, 4), speedup)
            results.append(m)
            on_result(m)
    return results
