"""What a test may leave behind: nothing. Helpers to see processes, threads, /dev/shm."""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys
import threading
import time
from pathlib import Path

SHM = Path("/dev/shm")
# Thread pools that a library creates once per process and keeps for its lifetime, like
# multiprocessing's fork server: distributed (Dask) offloads (de)serialisation to one.
# Not a leak of the test that happened to use it first; stopped in stop_helpers().
LIBRARY_THREAD_PREFIXES = ("Dask-Offload",)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if state != "Z":
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def helper_pids() -> set[int]:
    """multiprocessing's own long-lived helpers: the fork server and resource tracker."""
    pids = set()
    forkserver_pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker_pid = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    for pid in (forkserver_pid, tracker_pid):
        if pid:
            pids.add(pid)
    return pids


def descendants(root: int | None = None) -> set[int]:
    """Live (non-zombie) descendants of ``root`` (default: this process)."""
    tree = _children_map()
    out: set[int] = set()
    stack = [root or os.getpid()]
    while stack:
        for child in tree.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def pool_workers() -> set[int]:
    """Worker processes started through this process's fork server (its children)."""
    server = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    return set(_children_map().get(server, [])) if server else set()


def worker_processes() -> set[int]:
    """Descendants other than multiprocessing's helpers: pool workers that should be gone."""
    return descendants() - helper_pids()


def extra_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.name.startswith(LIBRARY_THREAD_PREFIXES)
    ]


def shm_entries() -> set[str]:
    try:
        return {p.name for p in SHM.iterdir()}
    except OSError:
        return set()


def wait_until_clean(timeout: float = 5.0) -> tuple[set[int], list[threading.Thread]]:
    """Poll until no worker process or extra thread is left; return what remains."""
    deadline = time.monotonic() + timeout
    while True:
        procs, threads = worker_processes(), extra_threads()
        if (not procs and not threads) or time.monotonic() > deadline:
            return procs, threads
        time.sleep(0.02)


def stop_helpers() -> None:
    multiprocessing.forkserver._forkserver._stop()
    multiprocessing.resource_tracker._resource_tracker._stop()
    dask_utils = sys.modules.get("distributed.utils")
    if dask_utils is not None:  # nothing uses Dask after the session: stop its pool
        dask_utils._offload_executor.shutdown(wait=True)
