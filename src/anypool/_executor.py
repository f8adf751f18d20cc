"""The Executor: one concurrent.futures.Executor over every backend."""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from ._backends import Backend, ExecutorStats, backend_class
from ._errors import describe
from ._mapping import DEFAULT_MAX_IN_FLIGHT, BatchSizer, MapJob, MapRun, input_items
from ._progress import make_progress
from ._tasks import CallMode, FutureJob, Work

__all__ = ["DEFAULT_BACKEND", "Executor", "imap", "imap_unordered", "map"]

T = TypeVar("T")

#: The backend used when none is named. ``"threads"`` until ``"auto"`` exists: it runs
#: any function (nothing needs to pickle) and helps whenever the work waits or releases
#: the GIL.
DEFAULT_BACKEND = "threads"

OnError = Literal["raise", "collect"]
_ON_ERROR = ("raise", "collect")
_PROCESS_ONLY = ("start_method", "max_tasks_per_worker")
_DASK_ONLY = ("address", "security", "connect_timeout")


class Executor(concurrent.futures.Executor):
    """Run callables concurrently on threads, processes, or in the caller's thread.

    A real :class:`concurrent.futures.Executor`: ``submit`` returns a
    :class:`concurrent.futures.Future` that works with ``wait`` and ``as_completed``, and
    ``map`` has the standard library's semantics. ``imap``, ``imap_unordered`` and
    ``starmap`` behave like :class:`multiprocessing.pool.Pool`'s.

    Args:
        backend: ``"threads"`` (the default for now), ``"processes"``, ``"serial"`` or
            ``"dask"`` (a Dask cluster; needs ``pip install 'anypool[dask]'``).
        workers: how many workers; ``None`` picks per backend: processes: the CPUs this
            process may use; threads: ``min(32, CPUs + 4)``; serial: 1; dask: the
            cluster's threads (with ``address``), else a local cluster of one worker
            process per CPU. With ``address``, a number caps the tasks in flight.
        chunksize: items per batch sent to a worker: ``"auto"`` measures the work and
            sizes batches to take about 20 ms (processes), 5 ms (threads) or 100 ms
            (dask); an int fixes it.
        progress: show a progress bar (done/total, rate, time left) on standard error.
        task_timeout: seconds one task may run. A process task past it is killed and
            fails with :class:`TaskTimeout`; a thread task cannot be killed, so its caller
            gets ``TaskTimeout`` on time and the thread is abandoned (on dask, a thread
            of the worker process is abandoned the same way).
        retries: how many times a failed task is run again before its failure counts.
        retry_on: the exception types that are retried (default: any ``Exception``,
            which includes ``WorkerCrashed`` and ``TaskTimeout``).
        on_error: for map-like calls: ``"raise"`` (the first failure is raised when
            reached; later work is cancelled) or ``"collect"`` (each failed slot holds a
            :class:`Failure`; every other result is kept).
        initializer, initargs: ``initializer(*initargs)`` runs once in each worker before
            any task. If it fails, the pool is broken with :class:`InitializerError`.
        start_method: processes only: ``"forkserver"`` (the Linux default), ``"spawn"``
            or ``"fork"``, or a ``multiprocessing`` context.
        max_tasks_per_worker: processes only: replace a worker after this many tasks.
        address: dask only: the scheduler, e.g. ``"tcp://scheduler-host:8786"``; default: the
            ``ANYPOOL_DASK_ADDRESS`` environment variable, else a ``LocalCluster`` on
            127.0.0.1 that lives as long as the executor.
        security: dask only: a ``distributed.Security`` (TLS), passed to Dask as is.
        connect_timeout: dask only: seconds to wait for the scheduler (default 10);
            past it, :class:`ClusterUnreachable` names the address.
        max_in_flight: the most items of one map held between the input and the caller.

    Example::

        import anypool

        def square(x):
            return x * x

        if __name__ == "__main__":
            with anypool.Executor("processes", workers=2) as ex:
                future = ex.submit(square, 3)
                print(future.result())                  # 9
                print(list(ex.map(square, range(5))))   # [0, 1, 4, 9, 16]
    """

    def __init__(
        self,
        backend: str = DEFAULT_BACKEND,
        workers: int | None = None,
        *,
        chunksize: int | Literal["auto"] = "auto",
        progress: bool = False,
        task_timeout: float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        on_error: OnError = "raise",
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | None = None,
        max_tasks_per_worker: int | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        address: str | None = None,
        security: Any = None,
        connect_timeout: float | None = None,
    ) -> None:
        cls = backend_class(backend)
        self._workers = _check_workers(workers, cls)
        self._chunksize = _check_chunksize(chunksize)
        self._task_timeout = _check_timeout(task_timeout, cls)
        self._retries = _check_retries(retries)
        self._retry_on = _check_retry_on(retry_on)
        self._on_error = _check_on_error(on_error)
        self._progress = bool(progress)
        self._max_in_flight = _positive_int(max_in_flight, "max_in_flight")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {describe(initializer)}")
        options: dict[str, Any] = {}
        if start_method is not None or max_tasks_per_worker is not None:
            if backend != "processes":
                raise ValueError(
                    f"{' and '.join(_PROCESS_ONLY)} apply only to backend='processes', "
                    f"not {backend!r}"
                )
            options["start_method"] = start_method
            if max_tasks_per_worker is not None:
                options["max_tasks_per_worker"] = _positive_int(
                    max_tasks_per_worker, "max_tasks_per_worker"
                )
        if address is not None or security is not None or connect_timeout is not None:
            if backend != "dask":
                raise ValueError(
                    f"{', '.join(_DASK_ONLY)} apply only to backend='dask', not {backend!r}"
                )
            options.update(address=address, security=security, connect_timeout=connect_timeout)
        if backend == "dask":
            options["workers_from_cluster"] = workers is None
        self._backend: Backend = cls(
            workers=self._workers, initializer=initializer, initargs=tuple(initargs), **options
        )
        self._workers = self._backend.workers  # a Dask cluster's size is known once connected
        self._shutdown_lock = threading.Lock()
        self._shutdown = False
        self._submit_progress: Any = None
        self._finalizer = weakref.finalize(self, self._backend.shutdown, wait=False)

    # ── properties ───────────────────────────────────────────────────────────────

    @property
    def backend(self) -> str:
        """The name of the backend this executor runs on."""
        return self._backend.name

    @property
    def workers(self) -> int:
        """The number of workers."""
        return self._workers

    def stats(self) -> ExecutorStats:
        """A snapshot: workers alive and idle, queued tasks, restarts, timeouts.

        Example::

            with anypool.Executor("threads", workers=4) as ex:
                ex.submit(print, "hi").result()
                ex.stats().tasks_done    # 1
        """
        return self._backend.stats()

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<anypool.Executor backend={self.backend!r} workers={self._workers} {state}>"

    # ── submit ───────────────────────────────────────────────────────────────────

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; return a :class:`concurrent.futures.Future`.

        On the processes backend the function and arguments are pickled here, so an
        argument that cannot cross to another process raises
        :class:`SerializationError` at once, naming the culprit.

        Example::

            with anypool.Executor("threads") as ex:
                ex.submit(pow, 2, 10).result()   # 1024
        """
        _check_callable(fn, "submit")
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
        future: Future[T] = Future()
        job = FutureJob(
            fn,
            args,
            kwargs,
            future,
            self._backend.submit,
            task_timeout=self._task_timeout,
            retries=self._retries,
            retry_on=self._retry_on,
        )
        job.backend_name = self._backend.name
        if self._progress:
            self._track(future)
        self._backend.submit(Work(job.batch))
        return future

    def _track(self, future: Future[Any]) -> None:
        with self._shutdown_lock:
            if self._submit_progress is None:
                self._submit_progress = make_progress(True, "tasks")
            bar = self._submit_progress
        bar.add_total(1)
        future.add_done_callback(lambda _: bar.advance(1))

    # ── map and friends ──────────────────────────────────────────────────────────

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | Literal["auto"] | None = None,
        progress: bool | None = None,
        task_timeout: float | None = None,
        retries: int | None = None,
        on_error: OnError | None = None,
    ) -> Iterator[T]:
        """Return an iterator of ``fn`` applied to the items of ``iterables``, in order.

        Like :meth:`concurrent.futures.Executor.map`: several iterables are zipped
        (stopping at the shortest) and ``timeout`` counts from this call. The input is
        read lazily: at most ``max_in_flight`` items are queued or waiting for you.
        Options given here override the executor's for this call.

        Example::

            with anypool.Executor("processes") as ex:
                list(ex.map(pow, [2, 3], [5, 2]))   # [32, 9]
        """
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        mode = CallMode.ONE if len(iterables) == 1 else CallMode.STAR
        return _flatten(
            self._start(
                "map()",
                fn,
                mode,
                iterables,
                ordered=True,
                timeout=timeout,
                chunksize=chunksize,
                progress=progress,
                task_timeout=task_timeout,
                retries=retries,
                on_error=on_error,
            )
        )

    def imap(
        self,
        fn: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | Literal["auto"] | None = None,
        **options: Any,
    ) -> Iterator[T]:
        """Lazily yield ``fn(item)`` for each item, in input order (like ``Pool.imap``).

        Example::

            with anypool.Executor("threads") as ex:
                for result in ex.imap(str.upper, ["a", "b"]):
                    print(result)            # A, then B
        """
        return _flatten(
            self._start(
                "imap()",
                fn,
                CallMode.ONE,
                (iterable,),
                ordered=True,
                chunksize=chunksize,
                **options,
            )
        )

    def imap_unordered(
        self,
        fn: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | Literal["auto"] | None = None,
        **options: Any,
    ) -> Iterator[T]:
        """Yield ``fn(item)`` for each item as results finish (like ``Pool.imap_unordered``).

        Example::

            with anypool.Executor("threads") as ex:
                sorted(ex.imap_unordered(abs, [-2, 1]))   # [1, 2]
        """
        return _flatten(
            self._start(
                "imap_unordered()",
                fn,
                CallMode.ONE,
                (iterable,),
                ordered=False,
                chunksize=chunksize,
                **options,
            )
        )

    def starmap(
        self,
        fn: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | Literal["auto"] | None = None,
        **options: Any,
    ) -> list[T]:
        """Return ``[fn(*args) for args in iterable]`` computed concurrently (``Pool.starmap``).

        Example::

            with anypool.Executor("processes") as ex:
                ex.starmap(pow, [(2, 3), (3, 2)])   # [8, 9]
        """
        return _collect(
            self._start(
                "starmap()",
                fn,
                CallMode.STAR,
                (iterable,),
                ordered=True,
                chunksize=chunksize,
                **options,
            )
        )

    def _start(
        self,
        label: str,
        fn: Callable[..., Any],
        mode: CallMode,
        iterables: tuple[Iterable[Any], ...],
        *,
        ordered: bool,
        timeout: float | None = None,
        chunksize: int | Literal["auto"] | None = None,
        progress: bool | None = None,
        task_timeout: float | None = None,
        retries: int | None = None,
        on_error: OnError | None = None,
    ) -> Iterator[list[Any]]:
        """Start a map-like call; return its results as an iterator of ordered chunks."""
        _check_callable(fn, label.rstrip("()"))
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
        backend = self._backend
        job = MapJob(
            fn,
            mode,
            task_timeout=self._task_timeout
            if task_timeout is None
            else _check_timeout(task_timeout, type(backend)),
            retries=self._retries if retries is None else _check_retries(retries),
            retry_on=self._retry_on,
            label=label,
        )
        job.backend_name = backend.name
        if backend.needs_pickling:
            job.fn_payload()  # an unpicklable function fails here, before any work
        items, total = input_items(mode, iterables)
        size = self._chunksize if chunksize is None else _check_chunksize(chunksize)
        target = backend.batch_target or 0.001
        run = MapRun(
            job,
            backend,
            items,
            total=total,
            sizer=BatchSizer(target, backend.workers, size),
            collect=(self._on_error if on_error is None else _check_on_error(on_error))
            == "collect",
            timeout=timeout,
            max_in_flight=self._max_in_flight,
            progress=make_progress(
                self._progress if progress is None else progress, label.rstrip("()"), total
            ),
        )
        if not backend.inline:
            run.top_up()  # work starts now, as with concurrent.futures; results as you iterate
        return run.ordered_chunks() if ordered else run.unordered_chunks()

    # ── shutting down ────────────────────────────────────────────────────────────

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, block until queued work is done.

        ``cancel_futures=True`` cancels tasks that have not started. Worker processes
        and threads are stopped once they are idle.
        """
        with self._shutdown_lock:
            self._shutdown = True
            bar, self._submit_progress = self._submit_progress, None
        self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)
        if bar is not None and wait:
            bar.close()

    def terminate(self) -> None:
        """Stop now: cancel queued tasks and kill running ones where possible.

        Worker processes are killed (their tasks fail with :class:`BrokenPool`); threads
        cannot be killed, so running thread tasks finish in the background. Used on
        ``KeyboardInterrupt`` inside a ``with`` block.
        """
        with self._shutdown_lock:
            self._shutdown = True
            bar, self._submit_progress = self._submit_progress, None
        self._backend.terminate()
        if bar is not None:
            bar.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()  # Ctrl-C or SystemExit: do not wait for running tasks
        else:
            self.shutdown(wait=True, cancel_futures=exc_type is not None)


