"""Jobs, batches and works: the units that flow from the Executor to a backend and back.

::

    Executor.submit / map          backend                      worker (thread/process)
    ──────────────────────         ───────                      ──────────────────────
    Job ─ Batch (items, results)
            └─ Work (positions) ──► submit(work) ─ queue ─────► work.start(); run items
    Job.deliver(work, ...)   ◄───── results in chunks ◄──────── values / errors per item
    Job.work_done(work, ...) ◄───── when a work has no items left

A *Job* is one ``submit()`` or one ``map()`` call: the function, how to call it, its
timeout and retry policy, and where results go. A *Batch* is a run of consecutive items of
a job, with the list their results land in. A *Work* is what a backend runs: some
positions of one batch. Normally a work covers its whole batch; a retry, or a re-run
after a crash, is a work covering the positions that need running again, so the result
still lands in the right slot and nothing is delivered twice.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, InvalidStateError
from typing import Any

from . import _serialize
from ._errors import BrokenPool, attach

__all__ = ["Batch", "CallMode", "FlushMode", "FutureJob", "Job", "Work"]


class CallMode(enum.IntEnum):
    """How a worker calls the function on an item."""

    ONE = 0  # fn(item)             map() over one iterable
    STAR = 1  # fn(*item)           map() over several iterables, starmap()
    CALL = 2  # fn(*args, **kwargs) submit(); the item is (args, kwargs)


class FlushMode(enum.IntEnum):
    """When a worker reports results of a work back."""

    FAST = 0  # at the end, from a tight loop; used for items measured to be tiny
    TRACKED = 1  # after each item when the last report is older than the flush interval
    EACH = 2  # after every item; needed for per-task timeouts and precise crash blame


_work_ids = itertools.count(1)


class Job:
    """One submit() or map() call. Subclasses say where results go."""

    __slots__ = (
        "_fn_payload",
        "backend_name",
        "cancelled",
        "fn",
        "kwargs",
        "label",
        "mode",
        "retries",
        "retry_on",
        "task_timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        mode: CallMode,
        *,
        task_timeout: float | None = None,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        label: str = "map()",
    ) -> None:
        self.fn = fn
        self.mode = mode
        self.kwargs: dict[str, Any] | None = None
        self.task_timeout = task_timeout
        self.retries = retries
        self.retry_on = retry_on
        self.label = label
        self.backend_name = ""
        self.cancelled = False
        self._fn_payload: tuple[str, bytes] | None = None

    def fn_payload(self) -> tuple[str, bytes]:
        """The function pickled once per job, and a digest that names it in workers."""
        if self._fn_payload is None:
            data = _serialize.dumps_function(self.fn)
            self._fn_payload = (hashlib.blake2b(data, digest_size=12).hexdigest(), data)
        return self._fn_payload

    def is_cancelled(self, work: Work) -> bool:
        return self.cancelled

    def on_start(self, work: Work) -> bool:
        """Called by a backend just before it runs ``work``; False means skip it."""
        return not self.is_cancelled(work)

    def deliver(
        self,
        work: Work,
        offset: int,
        values: Sequence[Any],
        errors: dict[int, BaseException] | None,
        elapsed: float | None = None,
    ) -> None:
        """Results for ``work.positions[offset:offset + len(values)]``.

        ``errors`` maps an offset *within values* to the exception that item raised (the
        matching value is meaningless). ``elapsed`` comes with the last chunk of a work:
        seconds the worker spent on its items, for batch sizing. Called from backend
        threads; implementations must be quick and must not raise.
        """
        raise NotImplementedError

    def drop(self, work: Work) -> None:
        """A backend discarded ``work`` without running it (shutdown or terminate)."""

    def should_retry(self, batch: Batch, position: int, exc: BaseException) -> bool:
        if self.retries <= 0 or self.cancelled or not isinstance(exc, self.retry_on):
            return False
        tries = batch.attempts.get(position, 0)
        if tries >= self.retries:
            return False
        batch.attempts[position] = tries + 1
        return True

    def annotate(self, exc: BaseException, index: int) -> BaseException:
        if isinstance(exc, (BrokenPool, CancelledError)):
            return exc  # about the pool, not this item; and shared by many items
        where = "" if self.label == "submit()" else f"item {index} of "
        return attach(
            exc, f"anypool: raised by {where}{self.label} on the {self.backend_name} backend"
        )


class Batch:
    """Consecutive items of a job, from input index ``start``, and their results.

    ``done`` has a byte per item: 0 while it is outstanding, 1 once its result (or, with
    ``on_error="collect"``, its Failure) is in ``results``, 2 once it has failed.
    """

    __slots__ = (
        "attempts",
        "cursor",
        "done",
        "errors",
        "items",
        "job",
        "missing",
        "results",
        "seq",
        "start",
    )

    def __init__(self, job: Job, seq: int, start: int, items: list[Any]) -> None:
        self.job = job
        self.seq = seq
        self.start = start
        self.items = items
        n = len(items)
        self.results: list[Any] = [None] * n
        self.done = bytearray(n)
        self.missing = n
        self.cursor = 0  # the next position to hand to the caller, in ordered iteration
        self.errors: dict[int, BaseException] = {}
        self.attempts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.done)  # items and results may be handed over (emptied) early


class Work:
    """Positions of one batch for a backend to run; the unit of scheduling."""

    __slots__ = ("batch", "flush", "id", "lease", "payload", "positions")

    def __init__(
        self,
        batch: Batch,
        positions: Sequence[int] | None = None,
        *,
        flush: FlushMode = FlushMode.TRACKED,
    ) -> None:
        self.id = next(_work_ids)
        self.batch = batch
        self.positions: Sequence[int] = range(len(batch)) if positions is None else positions
        self.payload: bytes | None = None
        self.lease: Any = None  # keeps shared-memory segments alive while this work lives
        if batch.job.task_timeout is not None or len(self.positions) == 1:
            flush = FlushMode.EACH  # deadlines need a report per item
        self.flush = flush

    @property
    def job(self) -> Job:
        return self.batch.job

    def items(self) -> list[Any]:
        """The items this work runs, in order."""
        items = self.batch.items
        if isinstance(self.positions, range) and len(self.positions) == len(items):
            return items
        return [items[p] for p in self.positions]

    def pickled_items(self, dumps: Callable[[list[Any]], tuple[bytes, Any]] | None = None) -> bytes:
        """The items pickled for a worker process (done once, in the submitting thread).

        ``dumps`` is the backend's pickler: it returns the bytes and a lease on whatever
        the bytes refer to (shared-memory segments), kept as long as this work lives.
        Raises :class:`SerializationError` naming the first argument that will not
        pickle, as the task's function would see it: ``args[0].conn``.
        """
        if self.payload is None:
            items = self.items()
            try:
                if dumps is None:
                    self.payload = _serialize.dumps_quietly(items)
                else:
                    self.payload, self.lease = dumps(items)
            except Exception as exc:
                raise self._diagnose(items, exc) from exc
        return self.payload

    def _diagnose(self, items: list[Any], cause: BaseException) -> BaseException:
        job = self.job
        for offset, item in enumerate(items):
            where = (
                "" if job.mode is CallMode.CALL else f" (item {self.index(offset)} of {job.label})"
            )
            for root, value in _arguments(job.mode, item):
                if not _serialize.pickles(value):
                    return _serialize.serialization_error(value, root, cause, where)
        return _serialize.serialization_error(items, "arguments", cause)

    def index(self, offset: int) -> int:
        """Input index of the item at ``offset`` in this work."""
        return self.batch.start + self.positions[offset]

    def item_index(self, offset: int) -> int | None:
        """The index an error reports: the input index, or None for a submit()."""
        return None if isinstance(self.batch.job, FutureJob) else self.index(offset)

    def subset(self, offsets: Sequence[int], *, flush: FlushMode | None = None) -> Work:
        """A new work for some of this work's items (a re-run or a retry).

        ``flush`` defaults to this work's mode; a re-run after an ambiguous crash asks
        for a finer one, so that a second crash can be blamed on one item.
        """
        positions = [self.positions[o] for o in offsets]
        return Work(self.batch, positions, flush=self.flush if flush is None else flush)

    def __repr__(self) -> str:
        return f"<Work {self.id} items {self.index(0)}..+{len(self.positions)}>"


def _arguments(mode: CallMode, item: Any) -> list[tuple[str, Any]]:
    """The arguments a task receives from ``item``, each with the name it goes by."""
    if mode is CallMode.ONE:
        return [("args[0]", item)]
    if mode is CallMode.STAR:
        return [(f"args[{i}]", v) for i, v in enumerate(item)]
    args, kwargs = item
    return [(f"args[{i}]", v) for i, v in enumerate(args)] + [
        (f"kwargs[{k!r}]", v) for k, v in kwargs.items()
    ]


class FutureJob(Job):
    """A submit(): one item whose outcome sets a ``concurrent.futures.Future``."""

    __slots__ = ("batch", "future", "resubmit")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        resubmit: Callable[[Work], None],
        **options: Any,
    ) -> None:
        super().__init__(fn, CallMode.CALL, label="submit()", **options)
        self.future = future
        self.resubmit = resubmit
        self.batch = Batch(self, 0, 0, [(args, kwargs)])

    def is_cancelled(self, work: Work) -> bool:
        return self.cancelled or self.future.cancelled()

    def drop(self, work: Work) -> None:
        if self.future.cancel():
            _notify_cancelled(self.future)
        else:
            _set(self.future, exc=CancelledError("the pool shut down before the task ran"))

    def on_start(self, work: Work) -> bool:
        future = self.future
        if future.running():
            return not self.cancelled  # a retry, or a re-run after its worker died early
        if future.done():
            _notify_cancelled(future)
            return False
        if self.cancelled:
            future.cancel()
            _notify_cancelled(future)
            return False
        return future.set_running_or_notify_cancel()

    def deliver(
        self,
        work: Work,
        offset: int,
        values: Sequence[Any],
        errors: dict[int, BaseException] | None,
        elapsed: float | None = None,
    ) -> None:
        future = self.future
        if future.done():
            _notify_cancelled(future)
            return
        if errors:
            exc = errors[0]
            if self.should_retry(work.batch, 0, exc):
                try:
                    self.resubmit(work.subset([0]))
                    return
                except RuntimeError:
                    pass  # the pool is shutting down: no more tries
            _set(future, exc=self.annotate(exc, 0))
        else:
            _set(future, value=values[0])


def _notify_cancelled(future: Future[Any]) -> None:
    """Move a cancelled future to CANCELLED_AND_NOTIFIED.

    ``concurrent.futures.wait`` and ``as_completed`` count a cancelled future as done
    only once its executor has acknowledged the cancellation (the standard executors do
    it when they dequeue the work item); until then they wait for it forever.
    """
    if future._state == "CANCELLED":
        future.set_running_or_notify_cancel()


def _set(future: Future[Any], *, value: Any = None, exc: BaseException | None = None) -> None:
    # A timeout and a late result can race to resolve the same future: the first wins,
    # the loser's InvalidStateError is expected.
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
    except InvalidStateError:
        pass
