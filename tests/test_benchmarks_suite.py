"""The side-by-side benchmark suite (benchmarks/peerbench): its arithmetic, its
interleaving, and its runner's handling of every way a contender can fail. No timing is
asserted: these check that the suite measures and reports, not what it measures."""

from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from peerbench import SCENARIO_MODULES  # noqa: E402
from peerbench.cli import parse_args, select  # noqa: E402
from peerbench.framework import Contender, Job, Scenario, Settings  # noqa: E402
from peerbench.machine import describe_machine  # noqa: E402
from peerbench.report import markdown, to_json  # noqa: E402
from peerbench.runner import Outcome, Trial, interleave, run_scenario, trials_of  # noqa: E402
from peerbench.s2_cpu import scaling_counts  # noqa: E402
from peerbench.stats import percentile, ratio, speedup, spread  # noqa: E402
from peerbench.summary import summarise  # noqa: E402
from peerbench.trial import run_spec  # noqa: E402

# ── arithmetic ───────────────────────────────────────────────────────────────────


def test_spread_gives_median_quartiles_and_range() -> None:
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert s is not None
    assert (s.n, s.median, s.low, s.high) == (4, 2.5, 1.0, 10.0)
    assert s.q1 == pytest.approx(1.75)
    assert s.q3 == pytest.approx(4.75)
    assert spread([]) is None


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_ratios_are_none_when_a_side_is_missing() -> None:
    assert ratio(0.5, 2.0) == 0.25
    assert speedup(2.0, 0.5) == 4.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


# ── interleaving ─────────────────────────────────────────────────────────────────


def test_interleave_rotates_the_order_every_repetition() -> None:
    plan = list(interleave(["a", "b", "c"], 4))
    assert plan == [
        (0, "a"), (0, "b"), (0, "c"),
        (1, "b"), (1, "c"), (1, "a"),
        (2, "c"), (2, "a"), (2, "b"),
        (3, "a"), (3, "b"), (3, "c"),
    ]  # fmt: skip
    assert list(interleave([], 3)) == []


def test_scaling_counts_double_up_to_the_cores() -> None:
    assert scaling_counts(1) == (1,)
    assert scaling_counts(2) == (1, 2)
    assert scaling_counts(16) == (1, 2, 4, 8, 16)
    assert scaling_counts(12) == (1, 2, 4, 8, 12)


# ── summarising fake outcomes ────────────────────────────────────────────────────


def _contender(name: str, kind: str) -> Contender:
    return Contender(name, kind, f"config of {name}", lambda job: nullcontext())  # type: ignore[arg-type]


