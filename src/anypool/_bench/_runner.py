"""Running the bench: every workload on every backend, timed on a warm pool."""

from __future__ import annotations

import dataclasses
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


def workers_for(workload: Workload, backend: str, tasks: int, workers: int | None) -> int:
    if backend == "serial":
        return 1
    if workers is not None:
        return workers
    if workload.workers == "tasks":
        return max(1, min(tasks, 64))
    return available_cpus()


def skip_reason(workload: Workload, backend: str) -> str | None:
    """Why ``backend`` cannot run ``workload``, or None."""
    if backend == "asyncio" and workload.async_fn is None:
        return (
            f"asyncio skipped for {workload.name}: the asyncio backend runs coroutine "
            "functions, and this work has none (it would block the event loop)"
        )
    return None


def time_once(workload: Workload, backend: str, workers: int, tasks: int) -> tuple[float, str]:
    """Seconds to run ``tasks`` tasks on a warm pool, and the backend that ran them.

    Before the clock starts every worker has started and run one task of the workload,
    so the figure is the steady state the guide's experiment is about, not start-up.
    ``auto`` is warmed by one whole run (its measuring then starts the pool it chooses);
    the timed run measures again, and that is in its time.
    """
    fn = workload.async_fn if backend == "asyncio" else workload.fn
    assert fn is not None
    items = range(tasks * workload.items_per_task)
    chunksize: Any = workload.chunksize
    with Executor(backend, workers, chunksize=chunksize) as ex:
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
            n = workers_for(workload, backend, tasks, workers)
            runs = [time_once(workload, backend, n, tasks) for _ in range(repeat)]
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
