"""The asyncio backend and ``anypool.amap``: coroutine functions, real event loops."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time

import pytest

import anypool
from anypool._backends._asyncio import is_coroutine_function

from . import tasks


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def nap(seconds: float, value: object = None) -> object:
    await asyncio.sleep(seconds)
    return value


async def fail_on(x: int, bad: int = 3) -> int:
    await asyncio.sleep(0)
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


async def add(a: int, b: int) -> int:
    return a + b


class Peak:
    """Counts how many coroutines run at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0

    async def __call__(self, x: int) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.01)
        self.now -= 1
        return x


def test_submit_returns_an_ordinary_future() -> None:
    with anypool.Executor("asyncio") as ex:
        future = ex.submit(double, 21)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(timeout=30) == 42
        assert ex.submit(add, 1, b=2).result(timeout=30) == 3


def test_map_imap_unordered_starmap_keep_their_contracts() -> None:
    with anypool.Executor("asyncio") as ex:
        assert list(ex.map(double, range(300))) == [2 * i for i in range(300)]
        delays = [0.03, 0.0, 0.02, 0.0]
        assert list(ex.map(nap, delays, range(4))) == [0, 1, 2, 3]
        assert sorted(ex.imap_unordered(double, range(50))) == [2 * i for i in range(50)]
        assert ex.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
    assert anypool.map(double, range(5), backend="asyncio") == [0, 2, 4, 6, 8]


def test_items_of_one_batch_wait_concurrently() -> None:
    start = time.perf_counter()
    with anypool.Executor("asyncio", workers=100) as ex:
        results = list(ex.map(nap, [0.2] * 100, range(100), chunksize=100))
    assert results == list(range(100))
    assert time.perf_counter() - start < 2.0  # one after another would take 20 s


def test_ten_thousand_waits_fan_out_from_synchronous_code() -> None:
    start = time.perf_counter()
    results = anypool.map(nap, [0.05] * 10_000, range(10_000), backend="asyncio", workers=10_000)
    elapsed = time.perf_counter() - start
    assert results == list(range(10_000))
    assert elapsed < 2.0, elapsed  # 10,000 x 50 ms one at a time would be 500 s


def test_workers_caps_how_many_run_at_once() -> None:
    peak = Peak()
    with anypool.Executor("asyncio", workers=5) as ex:
        assert list(ex.map(peak, range(40))) == list(range(40))
    assert peak.peak == 5


def test_a_plain_function_is_refused_with_a_suggestion() -> None:
    with anypool.Executor("asyncio") as ex:
        with pytest.raises(TypeError, match="plain function: use backend='threads'"):
            ex.submit(tasks.square, 2)
        with pytest.raises(TypeError, match="abs is a plain function"):
            ex.map(abs, [1])
    with pytest.raises(TypeError, match="use backend='threads'"):
        anypool.map(tasks.square, [1], backend="asyncio")


def test_a_coroutine_function_on_a_thread_pool_is_refused_with_a_suggestion() -> None:
    for backend in ("threads", "serial", "processes"):
        with anypool.Executor(backend) as ex:
            with pytest.raises(TypeError, match="use backend='asyncio'"):
                ex.submit(double, 1)
            with pytest.raises(TypeError, match="coroutine function"):
                ex.map(double, [1])


def test_coroutine_callables_are_recognised() -> None:
    import functools

    class Fetcher:
        async def __call__(self, x: int) -> int:
            return x

        async def method(self, x: int) -> int:
            return x

    assert is_coroutine_function(double)
    assert is_coroutine_function(functools.partial(add, 1))
    assert is_coroutine_function(Fetcher())
    assert is_coroutine_function(Fetcher().method)
    assert not is_coroutine_function(tasks.square)
    assert not is_coroutine_function(Fetcher)
    with anypool.Executor("asyncio") as ex:
        assert list(ex.map(Fetcher(), [1, 2])) == [1, 2]
        assert ex.submit(functools.partial(add, 1), 2).result(timeout=30) == 3