def _flatten(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    try:
        for chunk in chunks:
            yield from chunk
    finally:
        chunks.close()  # type: ignore[attr-defined]


def _collect(chunks: Iterator[list[Any]]) -> list[Any]:
    out: list[Any] = []
    try:
        for chunk in chunks:
            out.extend(chunk)
    finally:
        chunks.close()  # type: ignore[attr-defined]
    return out


# ── module-level shortcuts ──────────────────────────────────────────────────────


def map(
    fn: Callable[..., T],
    iterable: Iterable[Any],
    *iterables: Iterable[Any],
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Any,
) -> list[T]:
    """Return ``[fn(x) for x in iterable]``, computed concurrently, in input order.

    Several iterables are zipped as by the builtin ``map``. ``options`` are
    :class:`Executor`'s (``progress=True``, ``task_timeout=``, ``on_error="collect"``,
    ``chunksize=``, ...). The pool is created for the call and shut down after it.

    Example::

        import anypool

        def square(x):
            return x * x

        if __name__ == "__main__":
            anypool.map(square, range(5), backend="processes")   # [0, 1, 4, 9, 16]
    """
    with Executor(backend, workers, **_executor_options(options)) as ex:
        mode = CallMode.ONE if not iterables else CallMode.STAR
        call_options = _call_options(options)
        return _collect(
            ex._start("map()", fn, mode, (iterable, *iterables), ordered=True, **call_options)
        )


def imap(
    fn: Callable[[Any], T],
    iterable: Iterable[Any],
    *,
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Any,
) -> Iterator[T]:
    """Lazily yield ``fn(item)`` in input order; the pool lives as long as the iterator.

    Example::

        for line in anypool.imap(str.strip, open("urls.txt")):
            print(line)
    """
    return _owned(
        lambda ex: ex.imap(fn, iterable, **_call_options(options)), backend, workers, options
    )


def imap_unordered(
    fn: Callable[[Any], T],
    iterable: Iterable[Any],
    *,
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    **options: Any,
) -> Iterator[T]:
    """Yield ``fn(item)`` as results finish; the pool lives as long as the iterator.

    Example::

        for size in anypool.imap_unordered(len, ["a", "bbb"]):
            print(size)
    """
    return _owned(
        lambda ex: ex.imap_unordered(fn, iterable, **_call_options(options)),
        backend,
        workers,
        options,
    )


def _owned(
    start: Callable[[Executor], Iterator[T]],
    backend: str,
    workers: int | None,
    options: dict[str, Any],
) -> Iterator[T]:
    ex = Executor(backend, workers, **_executor_options(options))
    try:
        results = start(ex)
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    return _closing(ex, results)


def _closing(ex: Executor, results: Iterator[T]) -> Iterator[T]:
    try:
        yield from results
    except BaseException as exc:
        if isinstance(exc, Exception):
            ex.shutdown(wait=True, cancel_futures=True)
        else:
            ex.terminate()
        raise
    else:
        ex.shutdown(wait=True)
    finally:
        if not ex._shutdown:  # closed early by the caller (break, del)
            ex.shutdown(wait=True, cancel_futures=True)


_CALL_ONLY = ("timeout",)
_CALL_AND_EXECUTOR = ("chunksize", "progress", "task_timeout", "retries", "on_error")


def _executor_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _CALL_ONLY}


