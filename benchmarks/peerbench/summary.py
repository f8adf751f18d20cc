"""From raw outcomes to the rows of the report: medians, spreads and ratios.

A *group* is what one table compares: one scenario, one mode, one worker count. In each
group the best peer is the peer (not the plain loop, not anypool) with the lowest median;
every row gets its time over the best peer's, and its speed-up over the serial loop of
the same scenario and mode. Pure functions of the outcomes: no I/O, no clocks.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import Any

from .framework import Contender, Scenario
from .runner import Outcome
from .stats import Spread, percentile, ratio, speedup, spread

__all__ = ["Group", "Row", "summarise"]


@dataclasses.dataclass(frozen=True)
class Row:
    """One contender in one group, summarised over its repetitions."""

    contender: Contender
    runs: int
    seconds: Spread | None  # over the successful runs; None if every run failed
    failures: dict[str, int]  # failure kind -> count
    first_error: str = ""
    p50: float | None = None  # latency mode: over every round trip of every run
    p99: float | None = None
    p50_spread: Spread | None = None  # latency mode: of each run's own p50
    peak_bytes: float | None = None  # memory: median over runs
    baseline_bytes: float | None = None
    report: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    vs_best_peer: float | None = None
    vs_serial: float | None = None  # speed-up: serial time over this time
    vs_ideal: float | None = None
    efficiency: float | None = None

    @property
    def metric(self) -> float | None:
        """What rows are ranked by: median seconds, or the median round trip."""
        if self.p50 is not None:
            return self.p50
        return None if self.seconds is None else self.seconds.median

    @property
    def name(self) -> str:
        return self.contender.name


@dataclasses.dataclass(frozen=True)
class Group:
    scenario: Scenario
    mode: str
    workers: int
    rows: tuple[Row, ...]
    best_peer: Row | None
    serial: float | None

    @property
    def best_anypool(self) -> Row | None:
        return _fastest(r for r in self.rows if r.contender.kind == "anypool")


def _fastest(rows: Iterable[Row]) -> Row | None:
    ranked = [r for r in rows if r.metric is not None]
    return min(ranked, key=lambda r: r.metric or 0.0) if ranked else None


def _median(values: list[float]) -> float | None:
    s = spread(values)
    return None if s is None else s.median


def _report(outcomes: list[Outcome]) -> dict[str, list[Any]]:
    """What contenders noted while running (e.g. the backend auto chose), each value
    listed once, in the order first seen."""
    seen: dict[str, list[Any]] = collections.defaultdict(list)
    for outcome in outcomes:
        for key, value in outcome.data.get("report", {}).items():
            if value not in seen[key]:
                seen[key].append(value)
    return dict(seen)


def _row(outcomes: list[Outcome]) -> Row:
    ok = [o for o in outcomes if o.ok]
    failures = collections.Counter(o.failure for o in outcomes if not o.ok)
    errors = [o.error for o in outcomes if not o.ok]
    row = Row(
        contender=outcomes[0].trial.contender,
        runs=len(outcomes),
        seconds=spread(o.seconds for o in ok if o.seconds is not None),
        failures={str(k): v for k, v in failures.items()},
        first_error=errors[0] if errors else "",
        peak_bytes=_median([o.data["peak_bytes"] for o in ok if "peak_bytes" in o.data]),
        baseline_bytes=_median(
            [o.data["baseline_bytes"] for o in ok if "baseline_bytes" in o.data]
        ),
        report=_report(ok),
    )
    runs = [o.data["latencies"] for o in ok if o.data.get("latencies")]
    if runs:
        pooled = [x for run in runs for x in run]
        row = dataclasses.replace(
            row,
            p50=percentile(pooled, 50),
            p99=percentile(pooled, 99),
            p50_spread=spread(percentile(run, 50) for run in runs),
        )
    return row


def _ideal(scenario: Scenario, row: Row) -> float | None:
    if scenario.ideal is None:
        return None
    concurrency = row.contender.concurrency
    return None if concurrency is None else scenario.ideal(concurrency)


def _with_ratios(group: Group) -> Group:
    rows = []
    for row in group.rows:
        best = group.best_peer.metric if group.best_peer else None
        vs_serial = speedup(group.serial, row.metric) if row.p50 is None else None
        rows.append(
            dataclasses.replace(
                row,
                vs_best_peer=ratio(row.metric, best),
                vs_serial=vs_serial,
                vs_ideal=ratio(row.metric, _ideal(group.scenario, row)),
                efficiency=(
                    None
                    if vs_serial is None or len(group.scenario.worker_counts) < 2
                    else vs_serial / group.workers
                ),
            )
        )
    best_peer = _fastest(r for r in rows if r.contender.kind == "peer")
    return dataclasses.replace(group, rows=tuple(rows), best_peer=best_peer)


def summarise(outcomes: Iterable[Outcome]) -> list[Group]:
    """Groups in the order their first outcome appeared; rows in declaration order."""
    cells: dict[tuple[str, str, int], dict[str, list[Outcome]]] = {}
    scenarios: dict[str, Scenario] = {}
    for outcome in outcomes:
        trial = outcome.trial
        scenarios.setdefault(trial.scenario.id, trial.scenario)
        key = (trial.scenario.id, trial.mode, trial.workers)
        cells.setdefault(key, {}).setdefault(trial.contender.name, []).append(outcome)
    serial = _serial_medians(cells)
    groups = []
    first_seen = {scenario_id: i for i, scenario_id in enumerate(scenarios)}

    def group_order(key: tuple[str, str, int]) -> tuple[int, int, int]:
        scenario_id, mode, workers = key
        return first_seen[scenario_id], _MODE_ORDER.get(mode, len(_MODE_ORDER)), workers

    for scenario_id, mode, workers in sorted(cells, key=group_order):
        by_contender = cells[(scenario_id, mode, workers)]
        scenario = scenarios[scenario_id]
        order = [c.name for c in scenario.contenders]
        rows = tuple(_row(by_contender[name]) for name in sorted(by_contender, key=order.index))
        best = _fastest(r for r in rows if r.contender.kind == "peer")
        group = Group(scenario, mode, workers, rows, best, serial.get((scenario_id, mode)))
        groups.append(_with_ratios(group))
    return groups


def _serial_medians(
    cells: dict[tuple[str, str, int], dict[str, list[Outcome]]],
) -> dict[tuple[str, str], float]:
    """The plain loop's median per (scenario, mode): it runs at one worker count only."""
    medians = {}
    for (scenario_id, mode, _), by_contender in cells.items():
        for outcomes in by_contender.values():
            if outcomes[0].trial.contender.kind == "baseline":
                row = _row(outcomes)
                if row.metric is not None:
                    medians[(scenario_id, mode)] = row.metric
    return medians


_MODE_ORDER = {"cold": 0, "warm": 1, "latency": 2}
