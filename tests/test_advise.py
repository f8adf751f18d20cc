"""``anypool advise`` on a user's own file and module, and on bad targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

USER_FILE = """
import time


def fetch(x):
    time.sleep(0.01)
    return x


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


async def afetch(x):
    import asyncio

    await asyncio.sleep(0.01)
    return x


LIMIT = 42

if __name__ == "__main__":
    raise SystemExit("advise must not run the main block")
"""


def advise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anypool", "advise", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    (tmp_path / "work.py").write_text(USER_FILE)
    return tmp_path


def test_advise_a_function_in_a_users_file(user_dir: Path) -> None:
    proc = advise("work.py:fetch", "--arg", "1", "--repeat", "20", cwd=user_dir)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "anypool auto: fetch -> threads" in out
    assert "CPU share" in out
    for backend in ("serial", "threads", "processes", "auto"):
        assert f"{backend} " in out
    assert "<- auto's choice" in out


def test_advise_an_importable_module_with_items_from_a_file(user_dir: Path) -> None:
    items = user_dir / "items.txt"
    items.write_text("20\n21\n\n22\n")
    proc = advise("work:fib", "--items-from", str(items), "--json", cwd=user_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["profile"]["function"] == "fib"
    assert data["profile"]["items_total"] == 3
    assert set(data["seconds"]) == {"serial", "threads", "processes", "auto"}
    assert all(isinstance(v, float) for v in data["seconds"].values())


def test_advise_a_coroutine_function_times_asyncio(user_dir: Path) -> None:
    proc = advise("work.py:afetch", "--arg", "1", "--repeat", "5", "--json", cwd=user_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["profile"]["backend"] == "asyncio"
    assert set(data["seconds"]) == {"asyncio", "auto"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:f", "cannot import module 'nosuchmodule'"),
        ("work.py:LIMIT", "work.py:LIMIT is int 42, not a callable"),
        ("work.py:nothing", "has no attribute 'nothing'"),
        ("missing.py:f", "no such file: missing.py"),
        ("work.py", "expected module:function"),
        ("work:fetch --backends gpu", "unknown backend gpu"),
    ],
)
def test_bad_targets_give_one_line_and_status_2(user_dir: Path, target: str, message: str) -> None:
    target, *extra = target.split()
    proc = advise(target, "--arg", "1", *extra, cwd=user_dir)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("anypool advise: error: ")
    assert message in lines[0]


def test_no_items_is_an_error(user_dir: Path) -> None:
    proc = advise("work.py:fetch", cwd=user_dir)
    assert proc.returncode == 2
    assert "no items: give them with --arg VALUE" in proc.stderr
