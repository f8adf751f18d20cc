"""The processes backend: anypool's own worker loop on ``multiprocessing``.

::

 caller threads              dispatcher thread (one per pool)                  workers
 ──────────────              ───────────────────────────────                  ───────
 submit(work): pickle it;    waits on every result pipe, every worker's        run items,
 an idle worker? send it ──► sentinel and a wake-up pipe, with a timeout  ─pipe─► report
 directly; else queue it     at the nearest task deadline                       results
                             on results: deliver to the job; send the       ◄─pipe─ in chunks
                               worker its next work
                             on a death: blame the item the worker was on
                               (its shared slot says which), re-queue the rest,
                               start a replacement
                             on a deadline: TaskTimeout for the item, SIGTERM
                               (then SIGKILL) the worker, re-queue the rest,
                               start a replacement

Why this shape (see also design/PROCESSES.md):

* One pipe pair per worker and no shared ``multiprocessing.Queue``: a worker that dies
  cannot leave a shared lock held or a feeder thread stuck, so a crash costs one task.
* A work is sent only to an idle worker, which is blocked reading its pipe; so a send
  never waits on a worker that is itself waiting to send results (no pipe deadlock).
* Batches go out, results come back in chunks; the worker's shared slot tells which item
  it was on, so a crash or timeout is blamed on one item without a message per item. An
  ambiguous case (a crash while pickling a chunk of results, or inside a FAST loop) is
  settled by re-running the unreported items one at a time: the culprit fails again,
  alone, and the others succeed.
* The dispatcher holds the backend, never the Executor, so a forgotten Executor can be
  collected and its workers stopped.
"""

from __future__ import annotations

import collections
import copyreg
import io
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.heap
import os
import pickle
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from multiprocessing.reduction import ForkingPickler, sendfds
from multiprocessing.sharedctypes import RawArray
from typing import Any

import cloudpickle

from .._errors import (
    BrokenPool,
    InitializerError,
    RemoteTraceback,
    TaskError,
    TaskTimeout,
    WorkerCrashed,
    as_task_exception,
    attach,
)
from .._tasks import FlushMode, Work
from . import _sharing, _worker
from ._base import Backend, ExecutorStats, available_cpus
from ._sharing import ArraySharer

__all__ = ["ProcessBackend", "default_start_method"]

# A worker past its deadline gets SIGTERM (so a handler of the user's can clean up), then
# SIGKILL after this grace period.
KILL_GRACE = 1.0
# Workers asked to stop at shutdown get this long to exit before they are terminated.
EXIT_GRACE = 5.0
# A pool whose workers keep dying before they are ready is broken, not restarted forever.
MAX_START_FAILURES = 3

GUARD_HINT = (
    "If your script starts a pool at its top level, move that code under a main guard:\n\n"
    '    if __name__ == "__main__":\n'
    "        results = anypool.map(...)   # the code that starts the pool\n\n"
    "The 'forkserver' and 'spawn' start methods import the main module in every worker "
    "process, so unguarded code that starts a pool runs again in each worker."
)

_worker_ids = itertools.count(1)
_live: weakref.WeakSet[ProcessBackend] = weakref.WeakSet()


def default_start_method() -> str:
    """forkserver on Linux (CPython 3.14's choice), spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if sys.platform.startswith("linux") and "forkserver" in methods else "spawn"


class _Worker:
    """The parent's view of one worker process."""

    __slots__ = (
        "eof",
        "exitcode",
        "item_started",
        "kill_at",
        "known",
        "pid",
        "process",
        "ready",
        "reported",
        "result_conn",
        "segments",
        "sentinel",
        "slot",
        "task_conn",
        "tasks",
        "work",
    )

    def __init__(self, process: Any, task_conn: Any, result_conn: Any, slot: Any) -> None:
        self.process = process
        self.pid: int = process.pid
        self.sentinel: int = process.sentinel
        self.task_conn = task_conn
        self.result_conn = result_conn
        self.slot = slot
        self.ready = False
        self.eof = False
        self.work: Work | None = None
        self.reported = 0  # positions of `work` already reported
        self.item_started = 0.0  # when the current item began (for deadlines)
        self.known: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.tasks = 0  # items sent to this worker, for max_tasks_per_worker
        self.kill_at: float | None = None
        self.exitcode: int | None = None
        self.segments: set[int] = set()  # shared-memory segments this worker has mapped


