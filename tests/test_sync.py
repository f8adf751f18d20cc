"""One suite over every anypool.sync lock type, in every mode (STYLE rule 9).

A lock type is added by one line in LOCK_TYPES; a mode (what is switched on while the
test runs) by one line in MODES (tests/_sync_modes.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import anypool.sync
from anypool.testing import stress

from ._sync_modes import held_elsewhere

# name -> factory of a primitive with acquire/release/context manager and mutual
# exclusion (a Semaphore of 1 excludes as a Lock does).
LOCK_TYPES: dict[str, Callable[..., Any]] = {
    "Lock": anypool.sync.Lock,
    "RLock": anypool.sync.RLock,
    "Semaphore": lambda **kw: anypool.sync.Semaphore(1, **kw),
    "BoundedSemaphore": lambda **kw: anypool.sync.BoundedSemaphore(1, **kw),
    "Condition": anypool.sync.Condition,
}


@pytest.fixture(params=list(LOCK_TYPES))
def make_lock(request: pytest.FixtureRequest, mode: str) -> Callable[..., Any]:
    return LOCK_TYPES[request.param]


def _in_thread(fn: Callable[[], object]) -> Any:
    """Run ``fn`` in another thread; return its result or raise its exception here."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def test_excludes_under_stress(make_lock: Callable[..., Any]) -> None:
    lock = make_lock()
    counter = [0]

    def increment() -> None:
        with lock:
            counter[0] += 1

    stress(increment, threads=4, repeat=200)
    assert counter[0] == 800
    assert lock.stats().acquisitions >= 800 or isinstance(lock, anypool.sync.Condition)


def test_acquire_release_and_context_manager(make_lock: Callable[..., Any]) -> None:
    lock = make_lock()
    assert lock.acquire() is True
    lock.release()
    with lock as entered:
        assert entered is True
    assert lock.acquire(timeout=1) is True
    lock.release()


def test_nonblocking_and_timeout_fail_whileheld_elsewhere(make_lock: Callable[..., Any]) -> None:
    lock = make_lock()
    holder, done = held_elsewhere(lock)
    try:
        assert lock.acquire(blocking=False) is False
        assert lock.acquire(timeout=0.05) is False
    finally:
        done.set()
        holder.join()
    assert lock.acquire(timeout=10) is True
    lock.release()
    if not isinstance(lock, anypool.sync.Condition):
        assert lock.stats().timeouts == 2


def test_contended_acquisition_is_counted_and_timed(make_lock: Callable[..., Any]) -> None:
    lock = make_lock()
    holder, done = held_elsewhere(lock)
    waiting = threading.Event()

    def take() -> bool:
        waiting.set()
        with lock:
            return True

    taker = threading.Thread(target=take)
    taker.start()
    assert waiting.wait(30)
    done.set()
    holder.join()
    taker.join()
    if isinstance(lock, anypool.sync.Condition):
        lock = lock.lock
    stats = lock.stats()
    assert stats.acquisitions == 2
    assert stats.contended <= 1  # the taker may have arrived after the holder left
    assert stats.total_wait >= stats.max_wait >= 0


def test_name_and_stats_record(make_lock: Callable[..., Any]) -> None:
    named = make_lock(name="db")
    assert named.name == "db"
    assert named.stats().name == "db"
    assert "test_sync.py:" in make_lock().name  # the default says where it was created
    with pytest.raises(TypeError, match="name must be a str"):
        make_lock(name=3)
    stats = named.stats()
    with pytest.raises(AttributeError):
        stats.acquisitions = 5  # frozen


def test_nonblocking_call_with_timeout_is_refused(make_lock: Callable[..., Any]) -> None:
    lock = make_lock()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1)
    assert lock.acquire(blocking=False)  # the refused call did not take it
    lock.release()


# -- Lock and RLock specifics ---------------------------------------------------------

LOCKS = {"Lock": anypool.sync.Lock, "RLock": anypool.sync.RLock}


@pytest.fixture(params=list(LOCKS))
def make_mutex(request: pytest.FixtureRequest, mode: str) -> Callable[..., Any]:
    return LOCKS[request.param]


