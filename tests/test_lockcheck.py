"""Lock-order checking: the guide's §9.3 deadlock is found in a run that does not hang."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import anypool.sync
from anypool.sync import _state


def run_one_after_another(*targets: Callable[[], object]) -> None:
    """Each target in its own thread, the next starting only after the previous ended:
    no two threads ever overlap, so nothing can deadlock in this run."""
    for target in targets:
        t = threading.Thread(target=target)
        t.start()
        t.join()


def guide_93(fixed: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """The guide's §9.3 threads (with anypool locks): thread2 takes the locks in the
    opposite order, unless ``fixed``."""
    lock_a = anypool.sync.Lock(name="lock_a")
    lock_b = anypool.sync.Lock(name="lock_b")

    def thread1() -> None:
        with lock_a:
            with lock_b:
                pass

    def thread2() -> None:
        first, second = (lock_a, lock_b) if fixed else (lock_b, lock_a)
        with first:
            with second:
                pass

    return thread1, thread2


def test_guide_deadlock_is_reported_though_the_threads_never_overlapped() -> None:
    with pytest.warns(anypool.sync.LockOrderWarning) as caught:
        with anypool.sync.lockcheck() as check:
            run_one_after_another(*guide_93(fixed=False))
    [inversion] = check.inversions
    assert inversion.now.held == "lock_b"
    assert inversion.now.acquired == "lock_a"
    assert [(e.held, e.acquired) for e in inversion.earlier] == [("lock_a", "lock_b")]
    assert "in thread1" in inversion.earlier[0].stack  # both stacks are shown
    assert "in thread2" in inversion.now.stack
    assert set(inversion.locks) == {"lock_a", "lock_b"}
    text = str(caught[0].message)
    assert "lock-order inversion" in text
    assert "Acquire them in one order everywhere" in text
    assert caught[0].filename == __file__  # the warning points at the user's line
    report = check.report()
    assert (report.locks, report.edges, len(report.inversions)) == (2, 2, 1)
    assert "1 inversion" in report.summary()


def test_fixed_order_reports_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with anypool.sync.lockcheck() as check:
            run_one_after_another(*guide_93(fixed=True))
    assert check.inversions == []
    assert check.report().edges == 1


def test_strict_raises_before_acquiring_so_nothing_hangs() -> None:
    lock_a, lock_b = anypool.sync.Lock(name="a"), anypool.sync.Lock(name="b")
    with anypool.sync.lockcheck(strict=True) as check:
        with lock_a, lock_b:
            pass
        with lock_b:
            with pytest.raises(anypool.sync.LockOrderError) as info:
                lock_a.acquire()
            assert not lock_a.locked()
    assert info.value.inversion is check.inversions[0]
    assert isinstance(info.value, anypool.AnypoolError)
    assert "'a' -> 'b'" in info.value.inversion.summary()


def test_a_cycle_through_three_locks() -> None:
    a, b, c = (anypool.sync.RLock(name=n) for n in "abc")

    def take(first: Any, second: Any) -> None:
        with first, second:
            pass

    with anypool.sync.lockcheck() as check:
        take(a, b)
        take(b, c)
        with pytest.warns(anypool.sync.LockOrderWarning):
            take(c, a)  # c -> a closes a -> b -> c
    [inversion] = check.inversions
    assert set(inversion.locks) == {"a", "b", "c"}
    assert [(e.held, e.acquired) for e in inversion.earlier] == [("a", "b"), ("b", "c")]


def test_each_inversion_is_reported_once() -> None:
    thread1, thread2 = guide_93(fixed=False)
    with pytest.warns(anypool.sync.LockOrderWarning):
        with anypool.sync.lockcheck() as check:
            run_one_after_another(thread1, thread2, thread1, thread2)
    assert len(check.inversions) == 1


def test_rlock_reentry_and_condition_wait_are_not_inversions() -> None:
    outer, rlock = anypool.sync.Lock(name="outer"), anypool.sync.RLock(name="r")
    cond = anypool.sync.Condition(rlock)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with anypool.sync.lockcheck() as check:
            with outer, rlock, rlock:
                with cond:
                    cond.wait(0.01)  # releases and re-takes r while outer is held
    assert check.inversions == []


def test_self_deadlock_of_a_lock_is_reported() -> None:
    lock = anypool.sync.Lock(name="once")
    with anypool.sync.lockcheck(strict=True), lock:
        with pytest.raises(anypool.sync.LockOrderError, match="self-deadlock") as info:
            lock.acquire()
        assert info.value.inversion.self_deadlock
        assert lock.acquire(timeout=0.01) is False  # with a timeout it is no deadlock


def test_checking_is_off_again_after_the_block() -> None:
    assert not _state.tracking
    with anypool.sync.lockcheck():
        assert _state.tracking
        lock = anypool.sync.Lock()
        lock.acquire()  # acquired while checking ...
    assert not _state.tracking
    lock.release()  # ... released after: fine
    assert lock.holder() is None
    later = anypool.sync.Lock()
    with later:  # nothing is recorded any more
        assert later.holder() is None
    assert later.stats().max_hold is None


def test_lockcheck_argument_checks() -> None:
    with pytest.raises(TypeError, match="strict must be True or False"):
        with anypool.sync.lockcheck(strict="yes"):  # type: ignore[arg-type]
            pass


# -- ANYPOOL_LOCKCHECK=1 -----------------------------------------------------------

SCRIPT_ANYPOOL_LOCKS = """
import threading, time
import anypool.sync

