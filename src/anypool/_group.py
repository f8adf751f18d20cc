"""TaskGroup: structured concurrency on any backend, and the cancellation scope.

::

    caller's thread (the with-block)         backend threads (workers, dispatcher)
    ────────────────────────────────         ─────────────────────────────────────
    __enter__: a _Scope, child of the
      current one (nesting), made current
    spawn(fn, ...) ── executor.submit ─────► the task runs; on threads with the group's
                                               scope current, so anypool.cancelled() sees it
                     _on_done(future)  ◄────── the future settles (in a backend thread)
                       a failure? record it; the first one cancels the scope:
                         queued tasks dropped, executor.terminate() (process tasks killed),
                         child scopes cancelled (nested groups)
    __exit__: wait until no task is pending; executor.shutdown(wait=True);
      raise ExceptionGroup(body error + every task failure)

The group owns a private Executor, so cancelling it (terminate) touches only its own
tasks. The group runs no thread of its own: callbacks run in the backend's threads.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar

from ._errors import BrokenPool, attach, describe
from ._executor import DEFAULT_BACKEND, Executor

__all__ = [
    "Scope",
    "TaskGroup",
    "TaskGroupStats",
    "cancelled",
    "current_scope",
    "is_coroutine_function",
    "run_in_scope",
]

T = TypeVar("T")


# ── cancellation scopes ─────────────────────────────────────────────────────────


class Scope:
    """A cancellable region: a TaskGroup or a Pipeline run. Scopes nest.

    Cancelling a scope runs its ``on_cancel`` hook once and cancels every child scope
    (a group opened inside it), which says ``by_parent``.
    """

    __slots__ = ("_children", "_lock", "_on_cancel", "by_parent", "cancelled", "parent")

    def __init__(self, parent: Scope | None, on_cancel: Callable[[], None]) -> None:
        self.parent = parent
        self.cancelled = False
        self.by_parent = False
        self._on_cancel = on_cancel
        self._children: set[Scope] = set()
        self._lock = threading.Lock()

    def attach(self) -> None:
        """Join the parent; a scope opened inside a cancelled one starts cancelled."""
        parent = self.parent
        if parent is None:
            return
        with parent._lock:
            if not parent.cancelled:
                parent._children.add(self)
                return
        self.cancel(by_parent=True)

    def detach(self) -> None:
        if self.parent is not None:
            with self.parent._lock:
                self.parent._children.discard(self)

    def cancel(self, *, by_parent: bool = False) -> bool:
        """Cancel this scope and its children; False if it was already cancelled."""
        with self._lock:
            if self.cancelled:
                return False
            self.cancelled, self.by_parent = True, by_parent
            children = list(self._children)
        self._on_cancel()
        for child in children:
            child.cancel(by_parent=True)
        return True


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "anypool_scope", default=None
)


def current_scope() -> Scope | None:
    return _current.get()


def cancelled() -> bool:
    """True inside a task of a TaskGroup (or a pipeline stage) that has been cancelled.

    A group is cancelled by the first failure of one of its tasks, by an exception in its
    ``with`` block, by :meth:`TaskGroup.cancel`, or by the cancellation of an enclosing
    group. Tasks on threads cannot be stopped from outside: a long task should call
    ``anypool.cancelled()`` now and then and return early when it is True. Tasks on
    processes need not: they are killed. Outside any group it returns False; in the
    ``with`` block itself it tells whether the group was cancelled.

    Example::

        import time
        import anypool

        def poll_until_cancelled():
            while not anypool.cancelled():
                time.sleep(0.01)
            return "stopped early"

        def fail():
            raise ValueError("boom")

        try:
            with anypool.TaskGroup("threads") as tg:
                tg.spawn(poll_until_cancelled)
                tg.spawn(fail)
        except ExceptionGroup as group:
            print(group.exceptions)   # (ValueError('boom'),)
    """
    scope = _current.get()
    return scope is not None and scope.cancelled


def is_coroutine_function(fn: Any) -> bool:
    """``async def`` functions, partials of one, and objects with ``async def __call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = None if inspect.isfunction(fn) else vars(type(fn)).get("__call__")
    return call is not None and inspect.iscoroutinefunction(call)


