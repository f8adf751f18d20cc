"""Every script in examples/ runs to completion, as a user would run it.

Each ``examples/*.py`` is found by itself (a new example is tested by adding the file) and
run in a fresh interpreter with a timeout. A script that needs something a test cannot
start (an outside server, say) says so in a line of its own::

    # example: needs a server

and is skipped with that reason shown, never silently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NEEDS_SERVER = "# example: needs a server"
TIMEOUT = 90  # seconds per script: a deadlock guard, far above what any of them takes


def scripts() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("script", scripts(), ids=[p.name for p in scripts()])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    if any(line.strip() == NEEDS_SERVER for line in script.read_text().splitlines()):
        pytest.skip(f"{script.name} needs a server ({NEEDS_SERVER!r})")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,  # examples must not depend on, or litter, the working directory
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    assert not list(tmp_path.iterdir()), f"{script.name} left files in its working directory"


def test_examples_are_found() -> None:
    assert scripts(), f"no examples/*.py under {EXAMPLES}"
