"""S5 GIL-releasing C work: 16 x sha256 of 20 MB, and 16 x a 400x400 matmul.

hashlib and BLAS release the GIL, so threads run them in parallel without pickling the
20 MB inputs to other processes. Every trial runs with OMP/OPENBLAS/MKL_NUM_THREADS=1
(runner.TRIAL_ENV), so one matmul uses one core whichever pool runs it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import pools
from .framework import Contender, Job, Scenario, Settings
from .work import matmul_sum, sha256_hex

__all__ = ["scenarios"]

TASKS = 16
QUICK_TASKS = 4
MEGABYTES = 20
QUICK_MEGABYTES = 2
SIDE = 400
QUICK_SIDE = 200


def _sizes(settings: Settings) -> tuple[int, int, int]:
    if settings.quick:
        return QUICK_TASKS, QUICK_MEGABYTES, QUICK_SIDE
    return TASKS, MEGABYTES, SIDE


def make_sha_job(settings: Settings, workers: int, shared: Path) -> Job:
    import random

    tasks, megabytes, _ = _sizes(settings)
    block = random.Random(4).randbytes(megabytes * 10**6)
    items = [i.to_bytes(8, "little") + block[8:] for i in range(tasks)]
    expected = [hashlib.sha256(item).hexdigest() for item in items]
    return Job(
        fn=sha256_hex, items=items, workers=workers, check=lambda results: results == expected
    )


def make_matmul_job(settings: Settings, workers: int, shared: Path) -> Job:
    import numpy as np

    tasks, _, side = _sizes(settings)
    rng = np.random.default_rng(5)
    items = [rng.random((side, side)) for _ in range(tasks)]
    expected = [matmul_sum(m) for m in items]
    return Job(
        fn=matmul_sum,
        items=items,
        workers=workers,
        check=lambda results: all(
            abs(a - b) <= 1e-9 * abs(b) for a, b in zip(results, expected, strict=True)
        ),
    )


#: Every pool that maps a function, threads and processes alike: shared with S6.
CONTENDERS: tuple[Contender, ...] = (
    pools.serial_loop,
    *(pools.anypool_map(b) for b in pools.ANYPOOL_BACKENDS),
    pools.thread_pool_executor,
    pools.joblib_parallel("threads"),
    pools.mp_pool,
    pools.process_pool_executor(chunked=True),
    pools.loky_executor,
    pools.joblib_parallel(),
    pools.mpire_pool,
    pools.pebble_pool,
)

NOTE = "Pools are created inside the timing; BLAS and OpenMP are limited to 1 thread."


def scenarios(settings: Settings) -> list[Scenario]:
    tasks, megabytes, side = _sizes(settings)
    return [
        Scenario(
            key="S5",
            id="S5-sha256",
            title="S5 GIL-releasing C work: sha256",
            workload=f"{tasks} x hashlib.sha256 of {megabytes} MB",
            make_job=make_sha_job,
            contenders=CONTENDERS,
            notes=(NOTE,),
        ),
        Scenario(
            key="S5",
            id="S5-matmul",
            title="S5 GIL-releasing C work: matmul",
            workload=f"{tasks} x NumPy {side}x{side} float64 matmul (a @ a).sum()",
            make_job=make_matmul_job,
            contenders=CONTENDERS,
            notes=(NOTE,),
        ),
    ]
