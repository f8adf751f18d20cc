"""``anypool lockcheck -- COMMAND``: run a program with lock-order checking on.

Every Python process the command starts (the command itself, its subprocesses and
multiprocessing workers, through an inherited PYTHONPATH) checks the order of every
anypool.sync lock and every plain ``threading.Lock``/``RLock`` created after start-up,
reports inversions as they happen, and appends its findings to a report file; at the
end this command prints a summary and exits with the command's status, or 1 in
``--strict`` mode when an inversion was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

#: Exit status with --strict when the command succeeded but an inversion was seen.
INVERSION_STATUS = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "lockcheck",
        help="run a Python program with lock-order (deadlock) checking",
        description="Run COMMAND with lock-order checking on for anypool.sync locks and "
        "plain threading.Lock/RLock: an acquisition order that can deadlock is reported "
        "even if this run did not hang. 'python' as the command means this interpreter.",
        usage="anypool lockcheck [--strict] -- COMMAND [ARGS...]",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="raise anypool.sync.LockOrderError at the inverting acquisition, and exit "
        f"{INVERSION_STATUS} if any inversion was seen",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(
            "anypool lockcheck: give the command to run after --, e.g. "
            "anypool lockcheck -- python app.py",
            file=sys.stderr,
        )
        return 2
    if command[0] in ("python", "python3"):
        command[0] = sys.executable  # the interpreter anypool is installed in
    with tempfile.TemporaryDirectory(prefix="anypool-lockcheck-") as tmp:
        report = Path(tmp) / "report.jsonl"
        status = _run_checked(command, _environment(Path(tmp), report, args.strict))
        if status is None:
            return 127
        records = _read(report)
    inversions = sum(len(r["inversions"]) for r in records)
    print(_summary(records), file=sys.stderr)
    if args.strict and inversions and status == 0:
        return INVERSION_STATUS
    return status


def _environment(tmp: Path, report: Path, strict: bool) -> dict[str, str]:
    from .sync._bootstrap import SITECUSTOMIZE

    (tmp / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp), env.get("PYTHONPATH")) if p)
    env["ANYPOOL_LOCKCHECK"] = "strict" if strict else "1"
    env["ANYPOOL_LOCKCHECK_THREADING"] = "1"
    env["ANYPOOL_LOCKCHECK_REPORT"] = str(report)
    return env


def _run_checked(command: list[str], env: dict[str, str]) -> int | None:
    try:
        proc = subprocess.run(command, env=env, check=False)
    except FileNotFoundError:
        print(f"anypool lockcheck: command not found: {command[0]}", file=sys.stderr)
        return None
    except PermissionError:
        print(f"anypool lockcheck: cannot execute {command[0]}", file=sys.stderr)
        return None
    # A command killed by a signal exits as a shell would report it: 128 + signal.
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def _read(report: Path) -> list[dict[str, Any]]:
    try:
        lines = report.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _summary(records: list[dict[str, Any]]) -> str:
    if not records:
        return (
            "anypool lockcheck: no Python process reported back: the command ran no "
            "Python with anypool importable, or it was killed before exiting"
        )
    inversions = [inv for r in records for inv in r["inversions"]]
    locks = sum(r["locks"] for r in records)
    edges = sum(r["edges"] for r in records)
    head = (
        f"anypool lockcheck: {len(records)} process(es) checked, {locks} locks in "
        f"{edges} lock orders, {len(inversions)} inversion(s)"
    )
    return "\n".join([head, *("  " + inv for inv in inversions)])
