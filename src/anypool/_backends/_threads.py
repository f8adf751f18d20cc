"""The threads backend: a pool of threads in this process.

::

    submit(work) ──► SimpleQueue ──► worker thread: run_work(work) ──► job.deliver(...)
                                          │ (works with a task_timeout only)
                                          ▼
                     watchdog thread: on a passed deadline, deliver TaskTimeout, mark
                     the thread abandoned, re-queue the rest of its work, start a
                     replacement thread

Threads share memory, so nothing is pickled and start-up is cheap; but only code that
releases the GIL (I/O, sleeping, most C extensions) runs in parallel. A thread cannot be
killed: a task past its timeout is *abandoned* (its caller gets ``TaskTimeout`` on time,
the thread runs on until the task returns, then exits, and its result is dropped).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .._errors import InitializerError, TaskTimeout
from .._tasks import Work
from ._base import Backend, ExecutorStats, available_cpus
from ._inline import run_work

__all__ = ["ThreadBackend"]

_thread_ids = itertools.count(1)


class _Runner:
    """What one worker thread is doing, for the watchdog."""

    __slots__ = ("abandoned", "deadline", "offset", "thread", "work")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.work: Work | None = None
        self.offset = 0
        self.deadline: float | None = None
        self.abandoned = False


class ThreadBackend(Backend):
    name = "threads"
    batch_target = 0.005

    @classmethod
    def default_workers(cls) -> int:
        # Same rule as concurrent.futures: threads are for I/O, where more helps.
        return min(32, available_cpus() + 4)

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Any,
    ) -> None:
        self.workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Condition()
        self._runners: dict[int, _Runner] = {}
        self._closed = False
        self._broken: BaseException | None = None
        self._watchdog: threading.Thread | None = None
        self._done = self._timed_out = self._abandoned = 0

    # ── submitting ───────────────────────────────────────────────────────────────

    def submit(self, work: Work) -> None:
        with self._lock:
            if self._broken is not None:
                raise self._broken.with_traceback(None)
            if self._closed:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            if work.job.task_timeout is not None:
                self._start_watchdog()
        self._queue.put(work)
        self._adjust_threads()

    def _adjust_threads(self) -> None:
        if self._idle.acquire(timeout=0):
            return  # an idle thread will take it
        with self._lock:
            live = sum(1 for r in self._runners.values() if not r.abandoned)
            if live < self.workers and not self._closed:
                self._start_thread()

    def _start_thread(self) -> None:
        runner = _Runner()
        thread = threading.Thread(
            target=self._worker,
            args=(runner,),
            name=f"anypool-thread-{next(_thread_ids)}",
            daemon=True,
        )
        runner.thread = thread
        assert thread.ident is None
        self._runners[id(runner)] = runner
        thread.start()

    # ── worker threads ───────────────────────────────────────────────────────────

    def _worker(self, runner: _Runner) -> None:
        try:
            if self._initializer is not None and not self._run_initializer():
                return
            self._serve(runner)
        finally:
            with self._lock:
                self._runners.pop(id(runner), None)
                self._lock.notify_all()

    def _run_initializer(self) -> bool:
        assert self._initializer is not None
        try:
            self._initializer(*self._initargs)
        except BaseException as exc:
            error = InitializerError(f"the initializer failed in a worker thread: {exc!r}")
            error.__cause__ = exc
            self._break(error)
            return False
        return True

    def _serve(self, runner: _Runner) -> None:
        while True:
            work = self._queue.get()
            if work is None or runner.abandoned:
                return
            if self._broken is not None:
                _fail(work, self._broken)
            elif work.job.on_start(work) and not self._run(runner, work):
                return  # abandoned after a timeout: a replacement took over
            # An idle thread must not keep its last work's items alive (memory bounds).
            del work
            self._idle.release()

    def _run(self, runner: _Runner, work: Work) -> bool:
        """Run ``work``; False if this thread was abandoned meanwhile."""
        runner.work = work
        if work.job.task_timeout is None:
            run_work(work)
        else:
            timeout = work.job.task_timeout
            run_work(
                work,
                before_item=lambda offset: self._item_started(runner, work, offset, timeout),
                after_item=lambda offset: self._item_finished(runner),
            )
        with self._lock:
            runner.work = None
            if not runner.abandoned:
                self._done += len(work.positions)
            return not runner.abandoned

    def _item_started(self, runner: _Runner, work: Work, offset: int, timeout: float) -> bool:
        with self._lock:
            if runner.abandoned:
                return False
            runner.work, runner.offset = work, offset
            runner.deadline = time.monotonic() + timeout
            self._lock.notify_all()
            return True

    def _item_finished(self, runner: _Runner) -> bool:
        with self._lock:
            runner.deadline = None
            return not runner.abandoned

    # ── the watchdog (only started when a task_timeout is used) ─────────────────

    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="anypool-thread-watchdog", daemon=True
            )
            self._watchdog.start()

    def _watch(self) -> None:
        with self._lock:
            while not self._closed or any(r.deadline for r in self._runners.values()):
                now = time.monotonic()
                deadlines = [r.deadline for r in self._runners.values() if r.deadline]
                for runner in list(self._runners.values()):
                    if runner.deadline is not None and runner.deadline <= now:
                        self._expire(runner)
                wait = min(deadlines) - now if deadlines else None
                self._lock.wait(None if wait is None else max(wait, 0.001))

    def _expire(self, runner: _Runner) -> None:
        # Called with the lock held. The thread cannot be stopped: it is abandoned, its
        # task fails now, and the rest of its work goes to a new thread.
        work, offset = runner.work, runner.offset
        assert work is not None and work.job.task_timeout is not None
        runner.abandoned, runner.deadline = True, None
        self._lock.notify_all()
        self._timed_out += 1
        self._abandoned += 1
        error = TaskTimeout(work.job.task_timeout, work.item_index(offset))
        rest = list(range(offset + 1, len(work.positions)))
        if not self._closed:
            self._start_thread()
        self._lock.release()
        try:
            work.job.deliver(work, offset, [None], {0: error}, 0.0 if not rest else None)
            if rest:
                self._queue.put(work.subset(rest))
        finally:
            self._lock.acquire()

    # ── stopping ─────────────────────────────────────────────────────────────────

    def _break(self, error: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = error
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            if work is None:
                continue
            if self._broken is not None:
                _fail(work, self._broken)
            else:
                work.job.drop(work)

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            runners = list(self._runners.values())
            self._lock.notify_all()
        if cancel_futures:
            self._drain()
        for _ in runners:
            self._queue.put(None)
        if wait:
            self._join(runners)

    def _join(self, runners: list[_Runner]) -> None:
        # Abandoned threads are not waited for: they may never return.
        me = threading.current_thread()
        with self._lock:
            while any(r.thread is not me and not r.abandoned for r in self._runners.values()):
                self._lock.wait()
            self._lock.notify_all()
        for runner in runners:
            if runner.thread is not None and runner.thread is not me and not runner.abandoned:
                runner.thread.join()
        if self._watchdog is not None and self._watchdog is not me:
            self._watchdog.join()

    def terminate(self) -> None:
        self.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> ExecutorStats:
        with self._lock:
            alive = [r for r in self._runners.values() if not r.abandoned]
            busy = sum(1 for r in alive if r.work is not None)
            return ExecutorStats(
                self.name,
                self.workers,
                alive=len(alive),
                idle=len(alive) - busy,
                pending=self._queue.qsize(),
                tasks_done=self._done,
                timed_out=self._timed_out,
                abandoned=self._abandoned,
            )


def _fail(work: Work, error: BaseException) -> None:
    n = len(work.positions)
    work.job.deliver(work, 0, [None] * n, dict.fromkeys(range(n), error), 0.0)
