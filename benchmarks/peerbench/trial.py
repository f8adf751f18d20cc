"""One trial, in a fresh Python process: ``python -m peerbench.trial SPEC.json``.

The runner writes the trial's coordinates to SPEC.json (module, scenario, contender, mode,
workers, settings, the shared directory, and where to write the outcome); this process
rebuilds the job outside the timing, runs the contender in the mode asked, and writes one
JSON object: ``{"ok": true, "seconds": ...}`` or ``{"ok": false, "failure": ...,
"error": ...}``. A fresh process per trial means no contender inherits another's pools,
threads, imports or heap, and a crash or hang costs only its own trial.

::

    main thread                                   watchdog timer thread
    ───────────                                   ─────────────────────
    import the contender's modules; build the job
    with Watchdog(timeout): ─────────start──────► wait ``timeout`` seconds
        open the pool, warm it, time the run           │ not cancelled in time:
    cancel ◄──────────────────────────────────────     write "timed out" to OUT.json,
    check the results, write OUT.json                  os._exit (the runner kills the
                                                       process group, workers too)
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .framework import Contender, Job, Scenario, Settings
from .memory import PeakSampler, tree_pss

__all__ = ["find_scenario", "main", "run_spec"]


class WrongResult(Exception):
    """The contender returned results that the scenario's check rejects."""


def find_scenario(module: str, scenario_id: str, settings: Settings) -> Scenario:
    for scenario in importlib.import_module(module).scenarios(settings):
        if scenario.id == scenario_id:
            return scenario  # type: ignore[no-any-return]
    raise KeyError(f"{module} defines no scenario {scenario_id!r}")


class Clock:
    """Times the one block a mode measures; samples peak memory during it if asked."""

    def __init__(self, memory: bool) -> None:
        self.memory = memory
        self.seconds = 0.0
        self.peak_bytes: int | None = None

    @contextmanager
    def timing(self) -> Iterator[None]:
        sampler: AbstractContextManager[Any] = PeakSampler() if self.memory else nullcontext()
        with sampler:
            start = time.perf_counter()
            yield
            self.seconds = time.perf_counter() - start
        if isinstance(sampler, PeakSampler):
            self.peak_bytes = sampler.peak_bytes


class Watchdog:
    """Ends this process with a "timed out" outcome if the contender's part (opening
    the pool, warming it, the timed run) takes longer than ``timeout`` seconds. Building
    the job does not count. The runner then kills the process group, workers included.
    """

    def __init__(self, timeout: float, out: Path) -> None:
        self.timeout = timeout
        self.out = out
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        error = f"no result after {self.timeout:g} s"
        self.out.write_text(json.dumps({"ok": False, "failure": "timed out", "error": error}))
        os._exit(3)  # the contender's threads may never return: do not wait for them

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _checked(job: Job, results: Any) -> None:
    if not job.check(list(results)):
        raise WrongResult(f"wrong results (first few: {list(results)[:3]!r})")


def cold(contender: Contender, job: Job, clock: Clock) -> None:
    with clock.timing(), contender.open(job) as run:
        results = run(job.items)
    _checked(job, results)


def warm(contender: Contender, job: Job, clock: Clock) -> None:
    with contender.open(job) as run:
        run(job.warmup())
        with clock.timing():
            results = run(job.items)
    _checked(job, results)


def latency(contender: Contender, job: Job, clock: Clock) -> list[float]:
    samples = []
    with contender.open(job) as run:
        for _ in range(job.warmup_rounds):
            run(None)
        with clock.timing():
            for _ in range(job.rounds):
                start = time.perf_counter()
                run(None)
                samples.append(time.perf_counter() - start)
    return samples


def _not_installed(exc: ModuleNotFoundError) -> dict[str, Any]:
    return {"ok": False, "failure": "not installed", "error": f"{exc.name} is not installed"}


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the trial ``spec`` describes; return its outcome (never raises for the
    contender's own failures)."""
    settings = Settings.from_json(spec["settings"])
    scenario = find_scenario(spec["module"], spec["scenario"], settings)
    contender = scenario.contender(spec["contender"])
    try:
        for module in contender.needs:  # as a program's imports would: before any timing
            importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return _not_installed(exc)
    job = scenario.make_job(settings, spec["workers"], Path(spec["shared"]))
    outcome: dict[str, Any] = {}
    if scenario.measure_memory:
        outcome["baseline_bytes"] = tree_pss()
    clock = Clock(scenario.measure_memory)
    try:
        with Watchdog(spec["timeout"], Path(spec["out"])):
            if spec["mode"] == "latency":
                outcome["latencies"] = latency(contender, job, clock)
            else:
                {"cold": cold, "warm": warm}[spec["mode"]](contender, job, clock)
    except ModuleNotFoundError as exc:
        return _not_installed(exc)
    except WrongResult as exc:
        return {"ok": False, "failure": "wrong result", "error": str(exc)}
    except Exception as exc:
        return {
            "ok": False,
            "failure": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    outcome.update(ok=True, seconds=clock.seconds, report=job.report)
    if clock.peak_bytes is not None:
        outcome["peak_bytes"] = clock.peak_bytes
    return outcome


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    outcome = run_spec(spec)
    Path(spec["out"]).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
