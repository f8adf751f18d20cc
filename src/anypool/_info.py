"""Facts about this machine and interpreter that decide which pool helps (``anypool info``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from typing import Any

from ._backends import available_cpus

__all__ = ["gil_enabled", "info", "register"]

#: extra name -> the modules it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "plot": ("matplotlib",),
    "dask": ("distributed",),
    "apps": ("httpx", "PIL"),
    "uvloop": ("uvloop",),
    "numpy": ("numpy",),
}


def gil_enabled() -> bool:
    """False only on a free-threaded CPython running with the GIL off (PEP 703)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def info() -> dict[str, Any]:
    """The facts as a dict (what ``anypool info --json`` prints)."""
    from ._backends._processes import default_start_method
    from ._version import __version__

    return {
        "anypool": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "cpus_available": available_cpus(),
        "gil_enabled": gil_enabled(),
        "free_threaded_build": bool(getattr(sys, "_is_gil_enabled", None)) and not _sysconfig_gil(),
        "default_start_method": default_start_method(),
        "sync_lock_core": _lock_core(),
        "platform": platform.platform(),
        "extras": {
            name: all(importlib.util.find_spec(m) is not None for m in modules)
            for name, modules in EXTRAS.items()
        },
    }


def _lock_core() -> str:
    """Which core anypool.sync's locks run on: "c" (the extension) or "python"."""
    from .sync import _core

    return "c" if _core.IMPLEMENTATION == "c" else "python"


def _sysconfig_gil() -> bool:
    import sysconfig

    return not sysconfig.get_config_var("Py_GIL_DISABLED")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "info", help="CPUs, Python, GIL and start method: what decides which pool helps"
    )
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    facts = info()
    if args.json:
        import json

        print(json.dumps(facts, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, title=f"anypool {facts['anypool']}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("CPUs", f"{facts['cpus']} ({facts['cpus_available']} available to this process)")
    table.add_row("Python", f"{facts['implementation']} {facts['python']} ({facts['executable']})")
    gil = "enabled" if facts["gil_enabled"] else "disabled: threads run Python code in parallel"
    table.add_row("GIL", gil)
    table.add_row("free-threaded build", "yes" if facts["free_threaded_build"] else "no")
    table.add_row("default start method", facts["default_start_method"])
    table.add_row("anypool.sync lock core", facts["sync_lock_core"])
    extras = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in facts["extras"].items())
    table.add_row("extras installed", extras)
    table.add_row("platform", facts["platform"])
    Console().print(table)
    return 0
