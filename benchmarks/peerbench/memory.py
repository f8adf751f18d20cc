"""Peak memory of a process and all its descendants, as PSS (Linux only).

PSS (proportional set size) charges each shared page to the processes sharing it in equal
parts, so the sum over a process tree counts a 200 MB array once whether it is copied into
every worker, shared copy-on-write after fork, or mapped from /dev/shm — which is what S4
compares. RSS would count a shared array once per process.

::

    trial process (the caller)            sampler thread (this module)
    ──────────────────────────            ────────────────────────────
    baseline = tree_pss()                 every INTERVAL s: walk /proc for descendants,
    with PeakSampler() as peak:  ──start─► sum their smaps_rollup Pss, keep the maximum
        run the contender
    peak.peak_bytes  ◄───────────stop───── one last sample at exit
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["PeakSampler", "descendants", "pss_bytes", "tree_pss"]

#: Seconds between samples: shorter catches shorter peaks but steals more CPU from the run
#: being measured (one sample reads /proc/*/stat and one smaps_rollup per process: ~1 ms).
INTERVAL = 0.005

_PROC = Path("/proc")


def pss_bytes(pid: int) -> int:
    """The PSS of one process, or 0 if it is gone (or /proc is not there)."""
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def _parents() -> dict[int, int]:
    parents = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (workers, fork servers, resource trackers)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def tree_pss(root: int | None = None) -> int:
    """PSS of ``root`` (default: this process) plus all its descendants, in bytes."""
    root = os.getpid() if root is None else root
    return pss_bytes(root) + sum(pss_bytes(pid) for pid in descendants(root))


class PeakSampler:
    """Samples ``tree_pss()`` on a thread while the ``with`` block runs; ``peak_bytes``
    is the largest sample."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _take(self) -> None:
        self.peak_bytes = max(self.peak_bytes, tree_pss())
        self.samples += 1

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
