"""The dask backend: works run as tasks on a Dask distributed cluster.

::

 caller threads               anypool-dask-loop thread (asyncio)            Dask cluster
 ──────────────               ──────────────────────────────────            ────────────
 submit(work): pickle the ──► _launch: client.submit(run_batch, spec,  ───► scheduler ──► a worker
 function and items here;     items) — one Dask task per work, or per        thread: run_batch
 on_start; count it in        item for EACH works (task timeouts,            runs every item,
 flight                       re-runs, submit())                             catching each one's
                              _collect: await the Dask future ◄───────────── exception; returns
                              decode values and per-item errors;             values + errors
                              job.deliver(...); on a lost connection or
                              a failed initializer: fail what is in flight
 shutdown: mark closed ─────► _close_when_idle: wait until nothing is in
                              flight, close the Client and the LocalCluster
                              this backend started (if any), stop the loop

Why this shape:

* Dask's scheduler already does scheduling, data locality, worker loss (the tasks of a
  dead worker run again elsewhere) and TLS. anypool adds on top only what the other
  backends have: batches of tiny items, per-item errors, ordering, task timeouts,
  progress and stats.
* One asynchronous ``Client`` on a loop thread this module owns: results are awaited
  concurrently (a synchronous client would fetch them one by one in its single callback
  thread), and there is one place that closes everything, so nothing is left running.
* A Dask task is a whole batch and never fails because an item failed: it returns every
  item's value or exception. So one bad item does not fail its neighbours, and retries
  stay anypool's own, per item (see ``retries`` below).

Retries. A task's exception is retried by anypool (``Job.should_retry``, per item, with
``retry_on``), and every Dask task is submitted with ``retries=0``, so nothing is retried
twice. Dask's own ``retries=`` would re-run a whole batch, including the items that had
succeeded, and cannot filter by exception type. A *lost worker* is Dask's business: the
scheduler re-runs the tasks of a dead worker by itself, and anypool neither sees nor
counts that. Only when Dask gives up (``KilledWorker``: the task's workers died
``distributed.scheduler.allowed-failures`` + 1 times) does anypool see a failure; it is
delivered as :class:`WorkerCrashed` and not retried again by anypool, because Dask has
already run it on several workers.

Timeouts. Dask cannot stop a running task (tasks run in worker threads), so with a
``task_timeout`` each item runs in a helper thread on the worker and ``run_batch`` waits
for it at most that long. Past it, the item's caller gets :class:`TaskTimeout`, the
Dask task returns (freeing the worker's slot), and the helper thread is abandoned: it runs
on in the worker process until the function returns, and its result is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import multiprocessing
import os
import pickle
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle
import distributed
from distributed.threadpoolexecutor import thread_state as _dask_thread_state

from .._errors import (
    BrokenPool,
    ClusterUnreachable,
    InitializerError,
    TaskTimeout,
    WorkerCrashed,
    attach,
)
from .._tasks import FlushMode, FutureJob, Work
from . import _worker
from ._base import Backend, ExecutorStats, available_cpus
from ._inline import caller
from ._processes import GUARD_HINT, _decode_results, _exception

__all__ = ["ADDRESS_ENV", "DEFAULT_CONNECT_TIMEOUT", "DaskBackend", "run_batch"]

#: The environment variable read when no ``address=`` is given.
ADDRESS_ENV = "ANYPOOL_DASK_ADDRESS"
#: Seconds to wait for a scheduler to answer. Long enough for a scheduler across a data
#: centre under load; short enough that a wrong address is reported before you wonder.
DEFAULT_CONNECT_TIMEOUT = 10.0
# Closing the Client (and a LocalCluster's workers): long enough for a clean goodbye,
# short enough that a dead scheduler does not hold up the program's exit.
CLOSE_TIMEOUT = 10.0
# Past the connect timeout, how long the caller's thread waits for a failed attempt to
# clean up before it stops waiting regardless: a constructor must never hang.
CONNECT_GRACE = CLOSE_TIMEOUT + 5.0
# Starting a LocalCluster imports distributed in each new worker process: seconds on a
# busy laptop. Generous, because the alternative to waiting is failing a working set-up.
LOCAL_START_TIMEOUT = 120.0
# How often the loop copies the Client's cached view of the cluster (workers, threads)
# for stats() and the task slots: often enough to follow a worker that joins or dies,
# rarely enough to cost nothing. (The Client itself refreshes it every 2 s.)
INFO_INTERVAL = 1.0
# Task slots per worker thread for map() batches: with one batch waiting beside each
# running one, a worker thread never sits idle for the ~10 ms round trip between a result
# and its next task. submit() keeps to one slot per thread, so that a future still
# waiting here can be cancelled (a task handed to Dask cannot).
MAP_SLOTS_PER_THREAD = 2
# Functions a worker keeps unpickled, per process: a map sends its function with every
# batch, and unpickling it each time would cost more than the batch for tiny items.
FUNCTION_CACHE = 64

_live: weakref.WeakSet[DaskBackend] = weakref.WeakSet()
# distributed's constructors are not annotated; mypy --strict refuses untyped calls.
_LocalCluster: Any = distributed.LocalCluster
_Client: Any = distributed.Client
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


class _Task:
    """One Dask task in flight and the work whose positions it runs."""

    __slots__ = ("future", "settled", "work")

    def __init__(self, work: Work, future: Any) -> None:
        self.work = work
        self.future = future
        self.settled = False  # delivered early (cancelled, terminated, broken)


class DaskBackend(Backend):
    name = "dask"
    needs_pickling = True
    # A Dask task costs milliseconds of scheduler and network time (about 10 ms from
    # submit to result on one machine): batches of about 0.1 s make that a small share,
    # while still spreading the work over the cluster and reporting progress often.
    batch_target = 0.1

    @classmethod
    def default_workers(cls) -> int:
        # What a LocalCluster starts; with an address the cluster's size is used instead.
        return available_cpus()

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        address: str | None = None,
        security: Any = None,
        connect_timeout: float | None = None,
        workers_from_cluster: bool = False,
        **options: Any,
    ) -> None:
        self.workers = workers
        self.address = _resolve_address(address)
        inheriting = getattr(multiprocessing.current_process(), "_inheriting", False)
        if self.address is None and inheriting:
            # A LocalCluster's worker is importing the main module, which starts a cluster.
            raise BrokenPool(
                "a local Dask cluster was started while one of its worker processes was "
                "importing the main module.\n" + GUARD_HINT
            )
        self._security = _check_security(security)
        self._connect_timeout = _check_connect_timeout(connect_timeout)
        self._init_payload = _pickle_initializer(initializer, initargs)
        self._pool_id = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._closed = False
        self._terminating = False
        self._closing_started = False
        self._loop_done = False
        self._broken: BaseException | None = None
        self._workers_from_cluster = workers_from_cluster and self.address is not None
        self._pending: collections.deque[Work] = collections.deque()  # waiting for a slot
        # Items re-run alone to find which one kills workers (or will not unpickle): one
        # at a time, so that no innocent item shares a worker with the culprit when it
        # dies, and gets blamed by Dask for its deaths.
        self._suspects: collections.deque[Work] = collections.deque()
        self._suspect_ids: set[int] = set()  # works re-run alone to find a culprit
        self._suspect_running = False
        self._in_flight = 0  # works handed to Dask (or being settled) that hold a slot
        self._tasks: dict[str, _Task] = {}  # by key; touched on the loop thread only
        self._idle: asyncio.Event | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._info: dict[str, Any] = {}  # the cluster as last seen; written on the loop
        self._stats = collections.Counter[str]()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="anypool-dask-loop", daemon=True
        )
        self._thread.start()
        try:
            self._connect()
        except BaseException:
            self._stop_loop()
            raise
        _live.add(self)

    # ── connecting (caller's thread, then the loop) ──────────────────────────────

    def _connect(self) -> None:
        local = self.address is None
        # A last resort: _open enforces the connect timeout itself, then cleans up.
        bound = (LOCAL_START_TIMEOUT if local else self._connect_timeout) + CONNECT_GRACE
        future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        try:
            future.result(timeout=bound)
        except Exception as exc:
            if not future.done():  # our last-resort bound, not the connect timeout
                future.cancel()
                raise self._connect_error(f"still trying after {bound:g} s") from None
            if isinstance(exc, TimeoutError):
                raise self._connect_error("no answer in time") from exc
            raise self._connect_error(_one_line(exc)) from exc
        if self._cluster is not None:
            self.address = str(self._cluster.scheduler_address)
        elif self._workers_from_cluster:
            self.workers = max(1, _cluster_threads(self._info))

    def _connect_error(self, why: str) -> BaseException:
        if self.address is None:
            return BrokenPool(
                f"could not start a local Dask cluster: {why.rstrip('.')}. Its workers are "
                "processes started with 'spawn', which imports your main module in each of "
                "them: if your script starts the executor at its top level, move that code "
                "under 'if __name__ == \"__main__\":'."
            )
        return ClusterUnreachable(
            f"could not connect to the Dask scheduler at {self.address} within "
            f"{self._connect_timeout:g} s (connect_timeout): {why}. Check that a scheduler "
            f"runs there ('dask scheduler --host HOST --port PORT' starts one), that this "
            f"machine can reach it, and that TLS settings (security=) match the scheduler's.",
            self.address,
            self._connect_timeout,
        )

    async def _open(self) -> None:
        self._idle = asyncio.Event()
        try:
            if self.address is None:
                self._cluster = _LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",  # never reachable from another machine
                    scheduler_port=0,
                    # Its HTTP server (health, metrics; the dashboard if bokeh is there)
                    # would take 0.0.0.0:8787 by default: loopback, any free port.
                    dashboard_address="127.0.0.1:0",
                    security=self._security,
                    asynchronous=True,
                )
                await self._cluster
            target = self._cluster if self._cluster is not None else self.address
            self._client = _Client(
                target,
                asynchronous=True,
                security=self._security,
                timeout=self._connect_timeout,
                set_as_default=False,  # leave the user's own dask configuration alone
            )
            # Dask's own timeout covers reaching the address, not a peer that accepts
            # the connection and then says nothing: bound the whole handshake here.
            await asyncio.wait_for(_started(self._client), self._connect_timeout)
        except BaseException:
            await self._close_connections()
            raise
        self._info = _scheduler_info(self._client)
        self._loop.create_task(self._follow_cluster())

    async def _follow_cluster(self) -> None:
        # Only the loop thread may ask the Client: from another thread, even a cached
        # answer goes through the loop, which may be waiting for our lock.
        while True:
            await asyncio.sleep(INFO_INTERVAL)
            self._info = _scheduler_info(self._client)

    # ── the loop thread ──────────────────────────────────────────────────────────

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            with self._lock:
                self._loop_done = True
            self._loop.close()

    def _stop_loop(self) -> None:
        with self._lock:
            if not self._loop_done:
                self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not threading.current_thread():
            self._thread.join(2 * CLOSE_TIMEOUT + 5.0)

    # ── submitting (caller threads) ──────────────────────────────────────────────

    def submit(self, work: Work) -> None:
        job = work.job
        # Pickle in the caller's thread, so an unpicklable argument raises right here.
        job.fn_payload()
        pieces = _pieces(work)
        for piece in pieces:
            piece.pickled_items()
        with self._lock:
            if self._broken is not None:
                raise self._broken.with_traceback(None)
            if self._closed:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            self._pending.extend(pieces)
            ready = self._take_ready()
            if ready:
                # Inside the lock: a shutdown that follows is queued behind this launch.
                self._loop.call_soon_threadsafe(self._launch, ready)

    def _take_ready(self) -> list[Work]:
        """With the lock held: the queued works that fit in the free task slots.

        Works wait here, not in Dask's scheduler, until a slot is free: so a queued
        ``submit()`` can still be cancelled, ``shutdown(cancel_futures=True)`` drops
        what has not started, and a ``submit()`` handed to Dask starts at once.
        """
        ready: list[Work] = []
        if self._broken is not None or self._terminating:
            return ready  # what waits is settled by _break or terminate, not run
        threads = self._capacity()
        while self._suspects and not self._suspect_running and self._in_flight < threads:
            suspect = self._suspects.popleft()
            if suspect.job.on_start(suspect):
                self._suspect_running = True
                ready.append(suspect)
        while self._pending:
            work = self._pending[0]
            slots = threads if isinstance(work.job, FutureJob) else threads * MAP_SLOTS_PER_THREAD
            if self._in_flight + len(ready) >= slots:
                break
            self._pending.popleft()
            if work.job.on_start(work):
                ready.append(work)
        self._in_flight += len(ready)
        return ready

    def _queued(self) -> int:
        return len(self._pending) + len(self._suspects)

    def _capacity(self) -> int:
        if self._workers_from_cluster:
            threads = _cluster_threads(self._info)
            if threads > 0:
                self.workers = threads  # the cluster grew or shrank since we connected
        return self.workers

    # ── running tasks (loop thread) ──────────────────────────────────────────────

    def _launch(self, works: Sequence[Work]) -> None:
        for work in works:
            self._launch_one(work)

    def _launch_one(self, work: Work) -> None:
        if self._broken is not None or self._terminating:
            self._settle_now(work, self._broken or _terminated())
            return
        digest, fn_bytes = work.job.fn_payload()
        timeout = work.job.task_timeout
        spec = (self._pool_id, digest, fn_bytes, int(work.job.mode), timeout, self._init_payload)
        key = f"anypool-{_key_name(work.job.fn)}-{self._pool_id}-{work.id}"
        rerun = work.id in self._suspect_ids or bool(work.batch.attempts)
        try:
            future = self._client.submit(
                run_batch,
                spec,
                work.pickled_items(),
                key=key,
                pure=False,
                retries=0,  # anypool retries per item; see the module docstring
                priority=1 if rerun else 0,  # a re-run holds up ordered results: first
            )
        except Exception as exc:
            self._settle_now(work, exc)
            return
        task = _Task(work, future)
        self._tasks[key] = task
        self._loop.create_task(self._collect(key, task))

    def _rerun_alone(self, work: Work) -> None:
        """Run each item of ``work`` again on its own, one at a time, to find the bad one."""
        with self._lock:
            alone = [work.subset([i]) for i in range(len(work.positions))]
            self._suspect_ids.update(w.id for w in alone)
            self._suspects.extend(alone)
            ready = self._take_ready()
        self._launch(ready)

    async def _collect(self, key: str, task: _Task) -> None:
        outcome: Any
        failed = False
        try:
            outcome = await task.future
        except asyncio.CancelledError:
            raise  # the loop is stopping: _run_loop settles nothing more
        except BaseException as exc:
            outcome, failed = exc, True
        finally:
            self._tasks.pop(key, None)
            with contextlib.suppress(Exception):
                task.future.release()
        if task.settled:
            return
        task.settled = True
        try:
            if failed:
                self._on_task_failed(task.work, outcome)
            else:
                self._on_result(task.work, outcome)
        finally:
            self._finish(task.work)

    def _finish(self, work: Work) -> None:
        """A task slot is free: start what waits for it, or note that all is done."""
        with self._lock:
            self._in_flight -= 1
            if work.id in self._suspect_ids:
                self._suspect_ids.discard(work.id)
                self._suspect_running = False
            ready = self._take_ready()
            idle = self._closed and not self._in_flight and not self._queued()
        self._launch(ready)
        if idle and self._idle is not None:
            self._idle.set()

    def _settle_now(self, work: Work, error: BaseException | None) -> None:
        """Settle a work that had a slot, without its result: ``error`` for each item."""
        try:
            _settle(work, error)
        finally:
            self._finish(work)

    # ── outcomes (loop thread) ───────────────────────────────────────────────────

    def _on_result(self, work: Work, outcome: tuple[Any, ...]) -> None:
        kind = outcome[0]
        if kind == "R":
            self._on_values(work, outcome)
        elif kind == "U":  # the items would not unpickle on the worker: find which one
            if len(work.positions) > 1:
                self._rerun_alone(work)
            else:
                error = _exception(outcome[1], "while unpickling the arguments on a Dask worker")
                work.job.deliver(work, 0, [None], {0: error}, 0.0)
        elif kind == "F":
            _fail(work, _exception(outcome[1], "while unpickling the task's function on a worker"))
        elif kind == "I":
            _, type_name, message, traceback = outcome
            error = InitializerError(
                f"the initializer failed on a Dask worker: {type_name}: {message}", traceback
            )
            _fail(work, error)
            self._break(error)

    def _on_values(self, work: Work, outcome: tuple[Any, ...]) -> None:
        _, blob, error_blob, count, elapsed, timed_out = outcome
        values, errors = _decode_results(blob, error_blob, count)
        if values is None:  # a result would not unpickle here: find out which one
            if count > 1:
                self._rerun_alone(work)
                return
            values = [None]
        timeout = work.job.task_timeout
        for offset in timed_out:
            assert timeout is not None
            errors[offset] = TaskTimeout(timeout, work.index(offset))
        with self._lock:
            self._stats["tasks_done"] += count
            self._stats["timed_out"] += len(timed_out)
            self._stats["batches"] += 1
        work.job.deliver(work, 0, values, errors or None, elapsed)

    def _on_task_failed(self, work: Work, exc: BaseException) -> None:
        if isinstance(exc, distributed.client.FutureCancelledError):
            # Not cancelled by us (those are settled already): the scheduler is gone.
            error = BrokenPool(
                f"lost the connection to the Dask scheduler at {self.address} ({exc}); "
                "tasks in flight fail and the executor cannot run more"
            )
            _fail(work, error)
            self._break(error)
        elif isinstance(exc, distributed.scheduler.KilledWorker):
            self._on_killed_worker(work, exc)
        else:
            # Not the task's own exception (those come back as values): Dask could not
            # run run_batch at all, e.g. anypool is missing on the workers.
            attach(exc, f"anypool: raised by Dask while running a batch on {self.address}")
            _fail(work, exc)

    def _on_killed_worker(self, work: Work, exc: BaseException) -> None:
        if len(work.positions) > 1:
            self._rerun_alone(work)  # which item kills workers? one at a time
            return
        error = WorkerCrashed(None, None, work.index(0), "running the task")
        attach(error, f"anypool: Dask gave up on this task: {exc}")
        # Dask has already run it on several workers: anypool does not retry it again.
        work.batch.attempts[work.positions[0]] = work.job.retries
        with self._lock:
            self._stats["crashed"] += 1
        work.job.deliver(work, 0, [None], {0: error}, 0.0)

    # ── cancelling and breaking (loop thread) ────────────────────────────────────

    def _drop_pending(self, error: BaseException | None, job: Any = None) -> None:
        """Settle the queued works (of ``job``, if given): dropped, or failed with ``error``."""
        with self._lock:
            chosen = [w for w in (*self._suspects, *self._pending) if job in (None, w.job)]
            for queue in (self._suspects, self._pending):
                kept = [w for w in queue if job not in (None, w.job)]
                queue.clear()
                queue.extend(kept)
            idle = self._closed and not self._in_flight and not self._queued()
        for work in chosen:
            _settle(work, error)
        if idle and self._idle is not None:
            self._idle.set()

    def _stop_running(self, error: BaseException | None, job: Any = None) -> None:
        """Settle the tasks in flight (of ``job``, if given) now and cancel them in Dask."""
        chosen = [t for t in self._tasks.values() if not t.settled and job in (None, t.work.job)]
        for task in chosen:
            task.settled = True
        if chosen:
            cancel = self._client.cancel([t.future for t in chosen])
            if asyncio.iscoroutine(cancel) or isinstance(cancel, asyncio.Future):
                self._loop.create_task(_quietly(cancel))
        for task in chosen:
            self._settle_now(task.work, error)

    def _break(self, error: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = error
        self._drop_pending(error)
        self._stop_running(error)

    def _forget(self, job: Any) -> None:
        self._drop_pending(None, job)
        self._stop_running(None, job)

    def forget(self, job: Any) -> None:
        with self._lock:
            if not self._loop_done:
                self._loop.call_soon_threadsafe(self._forget, job)

    # ── stopping ─────────────────────────────────────────────────────────────────

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            first = not self._closed
            self._closed = True
            if not self._loop_done:
                if cancel_futures:
                    self._loop.call_soon_threadsafe(self._drop_pending, None)
                if first:
                    self._loop.call_soon_threadsafe(self._begin_close)
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def terminate(self) -> None:
        with self._lock:
            self._closed = self._terminating = True
            if not self._loop_done:
                self._loop.call_soon_threadsafe(self._drop_pending, None)
                self._loop.call_soon_threadsafe(self._stop_running, _terminated())
                self._loop.call_soon_threadsafe(self._begin_close)
        if self._thread is not threading.current_thread():
            self._thread.join(2 * CLOSE_TIMEOUT + 5.0)

    def _begin_close(self) -> None:
        assert self._idle is not None
        if self._closing_started:
            return
        self._closing_started = True
        with self._lock:
            if not self._in_flight and not self._queued():
                self._idle.set()
        self._loop.create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        assert self._idle is not None
        await self._idle.wait()
        try:
            await self._close_connections()
        finally:
            self._loop.stop()

    async def _close_connections(self) -> None:
        client, cluster = self._client, self._cluster
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CLOSE_TIMEOUT)
        if cluster is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cluster.close(), CLOSE_TIMEOUT)

    # ── stats ────────────────────────────────────────────────────────────────────

    def stats(self) -> ExecutorStats:
        info = self._info
        with self._lock:
            capacity = self._capacity()
            in_flight, pending = self._in_flight, self._queued()
            s = self._stats.copy()
        return ExecutorStats(
            self.name,
            self.workers,
            alive=int(info.get("n_workers", len(info.get("workers", {})))),
            idle=max(0, capacity - in_flight),
            pending=pending,
            tasks_done=s["tasks_done"],
            crashed=s["crashed"],
            timed_out=s["timed_out"],
            abandoned=s["timed_out"],  # each timed-out item leaves a thread on a worker
        )


# ── the task a Dask worker runs ──────────────────────────────────────────────────

_worker_lock = threading.Lock()
_functions: collections.OrderedDict[str, Callable[..., Any]] = collections.OrderedDict()
_initialized: dict[str, tuple[str, str, str] | None] = {}


def run_batch(spec: tuple[Any, ...], items_data: bytes) -> tuple[Any, ...]:
    """Run a batch's items on a Dask worker; return every value and per-item error.

    ``spec`` is ``(pool id, function digest, function bytes, call mode, task timeout,
    initializer bytes)``. Returns ``("R", values, errors, count, elapsed, timed-out
    offsets)``, or ``("U" | "F", record)`` when the items or the function would not
    unpickle, or ``("I", type name, message, traceback)`` when the initializer failed.
    """
    pool_id, digest, fn_bytes, mode, timeout, init_payload = spec
    if init_payload is not None:
        failure = _initialize(pool_id, init_payload)
        if failure is not None:
            return ("I", *failure)
    try:
        fn = _function(digest, fn_bytes)
    except BaseException as exc:
        return ("F", _worker._record(exc))
    try:
        items = pickle.loads(items_data)
    except BaseException as exc:
        return ("U", _worker._record(exc))
    return _run_items(caller(_call_mode(mode), fn), items, timeout)


def _call_mode(mode: int) -> Any:
    from .._tasks import CallMode

    return CallMode(mode)


def _initialize(pool_id: str, payload: bytes) -> tuple[str, str, str] | None:
    # Once per worker process and executor: a worker that joins later, or replaces a
    # dead one, runs it before its first task of this executor.
    with _worker_lock:
        if pool_id not in _initialized:
            try:
                initializer, initargs = pickle.loads(payload)
                initializer(*initargs)
                _initialized[pool_id] = None
            except BaseException as exc:
                _, type_name, message, text = _worker._record(exc)
                _initialized[pool_id] = (type_name, message, text)
        return _initialized[pool_id]


def _function(digest: str, fn_bytes: bytes) -> Callable[..., Any]:
    with _worker_lock:
        cached = _functions.get(digest)
        if cached is not None:
            _functions.move_to_end(digest)
            return cached
    fn: Callable[..., Any] = pickle.loads(fn_bytes)
    with _worker_lock:
        _functions[digest] = fn
        if len(_functions) > FUNCTION_CACHE:
            _functions.popitem(last=False)
    return fn


def _run_items(
    call: Callable[[Any], Any], items: list[Any], timeout: float | None
) -> tuple[Any, ...]:
    values: list[Any] = []
    errors: dict[int, _worker.Record] = {}
    timed_out: list[int] = []
    busy = 0.0
    for offset, item in enumerate(items):
        began = time.perf_counter()
        try:
            value = call(item) if timeout is None else _call_with_timeout(call, item, timeout)
        except _TimedOut:
            value = None
            timed_out.append(offset)
        except BaseException as exc:
            value = None
            errors[offset] = _worker._record(exc)
        values.append(value)
        busy += time.perf_counter() - began
    try:
        blob = _worker._dumps(values)
    except BaseException:
        blob = _worker._dumps(_worker._sanitize(values, errors))
    error_blob = pickle.dumps(errors, 5) if errors else None
    return ("R", blob, error_blob, len(values), busy, timed_out)


class _TimedOut(Exception):
    """An item ran past its task_timeout (its thread was abandoned)."""


def _call_with_timeout(call: Callable[[Any], Any], item: Any, timeout: float) -> Any:
    # The helper thread sees what the worker thread sees: contextvars and Dask's
    # thread-local state, so get_worker() still works inside the task.
    context = contextvars.copy_context()
    state = dict(vars(_dask_thread_state))
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def target() -> None:
        vars(_dask_thread_state).update(state)
        try:
            outcome.append((True, context.run(call, item)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=target, name="anypool-dask-timed-task", daemon=True).start()
    if not done.wait(timeout):
        raise _TimedOut
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


# ── helpers ─────────────────────────────────────────────────────────────────────


def _pieces(work: Work) -> list[Work]:
    """The works to send as Dask tasks: EACH works go item by item (see FlushMode)."""
    n = len(work.positions)
    if work.flush is FlushMode.EACH and n > 1:
        return [work.subset([i]) for i in range(n)]
    return [work]


def _resolve_address(address: Any) -> str | None:
    if address is None:
        address = os.environ.get(ADDRESS_ENV, "").strip() or None
        if address is None:
            return None
        where = f"the {ADDRESS_ENV} environment variable"
    else:
        where = "address"
    if not isinstance(address, str) or not address.strip():
        raise ValueError(
            f"{where} must be a Dask scheduler address such as 'tcp://host:8786', got {address!r}"
        )
    return address.strip()


def _check_security(security: Any) -> Any:
    if security is None or security is True:
        return security  # True: temporary self-signed TLS (needs the cryptography package)
    if not isinstance(security, distributed.Security):
        raise TypeError(
            "security must be a distributed.Security object (TLS certificates and keys), "
            f"or True for temporary credentials; got {type(security).__name__}"
        )
    return security


def _check_connect_timeout(timeout: Any) -> float:
    if timeout is None:
        return DEFAULT_CONNECT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"connect_timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _pickle_initializer(
    initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> bytes | None:
    if initializer is None:
        return None
    from .._serialize import serialization_error

    try:
        data: bytes = cloudpickle.dumps((initializer, initargs), 5)
    except Exception as exc:
        raise serialization_error((initializer, initargs), "(initializer, initargs)", exc) from exc
    return data


def _scheduler_info(client: Any) -> dict[str, Any]:
    # On the loop thread, an asynchronous client answers from its cache, at once.
    try:
        info = client.scheduler_info()
    except Exception:
        return {}
    return dict(info) if isinstance(info, dict) else {}


def _cluster_threads(info: dict[str, Any]) -> int:
    if "total_threads" in info:
        return int(info["total_threads"])
    return sum(int(w.get("nthreads", 0)) for w in info.get("workers", {}).values())


def _key_name(fn: Any) -> str:
    """The function's name as it reads in Dask's dashboard and logs."""
    name = getattr(fn, "__name__", type(fn).__name__)
    return _KEY_UNSAFE.sub("_", str(name)).strip("_")[:40] or "task"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _terminated() -> BrokenPool:
    return BrokenPool("the dask executor was terminated (KeyboardInterrupt or terminate())")


def _settle(work: Work, error: BaseException | None) -> None:
    """Settle every item of ``work`` without running it: failed with ``error``, or dropped."""
    if error is None:
        work.job.drop(work)
    else:
        _fail(work, error)


def _fail(work: Work, error: BaseException) -> None:
    n = len(work.positions)
    work.job.deliver(work, 0, [None] * n, dict.fromkeys(range(n), error), 0.0)


async def _started(client: Any) -> Any:
    return await client


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception):
        await awaitable


def _terminate_all() -> None:
    """At interpreter exit: close every dask executor still open."""
    for backend in list(_live):
        backend.terminate()


if hasattr(threading, "_register_atexit"):
    # Runs before the interpreter joins threads, like the processes backend's hook.
    threading._register_atexit(_terminate_all)
