"""What the figures were measured on: CPU, Python, versions, load, date, command."""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .framework import cpu_count

__all__ = ["command_line", "describe_machine", "load_average"]

#: Packages whose versions the report lists: distribution name -> module name (the
#: module's ``__version__`` is the fallback for one on PYTHONPATH but not installed).
PACKAGES = {
    "anypool": "anypool",
    "joblib": "joblib",
    "loky": "loky",
    "mpire": "mpire",
    "pebble": "pebble",
    "numpy": "numpy",
    "pillow": "PIL",
    "cloudpickle": "cloudpickle",
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(PACKAGES[package])
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown version"))


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def command_line() -> str:
    """The command as it was typed, as near as Python can tell."""
    argv = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    return shlex.join(argv)


def describe_machine() -> dict[str, Any]:
    versions = {p: v for p in PACKAGES if (v := _version(p)) is not None}
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": cpu_count(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions,
        "missing": [p for p in PACKAGES if p not in versions],
        "load_average_start": load_average(),
    }
