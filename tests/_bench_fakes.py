"""A scenario for tests/test_benchmarks_suite.py: contenders that succeed, fail in each
way the runner reports, and log the order they ran in. Imported by the suite's trial
processes (the runner puts this checkout on their PYTHONPATH)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peerbench.framework import Contender, Job, Scenario, Settings

SHARED = Path(os.environ.get("PEERBENCH_FAKES_DIR", "/nonexistent"))


def double(x: int) -> int:
    return 2 * x


def _log(name: str) -> None:
    with open(SHARED / "order.log", "a") as log:
        log.write(name + "\n")


def _contender(name: str, kind: Any, run: Any, needs: tuple[str, ...] = ()) -> Contender:
    @contextmanager
    def open_pool(job: Job) -> Iterator[Any]:
        _log(name)
        yield lambda items: run(job, items)

    return Contender(name, kind, f"fake: {name}", open_pool, needs=needs)


def _right(job: Job, items: list[int]) -> list[int]:
    return [double(x) for x in items]


def _wrong(job: Job, items: list[int]) -> list[int]:
    return list(items)


def _raises(job: Job, items: list[int]) -> list[int]:
    raise RuntimeError("the pool broke")


def _crashes(job: Job, items: list[int]) -> list[int]:
    os._exit(7)


def _hangs(job: Job, items: list[int]) -> list[int]:
    """Starts a worker of its own that outlives it unless the runner kills the group."""
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    (SHARED / "hung-worker.pid").write_text(str(worker.pid))
    while True:
        time.sleep(1)


CONTENDERS = (
    _contender("baseline", "baseline", _right),
    _contender("peer-right", "peer", _right),
    _contender("anypool-right", "anypool", _right),
    _contender("peer-wrong", "peer", _wrong),
    _contender("peer-raises", "peer", _raises),
    _contender("peer-crashes", "peer", _crashes),
    _contender("peer-hangs", "peer", _hangs),
    _contender("peer-missing", "peer", _right, needs=("no_such_peer_module",)),
)


def make_job(settings: Settings, workers: int, shared: Path) -> Job:
    items = list(range(100))
    return Job(
        fn=double,
        items=items,
        workers=workers,
        check=lambda results: results == [2 * x for x in items],
    )


def scenarios(settings: Settings) -> list[Scenario]:
    return [
        Scenario(
            key="T",
            id="T",
            title="T fakes",
            workload="2*x over 100 items",
            make_job=make_job,
            contenders=CONTENDERS,
            timeout=1.0,
        )
    ]
