"""The conformance suite: the same behaviour on every backend."""

from __future__ import annotations

import concurrent.futures
import itertools
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, as_completed, wait

import pytest

import anypool

from . import tasks
from .conftest import backend_options, make_executor


def test_submit_returns_a_real_future(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        future = ex.submit(tasks.add, 2, b=3)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=30) == 5


def test_futures_work_with_wait_and_as_completed(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        futures = [ex.submit(tasks.square, i) for i in range(10)]
        done, not_done = wait(futures, timeout=30)
        assert not not_done
        assert sorted(f.result() for f in as_completed(futures, timeout=30)) == [
            i * i for i in range(10)
        ]
        assert {f.result() for f in done} == {i * i for i in range(10)}


def test_first_completed(pool_backend: str, tmp_path) -> None:
    gate = tmp_path / "gate"
    with make_executor(pool_backend, workers=2) as ex:
        slow = ex.submit(tasks.wait_for_file, str(gate))
        fast = ex.submit(tasks.sleep_return, 0.0, "fast")
        done, _ = wait([slow, fast], timeout=30, return_when=FIRST_COMPLETED)
        assert fast in done
        assert slow not in done
        gate.touch()


def test_cancel_a_pending_future(pool_backend: str, tmp_path) -> None:
    gate = tmp_path / "gate"
    with make_executor(pool_backend, workers=1) as ex:
        blocker = ex.submit(tasks.wait_for_file, str(gate))
        pending = [ex.submit(tasks.square, i) for i in range(3)]
        assert all(f.cancel() for f in pending)
        gate.touch()
        assert blocker.result(timeout=30) == str(gate)
        assert all(f.cancelled() for f in pending)
        assert ex.submit(tasks.square, 4).result(timeout=30) == 16
        # The pool acknowledged the cancellations, so wait() counts them as done.
        _, not_done = wait(pending, timeout=10)
        assert not not_done


def test_shutdown_cancel_futures_cancels_what_has_not_started(pool_backend: str, tmp_path) -> None:
    gate = tmp_path / "gate"
    ex = make_executor(pool_backend, workers=1)
    blocker = ex.submit(tasks.wait_for_file, str(gate))
    while not blocker.running():
        time.sleep(0.005)
    queued = [ex.submit(tasks.square, i) for i in range(5)]
    threading.Timer(0.2, gate.touch).start()
    ex.shutdown(wait=True, cancel_futures=True)
    assert blocker.result(timeout=30) == str(gate)
    assert all(f.cancelled() for f in queued)


def test_submit_after_shutdown_raises(backend: str) -> None:
    ex = make_executor(backend)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(tasks.square, 1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.map(tasks.square, [1])


def test_map_keeps_input_order(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        delays = [0.03, 0.0, 0.02, 0.0, 0.01]
        assert list(ex.map(tasks.sleep_return, delays, range(5))) == list(range(5))


def test_map_zips_several_iterables_like_builtin_map(backend: str) -> None:
    with make_executor(backend) as ex:
        assert list(ex.map(tasks.add, [1, 2, 3], [10, 20])) == [11, 22]


def test_map_is_lazy_about_a_generator_input(pool_backend: str) -> None:
    consumed = itertools.count()

    def numbers():
        for i in range(10**9):
            next(consumed)
            yield i

    with make_executor(pool_backend, workers=2, max_in_flight=100) as ex:
        results = ex.map(tasks.square, numbers())
        first = [next(results) for _ in range(5)]
        assert first == [0, 1, 4, 9, 16]
        results.close()  # type: ignore[attr-defined]
    assert next(consumed) < 1000


def test_map_timeout_counts_from_the_call(pool_backend: str, tmp_path) -> None:
    gate = tmp_path / "gate"
    with make_executor(pool_backend, workers=1) as ex:
        results = ex.map(tasks.wait_for_file, [str(tmp_path), str(gate)], timeout=0.5)
        start = time.monotonic()
        assert next(results) == str(tmp_path)
        with pytest.raises(TimeoutError):
            next(results)
        assert time.monotonic() - start < 5
        gate.touch()


def test_imap_imap_unordered_starmap(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        assert list(ex.imap(tasks.square, range(20))) == [i * i for i in range(20)]
        assert sorted(ex.imap_unordered(tasks.square, range(20))) == sorted(
            i * i for i in range(20)
        )
        assert ex.starmap(tasks.add, [(1, 2), (3, 4)]) == [3, 7]


def test_fixed_chunksize(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        assert list(ex.map(tasks.square, range(101), chunksize=7)) == [i * i for i in range(101)]


def test_module_level_shortcuts(backend: str) -> None:
    opts = backend_options(backend)
    assert anypool.map(tasks.square, range(50), **opts) == [i * i for i in range(50)]
    assert list(anypool.imap(tasks.square, range(5), **opts)) == [0, 1, 4, 9, 16]
    assert sorted(anypool.imap_unordered(tasks.square, range(5), **opts)) == [0, 1, 4, 9, 16]
    assert anypool.map(tasks.add, [1, 2], [3, 4], **opts) == [4, 6]


def test_module_imap_closed_early_stops_its_pool(pool_backend: str) -> None:
    results = anypool.imap(tasks.square, range(10**6), **backend_options(pool_backend))
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]


def test_lambdas_and_closures(backend: str) -> None:
    offset = 7
    with make_executor(backend) as ex:
        assert list(ex.map(lambda x: x + offset, range(3))) == [7, 8, 9]
        assert ex.submit(lambda: offset * 2).result(timeout=30) == 14


# ── errors ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("kind", ["value", "key", "zero", "custom"])
def test_exceptions_keep_their_type(backend: str, kind: str) -> None:
    expected = {
        "value": ValueError,
        "key": KeyError,
        "zero": ZeroDivisionError,
        "custom": tasks.CustomError,
    }[kind]
    with make_executor(backend) as ex:
        with pytest.raises(expected) as info:
            ex.submit(tasks.raise_type, kind).result(timeout=30)
        if kind == "custom":
            assert info.value.code == 42
        with pytest.raises(expected):
            list(ex.map(tasks.raise_type, [kind]))


def test_remote_traceback_text_is_attached(pool_backend: str) -> None:
    with make_executor(pool_backend) as ex:
        with pytest.raises(ValueError, match="bad item 3") as info:
            list(ex.map(tasks.fail_on, range(6)))
    exc = info.value
    assert any("item 3 of map()" in note for note in exc.__notes__)
    if pool_backend.startswith("processes"):
        assert isinstance(exc.__cause__, anypool.RemoteTraceback)
        assert "fail_on" in exc.__cause__.traceback
        assert 'raise ValueError(f"bad item {x}")' in exc.__cause__.traceback


def test_results_before_a_failure_are_delivered(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        results = ex.map(tasks.fail_on, range(10))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad item 3"):
            next(results)


def test_on_error_collect_keeps_every_slot(backend: str) -> None:
    with make_executor(backend, on_error="collect") as ex:
        results = list(ex.map(tasks.fail_on, range(6)))
    assert [r for r in results if not isinstance(r, anypool.Failure)] == [0, 1, 2, 4, 5]
    failure = results[3]
    assert isinstance(failure, anypool.Failure)
    assert failure.index == 3
    assert isinstance(failure.exception, ValueError)
    assert "bad item 3" in failure.traceback
    assert not failure


def test_exception_that_cannot_come_back_becomes_task_error(pool_backend: str) -> None:
    with make_executor(pool_backend) as ex:
        future = ex.submit(tasks.raise_unpicklable, 1)
        if pool_backend == "threads":
            with pytest.raises(tasks.UnpicklableError):
                future.result(timeout=30)
            return
        with pytest.raises(anypool.TaskError) as info:
            future.result(timeout=30)
    err = info.value
    assert err.type_name.endswith("UnpicklableError")
    assert err.message == "left-right"
    assert "raise_unpicklable" in err.traceback


def test_sys_exit_in_a_task_does_not_exit_the_caller(backend: str) -> None:
    with make_executor(backend) as ex:
        with pytest.raises(anypool.TaskError) as info:
            ex.submit(sys.exit, 3).result(timeout=30)
        assert info.value.type_name == "SystemExit"
        assert ex.submit(tasks.square, 3).result(timeout=30) == 9


# ── validation ─────────────────────────────────────────────────────────────────


def test_unknown_backend_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="unknown backend 'gpu'; accepted: 'serial', 'threads'"):
        anypool.Executor("gpu")


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts(workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        anypool.Executor("threads", workers=workers)  # type: ignore[arg-type]


def test_non_callable_fn(backend: str) -> None:
    with make_executor(backend) as ex:
        with pytest.raises(TypeError, match="needs a callable"):
            ex.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="needs a callable"):
            ex.map("not a function", [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a callable"):
        anypool.map(None, [1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunksize": 0}, "chunksize must be 'auto' or a positive integer"),
        ({"on_error": "ignore"}, "on_error must be one of 'raise', 'collect'"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"task_timeout": 0}, "task_timeout must be a positive number"),
        ({"start_method": "spawn"}, "apply only to backend=.processes."),
        ({"shared_memory": False}, "apply only to backend=.processes."),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        anypool.Executor("threads", **options)  # type: ignore[arg-type]


def test_serial_rejects_task_timeout() -> None:
    with pytest.raises(ValueError, match="runs tasks in your own thread"):
        anypool.Executor("serial", task_timeout=1)


def test_stats_and_repr(backend: str) -> None:
    with make_executor(backend, workers=2) as ex:
        list(ex.map(tasks.square, range(10)))
        stats = ex.stats()
        assert stats.tasks_done >= 10
        assert stats.backend == ex.backend
        assert "anypool.Executor" in repr(ex)


def test_exit_with_an_exception_cancels_queued_work(pool_backend: str, tmp_path) -> None:
    gate = tmp_path / "gate"
    with pytest.raises(KeyError):  # noqa: PT012
        with make_executor(pool_backend, workers=1) as ex:
            blocker = ex.submit(tasks.wait_for_file, str(gate))
            queued = ex.submit(tasks.square, 2)
            while not blocker.running():
                time.sleep(0.005)
            threading.Timer(0.2, gate.touch).start()
            raise KeyError("body failed")
    assert blocker.result(timeout=30)
    assert queued.cancelled()