def _scenario(*contenders: Contender, **options: object) -> Scenario:
    def make_job(settings: Settings, workers: int, shared: Path) -> Job:
        return Job(fn=abs, items=[], workers=workers)

    return Scenario(
        key="X", id="X", title="X", workload="fake", make_job=make_job,
        contenders=contenders, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def _outcomes(
    scenario: Scenario, name: str, seconds: list[float | None], mode: str = "cold", workers: int = 2
) -> list[Outcome]:
    trial = Trial("fake", scenario, scenario.contender(name), mode, workers)
    return [
        Outcome(trial, rep, s) if s is not None else Outcome(trial, rep, None, "timed out", "slow")
        for rep, s in enumerate(seconds)
    ]


def test_summary_ranks_against_the_best_peer_and_the_serial_loop() -> None:
    scenario = _scenario(
        _contender("loop", "baseline"),
        _contender("slow peer", "peer"),
        _contender("fast peer", "peer"),
        _contender("ours", "anypool"),
        _contender("broken peer", "peer"),
    )
    outcomes = [
        *_outcomes(scenario, "loop", [1.2, 1.0, 0.8]),
        *_outcomes(scenario, "slow peer", [0.5, 0.6, 0.4]),
        *_outcomes(scenario, "fast peer", [0.25, None, 0.3, 0.2]),
        *_outcomes(scenario, "ours", [0.2, 0.2, 0.2]),
        *_outcomes(scenario, "broken peer", [None, None]),
    ]
    [group] = summarise(outcomes)
    rows = {row.name: row for row in group.rows}
    assert group.best_peer is rows["fast peer"]
    assert group.best_anypool is rows["ours"]
    assert group.serial == 1.0
    assert rows["fast peer"].seconds.median == 0.25  # type: ignore[union-attr]
    assert rows["fast peer"].failures == {"timed out": 1}
    assert rows["ours"].vs_best_peer == pytest.approx(0.8)
    assert rows["ours"].vs_serial == pytest.approx(5.0)
    assert rows["loop"].vs_best_peer == pytest.approx(4.0)
    assert rows["slow peer"].vs_best_peer == pytest.approx(2.0)
    broken = rows["broken peer"]
    assert (broken.seconds, broken.vs_best_peer, broken.vs_serial) == (None, None, None)
    assert broken.failures == {"timed out": 2}
    assert [r.name for r in group.rows] == [c.name for c in scenario.contenders]


def test_summary_of_latency_and_scaling() -> None:
    latency = _scenario(_contender("peer", "peer"), _contender("ours", "anypool"))
    trial = Trial("fake", latency, latency.contender("peer"), "latency", 2)
    ours = Trial("fake", latency, latency.contender("ours"), "latency", 2)
    outcomes = [
        Outcome(trial, 0, 1.0, data={"latencies": [1e-4] * 99 + [1e-2]}),
        Outcome(trial, 1, 1.0, data={"latencies": [3e-4] * 100}),
        Outcome(ours, 0, 1.0, data={"latencies": [1e-4] * 100}),
    ]
    [group] = summarise(outcomes)
    peer, mine = group.rows
    assert peer.p50 == pytest.approx(3e-4)  # of all 200 round trips, not of the two p50s
    assert peer.p99 == pytest.approx(3e-4)
    assert peer.p50_spread is not None and peer.p50_spread.low == pytest.approx(1e-4)
    assert mine.vs_best_peer == pytest.approx(1 / 3)
    assert peer.vs_serial is None  # no serial loop for round trips

    scaling = _scenario(
        _contender("loop", "baseline"), _contender("pool", "peer"), worker_counts=(1, 2, 4)
    )
    outcomes = _outcomes(scaling, "loop", [8.0], "warm", 1)
    for workers, seconds in ((1, 8.0), (2, 5.0), (4, 2.5)):
        outcomes += _outcomes(scaling, "pool", [seconds], "warm", workers)
    groups = summarise(outcomes)
    assert [g.workers for g in groups] == [1, 2, 4]
    efficiency = {g.workers: g.rows[-1].efficiency for g in groups}
    assert efficiency == pytest.approx({1: 1.0, 2: 0.8, 4: 0.8})


def test_report_names_failures_and_the_best_peer() -> None:
    scenario = _scenario(_contender("loop", "baseline"), _contender("peer", "peer"))
    outcomes = [
        *_outcomes(scenario, "loop", [1.0]),
        *_outcomes(scenario, "peer", [0.5, None]),
    ]
    groups = summarise(outcomes)
    machine = describe_machine()
    text = markdown(groups, machine, "python benchmarks/run.py --quick", {"X": 2})
    assert "`python benchmarks/run.py --quick`" in text
    assert (
        "| peer | 0.500 | 0.500-0.500 | 1.00x | 2.00x | config of peer | timed out 1/2: slow |"
        in text
    )
    assert "best peer **peer**" in text
    data = to_json(groups, outcomes, machine, "cmd", {"quick": True})
    assert data["groups"][0]["best_peer"] == "peer"
    assert [o["failure"] for o in data["outcomes"]] == [None, None, "timed out"]


# ── the scenarios and the command line ───────────────────────────────────────────


def test_every_scenario_is_defined_without_the_peers_installed() -> None:
    """Selecting scenarios imports only the standard library (the peers, NumPy and
    Pillow are imported inside trials), so S8 runs on a bare machine."""
    chosen = select(list(SCENARIO_MODULES), Settings(quick=True, workers=2))
    ids = [s.id for _, s in chosen]
    assert ids == ["S1", "S2", "S3", "S4", "S5-sha256", "S5-matmul", "S6", "S7", "S8"]
    for _, scenario in chosen:
        names = [c.name for c in scenario.contenders]
        assert len(names) == len(set(names)), scenario.id
        assert all(c.config for c in scenario.contenders)
        assert any(c.kind == "anypool" for c in scenario.contenders)
        assert any(c.kind == "peer" for c in scenario.contenders)


def test_s8_sizes_follow_the_core_count() -> None:
    [(_, on16)] = select(["S8"], Settings(workers=16))
    assert on16.worker_counts == (1, 2, 4, 8, 16)
    assert len(on16.make_job(Settings(workers=16), 4, Path(".")).items) == 64
    [(_, on2)] = select(["S8"], Settings(workers=2))
    assert len(on2.make_job(Settings(workers=2), 2, Path(".")).items) == 16


def test_command_line_options() -> None:
    args = parse_args(["--scenarios", "s1, S8", "--repeat", "3", "--quick", "--workers", "4"])
    assert (args.scenarios, args.repeat, args.quick, args.workers) == (["S1", "S8"], 3, True, 4)
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "S9"])
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "0"])