def _call_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _CALL_ONLY}


# ── validation ──────────────────────────────────────────────────────────────────


def _check_callable(fn: Any, where: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{where}() needs a callable (a function, method, lambda or object with "
            f"__call__) as its first argument, got {describe(fn)} of type {type(fn).__name__}"
        )


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_workers(workers: Any, cls: type[Backend]) -> int:
    if workers is None:
        return cls.default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers must be a positive integer, or None for the {cls.name} backend's "
            f"default ({cls.default_workers()}), got {workers!r}"
        )
    return workers


def _check_chunksize(chunksize: Any) -> int | None:
    if chunksize == "auto":
        return None
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be 'auto' or a positive integer, got {chunksize!r}")
    return chunksize


def _check_timeout(task_timeout: Any, cls: type[Backend]) -> float | None:
    if task_timeout is None:
        return None
    if (
        isinstance(task_timeout, bool)
        or not isinstance(task_timeout, (int, float))
        or not (task_timeout > 0)
    ):
        raise ValueError(f"task_timeout must be a positive number of seconds, got {task_timeout!r}")
    if cls.inline:
        raise ValueError(
            f"task_timeout needs a backend that can stop or abandon a task ('threads' or "
            f"'processes'); the {cls.name} backend runs tasks in your own thread"
        )
    return float(task_timeout)


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    return retries


def _check_retry_on(retry_on: Any) -> tuple[type[BaseException], ...]:
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"retry_on must be exception types, got {describe(t)}")
    return types


def _check_on_error(on_error: Any) -> OnError:
    if on_error not in _ON_ERROR:
        accepted = ", ".join(repr(v) for v in _ON_ERROR)
        raise ValueError(f"on_error must be one of {accepted}, got {on_error!r}")
    return on_error  # type: ignore[no-any-return]
