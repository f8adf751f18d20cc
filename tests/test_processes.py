"""Behaviour specific to the processes backend: pickling, crashes, start-up."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import anypool

from . import tasks
from ._leaks import wait_until_clean


@pytest.fixture(params=["forkserver", "spawn"])
def start_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_lock_argument_is_refused_at_submit_with_its_path(start_method: str) -> None:
    with anypool.Executor("processes", workers=1, start_method=start_method) as ex:
        with pytest.raises(anypool.SerializationError) as info:
            ex.submit(tasks.identity, threading.Lock())
    err = info.value
    assert isinstance(err, TypeError)
    assert "cannot send args[0] -> _thread.lock to a worker process" in str(err)
    assert err.path == "args[0]"
    assert "backend='threads'" in str(err)


def test_the_path_names_a_nested_attribute() -> None:
    with socket.socket() as sock, anypool.Executor("processes", workers=1) as ex:
        with pytest.raises(anypool.SerializationError) as info:
            ex.submit(tasks.identity, tasks.Holder(sock))
    assert "args[0].conn -> socket.socket" in str(info.value)
    assert info.value.type_name == "socket.socket"
    assert "connect in the task" in str(info.value)


def test_an_unpicklable_function_fails_before_any_work() -> None:
    lock = threading.Lock()
    with anypool.Executor("processes", workers=1) as ex:
        with pytest.raises(anypool.SerializationError, match=r"function\.<closure lock>"):
            ex.map(lambda x: (lock, x), [1, 2])


def test_one_unpicklable_item_fails_alone() -> None:
    items = [1, 2, threading.Lock(), 4]
    with anypool.Executor("processes", workers=2, on_error="collect") as ex:
        results = list(ex.map(tasks.identity, items))
    assert results[:2] == [1, 2]
    assert results[3] == 4
    assert isinstance(results[2], anypool.Failure)
    assert isinstance(results[2].exception, anypool.SerializationError)


def test_an_unpicklable_result_fails_only_its_task() -> None:
    with anypool.Executor("processes", workers=1) as ex:
        with pytest.raises(anypool.SerializationError, match=r"result -> _thread.lock"):
            ex.submit(tasks.return_lock, 1).result(timeout=30)
        assert ex.submit(tasks.square, 5).result(timeout=30) == 25


def test_a_crashing_task_fails_alone_and_names_itself(start_method: str) -> None:
    with anypool.Executor(
        "processes", workers=2, start_method=start_method, on_error="collect"
    ) as ex:
        results = list(ex.map(tasks.exit_on, range(8)))
        assert ex.submit(tasks.square, 3).result(timeout=10) == 9
        stats = ex.stats()
    failure = results[3]
    assert isinstance(failure, anypool.Failure)
    assert isinstance(failure.exception, anypool.WorkerCrashed)
    assert failure.exception.exitcode == 3
    assert failure.exception.index == 3
    assert "exited with status 3" in str(failure.exception)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert stats.crashed == 1
    assert stats.restarts >= 1


def test_initializer_runs_once_per_worker(tmp_path, start_method: str) -> None:
    log = tmp_path / "init.log"
    with anypool.Executor(
        "processes",
        workers=2,
        initializer=tasks.record_init,
        initargs=(str(log),),
        start_method=start_method,
    ) as ex:
        pids = set(ex.map(tasks.pid, range(40), chunksize=1))
    inits = log.read_text().split()
    assert len(inits) == 2
    assert pids <= {int(p) for p in inits}


def test_initializer_state_is_visible_to_tasks() -> None:
    with anypool.Executor(
        "processes", workers=1, initializer=tasks.set_marker, initargs=("x",)
    ) as ex:
        assert ex.submit(tasks.read_marker).result(timeout=30) == ["x"]


def test_a_failing_initializer_breaks_the_pool_at_once(start_method: str) -> None:
    start = time.monotonic()
    with anypool.Executor(
        "processes", workers=2, initializer=tasks.failing_init, start_method=start_method
    ) as ex:
        future = ex.submit(tasks.square, 2)
        with pytest.raises(anypool.InitializerError, match="initializer broke") as info:
            future.result(timeout=30)
        assert "failing_init" in info.value.traceback
        with pytest.raises(anypool.InitializerError):
            ex.submit(tasks.square, 3)
    assert time.monotonic() - start < 15
    assert ex.stats().restarts == 0


def test_threads_initializer_failure_too() -> None:
    with anypool.Executor("threads", workers=2, initializer=tasks.failing_init) as ex:
        with pytest.raises(anypool.InitializerError):
            ex.submit(tasks.square, 2).result(timeout=30)


def test_a_forgotten_executor_stops_its_workers() -> None:
    ex = anypool.Executor("processes", workers=2)
    assert ex.submit(tasks.square, 2).result(timeout=30) == 4
    del ex
    gc.collect()
    procs, _ = wait_until_clean(timeout=10)
    assert not procs


UNGUARDED = """
import anypool

def square(x):
    return x * x

print(anypool.map(square, range(4), backend="processes", start_method={method!r}))
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_missing_main_guard_gets_an_error_that_says_what_to_write(tmp_path, method: str) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(UNGUARDED.format(method=method)))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr
    assert "BrokenPool" in proc.stderr


def test_guarded_script_works(tmp_path) -> None:
    script = tmp_path / "guarded.py"
    body = textwrap.indent(UNGUARDED.format(method="spawn"), "    ")
    script.write_text("if __name__ == '__main__':\n" + body)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 1, 4, 9]"
