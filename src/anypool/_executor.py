"""The Executor: one concurrent.futures.Executor over every backend."""

from __future__ import annotations

import concurrent.futures
import copy
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from . import _warm
from ._auto import AUTO, AutoChooser, Profile
from ._backends import Backend, ExecutorStats, backend_class, backend_names
from ._backends._asyncio import is_coroutine_function, plain_function_error
from ._errors import SerializationError, describe
from ._mapping import DEFAULT_MAX_IN_FLIGHT, BatchSizer, MapJob, MapRun, input_items
from ._progress import make_progress
from ._tasks import Batch, CallMode, FutureJob, Work

__all__ = ["DEFAULT_BACKEND", "Executor", "imap", "imap_unordered", "map"]

T = TypeVar("T")

#: The backend used when none is named: ``"auto"`` measures each call's function on its
#: first items and picks serial, threads, processes or asyncio (see docs/auto.md).
DEFAULT_BACKEND = "auto"

OnError = Literal["raise", "collect"]
_ON_ERROR = ("raise", "collect")
_PROCESS_ONLY = ("start_method", "max_tasks_per_worker", "shared_memory")
_DASK_ONLY = ("address", "security", "connect_timeout")


class Executor(concurrent.futures.Executor):
    """Run callables concurrently on threads, processes, or in the caller's thread.

    A real :class:`concurrent.futures.Executor`: ``submit`` returns a
    :class:`concurrent.futures.Future` that works with ``wait`` and ``as_completed``, and
    ``map`` has the standard library's semantics. ``imap``, ``imap_unordered`` and
    ``starmap`` behave like :class:`multiprocessing.pool.Pool`'s.

    Args:
        backend: ``"auto"`` (the default: measure each call's work and choose),
            ``"threads"``, ``"processes"``, ``"asyncio"`` (coroutine functions),
            ``"serial"`` or ``"dask"`` (a Dask cluster; needs
            ``pip install 'anypool[dask]'``).
        workers: how many workers; ``None`` picks per backend: processes: the CPUs this
            process may use; threads: ``min(32, CPUs + 4)``; asyncio: 1000 coroutines at
            once; serial: 1; auto: per choice (see docs/auto.md); dask: the cluster's
            threads (with ``address``), else a local cluster of one worker process per
            CPU. With ``address``, a number caps the tasks in flight.
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
        shared_memory: processes only: NumPy arrays of at least 1 MiB (``True``), or of
            at least this many bytes (an int), go to workers through shared memory
            instead of being pickled for every task; workers get read-only views.
            ``False`` turns it off. Linux only; elsewhere arrays are pickled.
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
        shared_memory: bool | int = True,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        address: str | None = None,
        security: Any = None,
        connect_timeout: float | None = None,
        _warm: bool = False,
    ) -> None:
        cls = self._cls = _backend_class(backend)
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
        if (
            start_method is not None
            or max_tasks_per_worker is not None
            or shared_memory is not True
        ):
            if backend not in ("processes", AUTO):
                raise ValueError(
                    f"{', '.join(_PROCESS_ONLY)} apply only to backend='processes', not {backend!r}"
                )
            options["start_method"] = start_method
            if max_tasks_per_worker is not None:
                options["max_tasks_per_worker"] = _positive_int(
                    max_tasks_per_worker, "max_tasks_per_worker"
                )
            options["shared_memory"] = _check_shared_memory(shared_memory)
        if address is not None or security is not None or connect_timeout is not None:
            if backend != "dask":
                raise ValueError(
                    f"{', '.join(_DASK_ONLY)} apply only to backend='dask', not {backend!r}"
                )
            options.update(address=address, security=security, connect_timeout=connect_timeout)
        if backend == "dask":
            options["workers_from_cluster"] = workers is None
        lender = _Lender(initializer, tuple(initargs), options) if _warm else None
        if backend == AUTO:
            # The hook for backend="auto": the chooser measures each call and holds the
            # pools it chose (see _auto.py).
            chooser = _auto_chooser(
                workers, start_method, initializer, tuple(initargs), options, lender
            )
            self._pool = _Pool(None, chooser, lender)
        else:

            def make(n: int, **extra: Any) -> Backend:
                return cls(
                    workers=n, initializer=initializer, initargs=tuple(initargs), **options, **extra
                )

            backend_obj = (
                lender.borrow(backend, self._workers, make) if lender else make(self._workers)
            )
            self._pool = _Pool(backend_obj, None, lender)
            self._workers = backend_obj.workers  # a Dask cluster's size is known once connected

    @property
    def _backend(self) -> Backend:
        backend = self._pool.backend
        assert backend is not None, "an auto executor has no single backend"
        return backend

    @property
    def _auto(self) -> AutoChooser | None:
        return self._pool.auto

    def options(
        self,
        *,
        task_timeout: float | None = None,
        retries: int | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        on_error: OnError | None = None,
        chunksize: int | Literal["auto"] | None = None,
        progress: bool | None = None,
    ) -> Executor:
        """A view of this executor, on the same pool, with other per-task defaults.

        The way to give ``submit`` a per-call ``task_timeout`` or ``retries`` (its own
        keyword arguments go to the task). Shutting a view down shuts the pool down.

        Example::

            with anypool.Executor("processes") as ex:
                future = ex.options(task_timeout=2.0, retries=1).submit(compute, item)
        """
        view = copy.copy(self)
        if task_timeout is not None:
            view._task_timeout = _check_timeout(task_timeout, self._cls)
        if retries is not None:
            view._retries = _check_retries(retries)
        if retry_on is not None:
            view._retry_on = _check_retry_on(retry_on)
        if on_error is not None:
            view._on_error = _check_on_error(on_error)
        if chunksize is not None:
            view._chunksize = _check_chunksize(chunksize)
        if progress is not None:
            view._progress = bool(progress)
        return view

    # ── properties ───────────────────────────────────────────────────────────────

    @property
    def backend(self) -> str:
        """The name of the backend this executor runs on (with ``"auto"``: the backend
        of the latest call, or ``"auto"`` before the first)."""
        if self._auto is not None:
            current = self._auto.current
            return AUTO if current is None else current.name
        return self._backend.name

    @property
    def workers(self) -> int:
        """The number of workers (with ``"auto"``: of the latest call's pool)."""
        if self._auto is not None and self._auto.current is not None:
            return self._auto.current.workers
        return self._workers

    def explain(self) -> Profile:
        """What ``backend="auto"`` measured and chose for the latest call, as a
        :class:`Profile` (its ``str()`` is a readable report).

        With a named backend there was nothing to choose: the profile says so.

        Example::

            import anypool

            def square(x):
                return x * x

            if __name__ == "__main__":
                with anypool.Executor() as ex:
                    ex.map(square, range(100_000))
                    print(ex.explain().backend)   # serial
                    print(ex.explain())           # the measurements behind it
        """
        if self._auto is not None:
            return self._auto.explain()
        return Profile(
            function="",
            backend=self._backend.name,
            reason=f"backend={self._backend.name!r} was named; nothing was measured.",
            decided_by="named",
            workers=self._workers,
        )

    def stats(self) -> ExecutorStats:
        """A snapshot: workers alive and idle, queued tasks, restarts, timeouts.

        Example::

            with anypool.Executor("threads", workers=4) as ex:
                ex.submit(print, "hi").result()
                ex.stats().tasks_done    # 1
        """
        if self._auto is not None:
            return self._auto.stats()
        return self._backend.stats()

    def __repr__(self) -> str:
        state = "shut down" if self._pool.shutdown else "running"
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
        self._pool.check_open()
        if self._auto is None:
            _check_fits(fn, self._backend)
            backend, call = self._backend, fn
        else:
            backend, call = self._auto.route_submit(fn)
        future: Future[T] = Future()
        job = self._future_job(call, args, kwargs, future, backend)
        try:
            backend.submit(Work(job.batch))
        except SerializationError:
            if self._auto is None or backend.name != "processes":
                raise
            # auto moved this function to processes, but these arguments do not pickle:
            # this call runs on threads, as it would have before.
            backend = self._auto.threads_for(fn)
            job = self._future_job(fn, args, kwargs, future, backend)
            backend.submit(Work(job.batch))
        if self._progress:
            self._track(future)
        return future

    def _future_job(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        backend: Backend,
    ) -> FutureJob:
        job = FutureJob(
            fn,
            args,
            kwargs,
            future,
            backend.submit,
            task_timeout=self._task_timeout,
            retries=self._retries,
            retry_on=self._retry_on,
        )
        job.backend_name = backend.name
        return job

    def _track(self, future: Future[Any]) -> None:
        bar = self._pool.submit_progress()
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
        self._pool.check_open()
        collect = (self._on_error if on_error is None else _check_on_error(on_error)) == "collect"
        job = MapJob(
            fn,
            mode,
            task_timeout=self._task_timeout
            if task_timeout is None
            else _check_timeout(task_timeout, self._cls),
            retries=self._retries if retries is None else _check_retries(retries),
            retry_on=self._retry_on,
            label=label,
        )
        items, total = input_items(mode, iterables)
        adopted: list[Batch] = []
        per_item: float | None = None
        rechoose: Any = None
        if self._auto is None:
            backend = self._backend
            _check_fits(fn, backend)
        else:
            choice = self._auto.choose_for_map(job, items, total, self._max_in_flight)
            backend, adopted = choice.backend, choice.batches
            per_item, rechoose = choice.profile.seconds_per_item, choice.rechoose
        job.backend_name = backend.name
        if backend.needs_pickling:
            job.fn_payload()  # an unpicklable function fails here, before any work
        size = self._chunksize if chunksize is None else _check_chunksize(chunksize)
        if size is None:
            size = backend.auto_batch
        target = backend.batch_target or 0.001
        run = MapRun(
            job,
            backend,
            items,
            total=total,
            sizer=BatchSizer(target, backend.workers, size),
            collect=collect,
            timeout=timeout,
            max_in_flight=self._max_in_flight,
            progress=make_progress(
                self._progress if progress is None else progress, label.rstrip("()"), total
            ),
        )
        run.adopt(adopted)  # auto's measuring run started these; their results come in
        if adopted and per_item:
            run.sizer.observe(1, per_item)  # size the first batches from the measurement
        run.rechoose = rechoose
        if not backend.inline:
            run.top_up()  # work starts now, as with concurrent.futures; results as you iterate
        return run.ordered_chunks() if ordered else run.unordered_chunks()

    # ── shutting down ────────────────────────────────────────────────────────────

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, block until queued work is done.

        ``cancel_futures=True`` cancels tasks that have not started. Worker processes
        and threads are stopped once they are idle.
        """
        bar = self._pool.close()
        lender = self._pool.lender
        # A borrowed warm pool goes back (its cancelled work is skipped when dequeued),
        # unless the caller does not wait; terminate() never gives one back.
        keep = lender.keep if lender is not None and wait else None
        if self._auto is not None:
            self._auto.shutdown(wait=wait, cancel_futures=cancel_futures, keep=keep)
        elif keep is None or not keep(self._backend):
            self._backend.shutdown(wait=wait, cancel_futures=cancel_futures)
        if bar is not None and wait:
            bar.close()

    def terminate(self) -> None:
        """Stop now: cancel queued tasks and kill running ones where possible.

        Worker processes are killed (their tasks fail with :class:`BrokenPool`); threads
        cannot be killed, so running thread tasks finish in the background. Used on
        ``KeyboardInterrupt`` inside a ``with`` block.
        """
        bar = self._pool.close()
        if self._auto is not None:
            self._auto.terminate()
        else:
            self._backend.terminate()
        if bar is not None:
            bar.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()  # Ctrl-C or SystemExit: do not wait for running tasks
        else:
            self.shutdown(wait=True, cancel_futures=exc_type is not None)


class _Pool:
    """What an Executor and its ``options()`` views share: the backend (or, with
    ``"auto"``, the chooser and the pools it made) and the shut-down state.

    When the last executor sharing it is collected without ``shutdown()``, it is shut
    down without waiting: workers finish queued work and exit.
    """

    def __init__(
        self, backend: Backend | None, auto: AutoChooser | None, lender: _Lender | None = None
    ) -> None:
        self.backend = backend
        self.auto = auto
        self.lender = lender
        self.lock = threading.Lock()
        self.shutdown = False
        self._submit_bar: Any = None
        owner: Any = auto if auto is not None else backend
        self._finalizer = weakref.finalize(self, owner.shutdown, wait=False)

    def check_open(self) -> None:
        with self.lock:
            if self.shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")

    def submit_progress(self) -> Any:
        with self.lock:
            if self._submit_bar is None:
                self._submit_bar = make_progress(True, "tasks")
            return self._submit_bar

    def close(self) -> Any:
        """Mark shut down; return the submit progress bar (to close), if any."""
        with self.lock:
            self.shutdown = True
            bar, self._submit_bar = self._submit_bar, None
        # Shut down (or given back to the warm pools) explicitly: the collector's
        # fallback must not stop a pool that another call may now be using.
        self._finalizer.detach()
        return bar


class _Lender:
    """Borrows process pools from the warm pools for a module-level call, and gives them
    back when the call ends well (see _warm.py). Other kinds of pool are made afresh."""

    def __init__(
        self, initializer: Any, initargs: tuple[Any, ...], options: dict[str, Any]
    ) -> None:
        self.initializer = initializer
        self.initargs = initargs
        self.options = options
        self.keys: dict[int, Hashable | None] = {}  # id(backend) -> its warm-pool key

    def borrow(self, name: str, workers: int, make: Callable[..., Backend]) -> Backend:
        if name != "processes":
            return make(workers)
        key = _warm.key_for(name, workers, self.options, self.initializer, self.initargs)
        backend = _warm.WARM.borrow(key, lambda: make(workers, idle_timeout=_warm.IDLE_TIMEOUT))
        self.keys[id(backend)] = key
        return backend

    def has_warm(self, name: str) -> bool:
        return name == "processes" and len(_warm.WARM) > 0

    def keep(self, backend: Backend) -> bool:
        """Give ``backend`` back to the warm pools if it was borrowed; True if so."""
        if id(backend) not in self.keys:
            return False
        _warm.WARM.give_back(self.keys.pop(id(backend)), backend)
        return True


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
    with Executor(backend, workers, **_executor_options(options), _warm=True) as ex:
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
    ex = Executor(backend, workers, **_executor_options(options), _warm=True)
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
        if isinstance(exc, (Exception, GeneratorExit)):  # GeneratorExit: closed early
            ex.shutdown(wait=True, cancel_futures=True)
        else:  # Ctrl-C, SystemExit: stop now
            ex.terminate()
        raise
    else:
        ex.shutdown(wait=True)
    finally:
        if not ex._pool.shutdown:  # closed early by the caller (break, del)
            ex.shutdown(wait=True, cancel_futures=True)


_CALL_ONLY = ("timeout",)


def _executor_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _CALL_ONLY}


def _call_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _CALL_ONLY}


# ── backend="auto" ──────────────────────────────────────────────────────────────


def _backend_class(name: Any) -> type[Backend]:
    """The class for ``name``; for ``"auto"``, the threads class stands in for the
    option checks (auto can always fall back to a pool that honours them)."""
    if name == AUTO:
        return backend_class("threads")
    if not isinstance(name, str) or name not in backend_names():
        accepted = ", ".join(repr(n) for n in [*backend_names(), AUTO])
        raise ValueError(f"unknown backend {name!r}; accepted: {accepted}")
    return backend_class(name)


def _auto_chooser(
    workers: int | None,
    start_method: Any,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    process_options: dict[str, Any],
    lender: _Lender | None = None,
) -> AutoChooser:
    def make(name: str, chosen_workers: int | None) -> Backend:
        cls = backend_class(name)
        n = workers or chosen_workers or cls.default_workers()
        options = process_options if name == "processes" else {}

        def build(count: int, **extra: Any) -> Backend:
            return cls(
                workers=count, initializer=initializer, initargs=initargs, **options, **extra
            )

        return lender.borrow(name, n, build) if lender is not None else build(n)

    method = start_method if isinstance(start_method, str) else None
    return AutoChooser(
        make,
        workers=workers,
        start_method=method,
        initializer=initializer,
        initargs=initargs,
        has_warm=None if lender is None else lender.has_warm,
    )


# ── validation ──────────────────────────────────────────────────────────────────


def _check_fits(fn: Any, backend: Backend) -> None:
    """A coroutine function on a backend that would only create coroutine objects, or a
    plain function on asyncio, fails here with what to use instead."""
    if backend.name == "asyncio":
        if not is_coroutine_function(fn):
            raise plain_function_error(fn)
    elif is_coroutine_function(fn):
        name = getattr(fn, "__qualname__", None) or describe(fn)
        raise TypeError(
            f"{name} is a coroutine function (async def): on the {backend.name} backend each "
            "call would only create a coroutine object; use backend='asyncio' (or 'auto')"
        )


def _check_shared_memory(value: Any) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return value
    raise ValueError(f"shared_memory must be True, False or a size in bytes >= 0, got {value!r}")


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
