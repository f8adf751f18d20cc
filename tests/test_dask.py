"""backend="dask" against a real cluster: a ``dask scheduler`` and two ``dask worker``
processes started from the command line on 127.0.0.1, and a ``LocalCluster``.

The cluster and two executors live for the whole module (starting Dask processes takes
seconds); the leak check below allows for them and still fails a test that leaves any
other process or thread behind.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import anypool
from anypool._backends import backend_class
from anypool._cli import main as cli_main

from . import dask_tasks, tasks
from ._dask_cluster import ALLOWED_FAILURES, DaskCluster, TLSFiles
from ._leaks import descendants, extra_threads, helper_pids

# The foundation's property test (map equals the builtin map), run here on the dask
# backend: pytest collects these with this module's `executor` fixture.
from .test_property import (
    test_lambdas_and_closures,
    test_map_equals_builtin_map,
    test_several_iterables_and_generators,
    test_sizes,
)

__all__ = [
    "test_lambdas_and_closures",
    "test_map_equals_builtin_map",
    "test_several_iterables_and_generators",
    "test_sizes",
]

_clusters: list[DaskCluster] = []


# ── fixtures ────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    c = DaskCluster(tmp_path_factory.mktemp("dask-cluster"), n_workers=2)
    _clusters.append(c)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        _clusters.remove(c)


@pytest.fixture(scope="module")
def executor(cluster: DaskCluster) -> Iterator[anypool.Executor]:
    """One executor on the command-line cluster for the property tests' many examples."""
    ex = anypool.Executor("dask", address=cluster.address)
    yield ex
    ex.shutdown()


@pytest.fixture
def ex(cluster: DaskCluster) -> Iterator[anypool.Executor]:
    with anypool.Executor("dask", address=cluster.address) as e:
        yield e


