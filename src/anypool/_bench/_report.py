"""The bench's table, its reading in words, its JSON and its chart."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._backends import available_cpus
from .._info import gil_enabled
from .._version import __version__
from ._runner import Measurement

__all__ = ["reading", "table", "to_json", "write_json", "write_plot"]


def table(results: Sequence[Measurement]) -> Any:
    from rich.table import Table

    out = Table(title="anypool bench: the GIL experiment on this machine")
    for column in ("workload", "backend", "workers", "tasks", "seconds", "speedup vs serial"):
        out.add_column(column, justify="left" if column in ("workload", "backend") else "right")
    for m in results:
        speedup = "-" if m.speedup is None else f"{m.speedup:.2f}x"
        out.add_row(
            m.workload, m.backend, str(m.workers), str(m.tasks), f"{m.seconds:.3f}", speedup
        )
    return out


def _speedup(results: Sequence[Measurement], workload: str, backend: str) -> float | None:
    for m in results:
        if m.workload == workload and m.backend == backend:
            return m.speedup
    return None


def reading(results: Sequence[Measurement]) -> str:
    """One paragraph that says what the table shows, and why."""
    gil = gil_enabled()
    parts = []
    cpu_threads = _speedup(results, "cpu", "threads")
    cpu_procs = _speedup(results, "cpu", "processes")
    io_threads = _speedup(results, "io", "threads")
    if cpu_threads is not None:
        if gil and cpu_threads < 1.3:
            parts.append(
                f"Threads did not speed up the CPU work ({cpu_threads:.2f}x): the GIL lets only "
                "one thread run Python bytecode at a time, so pure-Python computation on "
                "threads takes turns instead of running in parallel."
            )
        elif not gil:
            parts.append(
                f"Threads sped up the CPU work {cpu_threads:.2f}x: this Python runs without the "
                "GIL (free-threaded), so threads run Python code in parallel."
            )
        else:
            parts.append(f"Threads changed the CPU work's time by {cpu_threads:.2f}x.")
    if cpu_procs is not None:
        parts.append(
            f"Processes sped it up {cpu_procs:.2f}x on {available_cpus()} CPU(s): each worker "
            "process has its own interpreter and its own GIL, so they compute in parallel; the "
            "price is starting them and pickling arguments and results."
        )
    if io_threads is not None:
        parts.append(
            f"For the I/O work threads gave {io_threads:.2f}x: a thread that waits (sleep, a "
            "socket, a file) releases the GIL, so the waits overlap."
        )
    hash_threads = _speedup(results, "hash", "threads")
    if hash_threads is not None:
        parts.append(
            f"For the hash work threads gave {hash_threads:.2f}x: hashlib releases the GIL "
            "while it hashes, so C code runs in parallel on threads, with nothing pickled."
        )
    tiny_processes = _speedup(results, "tiny", "processes")
    if tiny_processes is not None:
        tiny_threads = _speedup(results, "tiny", "threads")
        near = "" if tiny_threads is None else f", and threads stay near it ({tiny_threads:.2f}x)"
        parts.append(
            f"For the tiny work processes gave {tiny_processes:.2f}x: pickling items of x*x "
            f"to send them costs more than computing them in the loop{near}."
        )
    parts.extend(_auto_sentences(results))
    if not parts:
        return "Run with the serial backend and at least one pool to compare them."
    return " ".join(parts)


def _auto_sentences(results: Sequence[Measurement]) -> list[str]:
    """How close auto came to the best backend named by hand, per workload."""
    gaps = []
    for workload in dict.fromkeys(m.workload for m in results):
        rows = [m for m in results if m.workload == workload]
        auto = next((m for m in rows if m.backend == "auto"), None)
        fixed = [m for m in rows if m.backend != "auto"]
        if auto is None or len(fixed) < 2:
            continue
        best = min(fixed, key=lambda m: m.seconds)
        gaps.append(f"{workload} {auto.seconds / best.seconds - 1:+.0%} against {best.backend}")
    if not gaps:
        return []
    return [
        "auto, which measures each call before choosing, took (against the best backend "
        f"named by hand): {'; '.join(gaps)}."
    ]


def to_json(results: Sequence[Measurement], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bench's JSON; ``extra`` adds experiments with their own shape (``"race"``)."""
    return {
        "anypool": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": available_cpus(),
        "gil_enabled": gil_enabled(),
        "results": [m.as_json() for m in results],
        **(extra or {}),
    }


def write_json(
    results: Sequence[Measurement], path: str, extra: dict[str, Any] | None = None
) -> None:
    Path(path).write_text(json.dumps(to_json(results, extra), indent=2) + "\n")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def write_plot(results: Sequence[Measurement], path: str) -> None:
    """A PNG bar chart of speed-up vs serial, one group of bars per workload."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'anypool[plot]'") from exc
    workloads = list(dict.fromkeys(m.workload for m in results))
    backends = list(dict.fromkeys(m.backend for m in results))
    width = 0.8 / max(1, len(backends))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, backend in enumerate(backends):
        heights = [(_speedup(results, w, backend) or 0.0) for w in workloads]
        xs = [j + i * width for j in range(len(workloads))]
        ax.bar(xs, heights, width, label=backend)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(workloads))])
    ax.set_xticklabels(workloads)
    ax.set_ylabel("speed-up vs serial")
    ax.set_title(f"anypool bench ({available_cpus()} CPUs, Python {sys.version.split()[0]})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
