"""S2 CPU-bound, GIL-holding work, and S8: the same work as the worker count grows.

S2: 16 x pure-Python ``fib(27)`` on N workers, cold and warm pools. Threads cannot beat
the serial loop here (the GIL); a process pool can approach Nx it.

S8: ``fib(27)`` on warm pools of 1, 2, 4, … workers up to the core count: 64 tasks when
there are more than 2 cores, so every worker has several, 16 on 2 cores. Efficiency is
the speed-up over the serial loop divided by the workers. Warm, because at 16 workers the
whole map takes about 0.1 s and a cold pool would measure its start-up, not its scaling.
Only the standard library and the peers are needed (no NumPy), so it runs on a bare
machine with more cores.
"""

from __future__ import annotations

from pathlib import Path

from . import pools
from .framework import Job, Scenario, Settings
from .work import fib, fib_task

__all__ = ["scaling_counts", "scenarios"]

FIB_N = 27
QUICK_FIB_N = 20
TASKS = 16
QUICK_TASKS = 8
#: S8 gives each worker several tasks when there are more than 2 cores.
SCALING_TASKS = 64

#: The process pools compared in S8 (the issue: anypool and every process-pool peer).
SCALING_CONTENDERS = (
    pools.serial_loop,
    pools.anypool_executor("processes"),
    pools.anypool_map("processes"),
    pools.mp_pool,
    pools.process_pool_executor(chunked=True),
    pools.loky_executor,
    pools.joblib_parallel(),
    pools.mpire_pool,
    pools.pebble_pool,
)


def scaling_counts(cores: int) -> tuple[int, ...]:
    """1, 2, 4, … up to ``cores``, and ``cores`` itself when it is not a power of two."""
    counts = []
    workers = 1
    while workers < cores:
        counts.append(workers)
        workers *= 2
    counts.append(cores)
    return tuple(counts)


def _job_maker(tasks: int, n: int):  # type: ignore[no-untyped-def]
    def make_job(settings: Settings, workers: int, shared: Path) -> Job:
        expected = fib(n)
        return Job(
            fn=fib_task,
            items=[n] * tasks,
            workers=workers,
            check=lambda results: len(results) == tasks and set(results) == {expected},
            warmup_items=[QUICK_FIB_N] * workers,
        )

    return make_job


def scenarios(settings: Settings) -> list[Scenario]:
    n = QUICK_FIB_N if settings.quick else FIB_N
    tasks = QUICK_TASKS if settings.quick else TASKS
    scaling_tasks = SCALING_TASKS if settings.workers > 2 else TASKS
    if settings.quick:
        scaling_tasks = QUICK_TASKS * 2
    s2 = Scenario(
        key="S2",
        id="S2",
        title="S2 CPU-bound, GIL-holding",
        workload=f"{tasks} x pure-Python fib({n})",
        make_job=_job_maker(tasks, n),
        modes=("cold", "warm"),
        contenders=(
            pools.serial_loop,
            *(pools.anypool_map(b) for b in pools.ANYPOOL_BACKENDS),
            pools.anypool_executor("processes"),
            *(c for c in SCALING_CONTENDERS if c.kind == "peer"),
        ),
        notes=(
            "cold: pool created and shut down inside the timing; warm: the pool ran "
            "one small fib per worker first (for anypool.map: a first call).",
        ),
    )
    s8 = Scenario(
        key="S8",
        id="S8",
        title="S8 scaling",
        workload=f"{scaling_tasks} x pure-Python fib({n}) on warm pools",
        make_job=_job_maker(scaling_tasks, n),
        modes=("warm",),
        worker_counts=scaling_counts(settings.workers),
        contenders=SCALING_CONTENDERS,
        repeat=3,
        notes=(
            "Pools are warm (they ran one small fib per worker before the timing); "
            "efficiency = speed-up over the serial loop ÷ workers.",
        ),
    )
    return [s2, s8]
