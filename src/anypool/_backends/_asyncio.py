"""The asyncio backend: coroutine functions on one event loop in a dedicated thread.

::

    caller threads                          loop thread (one per pool)
    ──────────────                          ──────────────────────────
    submit(work) ─► inbox (deque) ─ wake ─► _drain: the work waits its turn in `_waiting`
                    (one wake-up per burst)
                                            _fill: while fewer than `workers` run, start
                                              the next item as its own Task (calling
                                              job.on_start(work) before its first item)
                                            on a Task's end: job.deliver(work, offset, ...)
                                              for that one item; _fill again
                                            task_timeout: loop.call_later cancels the Task
                                              and the item fails with TaskTimeout

Every item of a work runs as its own Task, so the items of one batch wait concurrently
(a batch is only a unit of transport here, never of sequencing). ``workers`` caps how
many Tasks run at once. The loop is uvloop's when uvloop is installed.

A coroutine that blocks (``time.sleep``, CPU work) stops the whole loop: that is work
for the threads or processes backend, and ``backend="auto"`` sends it there.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError
from typing import Any

from .._errors import BrokenPool, InitializerError, TaskTimeout, as_task_exception, describe
from .._tasks import Work
from ._base import Backend, ExecutorStats
from ._inline import caller

__all__ = ["DEFAULT_WORKERS", "AsyncioBackend", "is_coroutine_function", "new_event_loop"]

#: Coroutines running at once when ``workers`` is not given. High, because a waiting
#: coroutine costs about a kilobyte and no thread; bounded, because each usually holds a
#: socket, and the usual soft limit on open files is 1024 (``ulimit -n``). Measured on 2
#: busy cores: 10,000 waits of 50 ms took 0.53 s at this cap, 0.135 s uncapped
#: (benchmarks/asyncio_fanout.py).
DEFAULT_WORKERS = 1000


def is_coroutine_function(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine: ``async def`` functions and methods,
    ``functools.partial`` of one, and objects whose ``__call__`` is ``async def``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    # An object whose class defines ``async def __call__``.
    call = vars(type(fn)).get("__call__") if not inspect.isfunction(fn) else None
    return call is not None and inspect.iscoroutinefunction(call)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def plain_function_error(fn: Any) -> TypeError:
    name = getattr(fn, "__qualname__", None) or describe(fn)
    return TypeError(
        f"the asyncio backend runs coroutine functions (async def), but {name} is a plain "
        "function: use backend='threads' for blocking calls, or backend='auto' to choose "
        "by measuring"
    )


class _WorkState:
    """A work waiting for, or running on, the loop; ``next`` is its next item to start."""

    __slots__ = ("call", "finished", "items", "left", "next", "started", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.items = work.items()
        self.call = caller(work.job.mode, work.job.fn)
        self.left = len(work.positions)  # items not yet delivered
        self.next = 0
        self.started = 0.0
        self.finished: list[tuple[int, Any, BaseException | None]] = []  # not yet delivered


class AsyncioBackend(Backend):
    name = "asyncio"
    can_kill_running = True  # a Task can be cancelled at its next await
    batch_target = 0.005
    # The items of a batch run concurrently, so a batch's size changes nothing about how
    # they run; it only sets how many submissions carry them.
    auto_batch = 128

    @classmethod
    def default_workers(cls) -> int:
        return DEFAULT_WORKERS

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
        self._lock = threading.Lock()
        self._inbox: collections.deque[Work] = collections.deque()
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._terminated = False
        self._broken: BaseException | None = None
        self._checked: Any = None  # the last job whose function was checked
        # Loop-thread state (touched only by the loop thread):
        self._waiting: collections.deque[_WorkState] = collections.deque()
        self._running: dict[asyncio.Task[Any], tuple[_WorkState, int]] = {}
        self._timers: dict[asyncio.Task[Any], asyncio.TimerHandle] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._done = self._timed_out = 0
        self._unflushed: list[_WorkState] = []
        self._flush_scheduled = False

    # ── submitting (caller threads) ──────────────────────────────────────────────

    def submit(self, work: Work) -> None:
        job = work.job
        if job is not self._checked:
            if not is_coroutine_function(job.fn):
                raise plain_function_error(job.fn)
            self._checked = job
        with self._lock:
            if self._broken is not None:
                raise self._broken.with_traceback(None)
            if self._closed:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            loop = self._ensure_started()
            self._inbox.append(work)
            if not self._wake_pending:
                # Schedule first, then set the flag: a KeyboardInterrupt between the two
                # leaves at worst an extra drain, never a flag that no drain will clear
                # (which would leave every later submit waiting forever).
                loop.call_soon_threadsafe(self._drain)
                self._wake_pending = True

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = new_event_loop()
            self._thread = threading.Thread(
                target=self._run_loop, args=(self._loop,), name="anypool-asyncio", daemon=True
            )
            self._thread.start()
        return self._loop

    # ── the loop thread ──────────────────────────────────────────────────────────

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            self._initialize(loop)
            loop.run_forever()
            # Shut down: whatever is still running is cancelled and reported.
            for task in list(self._running):
                task.cancel()
            while self._running or self._flush_scheduled:
                pending = list(self._running)
                loop.run_until_complete(asyncio.wait(pending) if pending else asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    def _initialize(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._initializer is None:
            return
        try:
            result = self._initializer(*self._initargs)
            if inspect.isawaitable(result):
                loop.run_until_complete(_awaited(result))
        except BaseException as exc:
            error = InitializerError(f"the initializer failed on the event loop: {exc!r}")
            error.__cause__ = exc
            with self._lock:
                self._broken = error

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
            works = list(self._inbox)
            self._inbox.clear()
            broken = self._broken
        for work in works:
            if broken is not None:
                _fail(work, broken)
            else:
                self._waiting.append(_WorkState(work))
        self._fill()
        self._maybe_stop()

    def _fill(self) -> None:
        while self._waiting and len(self._running) < self.workers:
            state = self._waiting[0]
            if state.next == 0:
                # on_start when the work's first item really starts, so that a future
                # still waiting for a free slot can be cancelled.
                if not state.work.job.on_start(state.work):
                    self._waiting.popleft()
                    continue
                state.started = time.perf_counter()
                if state.left == 0:
                    self._waiting.popleft()
                    state.work.job.deliver(state.work, 0, [], None, 0.0)
                    continue
            offset = state.next
            state.next += 1
            if state.next == len(state.items):
                self._waiting.popleft()
            self._start(state, offset)

    def _start(self, state: _WorkState, offset: int) -> None:
        loop = self._loop
        assert loop is not None
        try:
            awaitable = state.call(state.items[offset])
            if not inspect.isawaitable(awaitable):
                raise TypeError(
                    f"the task returned {describe(awaitable)}, not an awaitable: the asyncio "
                    "backend needs a coroutine function (async def)"
                )
            coro = awaitable if asyncio.iscoroutine(awaitable) else _awaited(awaitable)
            task = loop.create_task(coro)
        except BaseException as exc:
            self._finish(state, offset, None, as_task_exception(exc))
            return
        self._running[task] = (state, offset)
        timeout = state.work.job.task_timeout
        if timeout is not None:
            self._timers[task] = loop.call_later(timeout, self._expire, task)
        task.add_done_callback(self._on_task_done)

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired.add(task)
        task.cancel()

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        state, offset = self._running.pop(task)
        timer = self._timers.pop(task, None)
        if timer is not None:
            timer.cancel()
        error: BaseException | None = None
        value = None
        if task in self._expired:
            self._expired.discard(task)
            self._timed_out += 1
            timeout = state.work.job.task_timeout
            assert timeout is not None
            error = TaskTimeout(timeout, state.work.index(offset))
        elif task.cancelled():
            error = self._cancel_reason()
        elif (exc := task.exception()) is not None:
            error = as_task_exception(exc)
        else:
            value = task.result()
        self._finish(state, offset, value, error)
        if self._waiting:
            self._fill()
        # (the pool stops, if it was shut down, once _flush has delivered the last outcome)

    def _cancel_reason(self) -> BaseException:
        if self._terminated:
            return BrokenPool("the asyncio pool was terminated while this task ran")
        return CancelledError("the task was cancelled")

    def _finish(
        self, state: _WorkState, offset: int, value: Any, error: BaseException | None
    ) -> None:
        # Outcomes are delivered once per loop iteration, in runs of consecutive items:
        # 10,000 sleeps that end in the same iteration make a few deliveries, not 10,000.
        state.left -= 1
        self._done += 1
        if not state.finished:
            self._unflushed.append(state)
        state.finished.append((offset, value, error))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        states, self._unflushed = self._unflushed, []
        for state in states:
            finished, state.finished = state.finished, []
            _deliver_runs(state, finished)
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        with self._lock:
            idle = self._closed and not self._inbox and not self._wake_pending
        busy = self._waiting or self._running or self._flush_scheduled
        if idle and not busy and self._loop is not None:
            self._loop.stop()

    # ── stopping ─────────────────────────────────────────────────────────────────

    def _close_on_loop(self, cancel_futures: bool, terminate: bool) -> None:
        if terminate:
            self._terminated = True
        if cancel_futures or terminate:
            self._drop_waiting()
        if terminate:
            for task in list(self._running):
                task.cancel()
        self._maybe_stop()

    def _drop_waiting(self) -> None:
        # A work none of whose items started is dropped whole (its futures cancelled);
        # the items of a started work that have not started fail with CancelledError.
        with self._lock:
            works = list(self._inbox)
            self._inbox.clear()
        for work in works:
            work.job.drop(work)
        while self._waiting:
            state = self._waiting.popleft()
            if state.next == 0:
                state.work.job.drop(state.work)
                continue
            for offset in range(state.next, len(state.items)):
                self._finish(state, offset, None, CancelledError("the pool shut down first"))

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        self._stop(wait=wait, cancel_futures=cancel_futures, terminate=False)

    def terminate(self) -> None:
        self._stop(wait=False, cancel_futures=True, terminate=True)

    def _stop(self, *, wait: bool, cancel_futures: bool, terminate: bool) -> None:
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(self._close_on_loop, cancel_futures, terminate)
        except RuntimeError:
            return  # the loop has already closed
        if wait and thread is not threading.current_thread():
            thread.join()

    def stats(self) -> ExecutorStats:
        with self._lock:
            queued = len(self._inbox)
        running = len(self._running)
        return ExecutorStats(
            self.name,
            self.workers,
            alive=running,
            idle=max(0, self.workers - running),
            pending=queued + sum(len(s.items) - s.next for s in list(self._waiting)),
            tasks_done=self._done,
            timed_out=self._timed_out,
        )


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    # create_task needs a coroutine; a Future or other awaitable is wrapped in one.
    return await awaitable


def _deliver_runs(state: _WorkState, finished: list[tuple[int, Any, BaseException | None]]) -> None:
    """Deliver ``finished`` outcomes as runs of consecutive offsets."""
    finished.sort(key=lambda outcome: outcome[0])
    work = state.work
    start = 0
    for i in range(1, len(finished) + 1):
        if i < len(finished) and finished[i][0] == finished[i - 1][0] + 1:
            continue
        run = finished[start:i]
        errors = {k: e for k, (_, _, e) in enumerate(run) if e is not None}
        last = i == len(finished) and state.left == 0
        elapsed = time.perf_counter() - state.started if last else None
        work.job.deliver(work, run[0][0], [v for _, v, _ in run], errors or None, elapsed)
        start = i


def _fail(work: Work, error: BaseException) -> None:
    n = len(work.positions)
    work.job.deliver(work, 0, [None] * n, dict.fromkeys(range(n), error), 0.0)