def test_errors_keep_their_type_and_name_the_item() -> None:
    with anypool.Executor("asyncio") as ex:
        with pytest.raises(ValueError, match="bad item 3") as info:
            list(ex.map(fail_on, range(6)))
        assert any("item 3 of map() on the asyncio backend" in n for n in info.value.__notes__)
        with pytest.raises(ValueError, match="bad item 3"):
            ex.submit(fail_on, 3).result(timeout=30)
        results = list(ex.map(fail_on, range(6), on_error="collect"))
    assert isinstance(results[3], anypool.Failure)
    assert results[3].index == 3
    assert [r for r in results if not isinstance(r, anypool.Failure)] == [0, 1, 2, 4, 5]


def test_task_timeout_cancels_the_coroutine() -> None:
    cancelled = threading.Event()

    async def hang(x: int) -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    with anypool.Executor("asyncio", task_timeout=0.2) as ex:
        future = ex.submit(hang, 1)
        with pytest.raises(anypool.TaskTimeout) as info:
            future.result(timeout=30)
        assert info.value.timeout == 0.2
        assert cancelled.wait(10)
        results = list(ex.map(hang, range(3), on_error="collect"))
        assert all(isinstance(r.exception, anypool.TaskTimeout) for r in results)
        assert [r.exception.index for r in results] == [0, 1, 2]
        assert ex.stats().timed_out == 4


def test_retries_rerun_a_failed_coroutine() -> None:
    attempts: list[int] = []

    async def flaky(x: int) -> int:
        attempts.append(x)
        if attempts.count(x) < 3:
            raise ConnectionError("try again")
        return x

    with anypool.Executor("asyncio", retries=2) as ex:
        assert list(ex.map(flaky, [7, 8])) == [7, 8]
    assert sorted(attempts) == [7, 7, 7, 8, 8, 8]


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_initializer_runs_on_the_loop_first(kind: str) -> None:
    seen: list[str] = []

    def plain_init(tag: str) -> None:
        seen.append(f"{tag} {threading.current_thread().name}")

    async def coroutine_init(tag: str) -> None:
        await asyncio.sleep(0)
        plain_init(tag)

    async def read(_: int) -> list[str]:
        return list(seen)

    init = plain_init if kind == "plain" else coroutine_init
    with anypool.Executor("asyncio", initializer=init, initargs=("init",)) as ex:
        assert ex.submit(read, 0).result(timeout=30) == ["init anypool-asyncio"]


def test_a_failing_initializer_breaks_the_pool() -> None:
    def broken() -> None:
        raise RuntimeError("no config")

    with anypool.Executor("asyncio", initializer=broken) as ex:
        with pytest.raises(anypool.InitializerError, match="no config"):
            ex.submit(double, 1).result(timeout=30)


def test_shutdown_cancel_futures_cancels_what_has_not_started() -> None:
    gate = threading.Event()

    async def wait_gate(_: int) -> str:
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return "open"

    ex = anypool.Executor("asyncio", workers=1)
    running = ex.submit(wait_gate, 0)
    while not running.running():
        time.sleep(0.005)
    queued = [ex.submit(double, i) for i in range(5)]
    threading.Timer(0.2, gate.set).start()
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=30) == "open"
    assert all(f.cancelled() for f in queued)


def test_a_future_waiting_for_a_free_slot_can_be_cancelled() -> None:
    gate = threading.Event()

    async def wait_gate(_: int) -> str:
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return "open"

    with anypool.Executor("asyncio", workers=1) as ex:
        first = ex.submit(wait_gate, 0)
        second = ex.submit(double, 1)
        assert second.cancel()
        gate.set()
        assert first.result(timeout=30) == "open"
        assert second.cancelled()