class ProcessBackend(Backend):
    name = "processes"
    can_kill_running = True
    needs_pickling = True
    batch_target = 0.02

    @classmethod
    def default_workers(cls) -> int:
        return available_cpus()

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | BaseContext | None = None,
        max_tasks_per_worker: int | None = None,
        shared_memory: bool | int = True,
        idle_timeout: float | None = None,
        **options: Any,
    ) -> None:
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise BrokenPool(
                "a process pool was started while a worker process was importing the main "
                "module.\n" + GUARD_HINT
            )
        self.workers = workers
        self._ctx = _context(start_method)
        self._max_tasks = max_tasks_per_worker
        self._init_payload = _pickle_initializer(initializer, initargs)
        self._lock = threading.Lock()
        self._pending: collections.deque[Work] = collections.deque()
        self._workers: dict[int, _Worker] = {}  # by sentinel: live workers
        self._dying: dict[int, _Worker] = {}  # by sentinel: killed, not yet reaped
        self._idle: list[_Worker] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        # Closed only when this object is collected, so that _wake(), which may run in
        # any thread (a lease released by the garbage collector), never writes to a
        # descriptor number that was closed and reused for something else.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._sharer = _sharer(shared_memory, self._wake)
        # With an idle timeout, a pool with nothing to do for that long stops its workers
        # and dispatcher (no process or thread is left) and starts them again on demand.
        self._idle_timeout = idle_timeout
        self._last_busy = time.monotonic()
        self._retired_threads: list[threading.Thread] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self._terminating = False
        self._broken: BaseException | None = None
        self._ever_ready = False
        self._start_failures = 0
        self._respawns = 0
        self._stats = collections.Counter[str]()
        _live.add(self)
        _hook_sigterm()

    # ── submitting (caller threads) ──────────────────────────────────────────────

    def submit(self, work: Work) -> None:
        # Pickle in the caller's thread, so an unpicklable argument raises right here.
        work.job.fn_payload()
        self._pickle(work)
        with self._lock:
            if self._broken is not None:
                raise self._broken.with_traceback(None)
            if self._closing:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            self._ensure_started()
            worker = self._claim_idle(work)
            if worker is None:
                self._pending.append(work)
        if worker is not None:
            self._send(worker, work)
        if work.job.task_timeout is not None:
            self._wake()  # the dispatcher may need an earlier deadline

    def _claim_idle(self, work: Work) -> _Worker | None:
        if not self._idle:
            return None
        if not work.job.on_start(work):
            return None
        worker = self._idle.pop()
        self._assign(worker, work)
        return worker

    def _assign(self, worker: _Worker, work: Work) -> None:
        self._last_busy = time.monotonic()
        worker.work = work
        worker.reported = 0
        worker.item_started = time.monotonic()
        worker.tasks += len(work.positions)

    def _pickle(self, work: Work) -> bytes:
        return work.pickled_items(None if self._sharer is None else self._sharer.dumps)

    def _send(self, worker: _Worker, work: Work) -> None:
        payload = self._pickle(work)
        if work.lease is not None:
            self._send_segments(worker, work.lease.serials)
        digest, fn_bytes = work.job.fn_payload()
        known = digest in worker.known
        header = (
            "B",
            work.id,
            digest,
            None if known else fn_bytes,
            int(work.job.mode),
            int(work.flush),
        )
        try:
            worker.task_conn.send_bytes(pickle.dumps(header, 5))
            worker.task_conn.send_bytes(payload)
        except OSError:
            return  # the worker died; the dispatcher sees its sentinel and re-queues
        if not known:
            worker.known[digest] = None
            if len(worker.known) > _worker.FUNCTION_CACHE:
                worker.known.popitem(last=False)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full: the dispatcher is awake already

    def _send_segments(self, worker: _Worker, serials: tuple[int, ...]) -> None:
        """Give ``worker`` the shared-memory segments it does not have yet."""
        assert self._sharer is not None
        missing = tuple(s for s in serials if s not in worker.segments)
        if not missing:
            return
        described = self._sharer.describe(missing)
        header = ("A", [(serial, size) for serial, size, _ in described])
        try:
            worker.task_conn.send_bytes(pickle.dumps(header, 5))
            with socket.socket(fileno=os.dup(worker.task_conn.fileno())) as sock:
                sendfds(sock, [fd for _, _, fd in described])
        except OSError:
            return  # it died; its sentinel will say so
        worker.segments.update(missing)

    def _expire_segments(self) -> None:
        """Free segments no work uses any more, in the workers too."""
        if self._sharer is None:
            return
        freed = set(self._sharer.expire())
        if not freed:
            return
        with self._lock:
            holders = [w for w in self._workers.values() if w.segments & freed]
        for worker in holders:
            dropped = worker.segments & freed
            worker.segments -= dropped
            try:
                worker.task_conn.send_bytes(pickle.dumps(("D", sorted(dropped)), 5))
            except OSError:
                pass

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._dispatch, name="anypool-dispatcher", daemon=True
            )
            self._thread.start()

    # ── the dispatcher thread ────────────────────────────────────────────────────

    def _dispatch(self) -> None:
        try:
            for _ in range(self.workers):
                self._spawn()
            while self._step():
                if self._hibernate():
                    return
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            error = BrokenPool(f"the process pool's dispatcher failed: {exc!r}")
            error.__cause__ = exc
            self._break(error)
        finally:
            self._stop_all()

    def _step(self) -> bool:
        """Wait for one round of events and handle them; False when the pool is done."""
        with self._lock:
            if self._finished():
                return False
            conns = [w.result_conn for w in self._workers.values() if not w.eof]
            sentinels = [*self._workers, *self._dying]
            timeout = self._next_timeout()
        ready = multiprocessing.connection.wait([self._wake_r, *conns, *sentinels], timeout)
        for obj in ready:
            if obj == self._wake_r:
                self._drain_wake()
            elif isinstance(obj, int):
                self._on_sentinel(obj)
            else:
                self._on_readable(obj)
        self._check_deadlines()
        self._expire_segments()
        self._maybe_stop_workers()
        return True

    def _hibernate(self) -> bool:
        """After ``idle_timeout`` s with nothing to do, stop the workers and this thread.

        The pool stays open: the next submit starts a dispatcher, which starts workers.
        """
        with self._lock:
            if not self._idle_for_long():
                return False
            leaving = list(self._workers.values())
            self._workers.clear()
            self._idle.clear()
            self._thread = None  # a submit from now on starts a new dispatcher
            self._retired_threads.append(threading.current_thread())
        for worker in leaving:
            _close_quietly(worker.task_conn)  # EOF: the worker exits
        deadline = time.monotonic() + EXIT_GRACE
        for worker in leaving:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            _signal(worker, signal.SIGKILL)  # only reaches one that did not exit in time
            _reap(worker)
        return True

    def _idle_for_long(self) -> bool:
        """With the lock held: idle (no work, no dying or new workers) past the timeout."""
        if self._idle_timeout is None or self._closing or self._pending or self._dying:
            return False
        if self._respawns or not all(w.ready and w.work is None for w in self._workers.values()):
            return False
        return time.monotonic() - self._last_busy >= self._idle_timeout

    def _finished(self) -> bool:
        return self._closing and not self._workers and not self._dying and not self._pending

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        times = [w.kill_at for w in self._dying.values() if w.kill_at is not None]
        for w in self._workers.values():
            if w.work is not None and w.work.job.task_timeout is not None:
                times.append(w.item_started + w.work.job.task_timeout)
            if w.kill_at is not None:
                times.append(w.kill_at)
        if self._sharer is not None:
            expiry = self._sharer.next_expiry()
            if expiry is not None:
                times.append(expiry)
        if self._idle_timeout is not None and not self._pending:
            times.append(self._last_busy + self._idle_timeout)
        return max(0.0, min(times) - now) if times else None

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # ── starting workers ─────────────────────────────────────────────────────────

    def _spawn(self) -> None:
        # The task channel is a socket pair, so that descriptors can travel on it.
        task_r, task_w = self._ctx.Pipe(duplex=True)
        result_r, result_w = self._ctx.Pipe(duplex=False)
        slot = RawArray("q", 2)
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker.main,
            args=(task_r, result_w, slot, self._init_payload),
            name=f"anypool-worker-{next(_worker_ids)}",
        )
        try:
            process.start()
        finally:
            task_r.close()
            result_w.close()
        worker = _Worker(process, task_w, result_r, slot)
        with self._lock:
            self._workers[worker.sentinel] = worker

    def _replace(self) -> None:
        with self._lock:
            if self._terminating or self._broken is not None:
                return
            if self._closing and not self._pending:
                return  # shutting down and nothing left to run: no replacement needed
            self._stats["restarts"] += 1
        self._spawn()

    # ── messages from workers ────────────────────────────────────────────────────

    def _on_readable(self, conn: Any) -> None:
        worker = self._worker_for(conn)
        if worker is None:
            return
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            worker.eof = True  # it died; its sentinel follows
            return
        self._on_message(worker, data)

    def _worker_for(self, conn: Any) -> _Worker | None:
        for worker in self._workers.values():
            if worker.result_conn is conn:
                return worker
        return None

    def _on_message(self, worker: _Worker, data: bytes) -> None:
        message = pickle.loads(data)
        kind = message[0]
        if kind == "R":
            self._on_results(worker, message)
        elif kind == "Y":
            self._on_ready(worker)
        elif kind == "U":
            self._on_items_failed(worker, message)
        elif kind == "F":
            self._on_function_failed(worker, message)
        elif kind == "I":
            _, type_name, text, tb = message
            self._break(
                InitializerError(f"the initializer failed in a worker: {type_name}: {text}", tb)
            )

    def _on_ready(self, worker: _Worker) -> None:
        with self._lock:
            worker.ready = True
            self._ever_ready = True
            self._start_failures = 0
            work = self._next_work(worker)
        if work is not None:
            self._send(worker, work)

    def _next_work(self, worker: _Worker) -> Work | None:
        """With the lock held: give ``worker`` its next work, or mark it idle."""
        if self._max_tasks is not None and worker.tasks >= self._max_tasks:
            self._retire(worker)
            return None
        while self._pending:
            work = self._pending.popleft()
            if not work.job.on_start(work):
                continue
            quota = None if self._max_tasks is None else self._max_tasks - worker.tasks
            if quota is not None and len(work.positions) > quota:
                work, rest = self._split(work, quota)
                self._pending.appendleft(rest)
            self._assign(worker, work)
            return work
        if not self._closing:
            self._idle.append(worker)
        return None

    def _split(self, work: Work, size: int) -> tuple[Work, Work]:
        n = len(work.positions)
        head = work.subset(range(size))
        tail = work.subset(range(size, n))
        return head, tail

    def _on_results(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        _, work_id, base, count, elapsed, blob, error_blob = message
        work = worker.work
        if work is None or work.id != work_id:
            return  # from a work already settled (a timeout raced the result)
        done = base + count == len(work.positions)
        next_work = None
        with self._lock:
            self._last_busy = time.monotonic()
            worker.reported = base + count
            worker.item_started = time.monotonic()
            if done:
                worker.work = None
                self._stats["tasks_done"] += len(work.positions)
                next_work = self._next_work(worker)
        if next_work is not None:
            self._send(worker, next_work)
        values, errors = _decode_results(blob, error_blob, count)
        if values is None:  # the results would not unpickle here: find out which one
            if count == 1:
                values, errors = [None], {0: errors[0]}
            else:
                # Which result would not unpickle? Run them again reporting one by one.
                self._requeue(work.subset(range(base, base + count), flush=FlushMode.EACH))
                return
        work.job.deliver(work, base, values, errors or None, elapsed)

    def _on_items_failed(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        _, work_id, record = message
        work = worker.work
        if work is None or work.id != work_id:
            return
        with self._lock:
            worker.work = None
            next_work = self._next_work(worker)
        if next_work is not None:
            self._send(worker, next_work)
        if len(work.positions) > 1:
            self._requeue(work, split=True)  # which item? pickle and send them one by one
        else:
            error = _exception(record, "while unpickling the arguments in the worker")
            work.job.deliver(work, 0, [None], {0: error}, 0.0)

    def _on_function_failed(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        _, work_id, record = message
        work = worker.work
        if work is None or work.id != work_id:
            return
        with self._lock:
            worker.work = None
            next_work = self._next_work(worker)
        if next_work is not None:
            self._send(worker, next_work)
        error = _exception(record, "while unpickling the task's function in the worker")
        _fail(work, error)

    # ── deaths and deadlines ─────────────────────────────────────────────────────

    def _on_sentinel(self, sentinel: int) -> None:
        with self._lock:
            dying = self._dying.pop(sentinel, None)
        if dying is not None:
            _reap(dying)
            return
        worker = self._workers.get(sentinel)
        if worker is None:
            return
        self._drain_results(worker)  # results sent before dying still count
        with self._lock:
            self._workers.pop(sentinel, None)
            if worker in self._idle:
                self._idle.remove(worker)
        _reap(worker)
        if worker.work is not None and self._terminating:
            work, first = worker.work, worker.reported
            worker.work = None
            _fail(work.subset(range(first, len(work.positions))), _terminated())
        elif not worker.ready:
            self._on_start_failure(worker)
        elif worker.work is not None:
            self._stats["crashed"] += 1
            self._settle(worker, _blame_crash(worker))
        self._replace()

    def _drain_results(self, worker: _Worker) -> None:
        conn = worker.result_conn
        try:
            while not worker.eof and conn.poll():
                self._on_message(worker, conn.recv_bytes())
        except (EOFError, OSError):
            worker.eof = True

    def _on_start_failure(self, worker: _Worker) -> None:
        """A worker died before it was ready. Replace it, unless that is hopeless.

        A worker that exits with an error while starting, before any worker ever
        started, is taken as systematic (most often a script without a main guard, or an
        import that fails in a fresh process): the pool breaks at once rather than
        respawning forever. Deaths by a signal are counted, and break the pool only when
        they happen several times in a row.
        """
        self._start_failures += 1
        if self._broken is not None:
            return
        code = worker.exitcode
        killed = code is not None and code < 0
        if not killed and not self._ever_ready:
            message = (
                f"worker processes exit while starting (exit status {code}; their error is "
                f"printed above, on standard error). The most common cause: {GUARD_HINT}"
            )
        elif self._start_failures >= MAX_START_FAILURES:
            how = WorkerCrashed(code, worker.pid).signal_name or f"exit status {code}"
            message = (
                f"worker processes died while starting, {self._start_failures} in a row ({how})"
            )
        else:
            return
        self._break(BrokenPool(message))

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        expired = []
        with self._lock:
            for worker in list(self._workers.values()):
                work = worker.work
                timeout = None if work is None else work.job.task_timeout
                if timeout is not None and now >= worker.item_started + timeout:
                    expired.append(worker)
            for worker in [*self._dying.values(), *self._workers.values()]:
                if worker.kill_at is not None and now >= worker.kill_at:
                    _signal(worker, signal.SIGKILL)
                    worker.kill_at = now + 3600  # signalled; wait for the sentinel
        for worker in expired:
            self._expire(worker)

    def _expire(self, worker: _Worker) -> None:
        work = worker.work
        assert work is not None and work.job.task_timeout is not None
        self._condemn(worker)
        self._stats["timed_out"] += 1
        blame = _blame_timeout(worker)
        self._settle(worker, blame)
        self._replace()

    def _condemn(self, worker: _Worker) -> None:
        """Stop listening to ``worker`` and kill it (SIGTERM now, SIGKILL after a grace)."""
        with self._lock:
            self._workers.pop(worker.sentinel, None)
            if worker in self._idle:
                self._idle.remove(worker)
            worker.kill_at = time.monotonic() + KILL_GRACE
            self._dying[worker.sentinel] = worker
        _signal(worker, signal.SIGTERM)

    def _settle(self, worker: _Worker, blame: _Blame) -> None:
        """Fail the blamed item of the worker's work and re-queue the rest."""
        work = worker.work
        worker.work = None
        assert work is not None
        if blame.rerun:
            self._requeue(work.subset(blame.rerun, flush=blame.flush))
        if blame.split:
            self._requeue(work.subset(blame.split), split=True)
        if blame.offset is not None:
            assert blame.error is not None
            work.job.deliver(work, blame.offset, [None], {0: blame.error})

    def _requeue(self, work: Work, *, split: bool = False) -> None:
        """Put ``work`` back at the head of the queue (``split``: as one work per item)."""
        works = [work.subset([i]) for i in range(len(work.positions))] if split else [work]
        sends = []
        with self._lock:
            if self._terminating or self._broken is not None:
                error: BaseException | None = self._broken or _terminated()
            else:
                error = None
                self._pending.extendleft(reversed(works))
                while self._idle and self._pending:
                    worker = self._idle.pop()
                    nxt = self._next_work(worker)
                    if nxt is not None:
                        sends.append((worker, nxt))
        if error is not None:
            for w in works:
                _fail(w, error)
        for worker, nxt in sends:
            self._send(worker, nxt)

    # ── stopping ─────────────────────────────────────────────────────────────────

    def _retire(self, worker: _Worker) -> None:
        """With the lock held: ask an idle worker to exit (it has done its quota)."""
        worker.kill_at = time.monotonic() + EXIT_GRACE
        self._workers.pop(worker.sentinel, None)
        self._dying[worker.sentinel] = worker
        _close_quietly(worker.task_conn)  # EOF tells it to exit
        if not self._closing:
            self._stats["restarts"] += 1
            self._respawns += 1  # started by the dispatcher, outside the lock

    def _maybe_stop_workers(self) -> None:
        """Start replacements for retired workers; once closing and idle, stop them all."""
        while self._respawns and not self._closing:
            self._respawns -= 1
            self._spawn()
        with self._lock:
            if not self._closing or self._pending:
                return
            if any(w.work is not None for w in self._workers.values()):
                return
            leaving = list(self._workers.values())
            for worker in leaving:
                self._workers.pop(worker.sentinel)
                grace = KILL_GRACE if self._terminating else EXIT_GRACE
                worker.kill_at = time.monotonic() + grace
                self._dying[worker.sentinel] = worker
            self._idle.clear()
        for worker in leaving:
            _close_quietly(worker.task_conn)
            if self._terminating:
                _signal(worker, signal.SIGTERM)

    def _break(self, error: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = error
            self._closing = True
            pending = list(self._pending)
            self._pending.clear()
        for work in pending:
            _fail(work, error)
        self._wake()

    def _stop_all(self) -> None:
        """Dispatcher exit: whatever is left is killed and reaped; queued work fails."""
        with self._lock:
            workers = [*self._workers.values(), *self._dying.values()]
            self._workers.clear()
            self._dying.clear()
            self._idle.clear()
            pending = list(self._pending)
            self._pending.clear()
        running = [
            w.work.subset(range(w.reported, len(w.work.positions)))
            for w in workers
            if w.work is not None and w.reported < len(w.work.positions)
        ]
        for worker in workers:
            _close_quietly(worker.task_conn)
            _signal(worker, signal.SIGKILL)
            _reap(worker)
        error = self._broken or _terminated()
        for work in [*pending, *running]:
            _fail(work, error)
        if self._sharer is not None:
            self._sharer.close()

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closing = True
            dropped = list(self._pending) if cancel_futures else []
            if cancel_futures:
                self._pending.clear()
            thread = self._thread
        for work in dropped:
            work.job.drop(work)
        if wait:
            self._join_retired()
        if thread is None:
            return
        self._wake()
        if wait and thread is not threading.current_thread():
            thread.join()

    def terminate(self) -> None:
        with self._lock:
            self._closing = self._terminating = True
            dropped = list(self._pending)
            self._pending.clear()
            running = [w for w in self._workers.values() if w.work is not None]
            thread = self._thread
        for work in dropped:
            work.job.drop(work)
        for worker in running:
            worker.kill_at = time.monotonic() + KILL_GRACE
            _signal(worker, signal.SIGTERM)
        self._join_retired()
        if thread is None:
            return
        self._wake()
        if thread is not threading.current_thread():
            thread.join(KILL_GRACE + 5.0)

    def _join_retired(self) -> None:
        with self._lock:
            retired, self._retired_threads = self._retired_threads, []
        for thread in retired:
            if thread is not threading.current_thread():
                thread.join()

    def usable(self) -> bool:
        """Open and not broken: it can take more work (a warm pool may be reused)."""
        return not self._closing and self._broken is None

    def stats(self) -> ExecutorStats:
        with self._lock:
            alive = len(self._workers)
            idle = len(self._idle)
            pending = len(self._pending)
        s = self._stats
        return ExecutorStats(
            self.name,
            self.workers,
            alive=alive,
            idle=idle,
            pending=pending,
            tasks_done=s["tasks_done"],
            restarts=s["restarts"],
            crashed=s["crashed"],
            timed_out=s["timed_out"],
        )


# ── blame ───────────────────────────────────────────────────────────────────────


class _Blame:
    """Which item of a work failed (``offset``, ``error``) and what runs again.

    ``rerun`` offsets run again as one work, reporting in ``flush`` mode (None: as
    before); ``split`` offsets run again as one work each.
    """

    __slots__ = ("error", "flush", "offset", "rerun", "split")

    def __init__(
        self,
        offset: int | None = None,
        error: BaseException | None = None,
        rerun: Sequence[int] = (),
        flush: FlushMode | None = None,
        split: Sequence[int] = (),
    ) -> None:
        self.offset = offset
        self.error = error
        self.rerun = list(rerun)
        self.flush = flush
        self.split = list(split)


_PHASES = {
    _worker.PHASE_UNPICKLING: "unpickling the arguments",
    _worker.PHASE_REPORTING: "pickling the result",
    _worker.PHASE_FAST: "running the task",
}


def _blame(worker: _Worker, make_error: Callable[[int, str], BaseException]) -> _Blame:
    """Decide, from the worker's shared slot, which item its death or hang is due to.

    When the slot cannot say (a tight FAST loop; several results being pickled; several
    items being unpickled), the unreported items run again in a finer mode, so that if
    the fault comes back it comes back pinned to one item: FAST -> TRACKED (the slot names
    the item), REPORTING -> EACH (one result per report), UNPICKLING -> one work per item.
    A fault that does not come back (SIGKILL from outside, say) then costs nothing.
    """
    work = worker.work
    assert work is not None
    first = worker.reported
    unreported = list(range(first, len(work.positions)))
    work_id, position = worker.slot[0], worker.slot[1]
    if work_id != work.id or position in (_worker.PHASE_IDLE, _worker.PHASE_CLEANUP):
        # It had not started this work, or it had sent the results it had and was
        # dropping them: no item is to blame, the rest simply runs elsewhere.
        return _Blame(rerun=unreported)
    if position >= 0:
        # Items before `position` finished, but their results were lost with the worker.
        rest = [o for o in unreported if o != position]
        return _Blame(position, make_error(position, "running the task"), rerun=rest)
    phase = _PHASES.get(position, "running the task")
    each = work.flush is FlushMode.EACH
    if len(unreported) == 1 or (each and position == _worker.PHASE_REPORTING):
        # A work in EACH mode reports every item, so the one being reported is the first.
        return _Blame(first, make_error(first, phase), rerun=unreported[1:])
    if position == _worker.PHASE_UNPICKLING:
        return _Blame(split=unreported)
    finer = FlushMode.EACH if position == _worker.PHASE_REPORTING else FlushMode.TRACKED
    return _Blame(rerun=unreported, flush=finer)


def _blame_crash(worker: _Worker) -> _Blame:
    exitcode = worker.exitcode
    work = worker.work
    assert work is not None

    def error(offset: int, phase: str) -> BaseException:
        return WorkerCrashed(exitcode, worker.pid, work.item_index(offset), phase)

    return _blame(worker, error)


def _blame_timeout(worker: _Worker) -> _Blame:
    work = worker.work
    assert work is not None and work.job.task_timeout is not None
    timeout = work.job.task_timeout
    return _blame(worker, lambda offset, _: TaskTimeout(timeout, work.item_index(offset)))


# ── helpers ─────────────────────────────────────────────────────────────────────


def _context(start_method: str | BaseContext | None) -> BaseContext:
    if isinstance(start_method, BaseContext):
        return start_method
    method = start_method or default_start_method()
    methods = multiprocessing.get_all_start_methods()
    if method not in methods:
        raise ValueError(f"unknown start_method {method!r}; accepted here: {', '.join(methods)}")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # Workers fork from a server that has already imported the worker loop.
        ctx.set_forkserver_preload(["anypool._backends._worker"])
    return ctx


def _pickle_initializer(
    initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> bytes | _AtWorkerStart | None:
    if initializer is None:
        return None
    from .._serialize import serialization_error

    try:
        _StartCheck(io.BytesIO(), 5).dump(initargs)
    except RuntimeError:
        pass  # a multiprocessing object (Lock, Queue, Value): it pickles at worker start
    except Exception:
        # Arguments only cloudpickle can send (a lambda, a closure) go as bytes, now.
        try:
            data: bytes = cloudpickle.dumps((initializer, initargs), 5)
        except Exception as exc:
            what = "(initializer, initargs)"
            raise serialization_error((initializer, initargs), what, exc) from exc
        return data
    try:
        cloudpickle.dumps(initializer, 5)  # fail here, not in every worker
    except Exception as exc:
        raise serialization_error(initializer, "initializer", exc) from exc
    return _AtWorkerStart(initializer, initargs)


def _at_start(obj: Any) -> Any:
    raise RuntimeError(f"{type(obj).__name__} objects pickle only as a process starts")


class _StartCheck(pickle.Pickler):
    """Pickles as ``Process.start()`` will, minus the side effects.

    multiprocessing's reducers for pipes, sockets and shared-memory arenas hand a file
    descriptor to the process being started; outside a start they would start a
    descriptor-sharing thread instead. Here they only say "at worker start".
    """

    dispatch_table = collections.ChainMap(  # noqa: RUF012 (read-only, like ForkingPickler's)
        dict.fromkeys(
            (socket.socket, multiprocessing.connection.Connection, multiprocessing.heap.Arena),
            _at_start,
        ),
        ForkingPickler._extra_reducers,  # type: ignore[attr-defined]
        copyreg.dispatch_table,  # type: ignore[arg-type]
    )


class _AtWorkerStart:
    """The initializer and its ``initargs``, pickled as each worker process starts.

    As with ``multiprocessing.Pool``, the arguments travel inside ``Process.start()``,
    the one moment multiprocessing's own objects (Lock, Queue, Value, an
    ``anypool.Channel(processes=True)``) may be pickled; they are pickled by that same
    pickler, so shared memory and pipes reach the worker once. The initializer itself
    is cloudpickled (lambdas work). Under 'fork' nothing is pickled: the worker
    receives this object as it is.
    """

    __slots__ = ("initargs", "initializer")

    def __init__(self, initializer: Callable[..., Any] | bytes, initargs: tuple[Any, ...]) -> None:
        self.initializer = initializer
        self.initargs = initargs

    def __reduce__(self) -> tuple[Any, ...]:
        fn = self.initializer
        data = fn if isinstance(fn, bytes) else cloudpickle.dumps(fn, 5)
        return (_AtWorkerStart, (data, self.initargs))


def _decode_results(
    blob: bytes, error_blob: bytes | None, count: int
) -> tuple[list[Any] | None, dict[int, BaseException]]:
    errors: dict[int, BaseException] = {}
    if error_blob is not None:
        for offset, record in pickle.loads(error_blob).items():
            errors[offset] = _exception(record)
    try:
        values: list[Any] = pickle.loads(blob)
    except BaseException as exc:  # the result's own code ran here, in the dispatcher
        error = as_task_exception(exc)
        attach(error, "anypool: raised while unpickling the task's result in the parent")
        return None, {0: error}
    return values, errors


def _exception(
    record: tuple[bytes | None, str, str, str], where: str | None = None
) -> BaseException:
    data, type_name, message, text = record
    exc: BaseException | None = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except BaseException:
            exc = None
    if exc is None:
        exc = TaskError(type_name, message, text)
    exc.__cause__ = RemoteTraceback(text)
    if where is not None:
        attach(exc, f"anypool: raised {where}")
    return exc


def _sharer(shared_memory: bool | int, wake: Callable[[], None]) -> ArraySharer | None:
    if shared_memory is False or not _sharing.available():
        return None
    if shared_memory is True:
        return ArraySharer(_sharing.DEFAULT_THRESHOLD, wake)
    if isinstance(shared_memory, int) and shared_memory >= 0:
        return ArraySharer(shared_memory, wake)
    raise ValueError(
        f"shared_memory must be True, False or a size in bytes >= 0, got {shared_memory!r}"
    )


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _terminated() -> BrokenPool:
    return BrokenPool("the process pool was terminated (KeyboardInterrupt or terminate())")


def _fail(work: Work, error: BaseException) -> None:
    n = len(work.positions)
    work.job.deliver(work, 0, [None] * n, dict.fromkeys(range(n), error), 0.0)


def _signal(worker: _Worker, signum: int) -> None:
    try:
        os.kill(worker.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(worker: _Worker) -> None:
    try:
        worker.process.join(timeout=5)
        worker.exitcode = worker.process.exitcode
    except ValueError:
        return  # already reaped and closed
    for conn in (worker.task_conn, worker.result_conn):
        _close_quietly(conn)
    try:
        worker.process.close()
    except ValueError:
        pass  # still running: left to the final kill


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except OSError:
        pass


# ── SIGTERM ────────────────────────────────────────────────────────────────────
#
# SIGTERM's default action kills this process on the spot: no finally blocks, no
# shutdown, workers left to notice their parent is gone. While a process pool is alive,
# anypool makes SIGTERM raise KeyboardInterrupt in the main thread instead (as Ctrl-C
# does), so the caller's `with` block stops the workers promptly and cleanly. Only the
# default handler is replaced, never one the program installed itself; once no pool is
# alive, the handler restores the default and re-sends the signal to itself.


def _hook_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no such signal here
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    if any(not b._closing for b in list(_live)):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _terminate_all() -> None:
    """At interpreter exit: stop every pool that is still running."""
    for backend in list(_live):
        backend.terminate()


if hasattr(threading, "_register_atexit"):
    # Runs before the interpreter joins threads, like concurrent.futures' own hook.
    threading._register_atexit(_terminate_all)
