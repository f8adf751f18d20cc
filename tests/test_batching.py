"""The batch sizer and the bound on items in flight (no timing: fed numbers directly)."""

from __future__ import annotations

import anypool
from anypool._mapping import MAX_BATCH, BatchSizer
from anypool._tasks import FlushMode

from . import tasks
from .conftest import make_executor


def test_first_batch_is_one_item() -> None:
    assert BatchSizer(0.02, workers=2).next_size() == 1


def test_sizes_follow_measured_item_time() -> None:
    sizer = BatchSizer(0.02, workers=2)
    sizer.observe(items=1, elapsed=0.001)  # 1 ms per item -> 20 per batch
    assert sizer.next_size() == 20
    for _ in range(10):  # items became 10x slower: batches shrink
        sizer.observe(items=20, elapsed=0.2)
    assert sizer.next_size() == 2
    for _ in range(10):  # very slow items: one at a time
        sizer.observe(items=2, elapsed=4.0)
    assert sizer.next_size() == 1


def test_tiny_items_get_big_fast_batches_up_to_the_cap() -> None:
    sizer = BatchSizer(0.02, workers=2)
    sizer.observe(items=1000, elapsed=1e-4)
    assert sizer.next_size() == MAX_BATCH
    assert sizer.flush_mode() is FlushMode.FAST


def test_the_tail_is_split_so_workers_finish_together() -> None:
    sizer = BatchSizer(0.02, workers=4)
    sizer.observe(items=10, elapsed=0.001)  # 0.1 ms per item: 200 per batch
    assert sizer.next_size() == 200
    assert sizer.next_size(remaining=800) == 100  # 800 / (2 * 4)
    assert sizer.next_size(remaining=3) == 20  # never below 2 ms of work per batch


def test_tiny_items_are_not_split_into_tiny_tail_batches() -> None:
    sizer = BatchSizer(0.02, workers=4)
    sizer.observe(items=1000, elapsed=1e-4)  # 0.1 us per item
    assert sizer.next_size(remaining=80) >= 80  # one batch: a round trip costs more


def test_fixed_chunksize_is_kept() -> None:
    sizer = BatchSizer(0.02, workers=2, chunksize=7)
    sizer.observe(items=1, elapsed=10.0)
    assert sizer.next_size(remaining=1000) == 7


def test_items_in_flight_stay_bounded(pool_backend: str) -> None:
    produced = 0

    def source():
        nonlocal produced
        for i in range(20_000):
            produced += 1
            yield i

    seen = 0
    with make_executor(pool_backend, workers=2, max_in_flight=64) as ex:
        for value in ex.imap(tasks.square, source()):
            assert value == seen * seen
            seen += 1
            assert produced - seen <= 64
    assert seen == 20_000


def test_unordered_in_flight_bound(pool_backend: str) -> None:
    produced = 0

    def source():
        nonlocal produced
        for i in range(5000):
            produced += 1
            yield i

    seen = 0
    with make_executor(pool_backend, workers=2, max_in_flight=32) as ex:
        for _ in ex.imap_unordered(tasks.square, source()):
            seen += 1
            assert produced - seen <= 32
    assert seen == 5000
    assert anypool.map(tasks.square, []) == []
