"""Pipeline: stages on their own backends, joined by hand-offs, with bounded memory.

::

    source ─► feeder ──feed──► runner 1 ──hand-off──► runner 2 ── ... ──hand-off──► caller
              (thread:          (thread)               (thread)              (PipelineRun.__next__)
              pulls only        a map of stage 1's     a map of stage 2's
              what stage 1      Executor over what     Executor over what
              has room for)     the feed has ready     the hand-off has ready

Each runner thread drives one map of its stage's own Executor (batching, retries, order,
crash blame and timeouts all come from there: ``_StageRun`` is a ``MapRun`` whose input
arrives over time). A stage never waits for input while it has work in flight: it takes
what is ready, and the feed or hand-off wakes it (through its map's inbox) when more
comes. It waits for input only when it has nothing else to do.

Memory: a map holds at most ``workers + buffer`` items (its ``max_in_flight``). A
hand-off is a rendezvous: ``put`` returns once the next stage (or the caller) has taken
every item of the chunk, and an item leaves the chunk as it is taken; the feeder pulls
from the source only what stage 1 has room for. So every item is counted in exactly one
stage, and the pipeline holds at most ``sum(workers + buffer)`` items, whatever the length
of the source.

A failure (a stage raising, the source raising, a worker crashing), Ctrl-C in the caller,
``close()`` or the cancellation of an enclosing TaskGroup cancels the run's scope: every
hand-off and the feed wake their waiters with ``_Cancelled``, every Executor is terminated
(queued work dropped, running process tasks killed), each runner returns and shuts its
Executor down, and the caller joins the threads before it raises.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from typing import Any, Literal

from ._errors import Failure, attach, describe
from ._executor import Executor
from ._group import Scope, current_scope, is_coroutine_function, run_in_scope
from ._mapping import BatchSizer, MapJob, MapRun
from ._progress import NullProgress
from ._tasks import CallMode

__all__ = ["Pipeline", "PipelineRun", "PipelineStats", "StageStats"]

OnError = Literal["raise", "collect", "skip"]
_ON_ERROR = ("raise", "collect", "skip")

#: A stage's default ``buffer`` is this many items per worker: enough to batch cheap
#: items and to keep workers fed while the next stage is briefly busy; more costs memory
#: (every buffered item is alive) for little more speed.
BUFFER_PER_WORKER = 4

_EXECUTOR_ONLY = ("max_in_flight", "progress")


class _Cancelled(Exception):
    """The run was cancelled: whoever waits on a hand-off stops."""


_END: Any = object()  # what a hand-off returns once its stage has ended


# ── hand-offs ───────────────────────────────────────────────────────────────────


class _Handoff:
    """A rendezvous for chunks: ``put`` waits until the taker has taken every item."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # taken directly on the per-item path: cheaper
        self._cond = threading.Condition(self._lock)
        self._chunk: list[Any] | None = None
        self._pos = 0
        self._ended = False
        self._cancelled = False
        self.take_wait = 0.0  # seconds the taker waited for items
        self.waker: Callable[[], None] = _nothing  # tells a busy taker that items came

    def put(self, chunk: list[Any]) -> float:
        """Offer ``chunk``; return the seconds until it was all taken."""
        start = time.perf_counter()
        with self._cond:
            self._chunk, self._pos = chunk, 0
            self._cond.notify_all()
            self.waker()
            while self._pos < len(chunk) and not self._cancelled:
                self._cond.wait()
            self._chunk = None
            if self._cancelled:
                raise _Cancelled
        return time.perf_counter() - start

    def take(self) -> Any:
        """The next item, or ``_END`` once the giver has ended."""
        with self._lock:
            chunk = self._chunk
            if chunk is None or self._pos >= len(chunk):
                chunk = self._wait_for_chunk()
                if chunk is None:
                    return _END
            pos = self._pos
            item, chunk[pos] = chunk[pos], None  # the item leaves the giver's chunk
            self._pos = pos + 1
            if pos + 1 == len(chunk):
                self._cond.notify_all()
            return item

    def take_ready(self, size: int, room: int, block: bool) -> list[Any] | None:
        """Up to ``size`` items ready now (with ``block``: at least one); None at the end."""
        with self._lock:
            chunk = self._chunk
            if chunk is None or self._pos >= len(chunk):
                if not block:
                    if self._cancelled:
                        raise _Cancelled
                    return None if self._ended else []
                chunk = self._wait_for_chunk()
                if chunk is None:
                    return None
            start = self._pos
            stop = min(len(chunk), start + size)
            items = chunk[start:stop]
            chunk[start:stop] = [None] * (stop - start)  # they leave the giver's chunk
            self._pos = stop
            if stop == len(chunk):
                self._cond.notify_all()
            return items

    def take_rest(self) -> list[Any] | Any:
        """All items of the current chunk at once (for collect()), or ``_END``."""
        with self._cond:
            chunk = self._chunk
            if chunk is None or self._pos >= len(chunk):
                chunk = self._wait_for_chunk()
                if chunk is None:
                    return _END
            rest = chunk[self._pos :]
            chunk[self._pos :] = [None] * len(rest)
            self._pos = len(chunk)
            self._cond.notify_all()
            return rest

    def _wait_for_chunk(self) -> list[Any] | None:
        start = time.perf_counter()
        try:
            while True:
                if self._cancelled:
                    raise _Cancelled
                chunk = self._chunk
                if chunk is not None and self._pos < len(chunk):
                    return chunk
                if self._ended:
                    return None
                self._cond.wait()
        finally:
            self.take_wait += time.perf_counter() - start

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
            self.waker()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
            self.waker()


