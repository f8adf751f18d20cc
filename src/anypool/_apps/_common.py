"""What the apps share: the missing-extra check, argument types, and small formatters."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .._cliargs import non_negative_int, positive_float, positive_int

__all__ = [
    "MissingExtra",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "rate",
    "report_missing",
    "require",
    "seconds",
]


class MissingExtra(Exception):
    """A tool's optional library is not installed; the message is the one line to show."""


def require(module: str, tool: str, package: str, extra: str = "apps") -> ModuleType:
    """Import ``module`` for ``tool``, or raise :class:`MissingExtra` naming the
    ``package`` it comes from and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"anypool {tool} needs {package}, which is not installed: "
            f"pip install 'anypool[{extra}]'"
        ) from None


def report_missing(exc: MissingExtra) -> int:
    """Print the one-line message; the exit status for a missing extra (2)."""
    print(f"error: {exc}", file=sys.stderr)
    return 2


def seconds(value: float) -> str:
    """``0.0123`` -> ``'12.3 ms'``; ``4.5`` -> ``'4.50 s'``."""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def rate(count: int, elapsed: float) -> str:
    return f"{count / elapsed:,.1f}" if elapsed > 0 else "-"
