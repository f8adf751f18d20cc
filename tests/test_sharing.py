"""Large NumPy arrays travel to worker processes through shared memory, not pickles."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import anypool
from anypool._backends import _sharing

from . import tasks

pytestmark = pytest.mark.skipif(not _sharing.available(), reason="needs Linux memfd")

BIG = 300_000  # float64 items: 2.4 MB, above the 1 MiB threshold


def live_segments(ex: anypool.Executor) -> int:
    sharer = ex._backend._sharer  # type: ignore[attr-defined]
    return sharer.stats()[0]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_big_arrays_arrive_read_only_and_correct(method: str) -> None:
    a = np.random.default_rng(1).random(BIG)
    with anypool.Executor("processes", workers=2, start_method=method) as ex:
        results = list(ex.map(tasks.array_info, [a] * 8, range(8)))
        assert live_segments(ex) == 1  # eight tasks, one copy
    for i, (total, writeable, shape) in enumerate(results):
        assert total == pytest.approx(float(a[i::8].sum()))
        assert not writeable
        assert shape == a.shape


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::3],  # not contiguous
        lambda a: np.asfortranarray(a.reshape(600, 500)),  # Fortran order
        lambda a: a.reshape(600, 500)[:, 1:],  # a 2-D view
        lambda a: a.astype(np.int32),
    ],
    ids=["strided", "fortran", "2d-view", "int32"],
)
def test_any_layout_and_dtype(make) -> None:
    a = make(np.arange(BIG, dtype=np.float64))
    with anypool.Executor("processes", workers=1, shared_memory=1024) as ex:
        total, writeable, shape = ex.submit(tasks.array_info, a).result(timeout=30)
    assert total == pytest.approx(float(a[0::8].sum()))
    assert shape == a.shape
    assert not writeable


def test_small_arrays_and_opt_out_are_pickled() -> None:
    small = np.ones(10)
    big = np.ones(BIG)
    with anypool.Executor("processes", workers=1) as ex:
        assert ex.submit(tasks.array_info, small).result(timeout=30)[1] is True
        assert live_segments(ex) == 0
    with anypool.Executor("processes", workers=1, shared_memory=False) as ex:
        assert ex.submit(tasks.array_info, big).result(timeout=30)[1] is True
        assert ex._backend._sharer is None  # type: ignore[attr-defined]


def test_bad_shared_memory_option() -> None:
    with pytest.raises(ValueError, match="shared_memory must be True, False or a size"):
        anypool.Executor("processes", shared_memory=-1)


def test_segments_are_freed_in_parent_and_workers_when_tasks_finish() -> None:
    a = np.ones(BIG)
    with anypool.Executor("processes", workers=1) as ex:
        assert ex.submit(tasks.array_info, a).result(timeout=30)[0] > 0
        # The worker mapped it; once no task uses it (and a short linger), both let go.
        wait_for(lambda: live_segments(ex) == 0)
        wait_for(lambda: ex.submit(tasks.mapped_segments).result(timeout=30) == 0)


def test_a_killed_worker_holding_a_shared_array_leaks_nothing(tmp_path: Path) -> None:
    a = np.ones(BIG)
    pid_file, gate = tmp_path / "pid", tmp_path / "gate"
    shm_before = set(os.listdir("/dev/shm"))
    with anypool.Executor("processes", workers=1) as ex:
        future = ex.submit(tasks.hold_array_then_wait, a, str(pid_file), str(gate))
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        with pytest.raises(anypool.WorkerCrashed):
            future.result(timeout=30)
        wait_for(lambda: live_segments(ex) == 0)
        assert ex.submit(tasks.array_info, a).result(timeout=30)[0] == BIG / 8
    assert set(os.listdir("/dev/shm")) <= shm_before  # memfd segments have no name there


def test_arrays_inside_other_objects() -> None:
    a = np.arange(BIG, dtype=np.float64)
    payload = {"data": [a, a], "name": "x"}
    with anypool.Executor("processes", workers=1) as ex:
        got = ex.submit(tasks.identity, payload).result(timeout=30)
    assert got["name"] == "x"
    assert np.array_equal(got["data"][0], a)
