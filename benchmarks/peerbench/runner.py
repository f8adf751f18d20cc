"""Runs every trial of the chosen scenarios, interleaved, each in a fresh process.

::

    runner (this module)                              trial process (trial.py)
    ────────────────────                              ────────────────────────
    scenario.prepare(shared)  (once, untimed)
    for rep in range(repeat):
      for trial in rotate(trials, rep):
        write SPEC.json ──── python -m peerbench.trial ──► build the job (untimed)
                                                          run the contender, timed
        wait up to the timeout  ◄──────────── OUT.json ── {"ok": ..., "seconds": ...}
        kill the trial's process group (timeout or not: no worker outlives its trial)

Interleaving — every contender once per repetition, the order rotated by one each
repetition — spreads slow drifts of a busy machine (another job starting, the CPU
throttling) over all contenders instead of charging them to whichever ran last.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .framework import Contender, Scenario, Settings

__all__ = ["Outcome", "Trial", "interleave", "run_scenario", "run_trial", "trials_of"]

T = TypeVar("T")

#: The trial process times its contender out itself (trial.Watchdog); the runner kills
#: it only if it is still there this many seconds past the timeout: enough for starting
#: Python, importing NumPy and building the input, which the timeout does not cover.
STARTUP_ALLOWANCE = 60.0

#: Environment every trial runs with: one BLAS/OpenMP thread, so a pool of N workers uses
#: N cores (not N x cores) and threads and processes compete on equal terms in S5.
TRIAL_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One (scenario, contender, mode, workers) cell; run once per repetition."""

    module: str
    scenario: Scenario
    contender: Contender
    mode: str
    workers: int

    @property
    def label(self) -> str:
        workers = f" workers={self.workers}" if len(self.scenario.worker_counts) > 1 else ""
        return f"{self.scenario.id} {self.mode}{workers}: {self.contender.name}"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one run of one trial gave. ``failure`` is ``None`` on success, else one of
    "timed out", "crashed", "error", "not installed", "wrong result"."""

    trial: Trial
    rep: int
    seconds: float | None
    failure: str | None = None
    error: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None


def trials_of(module: str, scenario: Scenario, settings: Settings) -> list[Trial]:
    return [
        Trial(module, scenario, contender, mode, workers)
        for contender, mode, workers in scenario.trials(settings)
    ]


def interleave(trials: Sequence[T], repeat: int) -> Iterator[tuple[int, T]]:
    """Each repetition runs every trial once; repetition ``r`` starts at trial
    ``r mod len(trials)`` and wraps around, so each trial takes each place in turn."""
    count = len(trials)
    for rep in range(repeat):
        start = rep % count if count else 0
        for trial in [*trials[start:], *trials[:start]]:
            yield rep, trial


# ── one trial in its own process ─────────────────────────────────────────────────


def _child_env() -> dict[str, str]:
    """The runner's environment plus TRIAL_ENV, with this process's own import paths
    (the benchmarks folder, a test's root) on PYTHONPATH so the trial finds the same
    modules; the interpreter's own directories are left to the interpreter."""
    own = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths = [p for p in sys.path if p and not any(p.startswith(prefix) for prefix in own)]
    inherited = os.environ.get("PYTHONPATH")
    env = {**os.environ, **TRIAL_ENV}
    env["PYTHONPATH"] = os.pathsep.join([*paths, *([inherited] if inherited else [])])
    return env


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_trial(trial: Trial, rep: int, settings: Settings, shared: Path, timeout: float) -> Outcome:
    """Run ``trial`` once in a fresh process; a hang past ``timeout`` seconds (plus the
    start-up allowance) or a crash becomes a failed Outcome, never an exception."""
    with tempfile.TemporaryDirectory(prefix="peerbench-trial-") as scratch:
        spec_path, out_path, log_path = (Path(scratch) / n for n in ("spec", "out", "log"))
        spec = {
            "module": trial.module,
            "scenario": trial.scenario.id,
            "contender": trial.contender.name,
            "mode": trial.mode,
            "workers": trial.workers,
            "settings": settings.to_json(),
            "shared": str(shared),
            "out": str(out_path),
            "timeout": timeout,
        }
        spec_path.write_text(json.dumps(spec))
        with open(log_path, "wb") as log:
            # A session of its own: the trial and every worker it starts share one
            # process group, which is killed whole afterwards.
            proc = subprocess.Popen(
                [sys.executable, "-m", "peerbench.trial", str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,
            )
            try:
                proc.wait(timeout + STARTUP_ALLOWANCE)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                return Outcome(trial, rep, None, "timed out", f"no result after {timeout:g} s")
            finally:
                _kill_group(proc.pid)
        return _outcome(trial, rep, proc.returncode, out_path, log_path)


def _outcome(trial: Trial, rep: int, code: int, out_path: Path, log_path: Path) -> Outcome:
    if not out_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        detail = " / ".join(tail) if tail else "no output"
        return Outcome(trial, rep, None, "crashed", f"exit code {code}: {detail}")
    data = json.loads(out_path.read_text())
    if not data.pop("ok"):
        return Outcome(trial, rep, None, data["failure"], data["error"], data)
    seconds = data.pop("seconds")
    if seconds > trial.scenario.timeout:
        # It finished, but past its time: treated as a timeout, as a watchdog would.
        return Outcome(trial, rep, None, "timed out", f"took {seconds:.1f} s", data)
    return Outcome(trial, rep, seconds, data=data)


# ── a whole scenario ─────────────────────────────────────────────────────────────


def run_scenario(
    module: str,
    scenario: Scenario,
    settings: Settings,
    *,
    repeat: int,
    timeout: float | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[Outcome]:
    """Prepare ``scenario`` once, then run all its trials ``repeat`` times, interleaved."""
    if timeout is not None:
        scenario = dataclasses.replace(scenario, timeout=timeout)
    trials = trials_of(module, scenario, settings)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix=f"peerbench-{scenario.id}-") as shared:
        if scenario.prepare is not None:
            started = time.perf_counter()
            scenario.prepare(settings, Path(shared))
            log(f"{scenario.id}: prepared its input in {time.perf_counter() - started:.1f} s")
        for rep, trial in interleave(trials, repeat):
            outcome = run_trial(trial, rep, settings, Path(shared), scenario.timeout)
            log(_progress_line(outcome, repeat))
            outcomes.append(outcome)
    return outcomes


def _progress_line(outcome: Outcome, repeat: int) -> str:
    what = f"[{outcome.rep + 1}/{repeat}] {outcome.trial.label}"
    if not outcome.ok:
        return f"{what}: {outcome.failure} ({outcome.error})"
    return f"{what}: {outcome.seconds:.4f} s"
