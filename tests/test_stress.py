"""anypool.testing.stress: the guide's §9.2 race loses updates in every run; the locked
version never does; the interpreter is left as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import anypool.sync
from anypool.testing import StressResult, stress


class Counter:
    def __init__(self, lock: object = None) -> None:
        self.value = 0
        self.lock = lock

    def increment(self) -> None:  # the guide's counter += 1, without a lock
        self.value += 1

    def locked_increment(self) -> None:
        with self.lock:  # type: ignore[attr-defined]
            self.value += 1


@pytest.mark.slow
def test_unlocked_counter_loses_updates_in_10_of_10_runs() -> None:
    for _ in range(10):
        counter = Counter()
        result = stress(counter.increment, threads=8, repeat=1000)
        assert result.calls == 8000
        assert counter.value < 8000, "stress() did not make the race lose an update"


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_lock", [threading.Lock, anypool.sync.Lock], ids=["threading", "anypool"]
)
def test_locked_counter_is_exact_in_10_of_10_runs(make_lock: type) -> None:
    # repeat=300 keeps this at a few seconds on 2 cores: every forced switch inside the
    # critical section makes seven threads queue on the lock.
    for _ in range(10):
        counter = Counter(make_lock())
        result = stress(counter.locked_increment, threads=8, repeat=300)
        assert result.switches > 0
        assert counter.value == 2400


def test_without_interleaving_nothing_is_forced() -> None:
    counter = Counter()
    result = stress(counter.increment, threads=4, repeat=100, interleave=False)
    assert isinstance(result, StressResult)
    assert (result.threads, result.calls, result.switches) == (4, 400, 0)


def test_interpreter_settings_are_restored() -> None:
    before = (
        sys.gettrace(),
        threading.gettrace(),
        sys.getswitchinterval(),
        threading.active_count(),
    )
    result = stress(Counter().increment, threads=4, repeat=50)
    assert result.switches > 0
    after = (
        sys.gettrace(),
        threading.gettrace(),
        sys.getswitchinterval(),
        threading.active_count(),
    )
    assert before == after


def test_an_exception_stops_every_thread_and_is_raised_with_where() -> None:
    calls = []
    counting = threading.Lock()  # two threads appending before either reads len() would
    # both see 11 and neither raise

    def fails_on_the_tenth_call() -> None:
        with counting:
            calls.append(1)
            count = len(calls)
        if count == 10:
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom") as info:
        stress(fails_on_the_tenth_call, threads=4, repeat=10_000)
    assert any("raised in stress thread" in note for note in info.value.__notes__)
    assert len(calls) < 40_000  # the others stopped early


def test_args_are_passed() -> None:
    seen = []
    stress(seen.append, threads=2, repeat=3, args=("x",))
    assert seen == ["x"] * 6


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fn": 3}, TypeError, "needs a callable"),
        ({"threads": 0}, ValueError, "threads must be >= 1"),
        ({"repeat": "10"}, TypeError, "repeat must be an int"),
        ({"args": [1]}, TypeError, "args must be a tuple"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    call = {"fn": Counter().increment, **kwargs}
    with pytest.raises(error, match=message):
        stress(**call)  # type: ignore[arg-type]


def test_bench_race_experiment(tmp_path: Path) -> None:
    out = tmp_path / "race.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "anypool",
            "bench",
            "--workloads",
            "race",
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["results"] == []  # the per-backend table's key keeps its shape
    lost = {(r["counter"], r["scheduling"]): r["lost"] for r in data["race"]}
    assert lost[("unlocked", "stressed")] > 0
    assert lost[("locked", "normal")] == lost[("locked", "stressed")] == 0
    assert "race" in proc.stdout and "locked counter was exact" in " ".join(proc.stdout.split())
