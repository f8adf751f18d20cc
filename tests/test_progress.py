from __future__ import annotations

import pytest

import anypool

from . import tasks
from .conftest import backend_options, make_executor


def test_no_output_when_progress_is_off(backend: str, capfd: pytest.CaptureFixture[str]) -> None:
    anypool.map(tasks.square, range(100), **backend_options(backend))
    with make_executor(backend) as ex:
        ex.submit(tasks.square, 2).result(timeout=30)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_map_progress_shows_done_and_total(capfd: pytest.CaptureFixture[str]) -> None:
    assert anypool.map(tasks.square, range(50), backend="threads", progress=True) == [
        i * i for i in range(50)
    ]
    out, err = capfd.readouterr()
    assert out == ""
    assert "50/50" in err
    assert "map" in err


def test_progress_for_a_generator_learns_its_total(capfd: pytest.CaptureFixture[str]) -> None:
    with anypool.Executor("processes", workers=2) as ex:
        assert list(ex.map(tasks.square, (i for i in range(30)), progress=True)) == [
            i * i for i in range(30)
        ]
    _, err = capfd.readouterr()
    assert "30/30" in err


def test_executor_level_progress_counts_submitted_tasks(capfd: pytest.CaptureFixture[str]) -> None:
    with anypool.Executor("threads", workers=2, progress=True) as ex:
        for f in [ex.submit(tasks.square, i) for i in range(7)]:
            f.result(timeout=30)
    _, err = capfd.readouterr()
    assert "7/7" in err
