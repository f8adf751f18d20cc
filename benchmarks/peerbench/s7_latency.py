"""S7 latency: the submit → result round trip of a no-op on a warm process pool.

One task at a time, so what is measured is the path of one small message to a worker
and back (queues, pipes, threads in the parent), not throughput. p50 and p99 are over
every round trip of every repetition; the spread is that of each repetition's p50.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .framework import START_METHOD, Contender, Job, Scenario, Settings, forkserver
from .work import noop

__all__ = ["scenarios"]

ROUNDS = 2000
QUICK_ROUNDS = 200
WARMUP_ROUNDS = 200
QUICK_WARMUP_ROUNDS = 20


@contextmanager
def _process_pool_executor(job: Job) -> Iterator[Any]:
    with ProcessPoolExecutor(job.workers, mp_context=forkserver()) as ex:
        yield lambda _: ex.submit(noop).result()


@contextmanager
def _loky(job: Job) -> Iterator[Any]:
    from loky import get_reusable_executor

    ex = get_reusable_executor(max_workers=job.workers, context=START_METHOD)
    try:
        yield lambda _: ex.submit(noop).result()
    finally:
        ex.shutdown(wait=True)


@contextmanager
def _pebble(job: Job) -> Iterator[Any]:
    from pebble import ProcessPool

    with ProcessPool(max_workers=job.workers, context=forkserver()) as pool:
        yield lambda _: pool.schedule(noop).result()


@contextmanager
def _mpire(job: Job) -> Iterator[Any]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=job.workers, start_method=START_METHOD, keep_alive=True) as pool:
        yield lambda _: pool.apply_async(noop).get()


@contextmanager
def _mp_pool(job: Job) -> Iterator[Any]:
    with forkserver().Pool(job.workers) as pool:
        yield lambda _: pool.apply_async(noop).get()


@contextmanager
def _anypool(job: Job) -> Iterator[Any]:
    import anypool

    with anypool.Executor("processes", job.workers, start_method=START_METHOD) as ex:
        yield lambda _: ex.submit(noop).result()


CONTENDERS = (
    Contender(
        "ProcessPoolExecutor.submit",
        "peer",
        f"max_workers=N, {START_METHOD}",
        _process_pool_executor,
    ),
    Contender(
        "loky.get_reusable_executor",
        "peer",
        f"submit(); context={START_METHOD!r}",
        _loky,
        needs=("loky",),
    ),
    Contender(
        "pebble.ProcessPool.schedule", "peer", f"context={START_METHOD}", _pebble, needs=("pebble",)
    ),
    Contender(
        "mpire.WorkerPool.apply_async",
        "peer",
        f"start_method={START_METHOD!r}, keep_alive=True",
        _mpire,
        needs=("mpire",),
    ),
    Contender(
        "multiprocessing.Pool.apply_async",
        "peer",
        START_METHOD,
        _mp_pool,
        needs=("multiprocessing.pool",),
    ),
    Contender(
        "anypool.Executor.submit processes",
        "anypool",
        f"start_method={START_METHOD!r}",
        _anypool,
        needs=("anypool",),
    ),
)


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    quick = settings.quick
    return Job(
        fn=noop,
        items=[],
        workers=workers,
        rounds=QUICK_ROUNDS if quick else ROUNDS,
        warmup_rounds=QUICK_WARMUP_ROUNDS if quick else WARMUP_ROUNDS,
    )


def scenarios(settings: Settings) -> list[Scenario]:
    rounds = QUICK_ROUNDS if settings.quick else ROUNDS
    return [
        Scenario(
            key="S7",
            id="S7",
            title="S7 latency",
            workload=f"submit → result of a no-op, {rounds} round trips one at a time",
            make_job=make_job,
            modes=("latency",),
            contenders=CONTENDERS,
            notes=(
                "Each pool is started and warmed with untimed round trips first; "
                "p50/p99 in microseconds.",
            ),
        )
    ]
