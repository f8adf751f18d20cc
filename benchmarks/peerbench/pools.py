"""Contenders that map ``job.fn`` over items: shared by S1, S2, S5, S6 and S8.

Each is a small context manager: open the pool the way its documentation recommends,
yield ``run(items) -> list``, close the pool. Peers are imported inside the function, so
a peer that is not installed fails its own trials ("not installed") and nobody else's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from .framework import START_METHOD, Contender, Job, Kind, forkserver

__all__ = [
    "ANYPOOL_BACKENDS",
    "anypool_executor",
    "anypool_map",
    "joblib_parallel",
    "loky_executor",
    "mp_pool",
    "mpire_pool",
    "pebble_pool",
    "process_pool_executor",
    "serial_loop",
    "thread_pool_executor",
]

Run = Callable[[Any], Any]

#: anypool's backends that map a plain function, with how each is configured.
ANYPOOL_BACKENDS = ("processes", "threads", "auto", "serial")
ANYPOOL = ("anypool",)


def _contender(name: str, kind: Kind, config: str, **extra: Any) -> Callable[..., Contender]:
    def wrap(fn: Callable[[Job], Iterator[Run]]) -> Contender:
        return Contender(name, kind, config, contextmanager(fn), **extra)

    return wrap


# ── the baseline ──────────────────────────────────────────────────────────────────


@_contender("serial loop", "baseline", "[fn(x) for x in items] in the trial process; no pool")
def serial_loop(job: Job) -> Iterator[Run]:
    yield lambda items: [job.fn(x) for x in items]


# ── anypool ───────────────────────────────────────────────────────────────────────


def _anypool_options(backend: str, job: Job) -> dict[str, Any]:
    options: dict[str, Any] = {"backend": backend}
    if backend in ("processes", "threads"):
        options["workers"] = job.workers
    if backend == "processes":
        options["start_method"] = START_METHOD
    return options


def _anypool_config(backend: str) -> str:
    if backend == "processes":
        return f"workers=N, start_method={START_METHOD!r}, chunksize='auto' (default)"
    if backend == "threads":
        return "workers=N, chunksize='auto' (default)"
    if backend == "auto":
        return "all defaults (backend='auto' measures and chooses)"
    return "runs in the caller's thread"


def anypool_map(backend: str) -> Contender:
    """The module-level call: ``anypool.map(fn, items, backend=...)``. Its warm mode is
    a second call in the same process (anypool may keep the pool between calls)."""

    @_contender(f"anypool.map {backend}", "anypool", _anypool_config(backend), needs=ANYPOOL)
    def contender(job: Job) -> Iterator[Run]:
        import anypool

        options = _anypool_options(backend, job)
        yield lambda items: anypool.map(job.fn, items, **options)

    return contender


def anypool_executor(backend: str = "processes") -> Contender:
    """An ``anypool.Executor`` held open across runs (its warm mode is an open pool)."""

    @_contender(f"anypool.Executor {backend}", "anypool", _anypool_config(backend), needs=ANYPOOL)
    def contender(job: Job) -> Iterator[Run]:
        import anypool

        options = _anypool_options(backend, job)
        with anypool.Executor(options.pop("backend"), **options) as ex:
            yield lambda items: list(ex.map(job.fn, items))

    return contender


# ── the standard library ──────────────────────────────────────────────────────────


@_contender(
    "multiprocessing.Pool.map",
    "peer",
    f"Pool(N), {START_METHOD}, map() with its default chunksize = items/(4·N)",
    needs=("multiprocessing.pool",),
)
def mp_pool(job: Job) -> Iterator[Run]:
    with forkserver().Pool(job.workers) as pool:
        yield lambda items: pool.map(job.fn, items)


def process_pool_executor(chunked: bool = True) -> Contender:
    """``ProcessPoolExecutor.map``; its default chunksize is 1, a round trip per item."""
    config = "chunksize=items/(4·N)" if chunked else "default chunksize=1"
    name = "ProcessPoolExecutor.map" + ("" if chunked else " chunksize=1")

    @_contender(name, "peer", f"max_workers=N, {START_METHOD}, {config}")
    def contender(job: Job) -> Iterator[Run]:
        with ProcessPoolExecutor(job.workers, mp_context=forkserver()) as ex:
            yield lambda items: list(
                ex.map(job.fn, items, chunksize=job.chunksize if chunked else 1)
            )

    return contender


@_contender("ThreadPoolExecutor.map", "peer", "max_workers=N")
def thread_pool_executor(job: Job) -> Iterator[Run]:
    with ThreadPoolExecutor(job.workers) as ex:
        yield lambda items: list(ex.map(job.fn, items))


# ── the peer libraries ────────────────────────────────────────────────────────────


@_contender(
    "loky.get_reusable_executor",
    "peer",
    f"max_workers=N, context={START_METHOD!r}, map() with chunksize=items/(4·N)",
    needs=("loky",),
)
def loky_executor(job: Job) -> Iterator[Run]:
    from loky import get_reusable_executor

    ex = get_reusable_executor(max_workers=job.workers, context=START_METHOD)
    try:
        yield lambda items: list(ex.map(job.fn, items, chunksize=job.chunksize))
    finally:
        ex.shutdown(wait=True)


def joblib_parallel(prefer: str | None = None) -> Contender:
    """``joblib.Parallel`` with its defaults (loky backend, ``batch_size='auto'``,
    memmapping of large arrays); ``prefer='threads'`` is its documented choice for code
    that releases the GIL. Opened as a context manager, so its workers are reused."""
    threads = prefer == "threads"
    name = "joblib.Parallel" + (" prefer='threads'" if threads else "")
    config = (
        "n_jobs=N, prefer='threads', batch_size='auto'"
        if threads
        else "n_jobs=N, defaults: backend 'loky' (loky's own start method), batch_size='auto'"
    )

    @_contender(name, "peer", config, needs=("joblib",))
    def contender(job: Job) -> Iterator[Run]:
        from joblib import Parallel, delayed

        task = delayed(job.fn)
        with Parallel(n_jobs=job.workers, prefer=prefer) as parallel:
            yield lambda items: parallel(task(x) for x in items)

    return contender


@_contender(
    "mpire.WorkerPool.map",
    "peer",
    f"n_jobs=N, start_method={START_METHOD!r}, keep_alive=True, default chunk size",
    needs=("mpire",),
)
def mpire_pool(job: Job) -> Iterator[Run]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=job.workers, start_method=START_METHOD, keep_alive=True) as pool:
        # mpire unpacks tuples, lists and dicts into arguments; the items here are ints,
        # bytes, str and arrays, which it passes whole.
        yield lambda items: pool.map(job.fn, items)


@_contender(
    "pebble.ProcessPool.map",
    "peer",
    f"max_workers=N, context={START_METHOD}, chunksize=items/(4·N)",
    needs=("pebble",),
)
def pebble_pool(job: Job) -> Iterator[Run]:
    from pebble import ProcessPool

    with ProcessPool(max_workers=job.workers, context=forkserver()) as pool:
        yield lambda items: list(pool.map(job.fn, items, chunksize=job.chunksize).result())
