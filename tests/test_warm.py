"""Module-level calls reuse warm process pools; idle ones stop by themselves."""

from __future__ import annotations

import threading
import time

import pytest

import anypool
from anypool import _warm

from . import tasks
from ._leaks import wait_until_clean, worker_processes


def test_a_second_map_reuses_the_workers() -> None:
    first = set(anypool.map(tasks.pid, range(20), backend="processes", workers=2, chunksize=1))
    second = set(anypool.map(tasks.pid, range(20), backend="processes", workers=2, chunksize=1))
    assert first == second
    assert len(_warm.WARM) == 1


def test_different_settings_get_different_pools() -> None:
    anypool.map(tasks.pid, range(4), backend="processes", workers=1)
    anypool.map(tasks.pid, range(4), backend="processes", workers=2)
    assert len(_warm.WARM) == 2


def test_close_pools_stops_them_now() -> None:
    anypool.map(tasks.square, range(4), backend="processes", workers=2)
    assert worker_processes()
    anypool.close_pools()
    procs, _ = wait_until_clean()
    assert not procs
    assert len(_warm.WARM) == 0


def test_failed_or_closed_calls_keep_their_pool_but_terminated_ones_do_not() -> None:
    with pytest.raises(ValueError, match="bad item 3"):
        anypool.map(tasks.fail_on, range(8), backend="processes", workers=2)
    assert len(_warm.WARM) == 1  # a task's failure leaves the pool healthy
    results = anypool.imap(tasks.square, range(10**6), backend="processes", workers=2)
    next(results)
    results.close()  # type: ignore[attr-defined]
    assert len(_warm.WARM) == 1
    assert anypool.map(tasks.square, range(5), backend="processes", workers=2) == [0, 1, 4, 9, 16]
    with anypool.Executor("processes", workers=2, _warm=True) as ex:
        ex.terminate()  # what Ctrl-C in a module-level call does
    assert len(_warm.WARM) == 0


def test_executors_you_create_never_come_from_the_warm_pools() -> None:
    anypool.map(tasks.square, range(4), backend="processes", workers=2)
    with anypool.Executor("processes", workers=2) as ex:
        assert ex.submit(tasks.square, 2).result(timeout=30) == 4
    assert len(_warm.WARM) == 1


def test_idle_pools_stop_their_workers_and_start_again_on_demand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_warm, "IDLE_TIMEOUT", 0.3)
    first = set(anypool.map(tasks.pid, range(10), backend="processes", workers=2, chunksize=1))
    deadline = time.monotonic() + 10
    while (worker_processes() or dispatchers()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not worker_processes()  # stopped by themselves
    assert not dispatchers()  # and the dispatcher thread too
    assert len(_warm.WARM) == 1  # the pool object is still there, ready
    second = set(anypool.map(tasks.pid, range(10), backend="processes", workers=2, chunksize=1))
    assert first.isdisjoint(second)  # new workers, started on demand


def dispatchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "anypool-dispatcher"]


def test_auto_uses_the_warm_pool_too() -> None:
    anypool.map(tasks.square, range(4), backend="processes", workers=2)
    result = anypool.map(tasks.square, range(100), workers=2)  # auto: no new pool needed
    assert result == [i * i for i in range(100)]