def _nothing() -> None:
    pass


class _SourceFeed:
    """Pulls from the source, in its own thread, only as many items as stage 1 allows.

    Stage 1 says how many items it has room for (``allowed``, set by each
    ``take_ready``); the feeder never holds more than that (the item it is pulling
    included), so the items it holds are within stage 1's count. A slow source then
    never keeps stage 1 from handing on what it has finished.
    """

    def __init__(self, source: Iterable[Any]) -> None:
        self._source = source
        self._cond = threading.Condition(threading.Lock())
        self._ready: collections.deque[Any] = collections.deque()
        self._allowed = 0
        self._ended = False
        self._error: BaseException | None = None
        self._cancelled = False
        self.pulled = 0
        self.failed: BaseException | None = None  # what the source raised, once raised
        self.take_wait = 0.0
        self.waker: Callable[[], None] = _nothing
        self.thread = threading.Thread(
            target=self._feed, name="anypool-pipeline-source", daemon=True
        )

    def _feed(self) -> None:
        items = iter(self._source)
        while self._wait_for_room():
            item = self._pull(items)
            with self._cond:
                if item is _END:
                    self._ended = True
                else:
                    self._ready.append(item)
                self._cond.notify_all()
                if item is _END or len(self._ready) == 1:
                    self.waker()  # stage 1 may be busy: tell it that items came
            if item is _END:
                return
            del item  # stage 1 owns it now

    def _wait_for_room(self) -> bool:
        with self._cond:
            # The item about to be pulled counts too: ready + 1 <= allowed.
            while not self._cancelled and len(self._ready) >= self._allowed:
                self._cond.wait()
            return not self._cancelled

    def _pull(self, items: Iterator[Any]) -> Any:
        try:
            item = next(items)
        except StopIteration:
            return _END
        except BaseException as exc:
            attach(exc, f"anypool: raised by the pipeline's source after {self.pulled} items")
            self._error = exc
            return _END
        self.pulled += 1
        return item

    def take_ready(self, size: int, room: int, block: bool) -> list[Any] | None:
        with self._cond:
            if block:
                self._allowed = room
                self._cond.notify_all()
                self._wait_for_items()
            if self._cancelled:
                raise _Cancelled
            k = min(size, len(self._ready))
            items = [self._ready.popleft() for _ in range(k)]
            self._allowed = room - k  # what is left of stage 1's room after these
            self._cond.notify_all()
            if items or not self._ended:
                return items
            if self._error is not None:
                self.failed, self._error = self._error, None
                raise self.failed
            return None

    def _wait_for_items(self) -> None:
        start = time.perf_counter()
        while not (self._ready or self._ended or self._cancelled):
            self._cond.wait()
        self.take_wait += time.perf_counter() - start

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
            self.waker()


