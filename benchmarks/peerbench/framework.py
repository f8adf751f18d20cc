"""The pieces a scenario is made of: settings, jobs, contenders and scenarios.

A *scenario* (S1 tiny tasks, S2 CPU, ...) says what work is done (``make_job``) and who
does it (``contenders``). A *contender* is one way of doing that work — anypool with a
backend, or a peer library in its best documented configuration — written as a context
manager that opens its pool and yields a ``run(items)`` callable::

    @contextmanager
    def mp_pool_map(job):
        with forkserver().Pool(job.workers) as pool:
            yield lambda items: pool.map(job.fn, items)

The runner decides what is timed from the scenario's *mode*:

- ``cold``: opening the pool, the run over every item, and closing the pool.
- ``warm``: the pool is opened and ``run(job.warmup_items)`` done first, untimed; then
  one run over every item is timed.
- ``latency``: a warm pool; ``run(None)`` is one submit-to-result round trip, timed
  ``job.rounds`` times after ``job.warmup_rounds`` untimed ones.

Everything here is plain data: the runner sends a trial's coordinates (module, scenario,
contender, mode, workers, settings) to a fresh process, which rebuilds the scenario from
its module and runs the one contender (see trial.py).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "MODES",
    "Contender",
    "Job",
    "Kind",
    "Scenario",
    "Settings",
    "chunks_of",
    "cpu_count",
    "forkserver",
]

Kind = Literal["baseline", "peer", "anypool"]
Mode = Literal["cold", "warm", "latency"]
MODES: tuple[str, ...] = ("cold", "warm", "latency")

#: The start method used for anypool and for every peer that accepts one.
START_METHOD = "forkserver"


def cpu_count() -> int:
    """CPUs this process may run on (what a pool's default worker count should be)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def forkserver() -> Any:
    """The multiprocessing context every process-pool contender starts workers with."""
    return multiprocessing.get_context(START_METHOD)


def chunks_of(total: int, workers: int) -> int:
    """multiprocessing.Pool.map's own default: about four chunks per worker."""
    return max(1, total // (4 * max(1, workers)))


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the command line chose; the same in the runner and in every trial process."""

    quick: bool = False
    workers: int = dataclasses.field(default_factory=cpu_count)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**data)


@dataclasses.dataclass
class Job:
    """One trial's work, built in the trial process, outside the timing.

    ``fn`` is applied to every item of ``items``; ``check`` says whether the list of
    results is right (a contender that returns wrong results is reported as failed).
    ``report`` is where a contender may note what it learnt while running (the backend
    ``auto`` chose); it ends up in the report's notes and the JSON output.
    """

    fn: Callable[..., Any]
    items: list[Any]
    workers: int
    check: Callable[[list[Any]], bool] = lambda results: True
    warmup_items: list[Any] | None = None
    async_fn: Callable[..., Any] | None = None
    data: Any = None
    rounds: int = 0
    warmup_rounds: int = 0
    report: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def chunksize(self) -> int:
        return chunks_of(len(self.items), self.workers)

    def warmup(self) -> list[Any]:
        """Items for the untimed warm-up run: enough that every worker gets one."""
        if self.warmup_items is not None:
            return self.warmup_items
        return self.items[: 2 * self.workers]


Run = Callable[[Any], Any]
Opener = Callable[[Job], AbstractContextManager[Run]]


@dataclasses.dataclass(frozen=True)
class Contender:
    """One way of doing a scenario's work.

    ``config`` says, in the report, exactly how it was set up (start method, chunk size,
    batch size). ``needs`` are the modules it uses, imported before any timing as a
    program would at its top (``import joblib`` alone takes 0.2 s). ``concurrency`` is
    how many tasks it runs at once where that is fixed (S3's ideal time depends on it).
    ``modes`` limits it to some of the scenario's modes.
    """

    name: str
    kind: Kind
    config: str
    open: Opener
    needs: tuple[str, ...] = ()
    concurrency: int | None = None
    modes: tuple[str, ...] | None = None

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A workload and its contenders.

    ``key`` is what ``--scenarios`` selects (S5 has two scenarios under one key);
    ``worker_counts`` is more than one number only for scaling (S8); ``prepare`` runs
    once in the runner before any trial (S6 writes its JPEGs there), with a directory
    that every trial then receives as ``shared``.
    """

    key: str
    id: str
    title: str
    workload: str
    make_job: Callable[[Settings, int, Path], Job]
    contenders: tuple[Contender, ...]
    modes: tuple[str, ...] = ("cold",)
    worker_counts: tuple[int, ...] = ()
    prepare: Callable[[Settings, Path], None] | None = None
    timeout: float = 120.0
    repeat: int | None = None
    measure_memory: bool = False
    ideal: Callable[[int], float] | None = None
    notes: tuple[str, ...] = ()

    def contender(self, name: str) -> Contender:
        for contender in self.contenders:
            if contender.name == name:
                return contender
        raise KeyError(f"{self.id} has no contender named {name!r}")

    def trials(self, settings: Settings) -> Iterator[tuple[Contender, str, int]]:
        """Every (contender, mode, workers) this scenario runs, in declaration order.

        A baseline (the plain loop) does not depend on the worker count: it runs once,
        at the first count.
        """
        counts = self.worker_counts or (settings.workers,)
        for contender in self.contenders:
            for mode in self.modes:
                if not contender.runs_in(mode):
                    continue
                for workers in counts[:1] if contender.kind == "baseline" else counts:
                    yield contender, mode, workers
