"""S1 tiny tasks: ``x*x`` over 200,000 items, results collected, cold and warm pools.

What it shows: the cost per item of getting work to a pool and results back. A pool that
sends one message per item (ProcessPoolExecutor's default chunksize=1) pays a round trip
per multiplication; the plain loop is the bar to beat.
"""

from __future__ import annotations

from pathlib import Path

from . import pools
from .framework import Job, Scenario, Settings
from .work import square

__all__ = ["scenarios"]

ITEMS = 200_000
QUICK_ITEMS = 20_000


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    count = QUICK_ITEMS if settings.quick else ITEMS
    expected_sum = sum(x * x for x in range(count))
    return Job(
        fn=square,
        items=list(range(count)),
        workers=workers,
        check=lambda results: len(results) == count and sum(results) == expected_sum,
    )


def scenarios(settings: Settings) -> list[Scenario]:
    count = QUICK_ITEMS if settings.quick else ITEMS
    return [
        Scenario(
            key="S1",
            id="S1",
            title="S1 tiny tasks",
            workload=f"x*x over {count:,} items, results collected",
            make_job=make_job,
            modes=("cold", "warm"),
            contenders=(
                pools.serial_loop,
                *(pools.anypool_map(b) for b in pools.ANYPOOL_BACKENDS),
                pools.anypool_executor("processes"),
                pools.mp_pool,
                pools.process_pool_executor(chunked=True),
                pools.process_pool_executor(chunked=False),
                pools.loky_executor,
                pools.joblib_parallel(),
                pools.mpire_pool,
                pools.pebble_pool,
            ),
            notes=(
                "cold: the pool is created, used and shut down inside the timing; "
                "warm: the pool was created and ran a first map (2·N items) before the "
                "timing — for the module-level anypool.map, warm means a second call "
                "in the same process.",
            ),
        )
    ]