# ── a map whose input arrives over time ─────────────────────────────────────────

# An inbox message that carries no results: "input came, or the input ended".
_WAKE = (None, 0, (), None, None)


class _StageRun(MapRun):
    """A MapRun fed by a hand-off or the feed instead of a plain iterator.

    ``top_up`` takes only what is ready, so a stage with work in flight never waits for
    input; it waits (in ``wait``) for results or for a wake-up from its input, whichever
    comes first. Only with nothing in flight does it wait for input itself.
    """

    def __init__(self, *args: Any, intake: _Handoff | _SourceFeed, meter: _Meter, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.intake = intake
        self.meter = meter
        intake.waker = functools.partial(self.job.inbox.put, _WAKE)

    def top_up(self) -> None:
        while (
            not self.exhausted
            and not self.closed
            and self.job.cancel_from is None
            and self.open_batches < self.max_batches
        ):
            room = self.max_in_flight - (self.submitted - self.handed)
            if room <= 0:
                return
            size = min(self.sizer.next_size(None), room)
            items = self.intake.take_ready(size, room, block=not self.batches)
            if items is None:
                self.exhausted = True
                self.progress.set_total(self.submitted)
                return
            if not items:
                return
            self.meter.items_in += len(items)
            self._submit(items)

    def wait(self) -> None:
        super().wait()
        self.top_up()  # the wake-up may have been for new input

    def absorb(
        self,
        work: Any,
        offset: int,
        values: Any,
        errors: dict[int, BaseException] | None,
        elapsed: float | None,
    ) -> None:
        if work is not None:  # else a wake-up
            super().absorb(work, offset, values, errors, elapsed)


# ── what runs in the workers ────────────────────────────────────────────────────


class _StageCall:
    """The stage function as the workers call it.

    Returns ``(result, seconds spent)``, so the pipeline can tell how busy the stage is
    on any backend; a ``Failure`` collected by an earlier stage passes through untouched
    (``seconds`` < 0). A failing item is named in a note on the exception, where the item
    is at hand (in the worker).
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> tuple[Any, float]:
        if type(item) is Failure:
            return (item, -1.0)
        start = time.perf_counter()
        try:
            value = self.fn(item)
        except BaseException as exc:
            attach(exc, f"anypool: the failing item: {describe(item)}")
            raise
        return (value, time.perf_counter() - start)


class _AsyncStageCall(_StageCall):
    """``_StageCall`` for a coroutine function: stays a coroutine function itself, so
    that a backend that runs coroutines (asyncio) sees one."""

    __slots__ = ()

    async def __call__(self, item: Any) -> tuple[Any, float]:  # type: ignore[override]
        if type(item) is Failure:
            return (item, -1.0)
        start = time.perf_counter()
        try:
            value = await self.fn(item)
        except BaseException as exc:
            attach(exc, f"anypool: the failing item: {describe(item)}")
            raise
        return (value, time.perf_counter() - start)


# ── statistics ──────────────────────────────────────────────────────────────────


@dataclasses.dataclass(frozen=True, slots=True)
class StageStats:
    """One stage of a pipeline run (see ``Pipeline.stats()``).

    Attributes:
        name: the stage's name.
        backend: the backend it runs on.
        workers: its workers.
        buffer: items it may hold beyond those its workers run.
        items_in: items it took from the source or the previous stage.
        items_out: items it handed on (results, and collected failures).
        failed: items whose call failed (skipped, collected or raised).
        busy: the share of its workers' time spent in the stage function (0 to 1).
        busy_seconds: worker-seconds spent in the stage function.
        blocked_on_input: seconds it waited for items from upstream (or the source).
        blocked_on_output: seconds it waited for downstream (or the caller) to take
            its results.
        elapsed: seconds from the start of the run to the end of this stage (or now).

    Example::

        pipeline = anypool.Pipeline(range(10)).stage(abs, name="abs")
        pipeline.collect()
        stage = pipeline.stats().stages[0]
        print(stage.name, stage.items_in, stage.items_out, f"{stage.busy:.0%}")
    """

    name: str
    backend: str
    workers: int
    buffer: int
    items_in: int
    items_out: int
    failed: int
    busy: float
    busy_seconds: float
    blocked_on_input: float
    blocked_on_output: float
    elapsed: float


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineStats:
    """A pipeline run, stage by stage, and the stage that limits it.

    ``bottleneck`` is the name of the busiest stage; or ``"source"`` when the first stage
    mostly waited for the source, or ``"consumer"`` when the last stage mostly waited for
    the caller to take results; ``""`` before the run starts. ``str()`` is a table.

    Example::

        pipeline = anypool.Pipeline(range(100)).stage(str).stage(len)
        pipeline.collect()
        stats = pipeline.stats()
        print(stats.bottleneck, stats.stages[0].items_out)   # e.g. str 100
        print(stats)
    """

    stages: tuple[StageStats, ...]
    elapsed: float
    bottleneck: str

    def __str__(self) -> str:
        head = f"{'stage':<16} {'backend':<10} {'workers':>7} {'in':>9} {'out':>9} "
        head += f"{'failed':>6} {'busy':>6} {'wait in':>8} {'wait out':>8}"
        lines = [head]
        for s in self.stages:
            lines.append(
                f"{s.name[:16]:<16} {s.backend[:10]:<10} {s.workers:>7} {s.items_in:>9} "
                f"{s.items_out:>9} {s.failed:>6} {s.busy:>6.0%} {s.blocked_on_input:>7.2f}s "
                f"{s.blocked_on_output:>7.2f}s"
            )
        lines.append(f"elapsed {self.elapsed:.2f}s; bottleneck: {self.bottleneck or '-'}")
        return "\n".join(lines)


class _Meter:
    """Counters of one stage, written by its runner thread only."""

    __slots__ = ("blocked_out", "busy", "ended", "failed", "items_in", "items_out")

    def __init__(self) -> None:
        self.items_in = self.items_out = self.failed = 0
        self.busy = self.blocked_out = 0.0
        self.ended: float | None = None


# ── stages and runs ─────────────────────────────────────────────────────────────


class _Stage:
    __slots__ = ("buffer", "executor", "fn", "name", "on_error", "ordered")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        name: str,
        executor: Executor,
        buffer: int,
        on_error: OnError,
        ordered: bool,
    ) -> None:
        self.fn = fn
        self.name = name
        self.executor = executor
        self.buffer = buffer
        self.on_error = on_error
        self.ordered = ordered


class _Run:
    """The state one run shares between its runner threads and the caller.

    Runner threads hold this, never the PipelineRun, so a run the caller drops is
    collected and its finalizer stops everything.
    """

    def __init__(self, source: Iterable[Any], stages: list[_Stage], progress: bool) -> None:
        self.source = source
        self.stages = stages
        self.meters = [_Meter() for _ in stages]
        self.feed = _SourceFeed(source)  # into stage 1
        self.handoffs = [_Handoff() for _ in stages]  # handoffs[k]: out of stage k
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.scope = Scope(current_scope(), self._cancel_all)
        self.threads: list[threading.Thread] = []
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.display = _display(stages, _length(source)) if progress else None

    def start(self) -> None:
        self.scope.attach()
        self.threads.append(self.feed.thread)
        self.feed.thread.start()
        for k, stage in enumerate(self.stages):
            thread = threading.Thread(
                target=self._run_stage, args=(k,), name=f"anypool-pipeline-{stage.name}"
            )
            thread.daemon = True
            self.threads.append(thread)
            thread.start()

    # ── a runner thread ──────────────────────────────────────────────────────────

    def _run_stage(self, k: int) -> None:
        stage, meter, outlet = self.stages[k], self.meters[k], self.handoffs[k]
        chunks: Any = None
        try:
            intake = self.feed if k == 0 else self.handoffs[k - 1]
            chunks = self._chunks(stage, intake, meter)
            for chunk in chunks:
                out = self._absorb(stage, meter, chunk)
                chunk.clear()  # the map's generator still refers to this list
                if out:
                    meter.blocked_out += outlet.put(out)
                    meter.items_out += len(out)
                    self._show(k, len(out))
            outlet.end()
        except _Cancelled:
            pass
        except BaseException as exc:
            self.fail(k, exc)
        finally:
            if chunks is not None:
                chunks.close()
            self._stop_executor(stage)
            meter.ended = time.perf_counter()

    def _call(self, stage: _Stage) -> _StageCall:
        fn = stage.fn
        is_async = is_coroutine_function(fn)
        if not stage.executor._backend.needs_pickling:
            fn = run_in_scope(self.scope, fn)  # anypool.cancelled() works in the stage
        return _AsyncStageCall(fn) if is_async else _StageCall(fn)

    def _chunks(
        self, stage: _Stage, intake: _Handoff | _SourceFeed, meter: _Meter
    ) -> Iterator[list[Any]]:
        """Start the stage's map over ``intake`` (as ``Executor._start`` starts one)."""
        executor = stage.executor
        backend = executor._backend
        job = MapJob(
            self._call(stage),
            CallMode.ONE,
            task_timeout=executor._task_timeout,
            retries=executor._retries,
            retry_on=executor._retry_on,
            label=f"pipeline stage {stage.name!r}",
        )
        job.backend_name = backend.name
        if backend.needs_pickling:
            job.fn_payload()  # an unpicklable function fails here, before any work
        run = _StageRun(
            job,
            backend,
            iter(()),
            total=None,
            sizer=BatchSizer(backend.batch_target or 0.001, backend.workers, executor._chunksize),
            collect=stage.on_error != "raise",
            timeout=None,
            max_in_flight=executor.workers + stage.buffer,
            progress=NullProgress(),
            intake=intake,
            meter=meter,
        )
        return run.ordered_chunks() if stage.ordered else run.unordered_chunks()

    def _absorb(self, stage: _Stage, meter: _Meter, chunk: list[Any]) -> list[Any]:
        """Unpack ``(result, seconds)`` pairs; count, keep or drop this stage's failures."""
        out = []
        for entry in chunk:
            if type(entry) is tuple:
                value, seconds = entry
                if seconds >= 0:
                    meter.busy += seconds
                out.append(value)
            else:  # a Failure of this stage (on_error="collect" or "skip")
                meter.failed += 1
                if stage.on_error == "collect":
                    out.append(entry)
        return out

    def _stop_executor(self, stage: _Stage) -> None:
        if self.scope.cancelled:
            stage.executor.terminate()
        stage.executor.shutdown(wait=True)

    # ── failing and cancelling ───────────────────────────────────────────────────

    def fail(self, k: int, exc: BaseException) -> None:
        """Stage ``k`` failed: the first failure stops the run and reaches the caller."""
        with self.lock:
            if self.failure is not None or self.scope.cancelled:
                return  # a consequence of an earlier failure or of a cancellation
            self.failure = exc
        name, n = self.stages[k].name, len(self.stages)
        where = (
            "the pipeline's source"
            if exc is self.feed.failed
            else f"pipeline stage {name!r} ({k + 1} of {n})"
        )
        attach(exc, f"anypool: {where} failed; the run stopped")
        self.scope.cancel()

    def _cancel_all(self) -> None:
        self.feed.cancel()
        for handoff in self.handoffs:
            handoff.cancel()
        for stage in self.stages:
            stage.executor.terminate()  # drop queued work; kill running process tasks

    def finish(self) -> None:
        """Join the runner threads (from the caller); idempotent."""
        me = threading.current_thread()
        for thread in self.threads:
            if thread is not me:
                thread.join()
        self.scope.detach()
        if self.ended is None:
            self.ended = time.perf_counter()
        if self.display is not None:
            self.display.stop()

    # ── progress and statistics ──────────────────────────────────────────────────

    def _show(self, k: int, n: int) -> None:
        if self.display is not None:
            self.display.advance(k, n, self._stage_stats(k, time.perf_counter()))

    def stats(self) -> PipelineStats:
        now = time.perf_counter()
        stages = tuple(self._stage_stats(k, now) for k in range(len(self.stages)))
        elapsed = (self.ended or now) - self.started
        return PipelineStats(stages, elapsed, _bottleneck(stages))

    def _stage_stats(self, k: int, now: float) -> StageStats:
        stage, meter = self.stages[k], self.meters[k]
        elapsed = max((meter.ended or now) - self.started, 1e-9)
        workers = stage.executor.workers
        blocked_in = self.handoffs[k - 1].take_wait if k > 0 else self.feed.take_wait
        return StageStats(
            name=stage.name,
            backend=stage.executor.backend,
            workers=workers,
            buffer=stage.buffer,
            items_in=meter.items_in,
            items_out=meter.items_out,
            failed=meter.failed,
            busy=min(1.0, meter.busy / (workers * elapsed)),
            busy_seconds=meter.busy,
            blocked_on_input=blocked_in,
            blocked_on_output=meter.blocked_out,
            elapsed=elapsed,
        )


def _bottleneck(stages: tuple[StageStats, ...]) -> str:
    """The busiest stage, or the source or consumer when they held everything up."""
    if not stages or stages[-1].elapsed <= 0:
        return ""
    shares = {s.name: s.busy for s in stages}
    first, last = stages[0], stages[-1]
    shares["source"] = min(1.0, first.blocked_on_input / first.elapsed)
    shares["consumer"] = min(1.0, last.blocked_on_output / last.elapsed)
    name, share = max(shares.items(), key=lambda kv: kv[1])
    return name if share > 0 else ""


def _length(source: Iterable[Any]) -> int | None:
    try:
        return len(source)  # type: ignore[arg-type]
    except TypeError:
        return None


# ── the public classes ──────────────────────────────────────────────────────────


class Pipeline:
    """Items flow from a source through stages, each on its own backend.

    Build it with :meth:`stage` (one call per stage, in order), then iterate
    :meth:`run` or call :meth:`collect`. Every stage has its own Executor: I/O on
    threads, CPU work on processes, in one flow (the guide's section 7.3). Memory stays
    bounded: the pipeline reads the source lazily and holds at most
    ``sum(workers + buffer)`` items over all stages. Results come in source order
    unless a stage says ``ordered=False``.

    The first failure of a stage (with ``on_error="raise"``, the default), of the
    source, or of a worker process stops the whole run: queued work is dropped, running
    process tasks are killed, every thread and process of the run is stopped, and the
    caller gets the exception, with notes naming the stage and the item. A pipeline
    runs once.

    Example::

        import time
        import anypool

        def fetch(url):               # waits: threads
            time.sleep(0.01)
            return f"<html {url}>"

        def parse(html):              # computes: processes
            return len(html)

        if __name__ == "__main__":
            sizes = (
                anypool.Pipeline(f"page-{i}" for i in range(20))
                .stage(fetch, backend="threads", workers=8)
                .stage(parse, backend="processes", workers=2)
                .collect()
            )
            print(sizes)
    """

    def __init__(self, source: Iterable[Any]) -> None:
        try:
            iter(source)
        except TypeError:
            raise TypeError(
                f"Pipeline() needs an iterable source (a list, a generator, a file...), "
                f"got {describe(source)} of type {type(source).__name__}"
            ) from None
        self._source = source
        self._stages: list[_Stage] = []
        self._run: _Run | None = None

    def stage(
        self,
        fn: Callable[[Any], Any],
        *,
        backend: str = "threads",
        workers: int | None = None,
        buffer: int | None = None,
        on_error: OnError = "raise",
        ordered: bool = True,
        name: str | None = None,
        **options: Any,
    ) -> Pipeline:
        """Add a stage that calls ``fn(item)`` on each item; return the pipeline.

        Args:
            fn: called with each item; its result goes to the next stage.
            backend: where ``fn`` runs: ``"threads"`` (default), ``"processes"``,
                ``"serial"`` (in the stage's own thread, one item at a time) or any
                backend the :class:`Executor` accepts.
            workers: how many items it works on at once (the backend's default if None).
            buffer: items it may hold beyond those its workers run: queued for them, or
                done and waiting for the next stage. More smooths bursts and lets cheap
                items travel in bigger batches; each costs memory. Default:
                ``4 * workers``.
            on_error: ``"raise"`` (the first failure stops the run), ``"collect"`` (a
                failed item becomes an :class:`anypool.Failure` that passes the later
                stages untouched and reaches you), or ``"skip"`` (a failed item is
                dropped and counted in ``stats()``).
            ordered: keep the items in source order (default); ``False`` passes each
                result on as soon as it is ready.
            name: the stage's name in errors, statistics and progress (default: the
                function's name).
            options: other :class:`Executor` options: ``task_timeout``, ``retries``,
                ``initializer``/``initargs``, ``start_method``, ``chunksize``...

        Example::

            pipeline = anypool.Pipeline(["1", "2", "x"]).stage(int, on_error="skip")
            pipeline.collect()   # [1, 2]
        """
        if self._run is not None:
            raise RuntimeError("this Pipeline has already run; build a new one to add stages")
        if backend == "auto":
            raise ValueError(
                "a pipeline stage needs a named backend: 'threads' (the default), "
                "'processes', 'asyncio', 'serial' or 'dask'; 'auto' measures a whole input "
                "before choosing, which a stage fed item by item cannot do"
            )
        if not callable(fn):
            raise TypeError(f"stage() needs a callable as its first argument, got {describe(fn)}")
        if on_error not in _ON_ERROR:
            accepted = ", ".join(repr(v) for v in _ON_ERROR)
            raise ValueError(f"on_error must be one of {accepted}, got {on_error!r}")
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be True or False, got {ordered!r}")
        for option in _EXECUTOR_ONLY:
            if option in options:
                raise TypeError(_NOT_A_STAGE_OPTION[option])
        executor = Executor(backend, workers, **options)  # validates backend and options
        size = _check_buffer(buffer, executor.workers)
        stage_name = self._unique(name if name is not None else _default_name(fn))
        self._stages.append(_Stage(fn, stage_name, executor, size, on_error, ordered))
        return self

    def _unique(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        taken = {s.name for s in self._stages}
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{name}#{n}", n + 1
        return candidate

    def run(self, *, progress: bool = False) -> PipelineRun:
        """Start the run; return an iterator of results (in source order by default).

        ``progress=True`` shows one progress row per stage on standard error. Use the
        result as a context manager (or iterate it to the end, or call ``close()``) so
        that an early exit stops the run at once.

        Example::

            with anypool.Pipeline(range(5)).stage(str).run() as results:
                for text in results:
                    print(text)
        """
        if not self._stages:
            raise ValueError("a Pipeline needs at least one stage: call .stage(fn) first")
        if self._run is not None:
            raise RuntimeError("a Pipeline runs once; build a new one to run again")
        self._run = _Run(self._source, self._stages, bool(progress))
        return PipelineRun(self._run)

    def collect(self, *, progress: bool = False) -> list[Any]:
        """Run the pipeline and return every result in a list.

        Example::

            anypool.Pipeline([1, 2, 3]).stage(lambda x: x * 10).collect()   # [10, 20, 30]
        """
        return self.run(progress=progress).collect()

    def stats(self) -> PipelineStats:
        """Per-stage statistics of the run (live while it runs), and its bottleneck.

        Example::

            pipeline = anypool.Pipeline(range(10)).stage(abs)
            pipeline.collect()
            pipeline.stats().stages[0].items_out   # 10
        """
        if self._run is None:
            return PipelineStats(tuple(_idle_stats(s) for s in self._stages), 0.0, "")
        return self._run.stats()

    def __repr__(self) -> str:
        names = " -> ".join(s.name for s in self._stages) or "no stages"
        return f"<anypool.Pipeline {names}>"


class PipelineRun:
    """A running pipeline: an iterator of results (see :meth:`Pipeline.run`).

    Iterate it, or call :meth:`collect`. Leaving a ``with`` block, :meth:`close`, or
    dropping the iterator stops the run: its threads and processes are gone when that
    returns.

    Example::

        run = anypool.Pipeline(range(3)).stage(str).run()
        print(next(run))     # '0'
        run.close()          # stops the rest of the work
    """

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._take = run.handoffs[-1].take
        self._done = False
        run.start()
        self._finalizer = weakref.finalize(self, _abandon, run)

    def __iter__(self) -> PipelineRun:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            item = self._take()
        except _Cancelled:
            item = _END
        except BaseException:  # Ctrl-C while waiting: stop everything, then re-raise
            self.close()
            raise
        if item is _END:
            self._end()
            raise StopIteration
        return item

    def collect(self) -> list[Any]:
        """Every remaining result, in a list; the run is over when it returns."""
        out: list[Any] = []
        handoff = self._run.handoffs[-1]
        while not self._done:
            try:
                rest = handoff.take_rest()
            except _Cancelled:
                rest = _END
            except BaseException:
                self.close()
                raise
            if rest is _END:
                self._end()
                break
            out.extend(rest)
        return out

    def _end(self) -> None:
        """The last stage ended or the run was cancelled: join, then say which."""
        self.close()
        run = self._run
        if run.failure is not None:
            raise run.failure
        if run.scope.cancelled:
            raise CancelledError("the pipeline run was cancelled by an enclosing TaskGroup")

    def close(self) -> None:
        """Stop the run now: drop queued work, kill running process tasks, join threads.

        After the end of the run it does nothing.
        """
        if self._done:
            return
        self._done = True
        run = self._run
        if any(t.is_alive() for t in run.threads) and not _ended(run):
            run.scope.cancel()
        try:
            run.finish()
        finally:
            self._finalizer.detach()

    def stats(self) -> PipelineStats:
        """Per-stage statistics, as :meth:`Pipeline.stats`."""
        return self._run.stats()

    def __enter__(self) -> PipelineRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ended(run: _Run) -> bool:
    """Whether the last stage has handed over everything (nothing is left to stop)."""
    return run.handoffs[-1]._ended


def _abandon(run: _Run) -> None:
    """The caller dropped its PipelineRun before the end: stop and join everything."""
    run.scope.cancel()
    run.finish()


# ── helpers ─────────────────────────────────────────────────────────────────────

_NOT_A_STAGE_OPTION = {
    "max_in_flight": "a stage's memory is set by workers= and buffer=, not max_in_flight=",
    "progress": "progress is shown for the whole pipeline: use run(progress=True)",
}


def _check_buffer(buffer: Any, workers: int) -> int:
    if buffer is None:
        return BUFFER_PER_WORKER * workers
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
        raise ValueError(
            f"buffer must be an integer >= 0 (items a stage holds beyond those its workers "
            f"run), or None for {BUFFER_PER_WORKER} per worker, got {buffer!r}"
        )
    return buffer


def _default_name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


def _idle_stats(stage: _Stage) -> StageStats:
    ex = stage.executor
    zero = (0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return StageStats(stage.name, ex.backend, ex.workers, stage.buffer, *zero)


# ── progress display ────────────────────────────────────────────────────────────


class _Display:
    """One rich progress row per stage, on standard error."""

    def __init__(self, stages: list[_Stage], total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._rows = [
            self._progress.add_task(f"{s.name} ({s.executor.backend})", total=total, note="")
            for s in stages
        ]
        self._progress.start()
        self._stopped = False

    def advance(self, k: int, n: int, stats: StageStats) -> None:
        note = f"busy {stats.busy:.0%}  waits in {stats.blocked_on_input:.1f}s"
        note += f" out {stats.blocked_on_output:.1f}s"
        with self._lock:
            if not self._stopped:
                self._progress.update(self._rows[k], advance=n, note=note)

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._progress.stop()


def _display(stages: list[_Stage], total: int | None) -> _Display:
    return _Display(stages, total)
