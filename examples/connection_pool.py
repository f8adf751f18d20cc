"""The guide's §8.3 thread-safe connection pool, as ``anypool.ResourcePool``.

The guide builds a pool from a Semaphore and a Lock and checks nothing. ResourcePool
creates connections lazily up to ``size``, checks each before lending it (a broken one is
replaced), raises ``anypool.PoolTimeout`` instead of waiting for ever, and reports a
connection that is never given back. Eight queries on eight threads, at most three
connections at once, as in the guide; the queries really run (SQLite, in a temporary file).

Run: python examples/connection_pool.py
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import anypool


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "shop.db"
        with sqlite3.connect(database) as setup:
            setup.execute("create table orders (id integer primary key, total real)")
            setup.executemany("insert into orders (total) values (?)", [(i,) for i in range(100)])
        setup.close()

        pool = anypool.ResourcePool(
            lambda: sqlite3.connect(database, check_same_thread=False),
            size=3,
            check=lambda conn: conn.execute("select 1").fetchone() == (1,),
        )
        busy = 0
        most_busy = 0
        count_lock = threading.Lock()

        def execute_query(query_id: int) -> float:
            nonlocal busy, most_busy
            with pool.acquire(timeout=10) as conn:
                with count_lock:
                    busy += 1
                    most_busy = max(most_busy, busy)
                print(f"query {query_id} running (connection {id(conn) % 1000})...")
                time.sleep(random.uniform(0.05, 0.15))  # the guide's 0.5-1.5 s, scaled down
                (total,) = conn.execute(
                    "select sum(total) from orders where id % 8 = ?", (query_id,)
                ).fetchone()
                with count_lock:
                    busy -= 1
            print(f"query {query_id} done: {total}")
            return float(total)

        # 8 queries at once, but at most 3 connections in use
        with anypool.Executor("threads", workers=8) as ex:
            totals = list(ex.map(execute_query, range(8)))
        print(f"\nsum of all orders: {sum(totals)}; at most {most_busy} connections at once")
        print(pool.stats())
        pool.close()


if __name__ == "__main__":
    main()
