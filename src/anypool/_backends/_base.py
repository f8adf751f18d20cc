"""The interface every backend implements.

A backend runs :class:`~anypool._tasks.Work` items and reports their outcomes to the
work's job (``work.job.deliver`` / ``work.job.work_done``). It knows nothing of the
Executor, the CLI or the auto-chooser: it is handed works and runs them.

Contract:

* ``submit(work)`` never blocks for long and never runs user code in the caller's thread
  (except the serial backend, whose whole point is to do exactly that).
* Before running a work the backend calls ``work.job.on_start(work)``; if it returns False
  the work is skipped silently (it was cancelled).
* Every position of a submitted, non-skipped work is delivered exactly once, as a value
  or as an exception, unless the backend re-submits the position as a new work
  (a re-run after a crash); the last chunk of a work carries ``elapsed``.
* Exceptions delivered are the task's own exception (type kept), with the worker's
  traceback as ``__cause__`` when it crossed a process boundary; or :class:`TaskTimeout`,
  :class:`WorkerCrashed`, :class:`SerializationError`, :class:`TaskError`.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from .._tasks import Work

__all__ = ["Backend", "ExecutorStats", "available_cpus"]


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorStats:
    """A snapshot of a backend's state (see ``Executor.stats()``).

    Attributes:
        backend: the backend's name.
        workers: the configured maximum number of workers.
        alive: workers currently running (threads or processes).
        idle: workers waiting for work.
        pending: works queued and not yet started.
        tasks_done: items finished (successfully or not).
        restarts: worker processes replaced after a crash, a timeout or
            ``max_tasks_per_worker``.
        crashed: worker processes that died while running a task.
        timed_out: tasks stopped by ``task_timeout``.
        abandoned: threads left running a timed-out task (threads cannot be killed).
    """

    backend: str
    workers: int
    alive: int = 0
    idle: int = 0
    pending: int = 0
    tasks_done: int = 0
    restarts: int = 0
    crashed: int = 0
    timed_out: int = 0
    abandoned: int = 0


class Backend(ABC):
    """A pool of workers of one kind. See the module docstring for the contract."""

    #: The name users pass as ``backend=``.
    name: ClassVar[str]
    #: Whether a running task can be stopped (processes: yes; threads: no).
    can_kill_running: ClassVar[bool] = False
    #: Whether functions and items cross a process boundary (and must pickle).
    needs_pickling: ClassVar[bool] = False
    #: How long a batch of items should take, in seconds: long enough to amortise the
    #: cost of sending it, short enough to balance the load and report progress.
    batch_target: ClassVar[float] = 0.0
    #: Runs in the caller's thread: map() results are computed as they are consumed.
    inline: ClassVar[bool] = False
    #: Items per batch for ``chunksize="auto"`` on a backend that runs the items of a
    #: batch concurrently (asyncio), where measuring has nothing to balance; ``None``:
    #: batches are sized by measuring (see ``_mapping.BatchSizer``).
    auto_batch: ClassVar[int | None] = None

    workers: int

    @classmethod
    def is_available(cls) -> bool:
        """Whether this backend can be used here (an import check only, no side effects)."""
        return True

    @classmethod
    @abstractmethod
    def default_workers(cls) -> int:
        """The worker count used when ``workers=None``."""

    @abstractmethod
    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Any,
    ) -> None: ...

    @abstractmethod
    def submit(self, work: Work) -> None:
        """Queue ``work``; outcomes reach ``work.job``. Raises after shutdown."""

    @abstractmethod
    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop taking work; finish (or with ``cancel_futures``, drop) what is queued."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop now: drop queued work and stop running tasks where that is possible."""

    @abstractmethod
    def stats(self) -> ExecutorStats:
        """A snapshot of the pool's state."""

    def usable(self) -> bool:
        """Whether it can take more work (not shut down, not broken)."""
        return True

    def forget(self, job: Any) -> None:  # noqa: B027 (optional hook)
        """Drop queued works of a cancelled job early (an optimisation; optional)."""
