"""``await anypool.amap(...)``: anypool from inside a running event loop."""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from ._backends._asyncio import DEFAULT_WORKERS, is_coroutine_function
from ._errors import Failure, TaskTimeout, as_task_exception, attach, describe

__all__ = ["amap"]

T = TypeVar("T")

_COROUTINE_OPTIONS = ("task_timeout", "on_error")


async def amap(
    fn: Callable[..., Any],
    iterable: Iterable[Any],
    *iterables: Iterable[Any],
    backend: str = "auto",
    workers: int | None = None,
    **options: Any,
) -> list[Any]:
    """Await ``[fn(x) for x in iterable]`` computed concurrently, in input order.

        For a coroutine function (``async def``) the calls run as tasks on *the running
        event loop* (so they can use the loop's sessions and connections), at most
        ``workers`` at once (default 1000); ``task_timeout=`` and ``on_error="collect"``
        apply as in :func:`anypool.map`. The first failure cancels the calls still running
        and is raised.

        For a plain function the work runs as ``anypool.map(fn, ..., backend=backend,
        workers=workers, **options)`` in a thread, so the loop is never blocked; every
        ``anypool.map`` option applies.

        Example::

            import asyncio
    import functools

            import anypool

            async def fetch(i):
                await asyncio.sleep(0.01)
                return i * 2

            async def main():
                print(await anypool.amap(fetch, range(5)))       # [0, 2, 4, 6, 8]
                print(await anypool.amap(abs, [-1, -2]))         # [1, 2], on a pool

            if __name__ == "__main__":
                asyncio.run(main())
    """
    if not callable(fn):
        raise TypeError(f"amap() needs a callable as its first argument, got {describe(fn)}")
    if not is_coroutine_function(fn):
        from ._executor import map as pool_map

        run = functools.partial(pool_map, backend=backend, workers=workers, **options)
        results: list[Any] = await asyncio.to_thread(run, fn, iterable, *iterables)
        return results
    if backend not in ("auto", "asyncio"):
        raise TypeError(
            f"{describe(fn)} is a coroutine function: amap() runs it on the running event "
            f"loop, so backend must be 'auto' or 'asyncio', not {backend!r}"
        )
    unknown = sorted(set(options) - set(_COROUTINE_OPTIONS))
    if unknown:
        raise TypeError(
            f"amap() with a coroutine function takes workers, task_timeout and on_error; "
            f"got {', '.join(unknown)}"
        )
    return await _gather(fn, iterable, iterables, workers, **options)


async def _gather(
    fn: Callable[..., Awaitable[Any]],
    iterable: Iterable[Any],
    iterables: tuple[Iterable[Any], ...],
    workers: int | None,
    task_timeout: float | None = None,
    on_error: str = "raise",
) -> list[Any]:
    limit = _check_workers(workers)
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be one of 'raise', 'collect', got {on_error!r}")
    if task_timeout is not None and not (
        isinstance(task_timeout, (int, float)) and not isinstance(task_timeout, bool)
    ):
        raise ValueError(f"task_timeout must be a positive number of seconds, got {task_timeout!r}")
    if task_timeout is not None and task_timeout <= 0:
        raise ValueError(f"task_timeout must be a positive number of seconds, got {task_timeout!r}")
    calls: Iterator[tuple[Any, ...]] = (
        zip(iterable, *iterables, strict=False) if iterables else ((x,) for x in iterable)
    )
    return await _Fanout(fn, limit, task_timeout, on_error == "collect").run(calls)


def _check_workers(workers: Any) -> int:
    if workers is None:
        return DEFAULT_WORKERS
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


class _Fanout:
    """At most ``limit`` calls running; results kept in input order."""

    def __init__(
        self, fn: Callable[..., Awaitable[Any]], limit: int, timeout: float | None, collect: bool
    ) -> None:
        self.fn = fn
        self.limit = limit
        self.timeout = timeout
        self.collect = collect
        self.results: list[Any] = []
        self.running: dict[asyncio.Task[Any], int] = {}
        self.finished: asyncio.Queue[asyncio.Task[Any]] = asyncio.Queue()

    async def run(self, calls: Iterator[tuple[Any, ...]]) -> list[Any]:
        try:
            for index, args in enumerate(calls):
                self.results.append(None)
                if len(self.running) >= self.limit:
                    self._settle(await self.finished.get())
                self._start(index, args)
            while self.running:
                self._settle(await self.finished.get())
        finally:
            for task in self.running:  # a failure, or our caller was cancelled
                task.cancel()
        return self.results

    def _start(self, index: int, args: tuple[Any, ...]) -> None:
        task = asyncio.ensure_future(_call(self.fn, args, self.timeout, index))
        self.running[task] = index
        task.add_done_callback(self.finished.put_nowait)

    def _settle(self, task: asyncio.Task[Any]) -> None:
        index = self.running.pop(task)
        if task.cancelled():
            raise asyncio.CancelledError
        exc = task.exception()
        if exc is None:
            self.results[index] = task.result()
            return
        error = attach(as_task_exception(exc), f"anypool: raised by item {index} of amap()")
        if not self.collect:
            raise error
        text = "".join(traceback.format_exception(error))
        self.results[index] = Failure(error, index, text)


async def _call(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], timeout: float | None, index: int
) -> Any:
    if timeout is None:
        return await fn(*args)
    async with asyncio.timeout(timeout) as scope:
        try:
            return await fn(*args)
        except asyncio.CancelledError:
            if scope.expired():
                raise TaskTimeout(timeout, index) from None
            raise
