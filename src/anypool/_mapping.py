"""map() and its relatives: batching, bounded feeding, ordering, retries, errors.

::

    caller's thread (this module)                    backend threads
    ─────────────────────────────                    ───────────────
    pull items from the input, cut a batch ──submit──► run the work
    (size from measured per-item time)
    wait on the inbox  ◄──────────────── job.deliver(work, offset, values, errors)
    store results in their batch; retry or record failures;
    hand results to the caller in order (or as they come); top up

All bookkeeping happens in the caller's thread: backends only put deliveries on a queue.
The input is consumed lazily and at most ``max_in_flight`` items are between the input
and the caller at any moment, so a generator of 10**7 items is never materialised.
"""

from __future__ import annotations

import collections
import math
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from itertools import islice
from typing import Any

from ._backends import Backend
from ._errors import Failure, RemoteTraceback, SerializationError
from ._tasks import Batch, CallMode, FlushMode, Job, Work

__all__ = ["BatchSizer", "MapJob", "MapRun"]

# Batches are never larger than this: it bounds the memory of one message and the work
# re-run after a crash inside a fast loop.
MAX_BATCH = 65536
# Tail batches are not split below this much work (seconds): a batch's round trip costs
# about a tenth of a millisecond, so shorter ones would balance nothing and cost more.
MIN_TAIL_BATCH = 0.002
# Items measured faster than this run in the worker's tight loop (FlushMode.FAST).
FAST_ITEM = 50e-6
# Default bound on items between the input and the caller.
DEFAULT_MAX_IN_FLIGHT = 262144


class BatchSizer:
    """Chooses batch sizes so each batch takes about ``target`` seconds.

    It starts at one item (so long tasks are never bunched together before they are
    measured), learns the per-item time from what the workers report (an exponential
    moving average, so it follows items that change), and near the end of a known-length
    input caps batches at a share of what is left, so the last batches finish together.
    """

    def __init__(
        self,
        target: float,
        workers: int,
        chunksize: int | None = None,
    ) -> None:
        self.target = target
        self.workers = max(1, workers)
        self.fixed = chunksize
        self.per_item: float | None = None

    def observe(self, items: int, elapsed: float) -> None:
        """A worker spent ``elapsed`` seconds on ``items`` items."""
        if items <= 0 or elapsed < 0:
            return
        sample = elapsed / items
        self.per_item = sample if self.per_item is None else 0.5 * self.per_item + 0.5 * sample

    def next_size(self, remaining: int | None = None) -> int:
        """The size of the next batch; ``remaining`` is how many items are left, if known."""
        if self.fixed is not None:
            return self.fixed
        if self.per_item is None:
            return 1
        size = MAX_BATCH if self.per_item <= 0 else int(self.target / self.per_item)
        size = max(1, min(size, MAX_BATCH))
        if remaining is not None:
            # Split the tail so the last batches finish together, but not into batches
            # so short that sending them costs more than balancing them saves.
            floor = MAX_BATCH if self.per_item <= 0 else int(MIN_TAIL_BATCH / self.per_item)
            share = math.ceil(remaining / (2 * self.workers))
            size = min(size, max(1, share, floor))
        return size

    def flush_mode(self) -> FlushMode:
        if self.per_item is not None and self.per_item < FAST_ITEM:
            return FlushMode.FAST
        return FlushMode.TRACKED


class MapJob(Job):
    """A map() call: deliveries go to an inbox that the caller's thread drains."""

    __slots__ = ("cancel_from", "inbox")

    def __init__(self, fn: Callable[..., Any], mode: CallMode, **options: Any) -> None:
        super().__init__(fn, mode, **options)
        self.inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.cancel_from: int | None = None  # batches from this seq on are not run

    def is_cancelled(self, work: Work) -> bool:
        return self.cancelled or (
            self.cancel_from is not None and work.batch.seq >= self.cancel_from
        )

    def deliver(
        self,
        work: Work,
        offset: int,
        values: Sequence[Any],
        errors: dict[int, BaseException] | None,
        elapsed: float | None = None,
    ) -> None:
        self.inbox.put((work, offset, values, errors, elapsed))

    def drop(self, work: Work) -> None:
        n = len(work.positions)
        error = CancelledError("the pool shut down before this item ran")
        self.inbox.put((work, 0, [None] * n, dict.fromkeys(range(n), error), None))


