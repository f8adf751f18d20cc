"""anypool.TaskGroup: every task joined, the first failure cancels the rest, nesting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from typing import Any

import pytest

import anypool

from . import flow_tasks
from ._leaks import extra_threads, worker_processes

GROUP_BACKENDS = ["serial", "threads", "processes"]


@pytest.fixture(params=GROUP_BACKENDS)
def group_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _nothing_left() -> None:
    """Checked right after the block: no thread and no worker process outlives it."""
    assert extra_threads() == []
    assert worker_processes() == set()


# ── normal exit ─────────────────────────────────────────────────────────────────


def test_every_task_is_joined_on_normal_exit(group_backend: str) -> None:
    with anypool.TaskGroup(group_backend, workers=2) as tg:
        futures = [tg.spawn(flow_tasks.sleep_ms, i, 5) for i in range(6)]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(6))
    _nothing_left()
    stats = tg.stats()
    assert (stats.spawned, stats.running, stats.failed, stats.dropped) == (6, 0, 0, 0)
    assert not stats.cancelled and stats.backend == group_backend


def test_tasks_may_spawn_tasks_and_all_are_joined() -> None:
    done: list[int] = []

    def tree(depth: int) -> None:
        done.append(depth)
        if depth < 3:
            tg.spawn(tree, depth + 1)
            tg.spawn(tree, depth + 1)

    with anypool.TaskGroup("threads", workers=4) as tg:
        tg.spawn(tree, 0)
    assert len(done) == 1 + 2 + 4 + 8
    _nothing_left()


def test_kwargs_reach_the_task_and_the_future_is_real() -> None:
    with anypool.TaskGroup("processes", workers=1) as tg:
        future = tg.spawn(flow_tasks.sleep_ms, "value", ms=1)
    assert future.result() == "value"


# ── failures ────────────────────────────────────────────────────────────────────


def test_first_failure_cancels_the_rest_and_every_failure_is_raised() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def fail_together(message: str) -> None:
        barrier.wait()  # both failures happen, whichever is first
        raise ValueError(message)

    start = time.monotonic()
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("threads", workers=3) as tg:
            poller = tg.spawn(flow_tasks.poll_cancelled)
            tg.spawn(fail_together, "a")
            tg.spawn(fail_together, "b")
            queued = [tg.spawn(flow_tasks.sleep_long) for _ in range(5)]
    assert time.monotonic() - start < 10  # the queued 30 s sleeps never ran
    assert sorted(str(e) for e in info.value.exceptions) == ["a", "b"]
    assert all(isinstance(e, ValueError) for e in info.value.exceptions)
    note = "anypool: in TaskGroup task test_first_failure_cancels"
    assert any(n.startswith(note) for n in info.value.exceptions[0].__notes__)
    assert poller.result() == "cancelled"  # the running thread saw anypool.cancelled()
    assert all(f.cancelled() for f in queued)
    stats = tg.stats()
    assert (stats.failed, stats.dropped, stats.cancelled) == (2, 5, True)
    _nothing_left()


def test_a_failure_kills_running_process_tasks() -> None:
    start = time.monotonic()
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("processes", workers=2) as tg:
            sleeper = tg.spawn(flow_tasks.sleep_long)
            tg.spawn(flow_tasks.raise_value, "boom")
    assert time.monotonic() - start < 10
    assert [str(e) for e in info.value.exceptions] == ["boom"]  # the kill is no failure
    assert isinstance(sleeper.exception(), anypool.BrokenPool)
    _nothing_left()


def test_a_crashed_process_task_is_a_failure() -> None:
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("processes", workers=2) as tg:
            tg.spawn(flow_tasks.crash_at, 3)
            tg.spawn(flow_tasks.sleep_long)
    (error,) = info.value.exceptions
    assert isinstance(error, anypool.WorkerCrashed)
    assert error.exitcode == 3
    _nothing_left()


def test_a_serial_group_drops_what_is_spawned_after_a_failure() -> None:
    with pytest.raises(ExceptionGroup):  # noqa: PT012
        with anypool.TaskGroup("serial") as tg:
            tg.spawn(flow_tasks.raise_value, "first")
            later = tg.spawn(flow_tasks.double, 2)
            assert anypool.cancelled()  # the block sees it too
    assert later.cancelled()


# ── the body ────────────────────────────────────────────────────────────────────


def test_an_exception_in_the_body_cancels_the_tasks_and_is_raised() -> None:
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("threads", workers=2) as tg:
            poller = tg.spawn(flow_tasks.poll_cancelled)
            raise KeyError("body")
    assert [type(e) for e in info.value.exceptions] == [KeyError]
    assert poller.result() == "cancelled"
    _nothing_left()


def test_the_body_and_the_tasks_failures_are_all_raised_once() -> None:
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("processes", workers=1) as tg:
            future = tg.spawn(flow_tasks.raise_value, "task")
            future.result()  # the task's error, raised in the body too
    assert [str(e) for e in info.value.exceptions] == ["task"]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_ctrl_c_in_the_body_stops_every_task_and_is_re_raised(backend: str) -> None:
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        with anypool.TaskGroup(backend, workers=1) as tg:
            wait = flow_tasks.poll_cancelled if backend == "threads" else time.sleep
            running = tg.spawn(wait, 30)
            queued = [tg.spawn(flow_tasks.sleep_long) for _ in range(3)]
            raise KeyboardInterrupt
    assert time.monotonic() - start < 5
    assert running.done()
    assert any(f.cancelled() for f in queued)
    _nothing_left()


def test_cancel_without_failure_ends_the_block_normally() -> None:
    with anypool.TaskGroup("threads", workers=1) as tg:
        poller = tg.spawn(flow_tasks.poll_cancelled)
        tg.cancel()
        dropped = tg.spawn(flow_tasks.double, 1)
    assert poller.result() == "cancelled"
    assert dropped.cancelled() and tg.cancelled


# ── nesting ─────────────────────────────────────────────────────────────────────


def _inner_group(fail: bool) -> str:
    with anypool.TaskGroup("threads", workers=2) as inner:
        inner.spawn(flow_tasks.poll_cancelled)
        if fail:
            inner.spawn(flow_tasks.raise_value, "inner")
    return "inner finished"


def test_an_inner_failure_reaches_the_outer_group_as_a_nested_group() -> None:
    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("threads", workers=2) as outer:
            outer.spawn(_inner_group, True)
            outer.spawn(flow_tasks.poll_cancelled)
    (nested,) = info.value.exceptions
    assert isinstance(nested, ExceptionGroup)
    assert [str(e) for e in nested.exceptions] == ["inner"]
    _nothing_left()


def test_an_outer_failure_cancels_inner_groups_in_tasks_and_in_the_body() -> None:
    started = threading.Event()

    def poll_when_started() -> str:
        started.set()
        return flow_tasks.poll_cancelled()

    def fail_once_started() -> None:
        started.wait(10)
        raise ValueError("outer")

    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("threads", workers=3) as outer:
            in_task = outer.spawn(_inner_group, False)
            outer.spawn(fail_once_started)
            with anypool.TaskGroup("threads") as in_body:
                body_poller = in_body.spawn(poll_when_started)
            pytest.fail("the inner block must raise CancelledError")  # pragma: no cover
    assert [str(e) for e in info.value.exceptions] == ["outer"]
    assert isinstance(in_task.exception(), CancelledError)  # absorbed, not a failure
    assert body_poller.result() == "cancelled"
    _nothing_left()


def test_cancelled_is_false_outside_any_group() -> None:
    assert anypool.cancelled() is False
    with anypool.TaskGroup("threads") as tg:
        inside = tg.spawn(anypool.cancelled)
    assert inside.result() is False


# ── misuse ──────────────────────────────────────────────────────────────────────


def test_spawn_outside_the_block_is_refused() -> None:
    tg = anypool.TaskGroup("threads")
    with pytest.raises(RuntimeError, match="needs an open group"):
        tg.spawn(print)
    with pytest.raises(RuntimeError, match="needs an open group"):
        tg.cancel()
    with tg:
        pass
    with pytest.raises(RuntimeError, match="has finished"):
        tg.spawn(print)
    with pytest.raises(RuntimeError, match="one with-block"), tg:
        pass


def test_bad_arguments_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        anypool.TaskGroup("gpu")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        anypool.TaskGroup("threads", workers=0)
    with anypool.TaskGroup("threads") as tg:
        with pytest.raises(TypeError, match="spawn\\(\\) needs a callable"):
            tg.spawn(42)  # type: ignore[arg-type]


def test_an_unpicklable_argument_fails_in_the_body_and_is_raised() -> None:
    lock: Any = threading.Lock()
    with pytest.raises(ExceptionGroup) as info:
        with anypool.TaskGroup("processes", workers=1) as tg:
            tg.spawn(flow_tasks.double, lock)
    assert isinstance(info.value.exceptions[0], anypool.SerializationError)
    assert repr(tg).startswith("<anypool.TaskGroup backend='processes'")
