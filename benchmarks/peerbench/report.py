"""The report: a markdown section for benchmarks/RESULTS.md, and JSON for machines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .runner import TRIAL_ENV, Outcome
from .stats import Spread
from .summary import Group, Row

__all__ = ["markdown", "to_json"]

MiB = 2**20


# ── numbers ──────────────────────────────────────────────────────────────────────


def _seconds(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.4f}" if x < 0.01 else f"{x:.3f}"


def _range(s: Spread | None, scale: float = 1.0, digits: int | None = None) -> str:
    if s is None:
        return "—"
    if digits is None:
        return f"{_seconds(s.low * scale)}-{_seconds(s.high * scale)}"
    return f"{s.low * scale:.{digits}f}-{s.high * scale:.{digits}f}"


def _times(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}x"


def _mib(x: float | None) -> str:
    return "—" if x is None else f"{x / MiB:.0f}"


def _load(values: list[float] | None) -> str:
    return "unknown" if values is None else ", ".join(f"{x:.2f}" for x in values)


# ── the header ───────────────────────────────────────────────────────────────────


def _header(
    machine: dict[str, Any], command: str, repeats: dict[str, int], timeouts: dict[str, float]
) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    missing = ", ".join(machine["missing"])
    reps = ", ".join(f"{k}: {v}" for k, v in repeats.items())
    limits = ", ".join(f"{k}: {v:g} s" for k, v in timeouts.items())
    blas = ", ".join(f"{k}={v}" for k, v in TRIAL_ENV.items() if k.endswith("THREADS"))
    lines = [
        "## Side-by-side with the peers (issue 4)",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine['cpus_usable']} usable CPUs of {machine['cpu_count']} "
        f"({machine['cpu_model']}), {machine['platform']}; {machine['python']}"
        f"{'' if machine['gil_enabled'] else ' (free-threaded)'}; {machine['date']}",
        f"- Load average (1, 5, 15 min): {_load(machine['load_average_start'])} at the "
        f"start, {_load(machine.get('load_average_end'))} at the end",
        f"- Versions: {versions}" + (f"; not installed: {missing}" if missing else ""),
        f"- Method: every (scenario, contender) run is a fresh Python process; repetitions "
        f"({reps}) run every contender once, the order rotated by one each repetition; "
        f"figures are medians with min-max over the repetitions; every run has a timeout "
        f"({limits}) and a failed run is reported, not retried. Every run has {blas}.",
        "- Start methods: forkserver for anypool, multiprocessing.Pool, "
        "ProcessPoolExecutor, loky, mpire and pebble; joblib uses its default loky "
        "backend (loky's own start method, no option in Parallel); mpire's "
        "shared_objects in S4 need fork.",
        "- Columns: ÷ best peer = median time over the fastest peer's (below 1: faster); "
        "x serial = the serial loop's median over this median (the speed-up).",
        "",
    ]
    return lines


# ── tables ───────────────────────────────────────────────────────────────────────


#: Characters of a failure's message kept in the table (the JSON has all of it).
NOTE_LENGTH = 120


def _notes(row: Row) -> str:
    parts = []
    error = row.first_error
    if len(error) > NOTE_LENGTH:
        error = error[: NOTE_LENGTH - 1] + "…"
    for failure, count in row.failures.items():
        parts.append(f"{failure} {count}/{row.runs}: {error}")
    if "chose" in row.report:
        parts.append("auto chose " + ", ".join(map(str, row.report["chose"])))
    return "; ".join(parts).replace("|", "/")


def _title(group: Group) -> str:
    scenario = group.scenario
    if group.mode == "latency":
        what = f"warm pools of {group.workers} workers"
    elif len(scenario.worker_counts) > 1:
        what = group.mode
    else:
        what = f"{group.mode} pools, {group.workers} workers"
    return f"### {scenario.title} — {scenario.workload} — {what}"


def _columns(group: Group) -> list[str]:
    scenario = group.scenario
    if group.mode == "latency":
        return ["p50 µs", "p99 µs", "p50 min-max µs", "÷ best peer"]
    columns = ["median s", "min-max s", "÷ best peer"]
    if scenario.ideal is not None:
        columns.append("÷ ideal")
    else:
        columns.append("x serial")
    if len(scenario.worker_counts) > 1:
        columns.append("efficiency")
    if scenario.measure_memory:
        columns += ["peak MiB", "baseline MiB", "peak ÷ baseline"]
    return columns


def _cells(group: Group, row: Row) -> list[str]:
    if group.mode == "latency":
        us = 1e6
        return [
            "—" if row.p50 is None else f"{row.p50 * us:.0f}",
            "—" if row.p99 is None else f"{row.p99 * us:.0f}",
            _range(row.p50_spread, us, 0),
            _times(row.vs_best_peer),
        ]
    cells = [
        _seconds(None if row.seconds is None else row.seconds.median),
        _range(row.seconds),
        _times(row.vs_best_peer),
        _times(row.vs_ideal if group.scenario.ideal is not None else row.vs_serial),
    ]
    if len(group.scenario.worker_counts) > 1:
        cells.append("—" if row.efficiency is None else f"{row.efficiency:.2f}")
    if group.scenario.measure_memory:
        peak, base = row.peak_bytes, row.baseline_bytes
        cells += [_mib(peak), _mib(base), _times(None if not (peak and base) else peak / base)]
    return cells


def _table(groups: list[Group]) -> list[str]:
    """One table; scaling groups (several worker counts) share one with a workers column."""
    first = groups[0]
    scaling = len(first.scenario.worker_counts) > 1
    head = ["contender", *(["workers"] if scaling else []), *_columns(first), "configuration"]
    lines = ["| " + " | ".join(head) + " | notes |", "|" + "---|" * (len(head) + 1)]
    for group in groups:
        for row in group.rows:
            cells = [row.name, *([str(group.workers)] if scaling else []), *_cells(group, row)]
            lines.append("| " + " | ".join([*cells, row.contender.config, _notes(row)]) + " |")
    return lines


def _verdict(group: Group) -> str:
    best, ours = group.best_peer, group.best_anypool
    if group.mode == "latency":
        unit, show = "p50", lambda x: f"{x * 1e6:.0f} µs"
    else:
        unit, show = "median", lambda x: f"{_seconds(x)} s"
    parts = [f"workers={group.workers}: "] if len(group.scenario.worker_counts) > 1 else []
    if best is None or best.metric is None:
        parts.append("no peer finished")
    else:
        parts.append(f"best peer **{best.name}** ({unit} {show(best.metric)})")
    if ours is not None and ours.metric is not None:
        versus = f", {ours.vs_best_peer:.2f}x the best peer's" if ours.vs_best_peer else ""
        parts.append(f"; fastest anypool **{ours.name}** ({unit} {show(ours.metric)}{versus})")
    return "".join(parts) + "."


def _sections(groups: list[Group]) -> list[list[Group]]:
    """Groups that share a table: one per (scenario, mode), all worker counts together."""
    sections: dict[tuple[str, str], list[Group]] = {}
    for group in groups:
        sections.setdefault((group.scenario.id, group.mode), []).append(group)
    return list(sections.values())


def markdown(
    groups: list[Group], machine: dict[str, Any], command: str, repeats: dict[str, int]
) -> str:
    timeouts = {g.scenario.id: g.scenario.timeout for g in groups}
    lines = _header(machine, command, repeats, timeouts)
    for section in _sections(groups):
        lines += [_title(section[0]), "", *_table(section), ""]
        lines += [_verdict(g) for g in section]
        lines += ["", *section[0].scenario.notes, ""]
    return "\n".join(lines)


# ── JSON ─────────────────────────────────────────────────────────────────────────


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    trial = outcome.trial
    return {
        "scenario": trial.scenario.id,
        "contender": trial.contender.name,
        "mode": trial.mode,
        "workers": trial.workers,
        "rep": outcome.rep,
        "seconds": outcome.seconds,
        "failure": outcome.failure,
        "error": outcome.error,
        "data": {k: v for k, v in outcome.data.items() if k != "traceback"},
    }


def _row_json(row: Row) -> dict[str, Any]:
    data = {f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.name != "contender"}
    for key in ("seconds", "p50_spread"):
        if data[key] is not None:
            data[key] = dataclasses.asdict(data[key])
    return {
        "contender": row.name,
        "kind": row.contender.kind,
        "configuration": row.contender.config,
        **data,
    }


def to_json(
    groups: list[Group],
    outcomes: Iterable[Outcome],
    machine: dict[str, Any],
    command: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    return {
        "command": command,
        "machine": machine,
        "settings": settings,
        "trial_env": TRIAL_ENV,
        "groups": [
            {
                "scenario": g.scenario.id,
                "workload": g.scenario.workload,
                "mode": g.mode,
                "workers": g.workers,
                "best_peer": None if g.best_peer is None else g.best_peer.name,
                "serial_seconds": g.serial,
                "rows": [_row_json(r) for r in g.rows],
            }
            for g in groups
        ],
        "outcomes": [_outcome_json(o) for o in outcomes],
    }
