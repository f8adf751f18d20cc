"""anypool.Channel between threads and between processes."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import anypool

from . import flow_tasks

START_METHODS = ["forkserver", "spawn", "fork"]


@pytest.fixture(autouse=True)
def collect_channels() -> Iterator[None]:
    """Free each test's process channels now (their semaphores are unlinked when freed).

    A channel caught in a reference cycle (an exception kept with its traceback) would
    otherwise live until the session ends, after conftest has stopped multiprocessing's
    resource tracker, and its semaphores' finalizers would fail at exit.
    """
    yield
    gc.collect()


@pytest.fixture(params=[False, True], ids=["threads", "processes"])
def processes(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


# ── the contract, on both kinds ─────────────────────────────────────────────────


def test_items_come_out_in_order_and_iteration_ends_after_close(processes: bool) -> None:
    channel: anypool.Channel[int] = anypool.Channel(3, processes=processes)
    producer = _thread(flow_tasks.produce_open, channel, 0, 10)
    got = [channel.get(timeout=10) for _ in range(10)]
    producer.join()
    channel.put(10)
    channel.close()
    assert got == list(range(10))
    assert list(channel) == [10]  # what was queued before close() is still delivered
    with pytest.raises(anypool.ChannelClosed):
        channel.get(timeout=1)


def test_put_waits_while_full_and_a_get_makes_room(processes: bool) -> None:
    channel: anypool.Channel[str] = anypool.Channel(2, processes=processes)
    channel.put("a")
    channel.put("b")
    with pytest.raises(TimeoutError, match=r"put\(\) timed out"):
        channel.put("c", timeout=0.05)
    done = threading.Event()

    def blocked_put() -> None:
        channel.put("c")
        done.set()

    putter = _thread(blocked_put)
    assert not done.wait(0.05)  # still full: the put waits
    assert channel.get() == "a"
    putter.join(10)
    assert done.is_set()
    assert [channel.get(), channel.get()] == ["b", "c"]


def test_put_on_a_closed_channel_raises_also_while_waiting(processes: bool) -> None:
    channel: anypool.Channel[int] = anypool.Channel(1, processes=processes)
    channel.put(1)
    outcomes: list[BaseException] = []

    def waiting_put() -> None:
        try:
            channel.put(2)
        except BaseException as exc:
            outcomes.append(exc)

    putters = [_thread(waiting_put) for _ in range(3)]
    channel.close()
    for putter in putters:
        putter.join(10)
    assert [type(e) for e in outcomes] == [anypool.ChannelClosed] * 3
    with pytest.raises(anypool.ChannelClosed, match="closed"):
        channel.put(3)
    assert list(channel) == [1]


def test_close_wakes_every_waiting_getter(processes: bool) -> None:
    channel: anypool.Channel[int] = anypool.Channel(4, processes=processes)
    results: list[list[int]] = []
    getters = [_thread(lambda: results.append(list(channel))) for _ in range(3)]
    channel.put(7)
    channel.close()
    for getter in getters:
        getter.join(10)
    assert sorted(itertools.chain(*results)) == [7]
    assert len(results) == 3


def test_many_producers_and_consumers_each_item_once(processes: bool) -> None:
    channel: anypool.Channel[int] = anypool.Channel(5, processes=processes)
    producers = [_thread(flow_tasks.produce_open, channel, k * 100, 100) for k in range(3)]
    results: list[list[int]] = [[] for _ in range(3)]
    consumers = [_thread(lambda out=out: out.extend(channel)) for out in results]
    for producer in producers:
        producer.join(30)
    channel.close()
    for consumer in consumers:
        consumer.join(30)
    assert sorted(itertools.chain(*results)) == list(range(300))


def test_get_times_out_on_an_empty_channel(processes: bool) -> None:
    channel: anypool.Channel[int] = anypool.Channel(1, processes=processes)
    with pytest.raises(TimeoutError, match=r"get\(\) timed out after 0.01 s"):
        channel.get(timeout=0.01)


def test_stats_len_repr_and_context_manager(processes: bool) -> None:
    with anypool.Channel(3, processes=processes) as channel:
        channel.put("x")
        assert len(channel) == 1
        assert channel.stats() == anypool.ChannelStats(3, 1, False, processes)
    assert channel.closed
    assert channel.stats().closed
    kind = "processes" if processes else "threads"
    assert repr(channel) == f"<anypool.Channel {kind} 1/3 closed>"
    assert channel.maxsize == 3 and channel.processes is processes


@pytest.mark.parametrize("maxsize", [0, -1, 2.5, "3", True, None])
def test_a_bad_maxsize_is_refused(maxsize: Any) -> None:
    with pytest.raises(ValueError, match="maxsize must be a positive integer"):
        anypool.Channel(maxsize)


def test_bad_processes_flag_and_timeouts_are_refused() -> None:
    with pytest.raises(TypeError, match="processes must be True or False"):
        anypool.Channel(1, processes="yes")  # type: ignore[arg-type]
    channel: anypool.Channel[int] = anypool.Channel(1)
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        channel.get(timeout=-1)
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        channel.put(1, timeout="soon")  # type: ignore[arg-type]


def test_a_thread_channel_says_how_to_cross_processes() -> None:
    with pytest.raises(TypeError, match=r"Channel\(maxsize, processes=True\)"):
        pickle.dumps(anypool.Channel(1))
    with anypool.Executor("processes", workers=1) as ex:
        with pytest.raises(anypool.SerializationError) as info:
            ex.submit(flow_tasks.consume, anypool.Channel(1))
    assert "cannot send args[0] -> anypool.Channel to a worker process" in str(info.value)
    assert "give it to the workers in initargs=" in str(info.value)


# ── between processes ───────────────────────────────────────────────────────────


@pytest.mark.parametrize("method", START_METHODS)
def test_a_process_produces_into_a_channel(method: str) -> None:
    channel: anypool.Channel[Any] = anypool.Channel(2, processes=True)
    ctx = multiprocessing.get_context(method)
    producer = ctx.Process(target=flow_tasks.produce, args=(channel, 12, True))
    producer.start()
    items = list(channel)  # items of 200 kB do not fit the pipe: the reader drains it
    producer.join(30)
    assert producer.exitcode == 0
    assert [i for i, _ in items] == list(range(12))
    assert len(items[0][1]) == 200_000
    assert channel.closed


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_processes_of_a_task_group_share_a_channel_given_at_start(method: str) -> None:
    channel: anypool.Channel[Any] = anypool.Channel(3, processes=True)
    with anypool.TaskGroup(
        "processes",
        workers=3,
        start_method=method,
        initializer=flow_tasks.keep,
        initargs=(channel,),
    ) as tg:
        first = tg.spawn(flow_tasks.consume, channel)
        second = tg.spawn(flow_tasks.consume, channel)
        tg.spawn(flow_tasks.produce, channel, 30)
    assert sorted(first.result() + second.result()) == list(range(30))
    with anypool.Executor(
        "processes", workers=1, initializer=flow_tasks.keep, initargs=(channel,)
    ) as ex:
        assert (
            ex.submit(flow_tasks.put_after_close, channel)
            .result(timeout=30)
            .startswith("ChannelClosed")
        )


def test_a_channel_not_given_at_start_fails_the_task_with_advice() -> None:
    channel: anypool.Channel[int] = anypool.Channel(1, processes=True)
    with anypool.Executor("processes", workers=1) as ex:
        future = ex.submit(flow_tasks.consume, channel)
        with pytest.raises(RuntimeError, match=r"initargs=") as info:
            future.result(timeout=30)
    assert "reaches another process only as that process starts" in str(info.value)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_initargs_may_carry_multiprocessing_objects(method: str) -> None:
    # As with multiprocessing.Pool: a Value and a Lock travel as each worker starts.
    ctx = multiprocessing.get_context(method)
    value, lock = ctx.Value("i", 0, lock=False), ctx.Lock()
    with anypool.Executor(
        "processes",
        workers=2,
        start_method=method,
        initializer=flow_tasks.remember,
        initargs=(value, lock),
    ) as ex:
        list(ex.map(flow_tasks.bump_shared, range(40), chunksize=1))
    assert value.value == 40
