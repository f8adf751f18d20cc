"""``anypool bench`` on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._backends import backend_names
from .._cliargs import positive_int
from . import _race
from ._workloads import WORKLOADS

#: Every backend the bench can time: the pools, and auto (which picks one per workload).
BENCH_BACKENDS = [*backend_names(), "auto"]
#: Run when --backends is not given: every backend of this machine. Dask is left out: it
#: needs the dask extra and starts a cluster; name it (with --address, or for a local one).
DEFAULT_BACKENDS = [b for b in BENCH_BACKENDS if b != "dask"]

__all__ = ["register"]

QUICK = {"tasks": 8, "repeat": 3}
FULL = {"tasks": 16, "repeat": 5}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure threads vs processes vs serial on CPU- and I/O-bound work",
        description="Reproduce the GIL experiment on this machine: CPU-bound and "
        "I/O-bound tasks on every backend, with speed-ups against serial.",
    )
    p.add_argument("--quick", action="store_true", help="a short run (under 30 s on 2 cores)")
    p.add_argument("--tasks", type=positive_int, help="tasks per workload (default 16; --quick 8)")
    p.add_argument("--workers", type=positive_int, help="workers per pool (default: per workload)")
    p.add_argument("--repeat", type=positive_int, help="runs per measurement; the median is shown")
    p.add_argument(
        "--backends",
        type=_names(BENCH_BACKENDS),
        default=None,
        help=f"comma-separated, from: {','.join(BENCH_BACKENDS)} (default: all but dask)",
    )
    p.add_argument(
        "--workloads",
        type=_names([*WORKLOADS, _race.NAME]),
        default=None,
        help=f"comma-separated, from: {','.join([*WORKLOADS, _race.NAME])} (race: lost "
        "updates of an unlocked counter, printed as its own table)",
    )
    p.add_argument(
        "--address",
        metavar="URL",
        help="the Dask scheduler for --backends dask, e.g. tcp://host:8786 (default: "
        "$ANYPOOL_DASK_ADDRESS, else a local cluster on 127.0.0.1)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--plot", metavar="PATH", help="also draw a PNG bar chart (needs anypool[plot])")
    p.set_defaults(handler=run)


def _names(accepted: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in accepted]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or 'empty list'}; accepted: {', '.join(accepted)}"
            )
        return names

    return parse


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ._report import PlotUnavailable, reading, table, write_json, write_plot
    from ._runner import run as run_bench

    console = Console()
    preset = QUICK if args.quick else FULL
    if args.plot:  # fail before the long run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            console.print(
                "error: --plot needs matplotlib: pip install 'anypool[plot]'",
                style="red",
                markup=False,
            )
            return 2
    backends = args.backends or list(DEFAULT_BACKENDS)
    if "serial" not in backends:
        backends = ["serial", *backends]
    if args.address and "dask" not in backends:
        console.print(
            "error: --address is the Dask scheduler for --backends dask; add dask to --backends",
            style="red",
            markup=False,
        )
        return 2
    chosen = args.workloads or [*WORKLOADS, _race.NAME]
    workloads = [w for w in chosen if w in WORKLOADS]
    tasks = args.tasks or preset["tasks"]
    repeat = args.repeat or preset["repeat"]
    results = []
    notes: list[str] = []
    if workloads:
        with console.status("measuring...") as status:
            results = run_bench(
                workloads,
                backends,
                tasks=tasks,
                workers=args.workers,
                repeat=repeat,
                on_result=lambda m: status.update(f"measured {m.workload} on {m.backend}..."),
                notes=notes,
                address=args.address,
            )
        console.print(table(results))
        console.print(reading(results), soft_wrap=False)
        for note in notes:
            console.print(f"note: {note}", markup=False, highlight=False)
    extra = {}
    if _race.NAME in chosen:
        with console.status("measuring lost updates (race)..."):
            race = _race.run(quick=args.quick)
        console.print(_race.table(race))
        console.print(_race.reading(race), soft_wrap=False)
        extra[_race.NAME] = [row.as_json() for row in race]
    if args.json:
        write_json(results, args.json, extra)
        console.print(f"JSON written to {args.json}")
    if args.plot and results:
        try:
            write_plot(results, args.plot)
        except PlotUnavailable as exc:
            console.print(f"error: {exc}", style="red", markup=False)
            return 2
        console.print(f"chart written to {args.plot}")
    return 0
