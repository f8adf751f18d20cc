"""backend="auto": what it chooses for real work, why, and that it wastes none of it."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

import anypool
from anypool._auto import Context, Costs, Transfer, _DiscardJob, decide
from anypool._probe import Measurements, Probe, _Runner
from anypool._tasks import CallMode

from . import tasks

ROOT = Path(__file__).resolve().parent.parent
BIG = bytes(range(256)) * 32768  # 8 MiB: hashlib and zlib release the GIL on it


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib_guarded(n: int, guard: object = None) -> int:
    return fib(n)


def square(x: int) -> int:
    return x * x


def nap(x: int) -> int:
    time.sleep(0.02)
    return x


def long_nap(x: int) -> int:
    time.sleep(0.05)
    return x


def sha(i: int) -> str:
    digest = hashlib.sha256(BIG)  # hashes 8 MiB with the GIL released
    digest.update(bytes([i % 256]))
    return digest.hexdigest()


def deflate(i: int) -> int:
    return len(zlib.compress(BIG, 1)) + i  # compresses 8 MiB with the GIL released


async def anap(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


class Counted:
    """Counts its calls per item: each item must run exactly once."""

    def __init__(self, fn: object) -> None:
        self.fn = fn
        self.lock = threading.Lock()
        self.calls: dict[object, int] = {}

    def __call__(self, x: int) -> object:
        with self.lock:
            self.calls[x] = self.calls.get(x, 0) + 1
        return self.fn(x)  # type: ignore[operator]


# ── the choices the issue names ────────────────────────────────────────────────


def test_pure_python_cpu_work_goes_to_processes() -> None:
    with anypool.Executor() as ex:
        assert list(ex.map(fib, [27] * 40)) == [fib(27)] * 40
        profile = ex.explain()
    assert profile.backend == "processes", str(profile)
    assert ex.backend == "processes"
    assert profile.decided_by == "transfer_seconds"
    assert profile.thread_speedup is not None and profile.thread_speedup < 1.5
    assert "outweighs" in profile.reason and "send it to a process" in profile.reason


def test_sleeping_goes_to_threads_with_many_workers() -> None:
    with anypool.Executor() as ex:
        start = time.perf_counter()
        assert list(ex.map(nap, range(40))) == list(range(40))
        elapsed = time.perf_counter() - start
        profile = ex.explain()
    assert profile.backend == "threads", str(profile)
    assert profile.decided_by == "cpu_share"
    assert profile.cpu_share is not None and profile.cpu_share < 0.5
    assert profile.workers is not None and profile.workers >= 16
    assert "CPU share" in profile.reason
    assert elapsed < 0.8 * 40 * 0.02  # the waits overlapped


@pytest.mark.parametrize("fn", [sha, deflate], ids=["hashlib", "zlib"])
def test_c_code_that_releases_the_gil_goes_to_threads(fn: object) -> None:
    if anypool._backends.available_cpus() < 2:
        pytest.skip("two threads cannot beat one on a single CPU")
    with anypool.Executor() as ex:
        results = list(ex.map(fn, range(12)))  # type: ignore[arg-type]
        profile = ex.explain()
    assert results == [fn(i) for i in range(12)]  # type: ignore[operator]
    assert profile.backend == "threads", str(profile)
    assert profile.decided_by == "thread_speedup"
    assert profile.thread_speedup is not None and profile.thread_speedup >= 1.5
    assert "releases the GIL" in profile.reason


def test_a_hundred_thousand_tiny_items_stay_serial() -> None:
    with anypool.Executor() as ex:
        assert list(ex.map(square, range(100_000))) == [x * x for x in range(100_000)]
        profile = ex.explain()
    assert profile.backend == "serial", str(profile)
    assert profile.decided_by in ("items_left", "transfer_seconds")
    assert "loop" in profile.reason or "measured" in profile.reason


def test_tiny_items_of_unknown_number_stay_serial_because_of_the_transfer_cost() -> None:
    numbers = (x for x in range(100_000_000))  # more than the probe can take
    report = anypool.profile(square, numbers)
    assert report.backend == "serial", str(report)
    assert report.decided_by == "transfer_seconds", str(report)
    assert report.items_total is None
    assert "costs more than computing it" in report.reason


def test_measuring_threads_stop_taking_items_by_themselves_after_the_limit() -> None:
    # The coordinator normally says stop; when it is starved of the GIL or of a CPU, the
    # measuring threads must still not run an endless input to its end.
    probe = Probe(_DiscardJob(square, CallMode.ONE), itertools.count())
    probe.began = time.perf_counter()
    runner = _Runner(probe, "anypool-test-probe")
    probe.runners.append(runner)
    runner.start()
    runner.thread.join(timeout=10)
    assert not runner.thread.is_alive(), "the measuring thread took items without end"
    assert probe.taken > 0 and not probe.exhausted
    assert runner.items_done == probe.taken


def test_coroutine_functions_go_to_asyncio() -> None:
    with anypool.Executor() as ex:
        assert list(ex.map(anap, range(30))) == list(range(30))
        profile = ex.explain()
        assert ex.submit(anap, 5).result(timeout=30) == 5
    assert profile.backend == "asyncio"
    assert profile.decided_by == "coroutine_function"
    assert "coroutine function" in profile.reason
    assert anypool.map(anap, range(3)) == [0, 1, 2]


# ── no work is wasted ──────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("fn", "items"),
    [(square, range(5000)), (nap, range(30)), (sha, range(8))],
    ids=["serial", "threads-waiting", "threads-gil-free"],
)
def test_every_item_runs_exactly_once_and_in_order(fn: object, items: range) -> None:
    counted = Counted(fn)
    with anypool.Executor() as ex:
        assert list(ex.map(counted, items)) == [fn(i) for i in items]  # type: ignore[operator]
    assert counted.calls == dict.fromkeys(items, 1)


def test_items_measured_count_as_done() -> None:
    with anypool.Executor() as ex:
        list(ex.map(square, range(1000)))
        assert ex.stats().tasks_done == 1000


def test_generators_and_several_iterables() -> None:
    with anypool.Executor() as ex:
        assert list(ex.map(tasks.add, (i for i in range(300)), range(300))) == [
            2 * i for i in range(300)
        ]
        assert ex.starmap(tasks.add, [(1, 2)] * 50) == [3] * 50
        assert sorted(ex.imap_unordered(square, range(2000))) == [x * x for x in range(2000)]
    assert anypool.map(square, []) == []


def test_failures_during_measuring_are_kept_or_raised() -> None:
    with anypool.Executor() as ex:
        results = list(ex.map(tasks.fail_on, range(50), on_error="collect"))
        assert isinstance(results[3], anypool.Failure)
        assert results[:3] == [0, 1, 2] and results[4:] == list(range(4, 50))
        with pytest.raises(ValueError, match="bad item 3") as info:
            list(ex.map(tasks.fail_on, range(50)))
    assert any("item 3 of map()" in note for note in info.value.__notes__)


def test_task_timeout_reaches_an_item_that_hangs_while_measured(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    items = [str(gate)] + [str(tmp_path)] * 5
    try:
        with anypool.Executor(task_timeout=0.3) as ex:
            results = list(ex.map(tasks.wait_for_file, items, on_error="collect"))
            assert ex.explain().backend != "serial"  # a loop could not stop the task
    finally:
        gate.touch()  # lets the abandoned thread finish
    assert isinstance(results[0], anypool.Failure)
    assert isinstance(results[0].exception, anypool.TaskTimeout)
    assert results[1:] == [str(tmp_path)] * 5


def test_an_initializer_runs_in_the_measuring_threads_too() -> None:
    with anypool.Executor(initializer=tasks.set_marker, initargs=("ready",)) as ex:
        assert all(marks for marks in ex.map(tasks.read_marker, range(100)))


def test_a_failing_initializer_is_reported() -> None:
    with anypool.Executor(initializer=tasks.failing_init) as ex:
        with pytest.raises(anypool.InitializerError, match="initializer broke"):
            list(ex.map(square, range(10)))


def test_measuring_respects_max_in_flight() -> None:
    produced = 0

    def source():
        nonlocal produced
        for i in range(200_000):
            produced += 1
            yield i

    seen = 0
    with anypool.Executor(max_in_flight=64) as ex:
        for value in ex.imap(square, source()):
            assert value == seen * seen
            seen += 1
            assert produced - seen <= 64
    assert seen == 200_000


def test_closing_a_map_early_stops_it() -> None:
    with anypool.Executor(max_in_flight=1000) as ex:
        results = ex.map(square, range(10**9))
        assert [next(results) for _ in range(3)] == [0, 1, 4]
        results.close()  # type: ignore[attr-defined]


def heavy_then_tiny(x: int) -> int:
    return fib(25) if x < 40 else x * x


def test_a_map_changes_its_mind_once_when_later_items_differ() -> None:
    with anypool.Executor() as ex:
        results = list(ex.map(heavy_then_tiny, (i for i in range(300_000))))
        profile = ex.explain()
    assert results[:40] == [fib(25)] * 40
    assert results[40:] == [x * x for x in range(40, 300_000)]
    assert profile.backend == "serial", str(profile)
    assert profile.note.startswith("changed its mind: later items took")
    assert profile.note.endswith("first processes")


# ── submit ─────────────────────────────────────────────────────────────────────


def test_submit_runs_on_threads_until_it_knows_better() -> None:
    with anypool.Executor() as ex:
        assert ex.backend == "auto"
        assert ex.submit(square, 4).result(timeout=30) == 16
        profile = ex.explain()
    assert profile.backend == "threads"
    assert profile.decided_by == "submit_rule"
    assert "no list of items" in profile.reason


def test_submit_follows_what_map_measured() -> None:
    with anypool.Executor() as ex:
        list(ex.map(fib, [27] * 40))
        assert ex.explain().backend == "processes"
        assert ex.submit(fib, 20).result(timeout=30) == fib(20)
        assert ex.explain().backend == "processes"
        assert ex.backend == "processes"


def test_submit_moves_gil_bound_tasks_to_processes_once() -> None:
    if anypool._backends.available_cpus() < 2:
        pytest.skip("processes cannot beat threads on a single CPU")
    with anypool.Executor(workers=4) as ex:
        first = [ex.submit(fib, 26) for _ in range(8)]
        assert [f.result(timeout=60) for f in first] == [fib(26)] * 8
        later = ex.submit(fib, 20)
        assert later.result(timeout=60) == fib(20)
        profile = ex.explain()
    assert profile.backend == "processes", str(profile)
    assert profile.decided_by == "submit_watch"
    assert "hold the GIL" in profile.reason


def test_submit_with_unpicklable_arguments_falls_back_to_threads() -> None:
    with anypool.Executor() as ex:
        list(ex.map(fib_guarded, [27] * 40))
        assert ex.explain().backend == "processes", str(ex.explain())
        lock = threading.Lock()  # cannot be pickled for a process
        assert ex.submit(fib_guarded, 15, lock).result(timeout=30) == fib(15)
        assert ex.explain().note == "its arguments do not pickle, so this call ran on threads"
        assert ex.submit(fib_guarded, 15).result(timeout=30) == fib(15)
        assert ex.explain().backend == "processes"


# ── explaining ─────────────────────────────────────────────────────────────────


def test_explain_before_anything_ran_says_so() -> None:
    with anypool.Executor() as ex:
        with pytest.raises(RuntimeError, match="nothing has been run yet"):
            ex.explain()
        assert ex.stats().backend == "auto"


def test_explain_on_a_named_backend() -> None:
    with anypool.Executor("threads") as ex:
        profile = ex.explain()
    assert profile.backend == "threads"
    assert "was named" in profile.reason


def test_profile_report_reads_well() -> None:
    report = anypool.profile(nap, range(20))
    text = str(report)
    assert text.startswith("anypool auto: nap -> threads")
    for label in ("reason:", "per item:", "CPU share:", "pickled sizes:", "machine:"):
        assert label in text
    assert isinstance(report, anypool.Profile)
    assert report.reason.endswith(".") and report.reason.count(". ") == 0


def test_profile_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        anypool.profile(42, [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        anypool.profile(square, [1], workers="2")  # type: ignore[arg-type]


def test_start_method_is_accepted_with_auto() -> None:
    with anypool.Executor(start_method="spawn") as ex:
        assert list(ex.map(square, range(10))) == [x * x for x in range(10)]


# ── the rules, on given measurements (no timing involved) ──────────────────────


def measured(**overrides: object) -> Measurements:
    values: dict[str, object] = {
        "items_taken": 10,
        "items_done": 10,
        "exhausted": False,
        "seconds_per_item": 0.05,
        "per_item_is_lower_bound": False,
        "cpu_share": 1.0,
        "thread_speedup": 1.0,
        "thread_test": "items",
        "probe_seconds": 0.03,
        "samples": (),
        "first_item": (1,),
    }
    values.update(overrides)
    return Measurements(**values)  # type: ignore[arg-type]


def context(**overrides: object) -> Context:
    values: dict[str, object] = {
        "function": "work",
        "items_total": 1000,
        "workers": None,
        "cpus": 4,
        "gil_enabled": True,
        "serial_allowed": True,
        "process_start": 0.15,
        "thread_start": 0.001,
        "costs": Costs(),
    }
    values.update(overrides)
    return Context(**values)  # type: ignore[arg-type]


PICKLES = Transfer(True, 20, 20, 2e-6)


def test_rule_free_threaded_python_lets_the_thread_test_decide() -> None:
    chosen = decide(measured(thread_speedup=1.9), PICKLES, context(gil_enabled=False))
    assert chosen.backend == "threads"
    assert "without the GIL" in chosen.reason
    held = decide(measured(thread_speedup=1.1), PICKLES, context(gil_enabled=False))
    assert held.backend == "processes"  # contention: measured, not assumed


def test_rule_cpu_work_on_one_cpu_stays_serial() -> None:
    chosen = decide(measured(thread_speedup=1.9), PICKLES, context(cpus=1))
    assert chosen.backend == "serial"
    assert chosen.decided_by == "cpus"


def test_rule_unpicklable_work_stays_serial() -> None:
    chosen = decide(measured(), Transfer(False, why="its arguments do not pickle"), context())
    assert chosen.backend == "serial"
    assert chosen.decided_by == "pickling"
    assert "do not pickle" in chosen.reason


def test_rule_start_up_against_little_work() -> None:
    chosen = decide(measured(seconds_per_item=0.001), PICKLES, context(items_total=60))
    assert chosen.backend == "serial"
    assert chosen.decided_by == "process_start_seconds"
    warm = decide(measured(seconds_per_item=0.001), PICKLES, context(process_start=0.0))
    assert warm.backend == "processes"


def test_rule_task_timeout_needs_a_pool() -> None:
    chosen = decide(measured(exhausted=True), PICKLES, context(serial_allowed=False))
    assert chosen.backend == "threads"
    assert "task_timeout" in chosen.note


def test_rule_little_work_left() -> None:
    chosen = decide(measured(seconds_per_item=1e-5), PICKLES, context(items_total=20))
    assert chosen.backend == "serial"
    assert chosen.decided_by == "items_left"


# ── free-threaded CPython (PEP 703) ────────────────────────────────────────────


def _freethreaded_python() -> str | None:
    candidates = [os.environ.get("ANYPOOL_FREETHREADED_PYTHON", "")]
    candidates += [shutil.which(n) or "" for n in ("python3.13t", "python3.14t")]
    for path in filter(None, candidates):
        probe = subprocess.run(
            [path, "-c", "import sys, cloudpickle, rich; print(sys._is_gil_enabled())"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "False":
            return path
    return None


@pytest.mark.freethreaded
def test_free_threaded_python_measures_pure_python_on_threads() -> None:
    python = _freethreaded_python()
    if python is None:
        pytest.skip(
            "no free-threaded CPython with cloudpickle and rich found: build one with "
            "../shared/tools/build-freethreaded-python, pip install cloudpickle rich into "
            "it, and set ANYPOOL_FREETHREADED_PYTHON to its python"
        )
    code = (
        "import anypool\n"
        "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "if __name__ == '__main__':\n"
        "    r = anypool.profile(fib, [27] * 16)\n"
        "    print(r.backend, r.thread_speedup, r.gil_enabled)\n"
        "    print(r)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    backend, speedup, gil = proc.stdout.split()[:3]
    assert gil == "False"
    # The thread test decides: threads when two threads measured faster, else not.
    assert (backend == "threads") == (float(speedup) >= 1.5), proc.stdout
    print(proc.stdout)  # what auto chose there, for the record (pytest -s)


def test_this_python_reports_its_gil() -> None:
    expected = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    assert anypool.profile(square, range(10)).gil_enabled is expected


def test_no_change_of_mind_is_reported_once_every_item_is_on_its_way() -> None:
    # The first items look short (measured while still sleeping); by the time the true
    # per-item time is known every item was submitted, so there is nothing to move and
    # the report must still name the backend that ran them.
    with anypool.Executor() as ex:
        assert list(ex.map(long_nap, range(200))) == list(range(200))
        profile = ex.explain()
    assert profile.backend == "threads", str(profile)
    assert ex.backend == "threads"
