"""The core under Lock and RLock: the C extension, the pure-Python fallback, and what
both must share with threading's locks (arguments, errors, Ctrl-C, fork).

These tests run on whichever core this process uses (the C one wherever it is built);
``test_pure_python_core_passes_the_lock_suites`` runs them again, with the lock suites,
on the pure-Python core.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import anypool.sync
from anypool.sync import _core, _state

from ._sync_modes import held_elsewhere

ROOT = Path(__file__).resolve().parent.parent
PURE_REQUESTED = os.environ.get("ANYPOOL_SYNC_PURE_PYTHON") == "1"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

LOCKS = {"Lock": anypool.sync.Lock, "RLock": anypool.sync.RLock}
THREADING = {"Lock": threading.Lock, "RLock": threading.RLock}


@pytest.fixture(params=list(LOCKS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- which core -----------------------------------------------------------------------


def test_the_c_core_is_in_use_where_it_can_be() -> None:
    if PURE_REQUESTED or FREE_THREADED:
        assert _core.IMPLEMENTATION == "python"
        assert anypool.sync.Lock.__mro__[2].__module__ == "anypool.sync._pycore"
        return
    assert _core.IMPLEMENTATION == "c", (
        "the C extension anypool.sync._fastlock was not built or did not import: "
        "`pip install -e .` compiles it (it needs gcc and the Python headers); "
        "`python -c 'import anypool.sync._fastlock'` shows why it does not import"
    )
    assert anypool.sync.Lock.__mro__[2].__module__ == "anypool.sync._fastlock"


@pytest.mark.parametrize("value", ["yes", "2", "true"])
def test_bad_pure_python_setting_is_explained(value: str) -> None:
    with pytest.raises(ValueError, match=f"ANYPOOL_SYNC_PURE_PYTHON='{value}' is not understood"):
        _core._load_native({"ANYPOOL_SYNC_PURE_PYTHON": value})


def test_pure_python_setting_is_obeyed() -> None:
    assert _core._load_native({"ANYPOOL_SYNC_PURE_PYTHON": "1"}) is None


@pytest.mark.slow
@pytest.mark.skipif(PURE_REQUESTED, reason="this run is the pure-Python run")
def test_pure_python_core_passes_the_lock_suites() -> None:
    """The fallback is tested as hard as the C core: the same suites, in a process
    where ANYPOOL_SYNC_PURE_PYTHON=1 makes anypool.sync use it."""
    suites = ["test_lock_core.py", "test_sync.py", "test_lockcheck.py", "test_lockcheck_cli.py"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [str(ROOT / "tests" / name) for name in suites],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANYPOOL_SYNC_PURE_PYTHON": "1"},
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


# -- the same arguments and errors as threading's ----------------------------------------

ACQUIRE_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((True,), {}),
    ((False,), {}),
    ((0,), {}),
    ((True, 0.01), {}),
    ((True, 0), {}),
    ((True, -1), {}),
    ((False, -1), {}),
    ((), {"timeout": 0}),
    ((), {"timeout": 2}),
    ((), {"blocking": False}),
    ((), {"blocking": True, "timeout": 0.01}),
    ((), {"timeout": threading.TIMEOUT_MAX}),
    ((False, 1), {}),  # ValueError: a timeout for a non-blocking call
    ((), {"blocking": False, "timeout": 0}),
    ((), {"timeout": -5}),  # ValueError: negative
    ((), {"timeout": float("nan")}),  # ValueError
    ((), {"timeout": threading.TIMEOUT_MAX * 2}),  # OverflowError
    ((), {"timeout": float("inf")}),  # OverflowError
    ((), {"timeout": "1"}),  # TypeError
    ((), {"timeout": None}),  # TypeError
    ((1, 2, 3), {}),  # TypeError: too many
    ((True,), {"blocking": True}),  # TypeError: twice
    ((), {"wait": 1}),  # TypeError: unknown keyword
]


def _outcome(acquire: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return acquire(*args, **kwargs)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize(("args", "kwargs"), ACQUIRE_CALLS)
def test_acquire_takes_what_threading_takes(
    kind: str, mode: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ours, theirs = LOCKS[kind](), THREADING[kind]()
    expected = _outcome(theirs.acquire, args, kwargs)
    assert _outcome(ours.acquire, args, kwargs) == expected
    if expected is True:
        ours.release()
    assert not ours.locked()


def test_timeout_zero_is_a_try_and_fails_at_once_when_held(kind: str, mode: str) -> None:
    lock = LOCKS[kind]()
    holder, done = held_elsewhere(lock)
    try:
        assert lock.acquire(timeout=0) is False
        assert lock.acquire(True, 0) is False
    finally:
        done.set()
        holder.join()
    assert lock.stats().timeouts == 2


def test_lock_is_weakly_referenceable_and_not_picklable(kind: str) -> None:
    import pickle

    lock = LOCKS[kind](name="w")
    ref = weakref.ref(lock)
    assert ref() is lock
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(lock)
    del lock
    assert ref() is None


def test_at_fork_reinit_leaves_a_free_unowned_lock(kind: str, mode: str) -> None:
    lock = LOCKS[kind]()
    lock.acquire()
    lock._at_fork_reinit()
    assert not lock.locked()
    assert lock.holder() is None
    assert lock.acquire(timeout=5)
    lock.release()


def test_subclasses_of_the_public_locks_work(kind: str, mode: str) -> None:
    class Mine(LOCKS[kind]):
        pass

    lock = Mine(name="mine")
    assert lock.acquire() is True
    lock.release()
    with lock:
        assert lock.locked()
    assert lock.stats().acquisitions == 2
    assert repr(lock).startswith("<anypool.sync.Mine 'mine' unlocked")


@pytest.mark.skipif(_core.native is None, reason="this process uses the pure-Python core")
def test_specialize_takes_only_lock_core_subclasses() -> None:
    assert _core.native is not None
    with pytest.raises(TypeError, match="subclass of LockCore"):
        _core.native.specialize(int)
    # The public classes own their hot methods (the interpreter's fast call path).
    assert type(anypool.sync.Lock.__dict__["acquire"]).__name__ == "method_descriptor"


def test_rlock_condition_protocol(mode: str) -> None:
    rlock = anypool.sync.RLock()
    with rlock, rlock:
        assert rlock._is_owned() and rlock._recursion_count() == 2
        saved = rlock._release_save()
        assert not rlock.locked() and rlock._recursion_count() == 0
        rlock._acquire_restore(saved)
        assert rlock._recursion_count() == 2
    assert not rlock.locked()
    with pytest.raises(RuntimeError):
        rlock._release_save()


# -- Ctrl-C: a blocked acquire stays interruptible -------------------------------------


class Interrupted(Exception):
    """What the test's signal handler raises."""


