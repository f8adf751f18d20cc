"""Timeouts, crash recovery, retries, worker lifecycle and signals (issue: robust workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import anypool

from . import tasks


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# ── crash and timeout timing ──────────────────────────────────────────────────


def test_a_killed_workers_task_fails_within_a_second(tmp_path: Path) -> None:
    pid_file, gate = tmp_path / "pid", tmp_path / "gate"
    with anypool.Executor("processes", workers=2) as ex:
        future = ex.submit(tasks.write_pid_then_wait, str(pid_file), str(gate))
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(anypool.WorkerCrashed) as info:
            future.result(timeout=10)
        assert time.monotonic() - killed < 1.0
        assert info.value.signal_name == "SIGKILL"
        assert info.value.pid == pid
        assert "SIGKILL" in str(info.value)
        assert ex.submit(tasks.square, 4).result(timeout=5) == 16


def test_a_spinning_task_times_out_and_its_worker_is_replaced() -> None:
    with anypool.Executor("processes", workers=1, task_timeout=0.5) as ex:
        first = ex.submit(tasks.pid).result(timeout=10)
        start = time.monotonic()
        with pytest.raises(anypool.TaskTimeout) as info:
            ex.submit(tasks.spin).result(timeout=10)
        assert 0.5 <= time.monotonic() - start < 1.5
        assert isinstance(info.value, TimeoutError)
        wait_for(lambda: not alive(first), timeout=3.5)  # SIGTERM, then SIGKILL
        second = ex.submit(tasks.pid).result(timeout=5)
        assert second != first
        assert ex.stats().timed_out == 1


def test_other_tasks_of_a_batch_carry_on_after_a_timeout() -> None:
    items = [0.0, 0.0, 30.0, 0.0, 0.0, 0.0]
    with anypool.Executor("processes", workers=1, task_timeout=0.5, on_error="collect") as ex:
        results = list(ex.map(tasks.sleep_return, items, range(6), chunksize=6))
    assert isinstance(results[2], anypool.Failure)
    assert isinstance(results[2].exception, anypool.TaskTimeout)
    assert results[2].exception.index == 2
    assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4, 5]


def test_threads_timeout_on_time_and_the_thread_is_abandoned(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with anypool.Executor("threads", workers=1, task_timeout=0.3) as ex:
        start = time.monotonic()
        with pytest.raises(anypool.TaskTimeout):
            ex.submit(tasks.wait_for_file, str(gate)).result(timeout=10)
        assert time.monotonic() - start < 1.5
        assert ex.submit(tasks.square, 3).result(timeout=5) == 9  # a new thread took over
        assert ex.stats().abandoned == 1
        gate.touch()  # let the abandoned thread finish, so nothing is left behind


def test_per_call_task_timeout_via_options() -> None:
    with anypool.Executor("processes", workers=1) as ex:
        fast = ex.options(task_timeout=5).submit(tasks.square, 3)
        assert fast.result(timeout=10) == 9
        with pytest.raises(anypool.TaskTimeout):
            ex.options(task_timeout=0.3).submit(tasks.spin).result(timeout=10)
        results = list(
            ex.map(tasks.sleep_return, [0.0, 20.0], task_timeout=0.3, on_error="collect")
        )
        assert results[0] is None
        assert isinstance(results[1].exception, anypool.TaskTimeout)


# ── retries ─────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_retries_run_a_failed_task_again(backend: str, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    with anypool.Executor(backend, workers=1, retries=2) as ex:
        assert ex.submit(tasks.flaky, str(counter), 2).result(timeout=30) == "ok after 3"
    counter.unlink()
    with anypool.Executor(backend, workers=1, retries=1) as ex:
        with pytest.raises(ConnectionError, match="attempt 2 failed"):
            ex.submit(tasks.flaky, str(counter), 5).result(timeout=30)


def test_retry_on_limits_what_is_retried(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    with anypool.Executor("threads", retries=3, retry_on=KeyError) as ex:
        with pytest.raises(ConnectionError, match="attempt 1 failed"):
            ex.submit(tasks.flaky, str(counter), 1).result(timeout=30)


def test_crashed_tasks_are_retried_and_counted(tmp_path: Path) -> None:
    with anypool.Executor("processes", workers=2, retries=2, on_error="collect") as ex:
        results = list(ex.map(tasks.exit_on, range(6)))
        stats = ex.stats()
    assert isinstance(results[3].exception, anypool.WorkerCrashed)
    assert stats.crashed == 3  # the first run and two retries
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5]


def test_map_retries_per_call(tmp_path: Path) -> None:
    counters = [str(tmp_path / f"c{i}") for i in range(4)]
    with anypool.Executor("processes", workers=2) as ex:
        results = list(ex.map(tasks.flaky, counters, [1, 0, 2, 0], retries=2))
    assert results == ["ok after 2", "ok after 1", "ok after 3", "ok after 1"]


# ── worker lifecycle ───────────────────────────────────────────────────────────


def test_max_tasks_per_worker_replaces_workers() -> None:
    with anypool.Executor("processes", workers=1, max_tasks_per_worker=3) as ex:
        pids = list(ex.map(tasks.pid, range(9), chunksize=2))
        stats = ex.stats()
    assert len(set(pids)) == 3
    for pid in set(pids):
        assert pids.count(pid) == 3
    assert stats.restarts >= 2


def test_a_worker_that_always_dies_does_not_loop_forever() -> None:
    with anypool.Executor("processes", workers=2, on_error="collect") as ex:
        results = list(ex.map(tasks.exit_always, range(5)))
        assert all(isinstance(r.exception, anypool.WorkerCrashed) for r in results)
        assert ex.submit(tasks.square, 2).result(timeout=5) == 4


# ── on_error="raise" ───────────────────────────────────────────────────────────


def test_raise_mode_cancels_later_work(tmp_path: Path) -> None:
    with anypool.Executor("processes", workers=2) as ex:
        results = ex.map(tasks.fail_on, range(10_000), chunksize=10)
        got = [next(results) for _ in range(3)]
        with pytest.raises(ValueError, match="bad item 3"):
            next(results)
        assert got == [0, 1, 2]
        assert ex.stats().tasks_done < 10_000


# ── signals: Ctrl-C, SIGTERM, a killed parent ──────────────────────────────────

SCRIPT = """
import sys, anypool, time
sys.path.insert(0, {root!r})
from tests import tasks