lock_a = anypool.sync.Lock(name="lock_a")
lock_b = anypool.sync.Lock(name="lock_b")

def thread1():
    with lock_a:
        time.sleep(0.01)
        with lock_b:
            pass

def thread2():
    with {first}:
        time.sleep(0.01)
        with {second}:
            pass

for target in (thread1, thread2):   # thread 2 starts only after thread 1 finished
    t = threading.Thread(target=target)
    t.start()
    t.join()
print("finished")
"""


def run_script(tmp_path: Path, code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=tmp_path,
    )


@pytest.mark.parametrize("fixed", [False, True])
def test_environment_variable_turns_checking_on(tmp_path: Path, fixed: bool) -> None:
    order = (
        {"first": "lock_a", "second": "lock_b"}
        if fixed
        else {"first": "lock_b", "second": "lock_a"}
    )
    proc = run_script(tmp_path, SCRIPT_ANYPOOL_LOCKS.format(**order), {"ANYPOOL_LOCKCHECK": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout
    if fixed:
        assert proc.stderr == ""
    else:
        assert "LockOrderWarning: lock-order inversion" in proc.stderr
        assert "app.py" in proc.stderr
        assert "1 inversion(s)" in proc.stderr  # the summary at exit


def test_environment_variable_strict(tmp_path: Path) -> None:
    code = SCRIPT_ANYPOOL_LOCKS.format(first="lock_b", second="lock_a")
    proc = run_script(tmp_path, code, {"ANYPOOL_LOCKCHECK": "strict"})
    assert "anypool.sync.LockOrderError: lock-order inversion" in proc.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANYPOOL_LOCKCHECK": "maybe"}, "ANYPOOL_LOCKCHECK='maybe' is not understood"),
        ({"ANYPOOL_LOCK_WATCHDOG": "soon"}, "ANYPOOL_LOCK_WATCHDOG='soon' is not understood"),
        ({"ANYPOOL_LOCK_WATCHDOG": "-3"}, "ANYPOOL_LOCK_WATCHDOG='-3' is not understood"),
    ],
)
def test_bad_environment_values_are_explained(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _state.env_settings(env)


def test_environment_values_understood() -> None:
    assert _state.env_settings({}) == {"lockcheck": None, "watchdog": None}
    assert _state.env_settings({"ANYPOOL_LOCKCHECK": "STRICT", "ANYPOOL_LOCK_WATCHDOG": "2.5"}) == {
        "lockcheck": "strict",
        "watchdog": 2.5,
    }


# -- the watchdog ---------------------------------------------------------------------

WATCHDOG_SCRIPT = """
import threading
import anypool.sync

db = anypool.sync.Lock(name="db")
taken, done = threading.Event(), threading.Event()

def holder():
    with db:
        taken.set()
        done.wait(30)

h = threading.Thread(target=holder, name="holder")
h.start()
taken.wait(30)
got = db.acquire(timeout=1.0)   # the watchdog speaks after 0.2 s
print("acquired", got)
done.set()
h.join()
"""


def test_watchdog_prints_every_thread_and_who_holds_what(tmp_path: Path) -> None:
    proc = run_script(tmp_path, WATCHDOG_SCRIPT, {"ANYPOOL_LOCK_WATCHDOG": "0.2"})
    assert proc.returncode == 0, proc.stderr
    assert "acquired False" in proc.stdout
    err = proc.stderr
    assert "anypool watchdog: thread 'MainThread' has waited 0.2 s to acquire db" in err
    assert "it is held by thread 'holder'" in err
    assert 'Thread "holder"' in err
    assert "holds: db" in err
    assert "waits for: db" in err
    assert "done.wait(30)" in err  # the holder's stack shows where it is stuck
    assert err.count("anypool watchdog:") == 1


@pytest.mark.parametrize(("seconds", "error"), [(0, ValueError), ("5", TypeError)])
def test_set_watchdog_bad_values(seconds: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="watchdog seconds"):
        anypool.sync.set_watchdog(seconds)  # type: ignore[arg-type]


def test_the_example_script() -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "lock_order.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "found: 'lock_b' -> 'lock_a'" in proc.stdout
    assert "fixed version, inversions: 0" in proc.stdout
