"""Lock-order checking: find the deadlock before it happens.

The checker keeps a graph of "lock A was held while lock B was acquired" edges, each
with the thread and stack where it was first seen. An acquisition that would add an
edge B -> A while a path A -> ... -> B exists closes a cycle: two threads following
those two orders at the same time would wait for each other forever. That is reported
at once, whether or not the threads ever overlapped, which is what makes it useful in
tests: the deadlock that would hang one run in a thousand is reported in every run.

Locks are nodes by instance (their serial number), not by class as in the Linux
kernel's lockdep: Python code has no lock classes to go by, and two instances of one
class taken in either order are often correct (ordered by some other rule).

Cost: the common case (the edges already known) is a dictionary lookup per lock held,
done by the acquiring thread without any lock. Only a new edge takes the checker's own
raw lock, captures a stack and searches the graph.
"""

from __future__ import annotations

import _thread
import contextlib
import dataclasses
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._errors import AnypoolError
from . import _state

__all__ = [
    "Checker",
    "Edge",
    "Inversion",
    "LockCheckReport",
    "LockOrderError",
    "LockOrderWarning",
    "lockcheck",
]

_HERE = str(Path(__file__).resolve().parent)
_EMPTY: dict[int, Edge] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    """One observed order: ``held`` was held while ``acquired`` was acquired.

    Attributes:
        held: the name of the lock already held.
        acquired: the name of the lock being acquired.
        thread: the name of the thread that did it (first time seen).
        stack: the formatted stack of that first acquisition.
    """

    held: str
    acquired: str
    thread: str
    stack: str

    def describe(self) -> str:
        head = f"{self.held!r} held while acquiring {self.acquired!r} in thread {self.thread!r}"
        return head + ", at:\n" + _indent(self.stack)


@dataclasses.dataclass(frozen=True, slots=True)
class Inversion:
    """A lock-order inversion: an acquisition that closes a cycle of lock orders.

    Attributes:
        now: the acquisition that closed the cycle.
        earlier: the orders seen before that it contradicts, in path order (for the
            guide's two-lock example, one edge). Empty for a non-reentrant Lock acquired
            again by the thread that holds it (a certain self-deadlock).
        locks: the names of the locks on the cycle.

    Example::

        with anypool.sync.lockcheck() as report:
            ...
        for inversion in report.inversions:
            print(inversion)
    """

    now: Edge
    earlier: tuple[Edge, ...]
    locks: tuple[str, ...]

    @property
    def self_deadlock(self) -> bool:
        """True for a Lock acquired again by the thread already holding it."""
        return not self.earlier

    def summary(self) -> str:
        """One line: the two orders that conflict."""
        if self.self_deadlock:
            return f"{self.now.acquired!r} acquired again by its holder {self.now.thread!r}"
        path = " -> ".join(repr(e.held) for e in self.earlier) + f" -> {self.now.held!r}"
        return (
            f"{self.now.held!r} -> {self.now.acquired!r} in {self.now.thread!r} "
            f"inverts {path} (first in {self.earlier[0].thread!r})"
        )

    def __str__(self) -> str:
        if self.self_deadlock:
            return (
                f"self-deadlock: thread {self.now.thread!r} acquires {self.now.acquired!r}, "
                "a non-reentrant Lock it already holds, and would wait for itself forever. "
                "Use an RLock, or do not take the lock again.\n" + self.now.describe()
            )
        lines = [
            f"lock-order inversion: thread {self.now.thread!r} acquires "
            f"{self.now.acquired!r} while holding {self.now.held!r}, but earlier "
            f"{self.earlier[0].held!r} was held while acquiring {self.earlier[-1].acquired!r}.",
            "Threads taking these locks in these two orders at the same time deadlock. "
            "Acquire them in one order everywhere.",
            "Now: " + self.now.describe(),
        ]
        lines += ["Earlier: " + edge.describe() for edge in self.earlier]
        return "\n".join(lines)


class LockOrderError(AnypoolError):
    """Raised by an acquisition that inverts the lock order, when checking is strict.

    The lock is *not* acquired. ``inversion`` holds both stacks.

    Example::

        lock_a, lock_b = anypool.sync.Lock(name="a"), anypool.sync.Lock(name="b")
        with anypool.sync.lockcheck(strict=True):
            with lock_a, lock_b:
                pass
            try:
                with lock_b, lock_a:
                    pass
            except anypool.sync.LockOrderError as exc:
                print(exc.inversion.summary())
    """

    def __init__(self, inversion: Inversion) -> None:
        super().__init__(str(inversion))
        self.inversion = inversion


