"""anypool.Pipeline: a backend per stage, bounded memory, failures that stop it cleanly."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest

import anypool

from . import flow_tasks
from ._leaks import extra_threads, worker_processes

# A run must end this fast after a failure or Ctrl-C (the bound).
STOP_WITHIN = 2.0


def _nothing_left() -> None:
    """Checked right after the run ended: no thread or worker process outlives it."""
    assert extra_threads() == []
    assert worker_processes() == set()


def _identity(x: Any) -> Any:
    return x


# ── the guide's section 7.3 ─────────────────────────────────────────────────────


def test_the_guides_mixed_example_as_a_pipeline() -> None:
    # I/O on threads -> CPU on processes -> a sink that keeps the results in order.
    stored: list[tuple[int, int]] = []
    pipeline = (
        anypool.Pipeline(range(12))
        .stage(flow_tasks.io_heavy, backend="threads", workers=6)
        .stage(flow_tasks.cpu_heavy, backend="processes", workers=2)
        .stage(lambda total: stored.append((len(stored), total)) or total, workers=1, name="sink")
    )
    results = pipeline.collect()
    expected = [sum(i * i for i in range(n * 1000)) for n in range(12)]
    assert results == expected
    assert [total for _, total in stored] == expected
    stats = pipeline.stats()
    assert [s.name for s in stats.stages] == ["io_heavy", "cpu_heavy", "sink"]
    assert [s.backend for s in stats.stages] == ["threads", "processes", "threads"]
    assert all(s.items_in == s.items_out == 12 for s in stats.stages)
    _nothing_left()


def test_unordered_stages_let_results_flow_as_they_finish() -> None:
    results = (
        anypool.Pipeline(range(40))
        .stage(functools.partial(flow_tasks.sleep_ms, ms=1), workers=4, ordered=False)
        .stage(flow_tasks.double, backend="processes", workers=2, ordered=False)
        .collect()
    )
    assert sorted(results) == [2 * i for i in range(40)]


def test_a_serial_stage_runs_in_its_own_thread() -> None:
    pipeline = anypool.Pipeline(range(3))
    names = pipeline.stage(lambda _: threading.current_thread().name, backend="serial").collect()
    assert set(names) == {"anypool-pipeline-<lambda>"}


# ── bounded memory ──────────────────────────────────────────────────────────────


class _Counted:
    """An item that counts how many of its kind are alive."""

    __slots__ = ("n",)
    lock = threading.Lock()
    alive = 0

    def __init__(self, n: int) -> None:
        self.n = n
        with _Counted.lock:
            _Counted.alive += 1

    def __del__(self) -> None:
        with _Counted.lock:
            _Counted.alive -= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("count", "ordered"), [(1_000_000, True), (100_000, False)], ids=["ordered", "unordered"]
)
def test_a_million_items_never_have_more_in_flight_than_the_buffers_and_workers(
    count: int, ordered: bool
) -> None:
    peak = 0

    def source() -> Iterator[_Counted]:
        nonlocal peak
        for i in range(count):
            # Every item alive now is in flight: the caller drops each one it receives.
            peak = max(peak, _Counted.alive)
            yield _Counted(i)

    stages = [(2, 1000), (3, 500)]  # (workers, buffer): cheap stages, on threads
    pipeline = anypool.Pipeline(source())
    for workers, buffer in stages:
        pipeline.stage(_identity, workers=workers, buffer=buffer, ordered=ordered)
    received = 0
    for item in pipeline.run():
        received += 1
        del item
    bound = sum(workers + buffer for workers, buffer in stages)
    assert received == count
    assert 0 < peak <= bound
    assert _Counted.alive == 0


# ── failures: each stops the run within 2 s with the right error ────────────────


def _three_stages(failing: int, fn: Callable[[int], int], backend: str) -> anypool.Pipeline:
    pipeline = anypool.Pipeline(range(20))
    for k in range(3):
        if k == failing:
            pipeline.stage(fn, backend=backend, workers=2, name=f"stage{k}")
        else:
            pipeline.stage(_identity, workers=2, name=f"stage{k}")
    return pipeline


def _timed_failure(pipeline: anypool.Pipeline, error: type[BaseException]) -> BaseException:
    start = time.monotonic()
    with pytest.raises(error) as info:
        for _ in pipeline.run():
            pass
    assert time.monotonic() - start < STOP_WITHIN
    _nothing_left()
    return info.value


@pytest.mark.parametrize(
    ("failing", "backend"),
    [(0, "threads"), (1, "processes"), (2, "threads")],
    ids=["first", "middle", "last"],
)
def test_an_exception_in_a_stage_stops_the_run(failing: int, backend: str) -> None:
    pipeline = _three_stages(failing, flow_tasks.fail_at, backend)
    error = _timed_failure(pipeline, ValueError)
    assert str(error) == "bad item 3"
    notes = error.__notes__
    assert "anypool: the failing item: 3" in notes
    assert f"anypool: raised by item 3 of pipeline stage 'stage{failing}'" in notes[1]
    assert f"anypool: pipeline stage 'stage{failing}' ({failing + 1} of 3) failed" in notes[2]
    if backend == "processes":
        assert isinstance(error.__cause__, anypool.RemoteTraceback)


def test_a_crashed_worker_process_in_the_middle_stage_stops_the_run() -> None:
    pipeline = _three_stages(1, flow_tasks.crash_at, "processes")
    error = _timed_failure(pipeline, anypool.WorkerCrashed)
    assert isinstance(error, anypool.WorkerCrashed)
    assert error.exitcode == 3
    assert error.index == 3
    assert "pipeline stage 'stage1' (2 of 3) failed" in error.__notes__[-1]


def test_an_exception_in_the_source_stops_the_run() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise OSError("the file went away")

    pipeline = anypool.Pipeline(source()).stage(flow_tasks.slow_after, backend="processes")
    error = _timed_failure(pipeline, OSError)
    assert "anypool: raised by the pipeline's source after 5 items" in error.__notes__


def test_ctrl_c_in_the_consumer_stops_the_run() -> None:
    pipeline = (
        anypool.Pipeline(range(50))
        .stage(_identity, workers=2)
        .stage(flow_tasks.slow_after, backend="processes", workers=2)
        .stage(_identity)
    )
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        for _ in pipeline.run():  # the first item passes; then the consumer is interrupted
            raise KeyboardInterrupt
    assert time.monotonic() - start < STOP_WITHIN
    _nothing_left()


def test_ctrl_c_while_the_consumer_waits_stops_the_run() -> None:
    interrupt = functools.partial(flow_tasks.interrupt_at, pid=os.getpid())
    pipeline = (
        anypool.Pipeline(range(50))
        .stage(interrupt, backend="processes", workers=2)
        .stage(_identity, workers=1)
    )
    start = time.monotonic()
    received = []
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012
        for item in pipeline.run():  # SIGINT comes while __next__ waits for item 3
            received.append(item)
    assert time.monotonic() - start < STOP_WITHIN + 1.0  # the workers' start, too
    assert received == list(range(len(received)))
    _nothing_left()


def test_the_other_stages_stop_when_one_fails_even_if_busy() -> None:
    # The middle stage fails while the first still has slow work in its processes.
    pipeline = (
        anypool.Pipeline(range(20))
        .stage(functools.partial(flow_tasks.slow_after, first=6), backend="processes", workers=2)
        .stage(flow_tasks.fail_at, workers=2, name="checker")
    )
    error = _timed_failure(pipeline, ValueError)
    assert "pipeline stage 'checker' (2 of 2) failed" in error.__notes__[-1]


# ── on_error ────────────────────────────────────────────────────────────────────


def test_collect_passes_failures_through_later_stages() -> None:
    results = (
        anypool.Pipeline(["1", "x", "3"])
        .stage(int, on_error="collect", backend="processes", workers=1)
        .stage(flow_tasks.double)
        .collect()
    )
    assert results[0] == 2 and results[2] == 6
    failure = results[1]
    assert isinstance(failure, anypool.Failure)
    assert isinstance(failure.exception, ValueError)
    assert failure.index == 1


def test_skip_drops_failures_and_counts_them() -> None:
    pipeline = anypool.Pipeline(["1", "x", "3", "y"]).stage(int, on_error="skip")
    assert pipeline.stage(flow_tasks.double).collect() == [2, 6]
    first = pipeline.stats().stages[0]
    assert (first.items_in, first.items_out, first.failed) == (4, 2, 2)


# ── statistics and progress ─────────────────────────────────────────────────────


def test_stats_name_the_bottleneck_stage() -> None:
    pipeline = (
        anypool.Pipeline(range(30))
        .stage(_identity, name="cheap")
        .stage(functools.partial(flow_tasks.sleep_ms, ms=10), workers=1, name="slow")
        .stage(_identity, name="sink")
    )
    assert pipeline.stats().bottleneck == ""
    assert len(pipeline.collect()) == 30
    stats = pipeline.stats()
    assert stats.bottleneck == "slow"
    slow = stats.stages[1]
    assert slow.busy > 0.5 and slow.busy_seconds >= 0.3
    assert stats.stages[0].blocked_on_output > stats.stages[0].blocked_on_input
    assert stats.stages[2].blocked_on_input > 0.1
    table = str(stats)
    assert "bottleneck: slow" in table and "cheap" in table


def test_progress_shows_every_stage_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = anypool.Pipeline(range(10)).stage(_identity, name="first").stage(str, name="second")
    assert pipeline.collect(progress=True) == [str(i) for i in range(10)]
    captured = capsys.readouterr()
    assert "first" in captured.err and "second" in captured.err
    assert captured.out == ""
    anypool.Pipeline(range(3)).stage(str).collect()
    assert capsys.readouterr().err == ""  # silent unless asked


# ── leaving early ───────────────────────────────────────────────────────────────


def test_closing_a_run_early_stops_it() -> None:
    pipeline = anypool.Pipeline(range(100)).stage(flow_tasks.slow_after, backend="processes")
    start = time.monotonic()
    with pipeline.run() as results:
        assert next(results) == 0
    assert time.monotonic() - start < 10
    _nothing_left()
    with pytest.raises(StopIteration):
        next(results)


def test_dropping_a_run_stops_it() -> None:
    run = anypool.Pipeline(range(100)).stage(flow_tasks.slow_after, workers=1).stage(str).run()
    assert next(run) == "0"
    start = time.monotonic()
    del run  # its finalizer cancels the run (the thread task sees cancelled()) and joins
    assert time.monotonic() - start < STOP_WITHIN
    _nothing_left()


def test_the_public_objects_have_examples() -> None:
    for name in ("TaskGroup", "cancelled", "Channel", "ChannelClosed", "Pipeline"):
        assert "Example::" in (getattr(anypool, name).__doc__ or ""), name
    for method in (anypool.Pipeline.stage, anypool.Pipeline.run, anypool.TaskGroup.spawn):
        assert "Example::" in (method.__doc__ or ""), method


def test_thread_stages_see_cancelled_and_return_early() -> None:
    pipeline = (
        anypool.Pipeline(range(4))
        .stage(flow_tasks.first_passes, workers=4, ordered=False)
        .stage(functools.partial(flow_tasks.fail_at, bad=0))
    )
    error = _timed_failure(pipeline, ValueError)  # not the 30 s the others would wait
    assert str(error) == "bad item 0"


def test_a_pipeline_in_a_cancelled_task_group_is_cancelled() -> None:
    def run_pipeline() -> list[Any]:
        return anypool.Pipeline(range(10)).stage(flow_tasks.poll_cancelled, workers=2).collect()

    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012
        with anypool.TaskGroup("threads", workers=2) as tg:
            inner = tg.spawn(run_pipeline)
            tg.spawn(flow_tasks.raise_value, "group failure")
    assert [str(e) for e in info.value.exceptions] == ["group failure"]
    assert isinstance(inner.exception(), CancelledError)
    _nothing_left()


# ── misuse ──────────────────────────────────────────────────────────────────────


def test_bad_arguments_get_clear_errors() -> None:
    with pytest.raises(TypeError, match="needs an iterable source"):
        anypool.Pipeline(42)  # type: ignore[arg-type]
    pipeline = anypool.Pipeline([1])
    with pytest.raises(TypeError, match="stage\\(\\) needs a callable"):
        pipeline.stage("str")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error must be one of 'raise', 'collect', 'skip'"):
        pipeline.stage(str, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer must be an integer >= 0"):
        pipeline.stage(str, buffer=-1)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        pipeline.stage(str, backend="gpu")
    with pytest.raises(TypeError, match="use run\\(progress=True\\)"):
        pipeline.stage(str, progress=True)
    with pytest.raises(TypeError, match="ordered must be True or False"):
        pipeline.stage(str, ordered="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs at least one stage"):
        pipeline.run()
    pipeline.stage(str).stage(str)
    assert repr(pipeline) == "<anypool.Pipeline str -> str#2>"
    assert pipeline.collect() == ["1"]
    with pytest.raises(RuntimeError, match="runs once"):
        pipeline.run()
    with pytest.raises(RuntimeError, match="already run"):
        pipeline.stage(str)


def test_a_stage_refuses_auto_and_says_what_to_name() -> None:
    with pytest.raises(ValueError, match="a pipeline stage needs a named backend"):
        anypool.Pipeline([1, 2]).stage(abs, backend="auto")