def run_in_scope(scope: Scope, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped so that, while it runs, ``scope`` is the current one."""
    if is_coroutine_function(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(scope)
            try:
                return await fn(*args, **kwargs)
            finally:
                _current.reset(token)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _current.set(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return run


# ── the task group ──────────────────────────────────────────────────────────────


@dataclasses.dataclass(frozen=True, slots=True)
class TaskGroupStats:
    """A snapshot of a TaskGroup (see ``TaskGroup.stats()``).

    Attributes:
        backend: the backend its tasks run on.
        workers: how many tasks may run at once.
        spawned: tasks spawned.
        running: tasks spawned and not settled yet (queued or running).
        failed: tasks that raised (cancellations are not failures).
        dropped: tasks cancelled before they ran.
        cancelled: whether the group was cancelled.

    Example::

        with anypool.TaskGroup("threads") as tg:
            tg.spawn(print, "hello")
        tg.stats().spawned   # 1
    """

    backend: str
    workers: int
    spawned: int
    running: int
    failed: int
    dropped: int
    cancelled: bool


_NEW, _OPEN, _EXITING, _DONE = "new", "open", "exiting", "done"


class TaskGroup:
    """Run tasks concurrently; leave the block only when every one has finished.

    In the manner of ``asyncio.TaskGroup`` and trio's nurseries, for threads and
    processes: ``spawn(fn, *args)`` starts a task and returns its
    :class:`concurrent.futures.Future`; leaving the ``with`` block waits for every task
    (also those spawned by tasks). The first task that fails cancels the group: tasks not
    started are dropped, running tasks on processes are killed, running tasks on threads
    see :func:`anypool.cancelled` turn True (threads cannot be killed; they are waited
    for). The block then raises an :class:`ExceptionGroup` holding every failure (and the
    block's own exception, if it raised one). No thread or process of the group outlives
    the block, also when the block raises or is interrupted with Ctrl-C (which is
    re-raised as it is, after the tasks are stopped).

    Groups nest: a group opened in the block or in a task of another group is cancelled
    with it; it then raises ``concurrent.futures.CancelledError``, which the enclosing
    group absorbs.

    Args:
        backend: ``"threads"`` (default), ``"processes"``, ``"serial"``, or any backend
            the :class:`Executor` accepts.
        workers: how many tasks run at once (the backend's default if None); further
            tasks wait their turn, so tasks that wait for each other need enough workers.
        options: any other :class:`Executor` option (``task_timeout``, ``retries``,
            ``initializer``/``initargs``, ``start_method``, ...).

    Example::

        import anypool

        def fetch(url):
            return f"<html of {url}>"

        with anypool.TaskGroup("threads", workers=4) as tg:
            pages = [tg.spawn(fetch, url) for url in ["a", "b", "c"]]
        print([page.result() for page in pages])   # every task is done here
    """

    def __init__(
        self, backend: str = DEFAULT_BACKEND, workers: int | None = None, **options: Any
    ) -> None:
        self._executor = Executor(backend, workers, **options)
        # Tasks that run in this process get the group's scope (for cancelled()).
        self._wrap = not self._executor._backend.needs_pickling
        self._cond = threading.Condition()
        self._state = _NEW
        self._pending: set[Future[Any]] = set()
        self._failures: list[BaseException] = []
        self._scope: Scope | None = None
        self._token: contextvars.Token[Scope | None] | None = None
        self._terminated = False
        self._spawned = self._settled = self._dropped = 0

    # ── the block ────────────────────────────────────────────────────────────────

    def __enter__(self) -> TaskGroup:
        with self._cond:
            if self._state != _NEW:
                raise RuntimeError("a TaskGroup can be used for one with-block; create another")
            self._state = _OPEN
        self._scope = Scope(_current.get(), self._cancel_tasks)
        self._scope.attach()
        self._token = _current.set(self._scope)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        scope = self._scope
        assert scope is not None
        with self._cond:
            self._state = _EXITING
        try:
            if exc is not None and not self._is_cancellation(exc):
                scope.cancel()
            self._join()
        finally:
            self._close()
        return self._outcome(exc)

    def _join(self) -> None:
        """Wait for every task and stop the workers; Ctrl-C here cancels first."""
        try:
            self._wait_pending()
        except BaseException:
            assert self._scope is not None
            self._scope.cancel()
            self._wait_pending()  # a second Ctrl-C gives up waiting
            self._executor.shutdown(wait=True)
            raise
        self._executor.shutdown(wait=True)

    def _wait_pending(self) -> None:
        with self._cond:
            while self._pending:
                self._cond.wait()

    def _close(self) -> None:
        with self._cond:
            self._state = _DONE
        assert self._scope is not None and self._token is not None
        self._scope.detach()
        try:
            _current.reset(self._token)
        except ValueError:
            pass  # exited in another context than it was entered in; nothing to restore

    def _outcome(self, exc: BaseException | None) -> bool:
        """Raise what the block must raise; True to swallow the block's own exception."""
        if exc is not None and not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: re-raised as they are
        errors: list[Exception] = []
        if exc is not None and not self._is_cancellation(exc):
            assert isinstance(exc, Exception)
            errors.append(exc)
        for failure in self._failures:
            if isinstance(failure, Exception) and not any(failure is e for e in errors):
                errors.append(failure)
        if errors:
            raise ExceptionGroup("anypool.TaskGroup: tasks failed", errors) from None
        assert self._scope is not None
        if self._scope.by_parent:
            raise CancelledError("the enclosing TaskGroup was cancelled")
        return exc is not None  # the block's CancelledError from our own cancellation

    # ── spawning ─────────────────────────────────────────────────────────────────

    def spawn(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Start ``fn(*args, **kwargs)`` in the group; return its Future.

        Works in the ``with`` block and in the group's own tasks while the group runs.
        In a cancelled group the task is not started: the returned Future is cancelled.

        Example::

            with anypool.TaskGroup("processes") as tg:
                future = tg.spawn(pow, 2, 10)
            future.result()   # 1024
        """
        if not callable(fn):
            raise TypeError(f"spawn() needs a callable as its first argument, got {describe(fn)}")
        with self._cond:
            if self._state not in (_OPEN, _EXITING):
                raise RuntimeError(self._not_open())
            scope = self._scope
            assert scope is not None
            self._spawned += 1
        if scope.cancelled:
            return self._drop()
        call = run_in_scope(scope, fn) if self._wrap else fn
        try:
            future = self._executor.submit(call, *args, **kwargs)
        except RuntimeError:
            if self.cancelled:  # cancelled meanwhile: the executor stopped taking tasks
                return self._drop()
            raise
        with self._cond:
            self._pending.add(future)
        future.add_done_callback(functools.partial(self._on_done, fn))
        return future

    def _not_open(self) -> str:
        if self._state == _NEW:
            return "spawn() needs an open group: use it as 'with anypool.TaskGroup() as tg:'"
        return "this TaskGroup has finished: spawn() works only while its with-block runs"

    def _drop(self) -> Future[Any]:
        future: Future[Any] = Future()
        future.cancel()
        with self._cond:
            self._settled += 1
            self._dropped += 1
        return future

    def _on_done(self, fn: Callable[..., Any], future: Future[Any]) -> None:
        # Runs in a backend thread (or the spawning thread, for a task already done).
        error = None if future.cancelled() else future.exception()
        if error is not None and self._is_cancellation(error):
            error = None
        if error is not None:
            attach(error, f"anypool: in TaskGroup task {_name(fn)}")
        with self._cond:
            self._pending.discard(future)
            self._settled += 1
            self._dropped += future.cancelled()
            if error is not None:
                self._failures.append(error)
            self._cond.notify_all()
        if error is not None and self._scope is not None:
            self._scope.cancel()  # the first failure cancels the rest

    def _is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the group's own cancellation rather than a failure."""
        if self._scope is None or not self._scope.cancelled:
            return False
        return isinstance(exc, CancelledError) or (isinstance(exc, BrokenPool) and self._terminated)

    # ── cancelling ───────────────────────────────────────────────────────────────

    def cancel(self) -> None:
        """Cancel the group: drop tasks not started, kill running process tasks.

        Without a failure, the block then ends normally.

        Example::

            with anypool.TaskGroup("threads") as tg:
                tg.spawn(print, "runs")
                tg.cancel()
                tg.spawn(print, "is dropped")   # a cancelled Future
        """
        if self._scope is None:
            raise RuntimeError(self._not_open())
        self._scope.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether the group has been cancelled."""
        return self._scope is not None and self._scope.cancelled

    def _cancel_tasks(self) -> None:
        with self._cond:
            pending = list(self._pending)
            self._terminated = True
        for future in pending:
            future.cancel()  # only those not started yet
        self._executor.terminate()

    def stats(self) -> TaskGroupStats:
        """A snapshot: tasks spawned, running, failed, dropped.

        Example::

            with anypool.TaskGroup("threads") as tg:
                tg.spawn(sum, [1, 2])
            tg.stats().spawned   # 1
        """
        with self._cond:
            return TaskGroupStats(
                backend=self._executor.backend,
                workers=self._executor.workers,
                spawned=self._spawned,
                running=self._spawned - self._settled,
                failed=len(self._failures),
                dropped=self._dropped,
                cancelled=self.cancelled,
            )

    def __repr__(self) -> str:
        return (
            f"<anypool.TaskGroup backend={self._executor.backend!r} "
            f"workers={self._executor.workers} {self._state}>"
        )


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or describe(fn)
