"""The ``anypool`` command line. Each subcommand lives in its own module with a
``register(subparsers)`` function; this module only assembles them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: Modules that add a subcommand, in the order ``anypool --help`` lists them.
COMMANDS = (
    "anypool._bench._command",
    "anypool._advise",
    "anypool._info",
    "anypool._lockcheck_cli",
    "anypool._apps._crawl_cli",
    "anypool._apps._thumbs_cli",
)


def parser() -> argparse.ArgumentParser:
    from ._version import __version__

    p = argparse.ArgumentParser(
        prog="anypool",
        description="Run Python work concurrently on the right pool, and measure which one.",
    )
    p.add_argument("--version", action="version", version=f"anypool {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        p.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
