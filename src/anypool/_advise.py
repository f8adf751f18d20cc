"""``anypool advise module:function``: what auto would choose for your function, and why,
next to the measured time of every backend on your items."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._cliargs import positive_int

__all__ = ["TargetError", "load_target", "register"]


class TargetError(Exception):
    """The target named on the command line cannot be used (one line says why)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "advise",
        help="measure your function: which backend auto picks, why, and every backend's time",
        description="Measure a function of yours on the items you give: the profile "
        "backend='auto' makes (per-item time, CPU share, thread speed-up, transfer cost), "
        "its choice and reason, and the measured time of each backend on those items.",
    )
    p.add_argument(
        "target",
        metavar="TARGET",
        help="module:function or path/to/file.py:function (Class.method works too)",
    )
    p.add_argument(
        "--arg",
        dest="args",
        metavar="VALUE",
        action="append",
        default=[],
        help="one item (a Python literal, else a string); repeat for more",
    )
    p.add_argument(
        "--items-from", metavar="FILE", help="one item per line (a Python literal, else text)"
    )
    p.add_argument(
        "--repeat", type=positive_int, default=1, help="use the items this many times (default 1)"
    )
    p.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends to time (default: every local one that can run it)",
    )
    p.add_argument("--no-run", action="store_true", help="only measure and choose; time nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


# ── finding the function ────────────────────────────────────────────────────────


def load_target(spec: str) -> Callable[..., Any]:
    """The callable named by ``module:function`` or ``path/to/file.py:function``."""
    where, sep, attribute = spec.rpartition(":")
    if not sep or not where or not attribute:
        raise TargetError(f"expected module:function or path/to/file.py:function, got {spec!r}")
    module = _load_file(Path(where)) if _is_path(where) else _import(where)
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{where} has no attribute {attribute!r}") from None
    if not callable(obj):
        raise TargetError(f"{spec} is {type(obj).__name__} {obj!r:.40}, not a callable")
    return obj  # type: ignore[no-any-return]


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where


def _import(name: str) -> Any:
    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules beside you import
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TargetError(f"cannot import module {name!r}: {exc}") from None
    except Exception as exc:
        raise TargetError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from None


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise TargetError(f"no such file: {path}")
    import cloudpickle

    name = f"_anypool_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))  # so that its own imports work
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"running {path} failed: {type(exc).__name__}: {exc}") from None
    # Worker processes cannot import a file by this made-up name: send its functions
    # by value instead.
    cloudpickle.register_pickle_by_value(module)
    return module


# ── the items ───────────────────────────────────────────────────────────────────


def parse_item(text: str) -> Any:
    """A Python literal (``30``, ``'a'``, ``[1, 2]``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def read_items(args: argparse.Namespace) -> list[Any]:
    items = [parse_item(a) for a in args.args]
    if args.items_from:
        try:
            lines = Path(args.items_from).read_text().splitlines()
        except OSError as exc:
            raise TargetError(f"cannot read --items-from {args.items_from}: {exc}") from None
        items += [parse_item(line) for line in lines if line.strip()]
    if not items:
        raise TargetError("no items: give them with --arg VALUE (repeatable) or --items-from FILE")
    repeat: int = args.repeat
    return items * repeat


# ── running ─────────────────────────────────────────────────────────────────────


def run(args: argparse.Namespace) -> int:
    try:
        fn = load_target(args.target)
        items = read_items(args)
        backends = _backends(args.backends, fn)
    except TargetError as exc:
        print(f"anypool advise: error: {exc}", file=sys.stderr)
        return 2
    import anypool

    report = anypool.profile(fn, items)
    timings: dict[str, float | str] = {}
    if not args.no_run:
        if {"processes", "auto"} & set(backends):
            # The fork server starts once per program: start it now, so that it is not
            # charged to whichever backend happens to start the first process pool.
            anypool.map(abs, [1], backend="processes")
        timings = {b: _time(fn, items, b) for b in backends}
    if args.json:
        print(json.dumps(_as_json(report, timings), indent=2, default=str))
    else:
        _print(report, timings, len(items))
    return 0


def _backends(names: str | None, fn: Any) -> list[str]:
    from ._backends import backend_names
    from ._backends._asyncio import is_coroutine_function

    accepted = [*backend_names(), "auto"]
    if names is None:
        if is_coroutine_function(fn):
            return ["asyncio", "auto"]
        return [b for b in accepted if b not in ("asyncio", "dask")]  # dask: only if named
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in accepted]
    if unknown or not chosen:
        raise TargetError(
            f"unknown backend {', '.join(unknown) or '(none given)'}; "
            f"accepted: {', '.join(accepted)}"
        )
    return chosen


def _time(fn: Callable[..., Any], items: Sequence[Any], backend: str) -> float | str:
    """Seconds for ``anypool.map(fn, items, backend=backend)``, pool start-up included
    (as your program would see it); or why it failed."""
    import anypool

    start = time.perf_counter()
    try:
        anypool.map(fn, items, backend=backend)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return time.perf_counter() - start


def _print(report: Any, timings: dict[str, float | str], count: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(str(report), markup=False, highlight=False)
    if not timings:
        return
    serial = timings.get("serial")
    table = Table(title=f"measured: anypool.map over the {count} items (pool start-up included)")
    for column in ("backend", "seconds", "speed-up vs serial", ""):
        table.add_column(column, justify="left" if column in ("backend", "") else "right")
    for backend, value in timings.items():
        mark = "<- auto's choice" if backend == report.backend else ""
        if isinstance(value, str):
            table.add_row(backend, "-", "-", value)
            continue
        speedup = f"{serial / value:.2f}x" if isinstance(serial, float) and value > 0 else "-"
        table.add_row(backend, f"{value:.3f}", speedup, mark)
    console.print(table)


def _as_json(report: Any, timings: dict[str, float | str]) -> dict[str, Any]:
    import dataclasses

    return {"profile": dataclasses.asdict(report), "seconds": timings}