def test_terminate_stops_running_coroutines() -> None:
    async def forever(_: int) -> None:
        await asyncio.sleep(3600)

    ex = anypool.Executor("asyncio")
    future = ex.submit(forever, 0)
    while not future.running():
        time.sleep(0.005)
    ex.terminate()
    with pytest.raises(anypool.BrokenPool, match="terminated"):
        future.result(timeout=30)
    ex.shutdown()


def test_stats() -> None:
    with anypool.Executor("asyncio", workers=7) as ex:
        assert list(ex.map(double, range(20))) == [2 * i for i in range(20)]
        stats = ex.stats()
    assert stats.backend == "asyncio"
    assert stats.workers == 7
    assert stats.tasks_done == 20
    assert anypool.Executor("asyncio").workers == 1000


def test_uses_uvloop_when_installed_and_asyncio_without(monkeypatch: pytest.MonkeyPatch) -> None:
    async def loop_type(_: int) -> str:
        return type(asyncio.get_running_loop()).__module__

    pytest.importorskip("uvloop")  # installed by `make test` (the dev extra)
    with anypool.Executor("asyncio") as ex:
        assert ex.submit(loop_type, 0).result(timeout=30).startswith("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with anypool.Executor("asyncio") as ex:
        assert ex.submit(loop_type, 0).result(timeout=30).startswith("asyncio")


# ── amap: from inside a running event loop ─────────────────────────────────────


def test_amap_runs_coroutines_on_the_callers_loop() -> None:
    async def main() -> tuple[list[int], set[int]]:
        loops: set[int] = set()

        async def where(x: int) -> int:
            loops.add(id(asyncio.get_running_loop()))
            await asyncio.sleep(0.001)
            return x

        results = await anypool.amap(where, range(50), workers=8)
        return results, loops | {-id(asyncio.get_running_loop())}

    results, loops = asyncio.run(main())
    assert results == list(range(50))
    assert len(loops) == 2 and sum(loops) == 0  # one loop: the caller's


def test_amap_caps_concurrency_and_zips_iterables() -> None:
    peak = Peak()

    async def main() -> tuple[list[int], list[int]]:
        capped = await anypool.amap(peak, range(30), workers=4)
        return capped, await anypool.amap(add, [1, 2, 3], [10, 20, 30])

    capped, added = asyncio.run(main())
    assert capped == list(range(30))
    assert peak.peak == 4
    assert added == [11, 22, 33]


def test_amap_errors_timeouts_and_collect() -> None:
    async def main() -> list[object]:
        with pytest.raises(ValueError, match="bad item 3") as info:
            await anypool.amap(fail_on, range(6))
        assert "anypool: raised by item 3 of amap()" in info.value.__notes__
        with pytest.raises(anypool.TaskTimeout):
            await anypool.amap(nap, [10.0], task_timeout=0.05)
        return await anypool.amap(fail_on, range(5), on_error="collect")

    results = asyncio.run(main())
    assert isinstance(results[3], anypool.Failure)
    assert results[3].index == 3
    assert results[:3] == [0, 1, 2]


def test_amap_with_a_plain_function_uses_a_pool_without_blocking_the_loop() -> None:
    async def main() -> tuple[list[object], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        results = await anypool.amap(tasks.sleep_return, [0.1] * 4, range(4), backend="threads")
        task.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert results == [0, 1, 2, 3]
    assert ticks >= 5  # the loop kept running while the pool worked


def test_amap_rejects_bad_input() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="needs a callable"):
            await anypool.amap(42, [1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="backend must be 'auto' or 'asyncio'"):
            await anypool.amap(double, [1], backend="threads")
        with pytest.raises(TypeError, match="takes workers, task_timeout and on_error"):
            await anypool.amap(double, [1], chunksize=3)
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            await anypool.amap(double, [1], workers=0)
        with pytest.raises(ValueError, match="on_error must be one of"):
            await anypool.amap(double, [1], on_error="ignore")
        with pytest.raises(ValueError, match="task_timeout must be a positive number"):
            await anypool.amap(double, [1], task_timeout=-1)

    asyncio.run(main())
