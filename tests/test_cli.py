from __future__ import annotations

import json
import subprocess
import sys

import pytest

import anypool
from anypool._cli import main


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anypool", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert anypool.__version__ in proc.stdout


def test_no_command_prints_help_and_fails() -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert "bench" in proc.stderr
    assert "info" in proc.stderr


def test_info_human_and_json() -> None:
    proc = run_cli("info")
    assert proc.returncode == 0
    for word in ("CPUs", "Python", "GIL", "start method", "extras"):
        assert word in proc.stdout
    facts = json.loads(run_cli("info", "--json").stdout)
    assert facts["cpus_available"] >= 1
    assert facts["gil_enabled"] is (
        sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    )
    assert facts["default_start_method"] == "forkserver"
    assert set(facts["extras"]) >= {"plot", "dask"}


def test_bench_rejects_unknown_backends() -> None:
    proc = run_cli("bench", "--backends", "threads,gpu")
    assert proc.returncode == 2
    accepted = "unknown gpu; accepted: serial,threads,processes,asyncio,dask,auto"
    assert accepted in proc.stderr.replace(", ", ",")


def test_bench_plot_without_matplotlib_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "--plot", "x.png", "--tasks", "1"]) == 2
    assert "pip install 'anypool[plot]'" in capsys.readouterr().out


def test_bench_small_run_writes_json_and_plot(tmp_path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    proc = run_cli(
        "bench",
        "--workloads",
        "io",
        "--tasks",
        "4",
        "--repeat",
        "1",
        "--json",
        str(out),
        "--plot",
        str(png),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"anypool", "python", "cpus", "gil_enabled", "results"}
    rows = data["results"]
    assert {r["backend"] for r in rows} == {"serial", "threads", "processes", "asyncio", "auto"}
    for row in rows:
        assert set(row) == {"workload", "backend", "workers", "tasks", "seconds", "speedup"}
        assert row["workload"] == "io"
        assert row["tasks"] == 4
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_quick_shows_the_guides_finding(tmp_path) -> None:
    """On 2+ cores: processes speed up CPU work, threads speed up I/O but not CPU work.

    Timings on a shared machine are noisy, so a second run is allowed; the claims must
    hold within one run.
    """
    for attempt in range(2):
        out = tmp_path / f"quick-{attempt}.json"
        proc = run_cli("bench", "--quick", "--workloads", "cpu,io", "--json", str(out), timeout=110)
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(out.read_text())["results"]
        speedup = {(r["workload"], r["backend"]): r["speedup"] for r in rows}
        cores = anypool._backends.available_cpus()
        if (cores < 2 or speedup[("cpu", "processes")] >= 1.6) and speedup[("io", "threads")] >= 5:
            break
    if cores >= 2:
        assert speedup[("cpu", "processes")] >= 1.6, speedup
    assert speedup[("io", "threads")] >= 5, speedup
    assert speedup[("cpu", "threads")] < 1.3, speedup
    assert "Threads did not speed up the CPU work" in " ".join(proc.stdout.split())
