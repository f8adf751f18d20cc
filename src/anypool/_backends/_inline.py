"""Running a work's items in the current thread (the serial and threads backends)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from itertools import starmap
from typing import Any

from .._errors import as_task_exception
from .._tasks import CallMode, FlushMode, Work

__all__ = ["caller", "run_work"]

# TRACKED works report what they have once this much time has passed since the last
# report: frequent enough for progress and imap, rare enough to cost nothing.
FLUSH_INTERVAL = 0.02


def caller(mode: CallMode, fn: Callable[..., Any]) -> Callable[[Any], Any]:
    """A one-argument callable that applies ``fn`` to an item in the given mode."""
    if mode is CallMode.ONE:
        return fn
    if mode is CallMode.STAR:
        return lambda item: fn(*item)
    return lambda item: fn(*item[0], **item[1])


def _captured(exc: BaseException) -> BaseException:
    # Ctrl-C reaches only the main thread; there (the serial backend) it must interrupt
    # the caller, not become a task failure.
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        raise exc
    return as_task_exception(exc)


def run_work(
    work: Work,
    *,
    before_item: Callable[[int], bool] | None = None,
    after_item: Callable[[int], bool] | None = None,
) -> None:
    """Run ``work`` and deliver its outcomes to ``work.job``.

    ``before_item(offset)`` and ``after_item(offset)`` let the threads backend track
    per-task deadlines; either returning False abandons the rest of the work (it was
    handed to another thread).
    """
    if work.flush is FlushMode.FAST and before_item is None:
        _run_fast(work)
    else:
        _run_tracked(work, before_item, after_item)


def _run_fast(work: Work) -> None:
    job = work.job
    mapper = map if job.mode is CallMode.ONE else starmap
    items = iter(work.items())
    results: list[Any] = []
    errors: dict[int, BaseException] = {}
    start = time.perf_counter()
    while True:
        try:
            # list.extend keeps what map produced before an exception, and `items` moves
            # past the failing item, so the loop resumes right after it at C speed.
            results.extend(mapper(job.fn, items))
            break
        except BaseException as exc:
            errors[len(results)] = _captured(exc)
            results.append(None)
    job.deliver(work, 0, results, errors or None, time.perf_counter() - start)


def _run_tracked(
    work: Work,
    before_item: Callable[[int], bool] | None,
    after_item: Callable[[int], bool] | None,
) -> None:
    job = work.job
    call = caller(job.mode, job.fn)
    each = work.flush is FlushMode.EACH
    results: list[Any] = []
    errors: dict[int, BaseException] = {}
    base = 0
    start = last = time.perf_counter()
    for offset, item in enumerate(work.items()):
        if before_item is not None and not before_item(offset):
            return
        try:
            value = call(item)
        except BaseException as exc:
            value = None
            errors[offset - base] = _captured(exc)
        if after_item is not None and not after_item(offset):
            return
        results.append(value)
        now = time.perf_counter()
        if each or now - last >= FLUSH_INTERVAL:
            final = offset + 1 == len(work.positions)
            job.deliver(work, base, results, errors or None, now - start if final else None)
            base, results, errors, last = offset + 1, [], {}, now
    if results or not work.positions:
        job.deliver(work, base, results, errors or None, time.perf_counter() - start)
