"""The fault-injection matrix: every fault, in every phase of a task, through every API,
under both start methods. One bad task costs one task; the pool stays usable."""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

import anypool

from . import faults, tasks
from .faults import BAD, DESTRUCTIVE, FAULTS, PHASES

N = 8
APIS = ["map", "imap", "imap_unordered", "submit"]
METHODS = ["forkserver", "spawn"]
TIMEOUT = 0.5  # task_timeout for the hang cases


def expected_error(fault: str, phase: str) -> tuple[type[BaseException], dict[str, Any]] | None:
    """What item BAD fails with, or None when it succeeds (the fault struck after delivery)."""
    if phase == "gc":
        return None
    if fault == "hang":
        return anypool.TaskTimeout, {"index": BAD}
    if fault in ("os._exit", "sigkill", "segfault"):
        exitcode = {"os._exit": 7, "sigkill": -9, "segfault": -11}[fault]
        where = {
            "unpickle": "unpickling the arguments",
            "call": "running the task",
            "pickle": "pickling the result",
        }[phase]
        return anypool.WorkerCrashed, {"exitcode": exitcode, "index": BAD, "phase": where}
    if phase == "pickle":
        return anypool.SerializationError, {}
    if fault == "sys.exit":
        return anypool.TaskError, {"type_name": "SystemExit"}
    return faults.PoisonError, {}


def run_api(ex: anypool.Executor, api: str, fn: Any, items: list[Any]) -> dict[int, Any]:
    """Index -> result or exception, through one API (map-like calls collect failures)."""
    if api == "submit":
        futures: list[Future[Any]] = [ex.submit(fn, item) for item in items]
        out = {}
        for i, f in enumerate(futures):
            try:
                out[i] = f.result(timeout=60)
            except BaseException as exc:
                out[i] = exc
        return out
    if api == "map":
        results = list(ex.map(fn, items, chunksize=4))
    elif api == "imap":
        results = list(ex.imap(fn, items))
    else:
        got = list(ex.imap_unordered(fn, items))
        failures = {r.index: r.exception for r in got if isinstance(r, anypool.Failure)}
        values = sorted(
            r.value if isinstance(r, faults.FaultOnDel) else r
            for r in got
            if not isinstance(r, anypool.Failure)
        )
        assert len(got) == len(items), "something was delivered twice or lost"
        expected = sorted(i * 10 for i in range(len(items)) if i not in failures)
        assert values == expected
        return {i: failures.get(i, i * 10) for i in range(len(items))}
    assert len(results) == len(items), "something was delivered twice or lost"
    return {i: r.exception if isinstance(r, anypool.Failure) else r for i, r in enumerate(results)}


def check(outcomes: dict[int, Any], fault: str, phase: str, api: str) -> None:
    expected = expected_error(fault, phase)
    for i in range(N):
        got = outcomes[i]
        if i != BAD or expected is None:
            value = got.value if isinstance(got, faults.FaultOnDel) else got
            assert value == i * 10, f"item {i}: {got!r}"
            continue
        error_type, attributes = expected
        assert isinstance(got, error_type), f"item {i}: expected {error_type.__name__}, got {got!r}"
        for name, value in attributes.items():
            want = None if name == "index" and api == "submit" else value  # submit: no index
            assert getattr(got, name) == want, f"{name}: {getattr(got, name)!r} != {want!r}"


def still_usable(ex: anypool.Executor) -> None:
    start = time.monotonic()
    assert ex.submit(tasks.square, 6).result(timeout=10) == 36
    assert time.monotonic() - start < 2.0


CASES = [
    (fault, phase)
    for fault in FAULTS
    for phase in PHASES
    if not (phase == "parent" and fault in DESTRUCTIVE)  # would strike the caller itself
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("fault", "phase"), CASES, ids=[f"{f}-{p}" for f, p in CASES])
def test_fault_matrix(fault: str, phase: str, api: str, method: str) -> None:
    timeout = TIMEOUT if fault == "hang" else None
    with anypool.Executor(
        "processes", workers=2, start_method=method, on_error="collect", task_timeout=timeout
    ) as ex:
        if phase == "unpickle":
            items: list[Any] = [faults.FaultOnUnpickle(fault) if i == BAD else i for i in range(N)]
            fn: Any = faults.value_of
        else:
            items = list(range(N))
            fn = functools.partial(faults.fault_at, fault=fault, phase=phase)
        check(run_api(ex, api, fn, items), fault, phase, api)
        still_usable(ex)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("api", APIS)
def test_unpicklable_argument(api: str, method: str) -> None:
    items: list[Any] = [threading.Lock() if i == BAD else i for i in range(N)]
    with anypool.Executor("processes", workers=2, start_method=method, on_error="collect") as ex:
        if api == "submit":
            for i, item in enumerate(items):
                if i == BAD:
                    with pytest.raises(
                        anypool.SerializationError, match=r"args\[0\] -> _thread.lock"
                    ):
                        ex.submit(faults.value_of, item)
                else:
                    assert ex.submit(faults.value_of, item).result(timeout=30) == i * 10
        else:
            outcomes = run_api(ex, api, faults.value_of, items)
            assert isinstance(outcomes[BAD], anypool.SerializationError)
            assert "item 3 of" in str(outcomes[BAD])
            assert all(outcomes[i] == i * 10 for i in range(N) if i != BAD)
        still_usable(ex)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("api", APIS)
def test_failing_initializer(api: str, method: str) -> None:
    start = time.monotonic()
    with anypool.Executor(
        "processes",
        workers=2,
        start_method=method,
        on_error="collect",
        initializer=tasks.failing_init,
    ) as ex:
        try:
            outcomes = run_api(ex, api, faults.value_of, list(range(N)))
        except anypool.InitializerError:
            outcomes = {}  # raised by submit() once the pool knows it is broken
        assert all(isinstance(o, anypool.InitializerError) for o in outcomes.values())
        with pytest.raises(anypool.InitializerError, match="initializer broke"):
            ex.submit(tasks.square, 2).result(timeout=10)
    assert time.monotonic() - start < 10
