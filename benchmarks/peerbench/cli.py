"""``python benchmarks/run.py``: parse the options, run the scenarios, write the report."""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import sys
from pathlib import Path

from . import SCENARIO_MODULES
from .framework import Scenario, Settings, cpu_count
from .machine import command_line, describe_machine, load_average
from .report import markdown, to_json
from .runner import Outcome, run_scenario
from .summary import summarise

__all__ = ["main", "parse_args", "select"]

#: Repetitions when neither --repeat nor the scenario says otherwise.
DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
DEFAULT_OUT = "bench-peers.md"


def _scenario_keys(text: str) -> list[str]:
    keys = [k.strip().upper() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCENARIO_MODULES]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or text!r}; "
            f"choose from {','.join(SCENARIO_MODULES)}"
        )
    return keys


def _positive(kind: type[int] | type[float]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run anypool and its peers on the same work, interleaved, and "
        "write a markdown section for benchmarks/RESULTS.md plus JSON.",
    )
    parser.add_argument(
        "--scenarios",
        type=_scenario_keys,
        default=list(SCENARIO_MODULES),
        help="comma-separated, e.g. S1,S3 (default: all of " + ",".join(SCENARIO_MODULES) + ")",
    )
    parser.add_argument(
        "--repeat",
        type=_positive(int),
        help=f"repetitions of every contender (default {DEFAULT_REPEAT}, S8 3, --quick "
        f"{QUICK_REPEAT})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: checks it works")
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=cpu_count(),
        help="pool size, and S8's largest worker count (default: the usable CPUs, %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        help="seconds one timed run may take (default: per scenario, 60-120)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help="the markdown file; the JSON goes beside it with a .json suffix "
        "(default: %(default)s)",
    )
    return parser.parse_args(argv)


def select(keys: list[str], settings: Settings) -> list[tuple[str, Scenario]]:
    """The (module, scenario) pairs for ``keys``, in the order given."""
    chosen = []
    for key in keys:
        module = SCENARIO_MODULES[key]
        for scenario in importlib.import_module(module).scenarios(settings):
            if scenario.key == key:
                chosen.append((module, scenario))
    return chosen


def _repeat(args: argparse.Namespace, scenario: Scenario) -> int:
    if args.repeat is not None:
        return int(args.repeat)
    if args.quick:
        return QUICK_REPEAT
    return scenario.repeat or DEFAULT_REPEAT


def compile_anypool() -> None:
    """Byte-compile anypool, as pip does when it installs a package.

    An editable install is not compiled, and the trials run with PYTHONDONTWRITEBYTECODE:
    each would compile the modules anypool imports on first use (12 ms for the processes
    backend) inside its timing, a cost the peers, compiled when pip installed them, never
    pay. Stale bytecode is rewritten; up-to-date bytecode is left alone.
    """
    import anypool

    compileall.compile_dir(Path(anypool.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_anypool()
    settings = Settings(quick=args.quick, workers=args.workers)
    machine = describe_machine()
    command = command_line()
    outcomes: list[Outcome] = []
    repeats: dict[str, int] = {}
    for module, scenario in select(args.scenarios, settings):
        repeats[scenario.id] = _repeat(args, scenario)
        outcomes += run_scenario(
            module,
            scenario,
            settings,
            repeat=repeats[scenario.id],
            timeout=args.timeout,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    machine["load_average_end"] = load_average()
    groups = summarise(outcomes)
    text = markdown(groups, machine, command, repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    json_path = args.out.with_suffix(".json")
    data = to_json(groups, outcomes, machine, command, settings.to_json())
    json_path.write_text(json.dumps(data, indent=1))
    print(text)
    print(f"\nwrote {args.out} and {json_path}", file=sys.stderr)
    return 0