def test_negative_timeout_is_refused(make_mutex: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        make_mutex().acquire(timeout=-5)


def test_release_unheld_raises_runtime_error(make_mutex: Callable[..., Any]) -> None:
    with pytest.raises(RuntimeError):
        make_mutex().release()


def test_hold_time_is_measured_only_while_tracking(
    make_mutex: Callable[..., Any], mode: str
) -> None:
    lock = make_mutex()
    with lock:
        pass
    max_hold = lock.stats().max_hold
    if mode == "plain":
        assert max_hold is None
    else:
        assert max_hold is not None and max_hold >= 0


def test_holder_is_known_while_tracking(make_mutex: Callable[..., Any], mode: str) -> None:
    lock = make_mutex()
    with lock:
        expected = None if mode == "plain" else threading.get_ident()
        assert lock.holder() == expected
    assert lock.holder() is None


def test_lock_may_be_released_by_another_thread(mode: str) -> None:
    lock = anypool.sync.Lock()
    lock.acquire()
    assert lock.locked()
    _in_thread(lock.release)
    assert not lock.locked()


def test_rlock_is_reentrant_and_owned(mode: str) -> None:
    rlock = anypool.sync.RLock(name="tree")

    def visit(depth: int) -> int:
        with rlock:
            return depth if depth == 3 else visit(depth + 1)

    assert visit(0) == 3
    assert rlock.stats().acquisitions == 4
    rlock.acquire()
    with pytest.raises(RuntimeError):
        _in_thread(rlock.release)
    rlock.release()
    assert "unlocked" in repr(rlock)


def test_threading_condition_works_over_anypool_locks(make_mutex: Callable[..., Any]) -> None:
    cond = threading.Condition(make_mutex())
    with cond:
        assert cond.wait(0.01) is False


# -- Condition, Event, Barrier, Semaphore ---------------------------------------------


def test_condition_producer_consumer(mode: str) -> None:
    """The guide's §3.5 bounded queue, with an anypool Condition."""
    items: list[int] = []
    cond = anypool.sync.Condition(name="queue")

    def producer() -> None:
        for i in range(20):
            with cond:
                cond.wait_for(lambda: len(items) < 3, timeout=30)
                items.append(i)
                cond.notify_all()

    t = threading.Thread(target=producer)
    t.start()
    got = []
    while len(got) < 20:
        with cond:
            assert cond.wait_for(lambda: items, timeout=30)
            got.append(items.pop(0))
            cond.notify_all()
    t.join()
    assert got == list(range(20))
    assert cond.stats().acquisitions >= 1


def test_condition_wait_needs_the_lock_and_times_out(mode: str) -> None:
    cond = anypool.sync.Condition(anypool.sync.Lock(name="l"))
    with pytest.raises(RuntimeError):
        cond.wait(0.01)
    with cond:
        assert cond.wait(0.01) is False
        cond.notify()
        cond.notify_all()
    assert cond.stats().timeouts == 1
    assert "l" in repr(cond)


def test_event(mode: str) -> None:
    event = anypool.sync.Event(name="stop")
    assert event.wait(0.01) is False
    t = threading.Thread(target=event.set)
    t.start()
    assert event.wait(30) is True
    t.join()
    assert event.is_set()
    event.clear()
    assert not event.is_set()
    stats = event.stats()
    assert (stats.timeouts, stats.acquisitions) == (1, 1)
    assert "unset" in repr(event)


def test_barrier(mode: str) -> None:
    barrier = anypool.sync.Barrier(3, timeout=30, name="start")
    threads = [threading.Thread(target=barrier.wait) for _ in range(2)]
    for t in threads:
        t.start()
    assert barrier.wait() in range(3)
    for t in threads:
        t.join()
    assert barrier.stats().acquisitions == 3
    assert (barrier.parties, barrier.n_waiting, barrier.broken) == (3, 0, False)
    barrier.abort()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    assert barrier.stats().timeouts == 1
    barrier.reset()
    assert not barrier.broken


@pytest.mark.parametrize(("parties", "error"), [(0, ValueError), ("3", TypeError)])
def test_barrier_bad_parties(parties: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="parties"):
        anypool.sync.Barrier(parties)


def test_semaphore_admits_value_threads(mode: str) -> None:
    sem = anypool.sync.Semaphore(3)
    for _ in range(3):
        assert sem.acquire(blocking=False)
    assert not sem.acquire(blocking=False)
    sem.release(3)
    assert "value=3" in repr(sem)


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (1.5, TypeError)])
def test_semaphore_bad_value(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="semaphore"):
        anypool.sync.Semaphore(value)


def test_bounded_semaphore_refuses_extra_release() -> None:
    sem = anypool.sync.BoundedSemaphore(2)
    with pytest.raises(ValueError, match="too many"):
        sem.release()


def test_public_names_of_anypool_sync() -> None:
    import inspect

    assert anypool.sync.__all__ == sorted(anypool.sync.__all__)
    for name in anypool.sync.__all__:
        obj = getattr(anypool.sync, name)
        assert obj.__module__ == "anypool.sync", name
        assert obj.__doc__, name
    for name in ("Lock", "RLock", "Semaphore", "Condition", "Event", "Barrier", "lockcheck"):
        assert "Example::" in (getattr(anypool.sync, name).__doc__ or ""), name
    assert inspect.ismodule(anypool.sync) and inspect.ismodule(anypool.testing)
    for name in ("ResourcePool", "PoolTimeout"):
        assert "Example::" in (getattr(anypool, name).__doc__ or ""), name