@pytest.fixture(scope="module")
def local_ex() -> Iterator[anypool.Executor]:
    """An executor that starts (and stops) its own LocalCluster of two worker processes."""
    e = anypool.Executor("dask", workers=2)
    yield e
    e.shutdown()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """conftest's check, less the module's cluster and executors, which span tests."""
    procs_before, threads_before = descendants(), set(extra_threads())
    yield
    deadline = time.monotonic() + 10.0
    while True:
        ours = set().union(*(c.processes() for c in _clusters))
        procs = descendants() - procs_before - ours - helper_pids()
        threads = [t for t in extra_threads() if t not in threads_before]
        if (not procs and not threads) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for pid in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    problems = []
    if procs:
        problems.append(f"processes left running: {sorted(procs)}")
    if threads:
        problems.append(f"threads left running: {[t.name for t in threads]}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


# ── the executor API on a real cluster ──────────────────────────────────────────


def test_connects_and_uses_the_clusters_size(ex: anypool.Executor) -> None:
    assert ex.backend == "dask"
    assert ex.workers == 2  # two workers of one thread each
    stats = ex.stats()
    assert stats.backend == "dask"
    assert stats.alive == 2
    assert stats.pending == 0


def test_submit_returns_a_concurrent_future(ex: anypool.Executor) -> None:
    futures = [ex.submit(tasks.add, i, b=1) for i in range(6)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    _, not_done = concurrent.futures.wait(futures, timeout=60)
    assert not not_done
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == list(range(1, 7))
    assert ex.submit(lambda x: x * 2, 21).result(timeout=60) == 42  # cloudpickle


def test_map_orders_and_unordered_does_not(ex: anypool.Executor) -> None:
    assert list(ex.map(tasks.square, range(50))) == [i * i for i in range(50)]
    assert list(ex.map(tasks.add, range(5), range(10, 20))) == [10, 12, 14, 16, 18]
    assert list(ex.imap(tasks.square, iter(range(30)))) == [i * i for i in range(30)]
    assert sorted(ex.imap_unordered(tasks.square, range(30))) == [i * i for i in range(30)]
    assert ex.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    assert anypool.map(tasks.square, range(4), backend="dask", address=ex._backend.address) == [
        0,
        1,
        4,
        9,
    ]


def test_a_tasks_exception_keeps_its_type_with_the_workers_traceback(
    ex: anypool.Executor,
) -> None:
    with pytest.raises(tasks.CustomError) as info:
        ex.submit(tasks.raise_type, "custom").result(timeout=60)
    exc = info.value
    assert exc.code == 42
    assert isinstance(exc.__cause__, anypool.RemoteTraceback)
    assert "raise_type" in exc.__cause__.traceback
    assert "anypool: raised by submit() on the dask backend" in exc.__notes__
    with pytest.raises(ValueError, match="bad item 3") as info2:
        list(ex.map(tasks.fail_on, range(10)))
    assert "anypool: raised by item 3 of map() on the dask backend" in info2.value.__notes__


def test_exceptions_that_cannot_travel_become_task_errors(ex: anypool.Executor) -> None:
    with pytest.raises(anypool.TaskError) as info:
        ex.submit(tasks.raise_unpicklable, None).result(timeout=60)
    assert info.value.type_name.endswith("UnpicklableError")
    with pytest.raises(anypool.TaskError) as info2:
        ex.submit(sys.exit, 3).result(timeout=60)
    assert info2.value.type_name == "SystemExit"


def test_on_error_raise_hands_out_what_came_before(ex: anypool.Executor) -> None:
    results = ex.map(tasks.fail_on, range(8), chunksize=1)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)


def test_on_error_collect_keeps_every_slot(ex: anypool.Executor) -> None:
    results = list(ex.map(tasks.fail_on, range(7), on_error="collect"))
    assert [r for r in results if r] == [1, 2, 4, 5, 6]  # 0 is falsy too: a value
    failure = results[3]
    assert isinstance(failure, anypool.Failure)
    assert failure.index == 3
    assert isinstance(failure.exception, ValueError)
    assert "fail_on" in failure.traceback


def test_retries_run_a_failing_task_again_exactly_as_often_as_asked(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    ok, exhausted = tmp_path / "ok", tmp_path / "exhausted"
    with anypool.Executor("dask", address=cluster.address, retries=2) as ex:
        assert ex.submit(dask_tasks.count_and_fail, str(ok), 2).result(timeout=60) == 3
        with pytest.raises(ValueError, match="failing run 3 of 5"):
            ex.submit(dask_tasks.count_and_fail, str(exhausted), 5).result(timeout=60)
        results = list(
            ex.map(dask_tasks.count_and_fail, [str(tmp_path / f"m{i}") for i in range(4)], [1] * 4)
        )
    assert results == [2, 2, 2, 2]
    # 1 run + 2 retries: anypool retried, Dask did not retry on top of it.
    assert len(ok.read_text().splitlines()) == 3
    assert len(exhausted.read_text().splitlines()) == 3


def test_task_timeout_fails_the_task_on_time(cluster: DaskCluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    try:
        with anypool.Executor("dask", address=cluster.address, task_timeout=0.5) as ex:
            start = time.monotonic()
            with pytest.raises(anypool.TaskTimeout) as info:
                ex.submit(tasks.wait_for_file, str(gate)).result(timeout=60)
            assert time.monotonic() - start < 30  # not the 30 s the task would wait
            assert info.value.timeout == 0.5
            paths = [str(tmp_path), str(gate), str(tmp_path)]  # only the middle one waits
            results = list(ex.map(tasks.wait_for_file, paths, on_error="collect"))
            assert results[0] == results[2] == str(tmp_path)
            assert isinstance(results[1], anypool.Failure)
            assert isinstance(results[1].exception, anypool.TaskTimeout)
            assert results[1].exception.index == 1
            stats = ex.stats()
            assert stats.timed_out == 2
            assert stats.abandoned == 2
    finally:
        gate.touch()  # the abandoned wait on the worker ends


def test_a_queued_future_can_be_cancelled(cluster: DaskCluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with anypool.Executor("dask", address=cluster.address, workers=1) as ex:
        blocker = ex.submit(tasks.wait_for_file, str(gate))
        queued = [ex.submit(tasks.square, i) for i in range(3)]
        assert ex.stats().pending == 3
        assert all(f.cancel() for f in queued)
        gate.touch()
        assert blocker.result(timeout=60) == str(gate)
        assert all(f.cancelled() for f in queued)
        assert ex.submit(tasks.square, 4).result(timeout=60) == 16


def test_shutdown_cancel_futures_drops_what_has_not_started(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    ex = anypool.Executor("dask", address=cluster.address, workers=1)
    running = ex.submit(tasks.wait_for_file, str(gate))
    queued = [ex.submit(tasks.square, i) for i in range(4)]
    settled = threading.Semaphore(0)
    for f in queued:  # cancel() runs callbacks (wait() would need a notification too)
        f.add_done_callback(lambda _: settled.release())
    closer = threading.Thread(target=ex.shutdown, kwargs={"cancel_futures": True})
    closer.start()
    try:
        assert all(settled.acquire(timeout=60) for _ in queued)
        assert all(f.cancelled() for f in queued)
    finally:
        gate.touch()
    closer.join(timeout=60)
    assert not closer.is_alive()
    assert running.result(timeout=0) == str(gate)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(tasks.square, 1)


def test_terminate_fails_running_tasks_with_broken_pool(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    try:
        ex = anypool.Executor("dask", address=cluster.address, workers=1)
        running = ex.submit(tasks.wait_for_file, str(gate))
        queued = ex.submit(tasks.square, 2)
        ex.terminate()
        assert isinstance(running.exception(timeout=60), anypool.BrokenPool)
        assert queued.cancelled() or isinstance(
            queued.exception(timeout=60), concurrent.futures.CancelledError
        )
    finally:
        gate.touch()


def test_tiny_items_travel_in_batches(ex: anypool.Executor) -> None:
    n = 20_000
    assert list(ex.map(tasks.square, range(n))) == [i * i for i in range(n)]
    batches = ex._backend._stats["batches"]  # type: ignore[attr-defined]
    assert batches < n / 20, f"{batches} Dask tasks for {n} tiny items"
    assert ex.stats().tasks_done == n


def test_closing_an_imap_early_cancels_the_rest(ex: anypool.Executor) -> None:
    results = ex.imap(tasks.sleep_return, [0.05] * 200, chunksize=1)
    assert next(results) is None
    results.close()  # type: ignore[attr-defined]
    assert ex.submit(tasks.square, 3).result(timeout=60) == 9  # the pool is still usable


def test_progress_bar_counts_items(cluster: DaskCluster, capfd: pytest.CaptureFixture[str]) -> None:
    assert anypool.map(
        tasks.square, range(50), backend="dask", address=cluster.address, progress=True
    ) == [i * i for i in range(50)]
    _, err = capfd.readouterr()
    assert "50/50" in err


def test_initializer_runs_in_each_worker_before_tasks(cluster: DaskCluster) -> None:
    with anypool.Executor(
        "dask", address=cluster.address, initializer=tasks.set_marker, initargs=("dask-init",)
    ) as ex:
        seen = list(ex.map(tasks.read_marker, range(8), chunksize=1))
    assert all("dask-init" in markers for markers in seen)


def test_a_failing_initializer_breaks_the_pool(cluster: DaskCluster) -> None:
    with anypool.Executor("dask", address=cluster.address, initializer=tasks.failing_init) as ex:
        with pytest.raises(anypool.InitializerError, match="initializer broke"):
            ex.submit(tasks.square, 2).result(timeout=60)
        with pytest.raises(anypool.InitializerError):
            ex.submit(tasks.square, 3)


def test_unpicklable_arguments_and_results(ex: anypool.Executor) -> None:
    with pytest.raises(anypool.SerializationError, match=r"args\[0\]"):
        ex.submit(tasks.identity, threading.Lock())
    results = list(ex.map(tasks.return_lock, range(3), on_error="collect"))
    assert all(isinstance(r, anypool.Failure) for r in results)
    assert isinstance(results[0].exception, anypool.SerializationError)


# Poison objects: each fails at one step of a task's trip, and only its own item fails.
POISON = [
    pytest.param(
        tasks.identity,
        [0, dask_tasks.Unloadable(), 2],
        "while unpickling the arguments on a Dask worker",
        id="argument-will-not-unpickle-on-the-worker",
    ),
    pytest.param(
        dask_tasks.unloadable_result_at,
        [0, 1, 2],
        "while unpickling the task's result",
        id="result-will-not-unpickle-here",
    ),
]


@pytest.mark.parametrize(("fn", "items", "where"), POISON)
def test_a_poison_item_fails_alone(
    ex: anypool.Executor, fn: object, items: list[object], where: str
) -> None:
    results = list(ex.map(fn, items, chunksize=3, on_error="collect"))  # type: ignore[call-overload]
    assert results[0] == items[0] and results[2] == items[2]
    failure = results[1]
    assert isinstance(failure, anypool.Failure)
    assert isinstance(failure.exception, RuntimeError)
    assert "cannot be loaded here" in str(failure.exception)
    assert any(where in note for note in failure.exception.__notes__), failure.exception.__notes__


def test_a_function_that_will_not_unpickle_on_the_workers(ex: anypool.Executor) -> None:
    results = list(ex.map(dask_tasks.Unloadable(), [1, 2], on_error="collect"))
    for failure in results:
        assert isinstance(failure, anypool.Failure)
        assert isinstance(failure.exception, RuntimeError)
        assert "cannot be loaded here" in str(failure.exception)
        assert any("function" in note for note in failure.exception.__notes__)


# ── losing workers ──────────────────────────────────────────────────────────────


def test_sigkill_of_a_worker_mid_map_loses_and_duplicates_nothing(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    n, at = 2000, 1000
    marker = tmp_path / "stalled"
    killed: list[int] = []
    cluster_pids = cluster.processes()

    def kill_the_stalled_worker() -> None:
        tasks.wait_for_file(str(marker), timeout=120)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_stalled_worker)
    killer.start()
    try:
        with anypool.Executor("dask", address=cluster.address) as ex:
            results = list(
                ex.map(dask_tasks.stall_once, range(n), [at] * n, [str(marker)] * n, chunksize=10)
            )
            stats = ex.stats()
    finally:
        killer.join(timeout=120)
    assert killed and killed[0] in cluster_pids  # a real worker of the cluster died
    assert results == [i * i for i in range(n)]
    assert stats.tasks_done == n  # each item delivered once: none lost, none twice
    assert stats.crashed == 0  # Dask re-ran the lost batch; no item failed
    cluster.wait_for_workers(2)  # its nanny restarts it for the tests that follow


def test_a_task_that_kills_every_worker_fails_alone_as_worker_crashed(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with anypool.Executor("dask", address=cluster.address, retries=2) as ex:
        doomed = ex.submit(dask_tasks.exit_every_time, str(runs))
        fine = ex.submit(tasks.square, 5)
        with pytest.raises(anypool.WorkerCrashed) as info:
            doomed.result(timeout=120)
        assert fine.result(timeout=120) == 25
        assert ex.stats().crashed == 1
    assert "Dask gave up on this task" in " ".join(info.value.__notes__)
    # Dask ran it on allowed-failures + 1 workers; anypool's retries=2 added no more runs.
    assert len(runs.read_text().splitlines()) == ALLOWED_FAILURES + 1
    cluster.wait_for_workers(2)


def test_losing_the_scheduler_fails_what_is_in_flight_and_breaks_the_pool(
    tmp_path: Path,
) -> None:
    doomed = DaskCluster(tmp_path, n_workers=0)  # the task waits in the scheduler
    _clusters.append(doomed)
    try:
        doomed.start()
        with anypool.Executor("dask", address=doomed.address) as ex:
            in_flight = ex.submit(tasks.square, 2)
            assert doomed.scheduler is not None
            doomed.scheduler.send_signal(signal.SIGKILL)
            error = in_flight.exception(timeout=60)
            assert isinstance(error, anypool.BrokenPool)
            assert "lost the connection to the Dask scheduler" in str(error)
            with pytest.raises(anypool.BrokenPool):
                ex.submit(tasks.square, 3)
    finally:
        doomed.stop()
        _clusters.remove(doomed)


def test_an_item_that_kills_its_workers_is_found_in_its_batch(
    cluster: DaskCluster,
) -> None:
    with anypool.Executor("dask", address=cluster.address) as ex:
        results = list(ex.map(dask_tasks.exit_on, [0, 1, 2], chunksize=3, on_error="collect"))
        assert ex.stats().crashed == 1
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], anypool.Failure)
    assert isinstance(results[1].exception, anypool.WorkerCrashed)
    assert results[1].index == 1
    cluster.wait_for_workers(2)


# ── connecting ──────────────────────────────────────────────────────────────────


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("peer", ["nothing listening", "a silent listener"])
def test_an_unreachable_scheduler_fails_within_the_timeout(peer: str) -> None:
    with socket.socket() as server:
        if peer == "nothing listening":
            address = _closed_port()
        else:  # accepts the TCP connection, then never says a word
            server.bind(("127.0.0.1", 0))
            server.listen(8)
            address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(anypool.ClusterUnreachable) as info:
            anypool.Executor("dask", address=address, connect_timeout=1)
        elapsed = time.monotonic() - start
    assert elapsed < 6, f"took {elapsed:.1f} s with connect_timeout=1"
    assert address in str(info.value)
    assert "connect_timeout" in str(info.value)
    assert info.value.address == address
    assert isinstance(info.value, ConnectionError)


def test_a_tls_cluster_needs_the_right_security(tmp_path: Path) -> None:
    """The TLS set-up of docs/scaling.md: only a client with a certificate of the
    cluster's own authority gets in."""
    tls = TLSFiles(tmp_path)
    tls_cluster = DaskCluster(tmp_path, n_workers=1, tls=tls)
    _clusters.append(tls_cluster)
    try:
        tls_cluster.start()
        assert tls_cluster.address.startswith("tls://127.0.0.1:")
        with anypool.Executor("dask", address=tls_cluster.address, security=tls.security()) as ex:
            assert list(ex.map(tasks.square, range(5))) == [0, 1, 4, 9, 16]
        with pytest.raises(anypool.ClusterUnreachable, match="tls://"):
            anypool.Executor("dask", address=tls_cluster.address, connect_timeout=2)
    finally:
        tls_cluster.stop()
        _clusters.remove(tls_cluster)


def test_a_local_cluster_with_tls(tmp_path: Path) -> None:
    security = TLSFiles(tmp_path).security(roles=("client", "scheduler", "worker"))
    with anypool.Executor("dask", workers=1, security=security) as ex:
        assert ex._backend.address.startswith("tls://127.0.0.1:")  # type: ignore[attr-defined]
        assert ex.submit(pow, 2, 5).result(timeout=60) == 32


def test_the_address_can_come_from_the_environment(
    cluster: DaskCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYPOOL_DASK_ADDRESS", cluster.address)
    assert anypool.map(tasks.square, range(5), backend="dask") == [0, 1, 4, 9, 16]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"address": ""}, ValueError, "scheduler address"),
        ({"address": 8786}, ValueError, "scheduler address"),
        ({"address": "tcp://127.0.0.1:1", "security": "tls"}, TypeError, "Security"),
        ({"address": "tcp://127.0.0.1:1", "connect_timeout": 0}, ValueError, "connect_timeout"),
    ],
)
def test_bad_dask_options_are_named(options: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        anypool.Executor("dask", **options)  # type: ignore[arg-type]


def test_dask_options_on_another_backend_are_refused() -> None:
    with pytest.raises(ValueError, match="apply only to backend='dask'"):
        anypool.Executor("threads", address="tcp://127.0.0.1:8786")


def test_a_bad_address_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYPOOL_DASK_ADDRESS", "tcp://127.0.0.1:1")
    with pytest.raises(anypool.ClusterUnreachable, match=r"tcp://127\.0\.0\.1:1\b"):
        anypool.Executor("dask", connect_timeout=0.5)


def test_without_distributed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "anypool._backends._dask")
    with pytest.raises(ImportError, match=r"pip install 'anypool\[dask\]'"):
        backend_class("dask")
    with pytest.raises(ImportError, match=r"pip install 'anypool\[dask\]'"):
        anypool.Executor("dask")


# ── a LocalCluster started by anypool ───────────────────────────────────────────


def test_local_cluster_runs_tasks_with_the_same_semantics(local_ex: anypool.Executor) -> None:
    assert local_ex.workers == 2
    assert local_ex.submit(tasks.add, 2, b=3).result(timeout=60) == 5
    assert list(local_ex.map(tasks.square, range(100))) == [i * i for i in range(100)]
    results = list(local_ex.map(tasks.fail_on, range(5), on_error="collect"))
    assert isinstance(results[3], anypool.Failure)
    assert isinstance(results[3].exception.__cause__, anypool.RemoteTraceback)
    assert local_ex.stats().alive == 2


def test_local_cluster_listens_on_loopback_only(local_ex: anypool.Executor) -> None:
    local_ex.submit(tasks.square, 1).result(timeout=60)
    me = psutil.Process()
    listening = [
        (proc.pid, conn.laddr)
        for proc in [me, *me.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening, "the LocalCluster should be listening somewhere"
    assert all(addr.ip == "127.0.0.1" for _, addr in listening), listening
    assert local_ex._backend.address.startswith("tcp://127.0.0.1:")  # type: ignore[attr-defined]


def test_a_local_cluster_stops_with_its_executor() -> None:
    before = descendants()
    with anypool.Executor("dask", workers=1) as ex:
        assert ex.submit(dask_tasks.worker_pid).result(timeout=60) in descendants() - before
    # no_leaks checks that its worker process is gone


def test_a_script_without_a_main_guard_is_told_what_to_write(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text("import anypool\nprint(anypool.map(abs, [-1], backend='dask', workers=1))\n")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "could not start a local Dask cluster" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr


# ── anypool bench on the cluster ────────────────────────────────────────────────


def test_bench_measures_the_dask_backend_on_a_cluster(cluster: DaskCluster, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "anypool",
            "bench",
            "--backends",
            "dask",
            "--address",
            cluster.address,
            "--workloads",
            "io",
            "--tasks",
            "4",
            "--repeat",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"anypool", "python", "cpus", "gil_enabled", "results"}
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"serial", "dask"}
    for row in rows.values():
        assert set(row) == {"workload", "backend", "workers", "tasks", "seconds", "speedup"}
    assert rows["dask"]["workers"] == 2  # the cluster's two single-threaded workers
    assert rows["dask"]["tasks"] == 4


def test_bench_address_without_the_dask_backend_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["bench", "--backends", "threads", "--address", "tcp://127.0.0.1:1"]) == 2
    assert "add dask to --backends" in " ".join(capsys.readouterr().out.split())
