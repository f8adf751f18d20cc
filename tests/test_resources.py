"""ResourcePool: never lends one resource twice, replaces broken ones, reports leaks,
and works with sqlite3 and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool.testing import stress


class Resource:
    """A resource that knows whether it is lent, and whether it was closed."""

    made = 0

    def __init__(self) -> None:
        Resource.made += 1
        self.number = Resource.made
        self.in_use = False
        self.closed = False
        self.healthy = True

    def close(self) -> None:
        self.closed = True


def borrow_and_check(
    pool: anypool.ResourcePool[Resource], doubles: list[int], switch: bool = True
) -> None:
    with pool.acquire(timeout=60) as res:
        if res.in_use or res.closed:
            doubles.append(res.number)
        res.in_use = True
        if switch:
            time.sleep(0)  # let other threads run while we hold it
        res.in_use = False


@pytest.mark.slow
def test_32_threads_10000_borrows_never_share_a_resource() -> None:
    pool = anypool.ResourcePool(Resource, size=4)
    doubles: list[int] = []
    threads = [
        # A forced switch on one borrow in 50 keeps this within seconds on 2 cores;
        # the test below forces switches everywhere, on fewer borrows.
        threading.Thread(
            target=lambda: [borrow_and_check(pool, doubles, i % 50 == 0) for i in range(10_000)]
        )
        for _ in range(32)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = pool.stats()
    assert doubles == []
    assert stats.borrows == 320_000
    assert stats.created <= 4
    assert (stats.in_use, stats.leaked, stats.timeouts) == (0, 0, 0)
    pool.close()


def test_never_shared_with_forced_interleavings() -> None:
    pool = anypool.ResourcePool(Resource, size=3)
    doubles: list[int] = []
    stress(borrow_and_check, threads=8, repeat=100, args=(pool, doubles))
    assert doubles == []
    assert pool.stats().borrows == 800


def test_resources_are_created_lazily_and_reused() -> None:
    pool = anypool.ResourcePool(Resource, size=5)
    assert pool.stats().created == 0
    for _ in range(3):
        with pool.acquire() as first:
            pass
    with pool.acquire() as again:
        assert again is first
    assert pool.stats().created == 1


def test_failing_check_replaces_the_resource() -> None:
    pool = anypool.ResourcePool(Resource, size=1, check=lambda r: r.healthy)
    with pool.acquire() as first:
        first.healthy = False
    with pool.acquire() as second:
        assert second is not first
    assert first.closed
    stats = pool.stats()
    assert (stats.replaced, stats.created, stats.closed) == (1, 2, 1)


def test_check_that_raises_counts_as_failed() -> None:
    checked: list[Resource] = []

    def check(r: Resource) -> bool:
        checked.append(r)
        if len(checked) == 1:  # the first resource, checked before its second loan
            raise ConnectionError("gone")
        return True

    pool = anypool.ResourcePool(Resource, size=1, check=check)
    with pool.acquire() as r:
        pass
    with pool.acquire() as r2:
        assert r2 is not r and r.closed


def test_timeout_names_where_the_resources_are_held() -> None:
    pool = anypool.ResourcePool(Resource, size=1)
    with pool.acquire():
        with pytest.raises(
            anypool.PoolTimeout, match=r"all 1 are in use, borrowed at: test_resources.py:\d+"
        ):
            with pool.acquire(timeout=0.05):
                pass
    assert isinstance(anypool.PoolTimeout("x"), TimeoutError)
    assert pool.stats().timeouts == 1


def test_a_waiting_borrower_gets_the_returned_resource() -> None:
    pool = anypool.ResourcePool(Resource, size=1)
    got: list[Resource] = []

    def borrow() -> None:
        with pool.acquire(timeout=30) as res:
            got.append(res)

    with pool.acquire() as res:
        t = threading.Thread(target=borrow)
        t.start()
        while pool.stats().waiting == 0:
            time.sleep(0.001)
    t.join()
    assert got == [res]


def test_leak_by_a_thread_that_ended_is_reported_and_freed() -> None:
    pool = anypool.ResourcePool(Resource, size=1)
    loans: list[Any] = []

    def forgetful() -> None:
        loan = pool.acquire()
        loan.__enter__()  # never exited
        loans.append(loan)

    t = threading.Thread(target=forgetful, name="forgetful")
    t.start()
    t.join()
    with pytest.warns(anypool.ResourceLeakWarning) as caught:
        with pool.acquire(timeout=30) as res:
            assert res.number != loans[0]._record.slot.resource.number
    text = str(caught[0].message)
    assert "thread 'forgetful' ended without giving it back" in text
    assert "in forgetful" in text and "loan.__enter__()" in text  # the acquiring stack
    assert loans[0]._record.slot.resource.closed
    assert pool.stats().leaked == 1


def test_leak_by_a_loan_never_exited_is_reported_when_collected() -> None:
    pool = anypool.ResourcePool(Resource, size=1)
    loans = [pool.acquire()]
    resource = loans[0].__enter__()
    with pytest.warns(anypool.ResourceLeakWarning, match="garbage-collected without being exited"):
        loans.clear()  # the last reference: collected now
    with pool.acquire(timeout=30) as other:
        assert other is not resource  # the leaked one may still be in use: never re-lent
    assert pool.stats().leaked == 1


def test_max_lifetime_and_max_idle_expire_resources() -> None:
    for option in ("max_lifetime", "max_idle"):
        pool = anypool.ResourcePool(Resource, size=1, **{option: 0.01})
        with pool.acquire() as first:
            pass
        time.sleep(0.05)  # time passing is what is tested here
        with pool.acquire() as second:
            assert second is not first
        assert first.closed
        assert pool.stats().expired == 1


def test_close_closes_idle_then_returned_and_refuses_new() -> None:
    pool = anypool.ResourcePool(Resource, size=2)
    with pool.acquire() as lent:
        with pool.acquire() as idle:
            pass
        pool.close()
        assert idle.closed and not lent.closed
    assert lent.closed
    with pytest.raises(anypool.PoolClosed, match="closed"):
        with pool.acquire():
            pass
    pool.close()  # again: nothing happens
    assert pool.closed


def test_close_wakes_a_waiting_borrower() -> None:
    pool = anypool.ResourcePool(Resource, size=1)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.acquire(timeout=30).__enter__()
        except anypool.PoolClosed as exc:
            errors.append(exc)

    with pool.acquire():
        t = threading.Thread(target=wait)
        t.start()
        while pool.stats().waiting == 0:
            time.sleep(0.001)
        pool.close()
        t.join()
    assert len(errors) == 1


def test_create_failure_reaches_the_borrower_and_frees_the_place() -> None:
    attempts = []

    def create() -> Resource:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("db down")
        return Resource()

    pool = anypool.ResourcePool(create, size=1)
    with pytest.raises(ConnectionRefusedError):
        with pool.acquire(timeout=1):
            pass
    with pool.acquire(timeout=1) as res:
        assert isinstance(res, Resource)


def test_a_broken_close_is_reported_not_raised() -> None:
    def bad_close(r: Resource) -> None:
        raise OSError("already gone")

    pool = anypool.ResourcePool(Resource, size=1, close=bad_close)
    with pool.acquire():
        pass
    with pytest.warns(UserWarning, match="closing a pooled resource failed"):
        pool.close()


def test_loan_cannot_be_entered_twice() -> None:
    pool = anypool.ResourcePool(Resource, size=2)
    loan = pool.acquire()
    with loan:
        with pytest.raises(RuntimeError, match="already in use"):
            loan.__enter__()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"create": 5}, TypeError, "create must be a callable"),
        ({"size": 0}, ValueError, "size must be >= 1"),
        ({"size": 2.0}, TypeError, "size must be an int"),
        ({"check": "yes"}, TypeError, "check must be a callable"),
        ({"close": 1}, TypeError, "close must be a callable"),
        ({"max_lifetime": 0}, ValueError, "max_lifetime must be > 0"),
        ({"max_idle": "1"}, TypeError, "max_idle must be a number"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    options: dict[str, Any] = {"create": Resource, "size": 1, **kwargs}
    with pytest.raises(error, match=message):
        anypool.ResourcePool(**options)


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), ("1", TypeError)])
def test_bad_timeout(timeout: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        anypool.ResourcePool(Resource, size=1).acquire(timeout=timeout)


# -- real databases ---------------------------------------------------------------------


def run_queries(pool: anypool.ResourcePool[Any], query: Callable[[Any, int], int], n: int) -> None:
    def worker(i: int) -> None:
        with pool.acquire(timeout=30) as conn:
            assert query(conn, i) == i * 2

    with anypool.Executor("threads", workers=8) as ex:
        list(ex.map(worker, range(n)))


def test_sqlite3_connections(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    setup = sqlite3.connect(path)
    setup.execute("create table t (x integer)")
    setup.close()
    pool = anypool.ResourcePool(
        lambda: sqlite3.connect(path, check_same_thread=False, timeout=30),
        size=3,
        check=lambda conn: conn.execute("select 1").fetchone() == (1,),
    )

    def query(conn: sqlite3.Connection, i: int) -> int:
        with conn:
            conn.execute("insert into t values (?)", (i,))
        return int(conn.execute("select ? * 2", (i,)).fetchone()[0])

    run_queries(pool, query, 60)
    with pool.acquire() as conn:
        assert conn.execute("select count(*) from t").fetchone() == (60,)
    # A closed connection fails its check and is replaced.
    with pool.acquire() as conn:
        conn.close()
    for _ in range(3):  # every idle connection comes round once
        with pool.acquire() as conn2:
            assert conn2.execute("select 1").fetchone() == (1,)
    assert pool.stats().replaced == 1
    pool.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn2.execute("select 1")


def test_postgresql_connections(postgres_dsn: str) -> None:
    import psycopg

    pool = anypool.ResourcePool(
        lambda: psycopg.connect(postgres_dsn, autocommit=True),
        size=4,
        check=lambda conn: conn.execute("select 1").fetchone() == (1,),
    )

    def query(conn: Any, i: int) -> int:
        return int(conn.execute("select %s::int * 2", (i,)).fetchone()[0])

    run_queries(pool, query, 100)
    assert pool.stats().created <= 4
    # The server drops one connection: its check fails and it is replaced.
    with pool.acquire() as victim:
        pid = victim.info.backend_pid
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(%s)", (pid,))
    seen = set()
    for _ in range(4):
        with pool.acquire() as conn:
            seen.add(conn.info.backend_pid)
            assert conn.execute("select 21 * 2").fetchone() == (42,)
    assert pid not in seen
    assert pool.stats().replaced == 1
    pool.close()
