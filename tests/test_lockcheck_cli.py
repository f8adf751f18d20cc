"""``anypool lockcheck -- python script.py`` on scripts using plain threading locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The guide's §9.3 example exactly as written there (plain threading locks), except that
# thread 2 starts only after thread 1 has finished, so this run cannot hang.
GUIDE_93 = """
import threading
import time

lock_a = threading.Lock()
lock_b = threading.Lock()

def thread1():
    with lock_a:
        time.sleep(0.01)
        with lock_b:   # waits for lock_b
            pass

def thread2():
    with {first}:
        time.sleep(0.01)
        with {second}:
            pass

t1 = threading.Thread(target=thread1)
t1.start()
t1.join()
t2 = threading.Thread(target=thread2)
t2.start()
t2.join()
print("finished")
raise SystemExit({status})
"""


def lockcheck(
    tmp_path: Path, *args: str, fixed: bool = False, status: int = 0
) -> subprocess.CompletedProcess[str]:
    order = ("lock_a", "lock_b") if fixed else ("lock_b", "lock_a")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(GUIDE_93.format(first=order[0], second=order[1], status=status))
    )
    return subprocess.run(
        [sys.executable, "-m", "anypool", "lockcheck", *args, "--", "python", str(script)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )


def test_plain_threading_locks_inversion_is_reported(tmp_path: Path) -> None:
    proc = lockcheck(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout
    err = proc.stderr
    assert "LockOrderWarning: lock-order inversion" in err
    # Plain locks are named by where they were created.
    assert "'Lock#" in err and "(script.py:5)" in err and "(script.py:6)" in err
    assert "in thread1" in err and "in thread2" in err
    assert "anypool lockcheck: 1 process(es) checked" in err
    assert "1 inversion(s)" in err


def test_strict_exits_non_zero(tmp_path: Path) -> None:
    proc = lockcheck(tmp_path, "--strict")
    assert proc.returncode == 1
    assert "LockOrderError" in proc.stderr
    assert "1 inversion(s)" in proc.stderr


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_fixed_order_reports_nothing_and_exits_zero(tmp_path: Path, strict: list[str]) -> None:
    proc = lockcheck(tmp_path, *strict, fixed=True)
    assert proc.returncode == 0, proc.stderr
    assert "LockOrder" not in proc.stderr
    assert "0 inversion(s)" in proc.stderr


def test_the_commands_own_exit_status_is_kept(tmp_path: Path) -> None:
    assert lockcheck(tmp_path, fixed=True, status=3).returncode == 3
    assert lockcheck(tmp_path, "--strict", status=4).returncode == 4


def test_without_a_command_says_what_to_write() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anypool", "lockcheck"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "anypool lockcheck -- python app.py" in proc.stderr


def test_unknown_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anypool", "lockcheck", "--", "no-such-command-xyz"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 127
    assert "command not found: no-such-command-xyz" in proc.stderr


def test_a_command_running_no_python_is_said_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "anypool", "lockcheck", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "no Python process reported back" in proc.stderr


def test_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import builtins\nbuiltins.OWN_SITE = True\n")
    code = "import builtins, threading; print(builtins.OWN_SITE, type(threading.Lock()).__module__)"
    proc = subprocess.run(
        [sys.executable, "-m", "anypool", "lockcheck", "--", "python", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(own), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "anypool.sync"]
