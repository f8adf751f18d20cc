"""Progress display: a rich progress bar on standard error, silent unless asked for."""

from __future__ import annotations

import threading
from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "ProgressBar", "make_progress"]


class Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def add_total(self, n: int) -> None: ...
    def set_total(self, total: int | None) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Progress that shows nothing (the default)."""

    def advance(self, n: int = 1) -> None:
        pass

    def add_total(self, n: int) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def close(self) -> None:
        pass


class ProgressBar:
    """A progress bar: done/total, rate and time remaining, on standard error.

    Thread-safe: results arrive from backend threads. ``total=None`` shows a running
    count until the total becomes known.
    """

    def __init__(self, description: str, total: int | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._lock = threading.Lock()
        self._total = total
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(description, total=total, rate="")
        self._progress.start()
        self._closed = False

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._closed:
                return
            self._progress.advance(self._task, n)
            task = self._progress.tasks[0]
            speed = task.speed
            self._progress.update(self._task, rate=f"{speed:,.1f}/s" if speed else "")

    def add_total(self, n: int) -> None:
        with self._lock:
            self._total = (self._total or 0) + n
            if not self._closed:
                self._progress.update(self._task, total=self._total)

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self._total = total
            if not self._closed:
                self._progress.update(self._task, total=total)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._progress.stop()


def make_progress(enabled: bool, description: str, total: int | None = None) -> Any:
    """A :class:`ProgressBar` when ``enabled``, else a :class:`NullProgress`."""
    if not enabled:
        return NullProgress()
    return ProgressBar(description, total)
