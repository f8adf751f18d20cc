"""The serial backend: every task runs in the caller's thread, one after another.

It is the baseline that every speed-up is measured against, and the debugging mode:
breakpoints, profilers and tracebacks work as in a plain loop. ``submit()`` runs the task
before it returns (so its future is already done), and ``map()`` computes each result as
the caller consumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import InitializerError
from .._tasks import Work
from ._base import Backend, ExecutorStats
from ._inline import run_work

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    name = "serial"
    inline = True

    @classmethod
    def default_workers(cls) -> int:
        return 1

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Any,
    ) -> None:
        self.workers = 1
        self._initializer = initializer
        self._initargs = initargs
        self._initialized = initializer is None
        self._closed = False
        self._done = 0

    def _initialize(self) -> None:
        assert self._initializer is not None
        try:
            self._initializer(*self._initargs)
        except Exception as exc:
            raise InitializerError(f"the initializer failed: {exc!r}") from exc
        self._initialized = True

    def submit(self, work: Work) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new tasks after shutdown")
        if not self._initialized:
            self._initialize()
        if work.job.on_start(work):
            run_work(work)
            self._done += len(work.positions)

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True

    def terminate(self) -> None:
        self._closed = True

    def stats(self) -> ExecutorStats:
        return ExecutorStats(self.name, 1, alive=1, idle=1, tasks_done=self._done)
