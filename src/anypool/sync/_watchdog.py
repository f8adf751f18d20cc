"""The watchdog: an acquisition that waits too long prints who holds what.

No thread of its own: a waiting acquisition waits in two parts, first up to the
watchdog's limit, and if the lock is still not free it prints the report and goes on
waiting for the rest of its timeout. So the report comes from the thread that is stuck,
at the moment it has been stuck for the limit, and costs nothing when nothing waits.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from . import _state

__all__ = ["blocking_acquire", "describe_threads", "dump"]


def blocking_acquire(acquire: Callable[[bool, float], bool], timeout: float, what: Any) -> bool:
    """``acquire(True, timeout)``, with the watchdog's report if it waits past the limit."""
    limit = _state.watchdog
    if limit is None or (0 <= timeout <= limit):
        return bool(acquire(True, timeout))
    if acquire(True, limit):
        return True
    dump(what, limit)
    remaining = -1 if timeout < 0 else timeout - limit
    return bool(acquire(True, remaining))


def _thread_names() -> dict[int, str]:
    return {t.ident: t.name for t in threading.enumerate() if t.ident is not None}


def describe_threads(skip: int | None = None) -> str:
    """Every thread's stack, with the anypool locks it holds and the one it waits for."""
    names = _thread_names()
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident == skip:
            continue
        parts.append(_describe_one(ident, names.get(ident, f"thread {ident}"), frame))
    return "\n".join(parts)


def _describe_one(ident: int, name: str, frame: Any) -> str:
    state = _state.threads.get(ident)
    lines = [f'Thread "{name}" (ident {ident})']
    if state is not None and state.generation == _state.generation:
        held = [lock.name for lock in state.held]
        lines.append(f"  holds: {', '.join(held) if held else 'no anypool lock'}")
        if state.waiting is not None:
            lines.append(f"  waits for: {state.waiting.name}")
    lines.append("  stack (most recent call last):")
    lines.extend("  " + line for line in "".join(traceback.format_stack(frame)).splitlines())
    return "\n".join(lines)


def dump(what: Any, waited: float) -> None:
    """Print the watchdog's report on standard error."""
    me = threading.current_thread()
    name = getattr(what, "name", repr(what))
    header = [
        "",
        f"anypool watchdog: thread {me.name!r} has waited {waited:g} s to acquire {name}",
    ]
    holder = what.holder() if hasattr(what, "holder") else None
    if holder is not None:
        header.append(f"  it is held by thread {_thread_names().get(holder, holder)!r}")
    text = "\n".join([*header, "", describe_threads(), ""])
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to report to
        pass