class MapRun:
    """The caller's side of one map() call."""

    def __init__(
        self,
        job: MapJob,
        backend: Backend,
        items: Iterator[Any],
        *,
        total: int | None,
        sizer: BatchSizer,
        collect: bool,
        timeout: float | None,
        max_in_flight: int,
        progress: Any,
    ) -> None:
        self.job = job
        self.backend = backend
        self.items = items
        self.total = total
        self.sizer = sizer
        self.collect = collect
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.max_in_flight = max(1, max_in_flight)
        self.max_batches = 1 if backend.inline else 2 * backend.workers + 1
        self.progress = progress
        self.batches: collections.deque[Batch] = collections.deque()
        self.open_batches = 0  # batches with outstanding items
        self.submitted = 0
        self.handed = 0  # items handed to the caller
        self.seq = 0
        self.exhausted = False
        self.closed = False
        # backend="auto" may look at the per-item time the backend reports and move the
        # rest of the input to another backend, once (see _auto._MapWatch).
        self.rechoose: Callable[[float, int], Backend | None] | None = None
        self.retired: list[Backend] = []

    # ── feeding ──────────────────────────────────────────────────────────────────

    def adopt(self, batches: Sequence[Batch]) -> None:
        """Take over batches that were started elsewhere, before any of this run's own:
        the first items of the input, run by ``backend="auto"`` while it measured them.
        Their outcomes reach the job's inbox like any backend's."""
        for batch in batches:
            assert batch.seq == self.seq and batch.start == self.submitted
            self.batches.append(batch)
            self.open_batches += 1
            self.seq += 1
            self.submitted += len(batch)

    def top_up(self) -> None:
        """Cut and submit batches while there is room in flight."""
        if self.rechoose is not None and self.sizer.per_item is not None:
            backend = self.rechoose(self.sizer.per_item, self.submitted)
            if backend is not None:
                self.switch(backend)
        while (
            not self.exhausted
            and not self.closed
            and self.job.cancel_from is None
            and self.open_batches < self.max_batches
            and self.submitted - self.handed < self.max_in_flight
        ):
            remaining = None if self.total is None else self.total - self.submitted
            room = self.max_in_flight - (self.submitted - self.handed)
            size = min(self.sizer.next_size(remaining), room)
            chunk = list(islice(self.items, size))
            if len(chunk) < size:
                self.exhausted = True
                if self.total is None:
                    self.progress.set_total(self.submitted + len(chunk))
            if chunk:
                self._submit(chunk)

    def switch(self, backend: Backend) -> None:
        """Send the rest of the input to ``backend``; work already sent finishes where
        it is."""
        self.rechoose = None
        self.retired.append(self.backend)
        self.backend = backend
        self.max_batches = 1 if backend.inline else 2 * backend.workers + 1
        self.sizer.target = backend.batch_target or 0.001
        self.sizer.workers = max(1, backend.workers)
        self.job.backend_name = backend.name

    def _submit(self, chunk: list[Any]) -> None:
        batch = Batch(self.job, self.seq, self.submitted, chunk)
        self.seq += 1
        self.submitted += len(chunk)
        self.batches.append(batch)
        self.open_batches += 1
        work = Work(batch, flush=self.sizer.flush_mode())
        try:
            self.backend.submit(work)
        except SerializationError as exc:
            self._split_unpicklable(work, exc)

    def _split_unpicklable(self, work: Work, exc: BaseException) -> None:
        """Submit the items of ``work`` one by one, so only the bad ones fail."""
        if len(work.positions) == 1:
            self.job.deliver(work, 0, [None], {0: exc})
            return
        for offset in range(len(work.positions)):
            single = work.subset([offset])
            try:
                self.backend.submit(single)
            except SerializationError as item_exc:
                self.job.deliver(single, 0, [None], {0: item_exc})

    # ── receiving ────────────────────────────────────────────────────────────────

    def wait(self) -> None:
        """Block for one delivery (or the map's timeout), then take all that are ready."""
        timeout = None
        if self.deadline is not None:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("map() did not finish within its timeout")
        try:
            delivery = self.job.inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("map() did not finish within its timeout") from None
        self.absorb(*delivery)
        self.poll()

    def poll(self) -> None:
        """Take every delivery that has already arrived, without blocking."""
        inbox = self.job.inbox
        while True:
            try:
                delivery = inbox.get_nowait()
            except queue.Empty:
                return
            self.absorb(*delivery)

    def absorb(
        self,
        work: Work,
        offset: int,
        values: Sequence[Any],
        errors: dict[int, BaseException] | None,
        elapsed: float | None,
    ) -> None:
        batch = work.batch
        n = len(values)
        if elapsed is not None:
            self.sizer.observe(len(work.positions), elapsed)
        positions = work.positions[offset : offset + n]
        retried = self._store_errors(work, offset, positions, errors) if errors else 0
        if isinstance(positions, range) and not errors:
            start, stop = positions.start, positions.stop
            batch.results[start:stop] = values
            batch.done[start:stop] = b"\x01" * n
        else:
            for k, position in enumerate(positions):
                if not errors or k not in errors:
                    batch.results[position] = values[k]
                    batch.done[position] = 1
        settled = n - retried
        batch.missing -= settled
        if batch.missing == 0:
            self.open_batches -= 1
        self.progress.advance(settled)

    def _store_errors(
        self, work: Work, offset: int, positions: Sequence[int], errors: dict[int, BaseException]
    ) -> int:
        batch, job = work.batch, self.job
        retried = 0
        for k, exc in errors.items():
            position = positions[k]
            if job.should_retry(batch, position, exc) and self._retry(work, offset + k):
                retried += 1
                continue
            index = batch.start + position
            job.annotate(exc, index)
            if self.collect:
                batch.results[position] = Failure(exc, index, _traceback_text(exc))
                batch.done[position] = 1
            else:
                batch.errors[position] = exc
                batch.done[position] = 2
                if job.cancel_from is None or batch.seq + 1 < job.cancel_from:
                    job.cancel_from = batch.seq + 1  # fail fast: later batches need not run
        return retried

    def _retry(self, work: Work, offset: int) -> bool:
        try:
            self.backend.submit(work.subset([offset]))
        except RuntimeError:
            return False  # the pool is shutting down: no more tries
        return True

    # ── handing results to the caller ────────────────────────────────────────────

    def ordered_chunks(self) -> Iterator[list[Any]]:
        """Results in input order, as lists of whatever is ready."""
        try:
            self.top_up()
            while True:
                if not self.batches:
                    self.top_up()
                    if not self.batches:
                        return
                    continue
                batch = self.batches[0]
                chunk = self._ready_prefix(batch)
                if chunk:
                    self.handed += len(chunk)
                    yield chunk
                    if batch.cursor == len(batch):
                        # Drop a finished batch before reading more input: its items may
                        # already be gone downstream, and must not stay alive here.
                        self.batches.popleft()
                    self.top_up()
                elif batch.cursor == len(batch):
                    self.batches.popleft()
                    self.top_up()
                elif batch.done[batch.cursor] == 2:
                    raise batch.errors[batch.cursor]
                else:
                    self.wait()
        finally:
            self.close()

    def _ready_prefix(self, batch: Batch) -> list[Any]:
        start = batch.cursor
        done = batch.done
        stop = len(done)
        for marker in (b"\x00", b"\x02"):
            found = done.find(marker, start)
            if found != -1 and found < stop:
                stop = found
        if stop == start:
            return []
        if start == 0 and stop == len(done):
            # The whole batch at once (the common case): hand its list over, no copy.
            chunk, batch.results = batch.results, []
            batch.items = []
            batch.cursor = stop
            return chunk
        chunk = batch.results[start:stop]
        batch.results[start:stop] = [None] * (stop - start)  # the caller owns them now
        # Their inputs are settled too (never re-run): drop them, so that at most
        # max_in_flight items are alive here even while the rest of the batch runs.
        batch.items[start:stop] = [None] * (stop - start)
        batch.cursor = stop
        return chunk

    def unordered_chunks(self) -> Iterator[list[Any]]:
        """Results as they finish, as lists."""
        try:
            self.top_up()
            while self.batches:
                ready: list[Any] = []
                for batch in list(self.batches):
                    ready.extend(self._take_finished(batch))
                    if batch.cursor == len(batch) and batch.missing == 0 and not batch.errors:
                        self.batches.remove(batch)
                if ready:
                    self.handed += len(ready)
                    yield ready
                    self.top_up()
                    continue
                self.top_up()
                if self.batches:
                    self.wait()
        finally:
            self.close()

    def _take_finished(self, batch: Batch) -> list[Any]:
        # In unordered mode `cursor` counts items handed out; `done` marks 3 for taken.
        out = []
        done = batch.done
        for marker, value in ((1, True), (2, False)):
            position = done.find(bytes([marker]))
            while position != -1:
                if value:
                    out.append(batch.results[position])
                    batch.results[position] = None
                    batch.items[position] = None  # settled: see _ready_prefix
                else:
                    if out:
                        return out  # hand over what finished first, raise next time
                    error = batch.errors.pop(position)
                    done[position] = 3
                    batch.cursor += 1
                    raise error
                done[position] = 3
                batch.cursor += 1
                position = done.find(bytes([marker]), position + 1)
        return out

    def close(self) -> None:
        """Stop: nothing more is submitted, and queued works of this map are dropped."""
        if self.closed:
            return
        self.closed = True
        self.job.cancelled = True
        for backend in (*self.retired, self.backend):
            backend.forget(self.job)
        self.progress.close()


def _traceback_text(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, RemoteTraceback):
        return cause.traceback
    import traceback

    return "".join(traceback.format_exception(exc))


def input_items(
    mode: CallMode, iterables: Sequence[Iterable[Any]]
) -> tuple[Iterator[Any], int | None]:
    """The item iterator for map()'s iterables, and its length when it can be known."""
    lengths = []
    for iterable in iterables:
        try:
            lengths.append(len(iterable))  # type: ignore[arg-type]
        except TypeError:
            lengths = []
            break
    total = min(lengths) if lengths else None
    if mode is CallMode.ONE:
        return iter(iterables[0]), total
    if len(iterables) == 1:
        return iter(iterables[0]), total  # starmap: items are already argument tuples
    return zip(*iterables, strict=False), total
