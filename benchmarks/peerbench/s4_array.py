"""S4 big argument: a 200 MB float64 array, 8 tasks each summing a strided slice.

Time and peak memory: PSS of the trial process plus every process below it (workers, fork
servers), sampled every few milliseconds during the timed run, against the trial
process's own PSS with the array loaded and no pool started. Each contender passes the
array the way its library is meant to be used; how it travels is the difference:
pickled per task (ProcessPoolExecutor, loky), memory-mapped from a file (joblib),
inherited by fork and shared copy-on-write (mpire's shared_objects), or — anypool —
whatever ``anypool.map(fn, [(arr, i) ...])`` does by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import pools
from .framework import START_METHOD, Contender, Job, Scenario, Settings, forkserver
from .work import strided_sum, strided_sum_pair

__all__ = ["scenarios"]

MEGABYTES = 200
QUICK_MEGABYTES = 20
TASKS = 8


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    import numpy as np

    size = (QUICK_MEGABYTES if settings.quick else MEGABYTES) * 10**6 // 8
    arr = np.arange(size, dtype=np.float64)
    expected = [float(arr[i::TASKS].sum()) for i in range(TASKS)]
    return Job(
        fn=strided_sum_pair,
        items=[(arr, i) for i in range(TASKS)],
        workers=workers,
        data=arr,
        check=lambda results: results == expected,
    )


def _submit_each(ex: Any, job: Job) -> list[Any]:
    futures = [ex.submit(strided_sum, job.data, i) for i in range(TASKS)]
    return [f.result() for f in futures]


@contextmanager
def _process_pool_executor(job: Job) -> Iterator[Any]:
    with ProcessPoolExecutor(job.workers, mp_context=forkserver()) as ex:
        yield lambda items: _submit_each(ex, job)


@contextmanager
def _loky(job: Job) -> Iterator[Any]:
    from loky import get_reusable_executor

    ex = get_reusable_executor(max_workers=job.workers, context=START_METHOD)
    try:
        yield lambda items: _submit_each(ex, job)
    finally:
        ex.shutdown(wait=True)


@contextmanager
def _joblib(job: Job) -> Iterator[Any]:
    from joblib import Parallel, delayed

    with Parallel(n_jobs=job.workers) as parallel:
        yield lambda items: parallel(delayed(strided_sum)(job.data, i) for i in range(TASKS))


@contextmanager
def _mpire_shared(job: Job) -> Iterator[Any]:
    from mpire import WorkerPool

    # shared_objects reach the workers by fork, copy-on-write: no copy, no pickle.
    with WorkerPool(n_jobs=job.workers, shared_objects=job.data, start_method="fork") as pool:
        yield lambda items: pool.map(strided_sum, range(TASKS))


@contextmanager
def _anypool_submit(job: Job) -> Iterator[Any]:
    import anypool

    with anypool.Executor("processes", job.workers, start_method=START_METHOD) as ex:
        yield lambda items: _submit_each(ex, job)


CONTENDERS = (
    pools.serial_loop,
    *(pools.anypool_map(b) for b in pools.ANYPOOL_BACKENDS),
    Contender(
        "anypool.Executor.submit processes",
        "anypool",
        f"submit(fn, arr, i) per task, workers=N, start_method={START_METHOD!r}",
        _anypool_submit,
        needs=("anypool",),
    ),
    Contender(
        "ProcessPoolExecutor.submit",
        "peer",
        f"submit(fn, arr, i) per task: the array is pickled for each; {START_METHOD}",
        _process_pool_executor,
    ),
    Contender(
        "loky.get_reusable_executor",
        "peer",
        f"submit(fn, arr, i) per task (pickled); context={START_METHOD!r}",
        _loky,
        needs=("loky",),
    ),
    Contender(
        "joblib.Parallel",
        "peer",
        "defaults: loky backend, arrays over 1 MB memory-mapped (max_nbytes='1M')",
        _joblib,
        needs=("joblib",),
    ),
    Contender(
        "mpire shared_objects",
        "peer",
        "WorkerPool(shared_objects=arr, start_method='fork'): copy-on-write",
        _mpire_shared,
        needs=("mpire",),
    ),
)


def scenarios(settings: Settings) -> list[Scenario]:
    megabytes = QUICK_MEGABYTES if settings.quick else MEGABYTES
    return [
        Scenario(
            key="S4",
            id="S4",
            title="S4 big argument",
            workload=f"a {megabytes} MB float64 array, {TASKS} tasks each summing a[i::{TASKS}]",
            make_job=make_job,
            contenders=CONTENDERS,
            measure_memory=True,
            notes=(
                "Pools are created inside the timing. Peak = the largest PSS sample of "
                "the trial process and all its descendants during the run; baseline = "
                "the trial process alone with the array loaded, before any pool.",
            ),
        )
    ]
