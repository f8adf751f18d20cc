"""What anypool.sync is doing right now: lock checking on or off, the watchdog, and the
locks each thread holds.

Two speeds. While neither lock checking nor the watchdog is on ("plain" mode), a lock
does only what its statistics need and nothing is recorded per thread. Switching either
on turns on "tracked" mode: every Lock and RLock acquisition records its thread and the
locks that thread already holds. The lock cores register a callback with
:func:`on_change`, called whenever any of these settings changes: the pure-Python core
swaps its methods, the C core copies the settings, so plain mode pays nothing for the
existence of tracked mode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._check import Checker

__all__ = [
    "ThreadState",
    "checker",
    "env_settings",
    "generation",
    "install_checker",
    "local",
    "on_change",
    "set_watchdog",
    "thread_state",
    "threads",
    "tracking",
    "watchdog",
]

#: The active lock-order checker, or None.
checker: Checker | None = None
#: Seconds an acquisition may wait before the watchdog prints every thread, or None.
watchdog: float | None = None
#: True while checking or the watchdog is on.
tracking = False
#: Bumped each time tracking is switched on, so that what was recorded before (locks
#: acquired in an earlier tracked period) is never mistaken for the present.
generation = 0

_callbacks: list[Callable[[], None]] = []
#: Per-thread storage of the pure-Python core (``local.state``: the thread's ThreadState).
local = threading.local()
#: thread ident -> its state, for the watchdog's report of who holds what.
threads: dict[int, ThreadState] = {}


class ThreadState:
    """One thread's view: the tracked locks it holds, in acquisition order."""

    __slots__ = ("busy", "generation", "held", "ident", "waiting")

    def __init__(self) -> None:
        self.held: list[Any] = []
        #: True while the checker runs in this thread: locks it takes are not checked.
        self.busy = False
        self.ident = threading.get_ident()
        self.waiting: Any = None
        self.generation = generation


def thread_state() -> ThreadState:
    try:
        state: ThreadState = local.state
    except AttributeError:
        state = local.state = ThreadState()
        threads[state.ident] = state
    if state.generation != generation:  # tracking was switched off and on since
        state.held = []
        state.generation = generation
    return state


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback()`` now and whenever the checker, the watchdog or tracking changes."""
    _callbacks.append(callback)
    callback()


def _update_mode() -> None:
    global tracking, generation
    wanted = checker is not None or watchdog is not None
    if wanted and not tracking:
        generation += 1
    tracking = wanted
    for callback in _callbacks:
        callback()


def install_checker(new: Checker | None) -> Checker | None:
    """Make ``new`` the active checker (None: checking off); return the previous one."""
    global checker
    previous, checker = checker, new
    _update_mode()
    return previous


def set_watchdog(seconds: float | None) -> float | None:
    """Set the watchdog's limit (None: off); return the previous limit."""
    global watchdog
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"watchdog seconds must be a number or None, got {seconds!r}")
        if not seconds > 0:
            raise ValueError(f"watchdog seconds must be > 0, got {seconds!r}")
    previous, watchdog = watchdog, None if seconds is None else float(seconds)
    _update_mode()
    return previous


def env_settings(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, Any]:
    """Read ``ANYPOOL_LOCKCHECK`` and ``ANYPOOL_LOCK_WATCHDOG``; raise on a bad value."""
    check = environ.get("ANYPOOL_LOCKCHECK", "").strip().lower()
    modes = {"": None, "0": None, "off": None, "1": "warn", "on": "warn", "warn": "warn"}
    modes["strict"] = "strict"
    if check not in modes:
        raise ValueError(
            f"ANYPOOL_LOCKCHECK={environ['ANYPOOL_LOCKCHECK']!r} is not understood: "
            "use 1 (report lock-order inversions as warnings), strict (raise "
            "anypool.sync.LockOrderError) or 0 (off)"
        )
    text = environ.get("ANYPOOL_LOCK_WATCHDOG", "").strip()
    seconds: float | None = None
    if text not in ("", "0"):
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise ValueError(
                f"ANYPOOL_LOCK_WATCHDOG={text!r} is not understood: use a number of "
                "seconds > 0 (e.g. 10), or 0 for off"
            )
    return {"lockcheck": modes[check], "watchdog": seconds}