class _Signaller:
    """Once armed, sends SIGUSR1 to the main thread (the one that blocks in acquire),
    the next signal only after the handler ran. Arm it just before the acquire: the
    first signal may still land on the bytecodes before it, the later ones (5 ms apart)
    find it blocked.

    A signal that arrives just before the main thread blocks is handled only when the
    next one interrupts the wait (CPython's own locks behave so), hence the resending.
    On exit the last signal sent is handled before the previous handler is restored:
    none is left to SIGUSR1's default action (ending the process)."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.action = action
        self.handled = 0
        self._armed = threading.Event()
        self._ack = threading.Event()
        self._stop = threading.Event()
        self._sent = False
        self._thread = threading.Thread(target=self._run)

    def arm(self) -> None:
        self._armed.set()

    def _handler(self, signum: int, frame: object) -> None:
        self.handled += 1
        self._ack.set()
        self.action(self.handled)

    def _run(self) -> None:
        main = threading.main_thread().ident
        assert main is not None
        self._armed.wait(60)
        while not self._stop.is_set():
            self._ack.clear()
            self._send(main)
            while not self._ack.wait(0.05):
                if self._stop.is_set():
                    return
                self._send(main)
            self._stop.wait(0.005)

    def _send(self, main: int) -> None:
        self._sent = True
        signal.pthread_kill(main, signal.SIGUSR1)

    def __enter__(self) -> _Signaller:
        self._previous = signal.signal(signal.SIGUSR1, self._handler)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._armed.set()
        self._thread.join()
        if self._sent:
            assert self._ack.wait(30)
        signal.signal(signal.SIGUSR1, self._previous)


def test_blocked_acquire_is_interrupted_by_a_raising_signal_handler(kind: str, mode: str) -> None:
    lock = LOCKS[kind]()
    holder, done = held_elsewhere(lock)
    raised = []

    def action(count: int) -> None:
        if count >= 2 and not raised:  # once: later ones must not hit the test's code
            raised.append(count)
            raise Interrupted

    def arm_and_acquire(signaller: _Signaller) -> bool:
        signaller.arm()
        return bool(lock.acquire())

    try:
        with _Signaller(action) as signaller, pytest.raises(Interrupted):
            arm_and_acquire(signaller)
    finally:
        done.set()
        holder.join()
    me = _state.threads.get(threading.get_ident())
    assert me is None or me.waiting is None  # the watchdog no longer says we wait
    assert lock.acquire(timeout=10)  # the interrupted acquire left nothing behind
    lock.release()
    assert lock.stats().acquisitions == 2


def test_blocked_acquire_goes_on_after_a_handler_that_returns(kind: str, mode: str) -> None:
    lock = LOCKS[kind]()
    holder, done = held_elsewhere(lock)

    def action(count: int) -> None:
        if count == 3:
            done.set()  # the holder lets go only once three signals were handled

    try:
        with _Signaller(action) as signaller:
            signaller.arm()
            assert lock.acquire() is True
            lock.release()
    finally:
        done.set()
        holder.join()
    assert signaller.handled >= 3


def test_timed_acquire_keeps_its_deadline_across_signals(kind: str, mode: str) -> None:
    lock = LOCKS[kind]()
    holder, done = held_elsewhere(lock)
    try:
        with _Signaller(lambda count: None) as signaller:
            start = time.perf_counter()
            signaller.arm()
            assert lock.acquire(timeout=0.3) is False
            elapsed = time.perf_counter() - start
    finally:
        done.set()
        holder.join()
    assert signaller.handled >= 1
    # Each signal restarts the wait with the time left, not with the whole timeout.
    assert 0.29 <= elapsed < 10
    assert lock.stats().timeouts == 1


# -- tracked mode: what is recorded --------------------------------------------------


def test_a_lock_released_by_another_thread_leaves_its_holders_list() -> None:
    first, second = anypool.sync.Lock(name="first"), anypool.sync.Lock(name="second")
    with anypool.sync.lockcheck() as check:
        first.acquire()
        releaser = threading.Thread(target=first.release)
        releaser.start()
        releaser.join()
        with second:  # `first` is no longer held here: no order first -> second
            pass
    assert check.report().edges == 0


def test_lock_taken_while_checking_and_released_after_is_forgotten() -> None:
    lock = anypool.sync.RLock(name="r")
    with anypool.sync.lockcheck():
        lock.acquire()
        lock.acquire()
        assert lock.holder() == threading.get_ident()
    lock.release()
    lock.release()
    with anypool.sync.lockcheck() as check:
        with anypool.sync.Lock(name="other"), lock:
            pass
        assert lock.holder() is None
    assert check.report().edges == 1  # other -> r, and nothing stale about r