@pytest.mark.parametrize(
    ("scenario", "contender", "mode"),
    [("S2", "serial loop", "warm"), ("S1", "anypool.map threads", "cold")],
)
def test_a_real_trial_runs_in_process(
    scenario: str, contender: str, mode: str, tmp_path: Path
) -> None:
    spec = {
        "module": SCENARIO_MODULES[scenario],
        "scenario": scenario,
        "contender": contender,
        "mode": mode,
        "workers": 2,
        "settings": {"quick": True, "workers": 2},
        "shared": str(tmp_path),
        "out": str(tmp_path / "out.json"),
        "timeout": 60,
    }
    outcome = run_spec(spec)
    assert outcome["ok"], outcome
    assert outcome["seconds"] > 0


# ── the runner, with real trial processes ────────────────────────────────────────


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_runner_interleaves_and_reports_every_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERBENCH_FAKES_DIR", str(tmp_path))
    [scenario] = __import__("tests._bench_fakes", fromlist=["x"]).scenarios(Settings())
    settings = Settings(workers=2)
    outcomes = run_scenario("tests._bench_fakes", scenario, settings, repeat=2)

    by_name: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_name.setdefault(outcome.trial.contender.name, []).append(outcome)
    for name in ("baseline", "peer-right", "anypool-right"):
        assert all(o.ok and o.seconds is not None for o in by_name[name]), by_name[name]
    expected = {
        "peer-wrong": ("wrong result", "wrong results"),
        "peer-raises": ("error", "RuntimeError: the pool broke"),
        "peer-crashes": ("crashed", "exit code 7"),
        "peer-hangs": ("timed out", "no result after 1 s"),
        "peer-missing": ("not installed", "no_such_peer_module is not installed"),
    }
    for name, (failure, error) in expected.items():
        assert [o.failure for o in by_name[name]] == [failure, failure], name
        assert error in by_name[name][0].error, by_name[name][0].error

    # Each repetition ran every contender once, starting one further along.
    planned = [t.contender.name for _, t in interleave(trials_of("", scenario, settings), 2)]
    ran = (tmp_path / "order.log").read_text().split()
    assert ran == [name for name in planned if name != "peer-missing"]
    assert [o.trial.contender.name for o in outcomes] == planned

    # The hung contender's own worker died with its trial's process group.
    assert _gone(int((tmp_path / "hung-worker.pid").read_text()))
    assert os.environ["PEERBENCH_FAKES_DIR"] == str(tmp_path)
