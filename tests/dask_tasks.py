"""Task functions for the dask tests, importable on the workers (the cluster fixture puts
the repository on their PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

from .tasks import wait_for_file


def count_and_fail(path: str, failures: int) -> int:
    """Record this run in ``path``; fail the first ``failures`` runs, then return the count."""
    with open(path, "a") as f:
        f.write("run\n")
    runs = len(Path(path).read_text().splitlines())
    if runs <= failures:
        raise ValueError(f"failing run {runs} of {failures}")
    return runs


def stall_once(i: int, at: int, marker: str) -> int:
    """Item ``at`` stalls the first time: it writes its worker's pid to ``marker`` and
    waits there to be killed. Run again elsewhere, it returns like every other item."""
    if i == at and not os.path.exists(marker):
        tmp = f"{marker}.tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.rename(tmp, marker)  # the test sees the pid whole, never half-written
        wait_for_file(marker + ".never", timeout=120)
    return i * i


def exit_every_time(path: str) -> None:
    """Record this run in ``path``, then end the worker process: every worker dies."""
    with open(path, "a") as f:
        f.write("run\n")  # closed, so in the kernel's hands before the process ends
    os._exit(1)


def worker_pid(_: object = None) -> int:
    return os.getpid()


def _refuse_to_load() -> None:
    raise RuntimeError("this object cannot be loaded here")


class Unloadable:
    """A callable that pickles but will not unpickle: its loader raises.

    (Not an exception class: importing distributed makes every exception class that
    exists at that moment pickle through tblib, which does not call ``__init__``.)
    """

    def __call__(self, x: object) -> object:
        return x

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_refuse_to_load, ())


def unloadable_result_at(i: int, bad: int = 1) -> object:
    """Item ``bad`` returns a value that pickles on the worker but will not unpickle."""
    return Unloadable() if i == bad else i


def exit_on(i: int, bad: int = 1) -> int:
    """Item ``bad`` ends its worker process, every time it runs."""
    if i == bad:
        os._exit(1)
    return i
