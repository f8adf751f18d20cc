"""What the lock test suites share: the modes every lock is tested in (the ``mode``
fixture in conftest.py), and a helper that holds a lock in another thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anypool


@contextlib.contextmanager
def _watchdog() -> Iterator[None]:
    previous = anypool.sync.set_watchdog(60.0)
    try:
        yield
    finally:
        anypool.sync.set_watchdog(previous)


#: Every lock test runs in each mode: a new mode is tested by one line here.
MODES: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "plain": contextlib.nullcontext,
    "lockcheck": anypool.sync.lockcheck,
    "watchdog": _watchdog,
}


def held_elsewhere(lock: Any) -> tuple[threading.Thread, threading.Event]:
    """Start a thread that holds ``lock`` until the returned event is set."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            done.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(30)
    return t, done
