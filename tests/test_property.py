"""For every backend and any input, anypool.map(f, xs) == list(map(f, xs))."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anypool

from . import tasks
from .conftest import BACKENDS, make_executor

values = st.one_of(
    st.integers(), st.text(max_size=5), st.floats(allow_nan=False), st.none(), st.booleans()
)


@pytest.fixture(scope="module", params=BACKENDS)
def executor(request: pytest.FixtureRequest) -> Iterator[anypool.Executor]:
    # One pool per backend for all examples: hypothesis runs many of them.
    ex = make_executor(str(request.param), workers=2)
    yield ex
    ex.shutdown()


@pytest.fixture(autouse=True)
def no_leaks() -> None:
    return  # the module-scoped pools live across tests; the session check covers them


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(xs=st.lists(values, max_size=60))
def test_map_equals_builtin_map(executor: anypool.Executor, xs: list[Any]) -> None:
    assert list(executor.map(tasks.identity, xs)) == list(map(tasks.identity, xs))
    assert list(executor.map(repr, xs)) == list(map(repr, xs))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(xs=st.lists(st.integers(-1000, 1000), max_size=40), ys=st.lists(st.integers(), max_size=40))
def test_several_iterables_and_generators(
    executor: anypool.Executor, xs: list[int], ys: list[int]
) -> None:
    assert list(executor.map(tasks.add, xs, ys)) == list(map(tasks.add, xs, ys))
    gen = (x for x in xs)
    assert list(executor.map(tasks.square, gen)) == [x * x for x in xs]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(xs=st.lists(st.integers(), max_size=30), k=st.integers(-5, 5))
def test_lambdas_and_closures(executor: anypool.Executor, xs: list[int], k: int) -> None:
    assert list(executor.map(lambda x: x * k, xs)) == [x * k for x in xs]
    assert sorted(executor.imap_unordered(lambda x: x - k, xs)) == sorted(x - k for x in xs)


@pytest.mark.parametrize("n", [0, 1, 10_000])
def test_sizes(executor: anypool.Executor, n: int) -> None:
    assert list(executor.map(tasks.square, range(n))) == [i * i for i in range(n)]
    assert executor.starmap(tasks.add, zip(range(n), range(n), strict=True)) == [
        2 * i for i in range(n)
    ]
