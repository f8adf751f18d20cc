from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

import anypool

from ._leaks import shm_entries, stop_helpers, wait_until_clean, worker_processes
from ._postgres import postgres_server
from ._sync_modes import MODES as SYNC_MODES

# Every pool backend of the conformance suite; a new backend is tested by adding it here.
# "processes-spawn" is the processes backend under the spawn start method; "auto" measures
# each call and picks one of the others (asyncio runs coroutine functions: test_asyncio.py).
BACKENDS = ["serial", "threads", "processes", "processes-spawn", "auto"]
POOL_BACKENDS = ["threads", "processes", "processes-spawn"]


def make_executor(name: str, **options: object) -> anypool.Executor:
    if name == "processes-spawn":
        return anypool.Executor("processes", start_method="spawn", **options)  # type: ignore[arg-type]
    return anypool.Executor(name, **options)  # type: ignore[arg-type]


def backend_options(name: str) -> dict[str, object]:
    """Keyword arguments for anypool.map & co. that select ``name``."""
    if name == "processes-spawn":
        return {"backend": "processes", "start_method": "spawn"}
    return {"backend": name}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=POOL_BACKENDS)
def pool_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(SYNC_MODES))
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each lock test runs plain, under lock-order checking, and under the watchdog."""
    with SYNC_MODES[request.param]():
        yield str(request.param)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test, passing or failing: no worker process, thread or /dev/shm file."""
    shm_before = shm_entries()
    yield
    anypool.close_pools()  # warm pools kept between anypool.map calls are not leaks
    procs, threads = wait_until_clean()
    for pid in procs:  # clean up so one leak does not fail every later test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    new_shm = {n for n in shm_entries() - shm_before if not n.startswith(("sem.mp-", "pym-"))}
    problems = []
    if procs:
        problems.append(f"worker processes left running: {sorted(procs)}")
    if threads:
        problems.append(f"threads left running: {[t.name for t in threads]}")
    if new_shm:
        problems.append(f"/dev/shm entries left: {sorted(new_shm)}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """At the very end: stop multiprocessing's helpers and check nothing at all is left."""
    anypool.close_pools()
    stop_helpers()
    procs, threads = wait_until_clean()
    leftover = worker_processes() | procs
    if leftover or threads:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nLEAK at session end: processes {sorted(leftover)}, threads {threads}")


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 for this test session (see _postgres.py)."""
    try:
        server = postgres_server()
        dsn = server.__enter__()
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL is not installed ({exc}); .ci/run installs postgresql-15")
    try:
        yield dsn
    finally:
        server.__exit__(None, None, None)
