"""S3 I/O-bound: 1,000 x ``time.sleep(0.05)``, against the ideal time.

With ``c`` tasks waiting at once, the best any pool can do is 0.05 s x ceil(1000 / c):
each row's "÷ ideal" uses its own concurrency. There is no serial row: a loop would take
50 s by construction.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .framework import Contender, Job, Scenario, Settings
from .work import nap, nap_async

__all__ = ["scenarios"]

TASKS = 1000
QUICK_TASKS = 100
WAIT = 0.05
QUICK_WAIT = 0.01


def thread_pool(threads: int) -> Contender:
    @contextmanager
    def open_pool(job: Job) -> Iterator[Any]:
        with ThreadPoolExecutor(threads) as ex:
            yield lambda items: list(ex.map(job.fn, items))

    return Contender(
        f"ThreadPoolExecutor({threads}).map",
        "peer",
        f"max_workers={threads}",
        open_pool,
        concurrency=threads,
    )


@contextmanager
def _gather(job: Job) -> Iterator[Any]:
    async def all_of(items: list[float]) -> list[Any]:
        return await asyncio.gather(*(job.async_fn(x) for x in items))  # type: ignore[misc]

    yield lambda items: asyncio.run(all_of(items))


def anypool_threads(threads: int) -> Contender:
    @contextmanager
    def open_pool(job: Job) -> Iterator[Any]:
        import anypool

        yield lambda items: anypool.map(job.fn, items, backend="threads", workers=threads)

    return Contender(
        f"anypool.map threads workers={threads}",
        "anypool",
        f"workers={threads}, chunksize='auto' (default)",
        open_pool,
        concurrency=threads,
        needs=("anypool",),
    )


@contextmanager
def _anypool_asyncio(job: Job) -> Iterator[Any]:
    import anypool

    yield lambda items: anypool.map(job.async_fn, items, backend="asyncio")


@contextmanager
def _anypool_auto(job: Job) -> Iterator[Any]:
    import anypool

    def run(items: list[float]) -> list[Any]:
        # An Executor rather than anypool.map, to read back what auto chose.
        with anypool.Executor() as ex:
            results = list(ex.map(job.fn, items))
            job.report.update(chose=f"{ex.backend} ({ex.workers} workers)")
        return results

    yield run


CONTENDERS = (
    thread_pool(100),
    thread_pool(1000),
    Contender(
        "asyncio.gather",
        "peer",
        "asyncio.run(gather(*coroutines)), asyncio.sleep",
        _gather,
        concurrency=TASKS,
    ),
    anypool_threads(100),
    anypool_threads(1000),
    Contender(
        "anypool.map asyncio",
        "anypool",
        "async def with asyncio.sleep; default workers (1000 coroutines at once)",
        _anypool_asyncio,
        concurrency=TASKS,
        needs=("anypool",),
    ),
    Contender(
        "anypool.Executor auto",
        "anypool",
        "all defaults; ÷ ideal is against the full-concurrency ideal",
        _anypool_auto,
        concurrency=TASKS,
        needs=("anypool",),
    ),
)


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    count, wait = (QUICK_TASKS, QUICK_WAIT) if settings.quick else (TASKS, WAIT)
    return Job(
        fn=nap,
        async_fn=nap_async,
        items=[wait] * count,
        workers=workers,
        check=lambda results: results == [wait] * count,
    )


def scenarios(settings: Settings) -> list[Scenario]:
    count, wait = (QUICK_TASKS, QUICK_WAIT) if settings.quick else (TASKS, WAIT)

    def ideal(concurrency: int) -> float:
        return wait * math.ceil(count / min(concurrency, count))

    return [
        Scenario(
            key="S3",
            id="S3",
            title="S3 I/O-bound",
            workload=f"{count:,} x time.sleep({wait}); ideal {wait} s x ceil({count}/concurrency)",
            make_job=make_job,
            contenders=CONTENDERS,
            ideal=ideal,
            timeout=60.0,
            notes=(
                "Pools and event loops are created inside the timing (1,000 threads "
                "take a noticeable time to start). No serial row: a loop takes "
                f"{count * wait:g} s by construction.",
            ),
        )
    ]