if __name__ == "__main__":
    try:
        anypool.map(tasks.write_pid_then_wait, [{pid_a!r}, {pid_b!r}], [{gate!r}] * 2,
                    backend={backend!r}, workers=2, start_method={method!r})
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise
"""


def session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def start_script(tmp_path: Path, method: str) -> tuple[subprocess.Popen[str], Path]:
    root = str(Path(__file__).resolve().parent.parent)
    pid_a, pid_b, gate = tmp_path / "a", tmp_path / "b", tmp_path / "gate-never"
    script = tmp_path / "long_map.py"
    script.write_text(
        textwrap.dedent(
            SCRIPT.format(
                root=root,
                pid_a=str(pid_a),
                pid_b=str(pid_b),
                gate=str(gate),
                backend="processes",
                method=method,
            )
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    wait_for(
        lambda: pid_a.exists() and pid_b.exists() and pid_a.read_text() and pid_b.read_text(),
        timeout=30,
    )
    return proc, tmp_path


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=10)
    finally:
        for pid in session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_everything_promptly(
    tmp_path: Path, method: str, signum: int
) -> None:
    proc, _ = start_script(tmp_path, method)
    sent = time.monotonic()
    proc.send_signal(signum)
    out, err = finish(proc)
    assert time.monotonic() - sent < 2.0, err
    assert proc.returncode != 0
    assert "interrupted" in out
    assert "KeyboardInterrupt" in err
    wait_for(lambda: not session_processes(proc.pid), timeout=2.0)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_no_worker_survives_a_killed_parent(tmp_path: Path, method: str) -> None:
    proc, _ = start_script(tmp_path, method)
    proc.kill()
    killed = time.monotonic()
    finish(proc)
    wait_for(lambda: not session_processes(proc.pid), timeout=5.0)
    assert time.monotonic() - killed < 5.0