class LockOrderWarning(UserWarning):
    """Issued for a lock-order inversion when checking is not strict (the default)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LockCheckReport:
    """What a checker has seen (``report()`` of the object ``lockcheck()`` yields).

    Attributes:
        locks: how many locks took part in at least one order.
        edges: how many distinct orders (A held while acquiring B) were seen.
        inversions: every inversion found, in the order found.
    """

    locks: int
    edges: int
    inversions: tuple[Inversion, ...]

    def summary(self) -> str:
        text = (
            f"anypool lockcheck: {self.locks} locks in {self.edges} lock orders, "
            f"{len(self.inversions)} inversion(s)"
        )
        return "\n".join([text, *("  " + inv.summary() for inv in self.inversions)])


class Checker:
    """The lock-order graph and what it found. One is active at a time (``_state``)."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        # A raw C lock: the checker must never check itself.
        self._mutex = _thread.allocate_lock()
        #: serial of the held lock -> {serial of the lock acquired: first edge seen}
        self._edges: dict[int, dict[int, Edge]] = {}
        self._names: dict[int, str] = {}
        self._inversions: list[Inversion] = []
        self._reported: set[frozenset[int]] = set()

    # -- the acquiring thread's path --------------------------------------------------

    def before_acquire(self, lock: Any, me: _state.ThreadState, forever: bool) -> None:
        """Called before ``lock`` is acquired by the thread whose state is ``me``."""
        held = me.held
        if not held:
            return
        serial = lock._serial
        new = [h for h in held if serial not in self._edges.get(h._serial, _EMPTY)]
        if not new:
            return
        me.busy = True  # locks taken while we record (by warnings, linecache) are not ours
        try:
            found = self._record(new, lock, forever)
        finally:
            me.busy = False
        for inversion in found:
            self._report(inversion)

    def _record(self, new: list[Any], lock: Any, forever: bool) -> list[Inversion]:
        stack = _user_stack()
        thread = threading.current_thread().name
        found = []
        with self._mutex:
            for held in new:
                if held is lock:  # only a Lock gets here: RLock re-entry returns earlier
                    if forever:
                        found.append(self._self_deadlock(lock, thread, stack))
                    continue
                edge = Edge(held.name, lock.name, thread, stack)
                path = self._path(lock._serial, held._serial)
                self._names[held._serial] = held.name
                self._names[lock._serial] = lock.name
                self._edges.setdefault(held._serial, {})[lock._serial] = edge
                if path is None:
                    continue
                cycle = frozenset([held._serial, *(node for node, _ in path)])
                if cycle not in self._reported:
                    self._reported.add(cycle)
                    locks = tuple(self._names[n] for n in sorted(cycle))
                    found.append(Inversion(edge, tuple(e for _, e in path), locks))
                    self._inversions.append(found[-1])
        return found

    def _self_deadlock(self, lock: Any, thread: str, stack: str) -> Inversion:
        inversion = Inversion(Edge(lock.name, lock.name, thread, stack), (), (lock.name,))
        self._inversions.append(inversion)
        return inversion

    def _path(self, start: int, goal: int) -> list[tuple[int, Edge]] | None:
        """A path ``start -> ... -> goal`` in the graph as (node, edge out of it), or None."""
        parents: dict[int, tuple[int, Edge]] = {}
        frontier = [start]
        seen = {start}
        while frontier:
            node = frontier.pop()
            for succ, edge in self._edges.get(node, _EMPTY).items():
                if succ in seen:
                    continue
                parents[succ] = (node, edge)
                if succ == goal:
                    return self._unwind(parents, start, goal)
                seen.add(succ)
                frontier.append(succ)
        return None

    @staticmethod
    def _unwind(
        parents: dict[int, tuple[int, Edge]], start: int, goal: int
    ) -> list[tuple[int, Edge]]:
        path = []
        node = goal
        while node != start:
            node, edge = parents[node]
            path.append((node, edge))
        return path[::-1]

    def _report(self, inversion: Inversion) -> None:
        if self.strict:
            raise LockOrderError(inversion)
        warnings.warn(LockOrderWarning(str(inversion)), stacklevel=_user_stacklevel())

    # -- reading ----------------------------------------------------------------------

    def report(self) -> LockCheckReport:
        """A snapshot of what was seen so far."""
        with self._mutex:
            nodes = set(self._edges)
            for succ in self._edges.values():
                nodes.update(succ)
            edges = sum(len(succ) for succ in self._edges.values())
            return LockCheckReport(len(nodes), edges, tuple(self._inversions))

    @property
    def inversions(self) -> list[Inversion]:
        """Every inversion found so far."""
        with self._mutex:
            return list(self._inversions)

    def summary(self) -> str:
        return self.report().summary()


@contextlib.contextmanager
def lockcheck(*, strict: bool = False) -> Iterator[Checker]:
    """Check the lock order of every anypool.sync Lock and RLock while inside.

    Process-wide: acquisitions in every thread are checked, with a fresh graph; the
    previous checker (if any) is restored on exit. An inversion is reported as a
    :class:`LockOrderWarning`, or raised as :class:`LockOrderError` from the acquisition
    that closes the cycle when ``strict`` (the lock is then not acquired). The yielded
    object has ``inversions`` and ``report()``.

    ``ANYPOOL_LOCKCHECK=1`` (or ``strict``) turns checking on for a whole program, and
    ``anypool lockcheck -- python app.py`` also checks plain ``threading`` locks.

    Example::

        import threading
        import anypool.sync

        lock_a, lock_b = anypool.sync.Lock(name="lock_a"), anypool.sync.Lock(name="lock_b")

        def thread1():
            with lock_a, lock_b:
                pass

        def thread2():
            with lock_b, lock_a:
                pass

        with anypool.sync.lockcheck() as check:
            for target in (thread1, thread2):   # one after the other: nothing hangs
                t = threading.Thread(target=target)
                t.start()
                t.join()
        print(check.inversions[0].summary())
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    checker = Checker(strict)
    previous = _state.install_checker(checker)
    try:
        yield checker
    finally:
        _state.install_checker(previous)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def _first_user_frame() -> Any:
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame = frame.f_back  # type: ignore[assignment]
    return frame


def _user_stack() -> str:
    """The caller's stack, without anypool.sync's own frames."""
    frame = _first_user_frame()
    return "".join(traceback.format_stack(frame)) if frame is not None else ""


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's acquisition."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        level += 1
        frame = frame.f_back  # type: ignore[assignment]
    return level
