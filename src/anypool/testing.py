"""Helpers for testing your own threaded code: :func:`stress` makes races show up.

Data flow of one ``stress`` call::

    caller ──starts──► N worker threads ──Barrier──► all start calling fn at once
                         │  each: sys.settrace(opcode hook) for its own calls only
                         │  the hook yields the GIL (time.sleep(0)) before some
                         │  bytecodes, so another thread runs *between* them
                         ▼
    caller ◄──join──── workers (trace removed, first exception re-raised)

Why force switches at all: CPython 3.11-3.13 switch threads only at a few kinds of
instruction and only every few milliseconds, so the guide's unlocked ``counter += 1``
(§9.2) loses no update in millions of runs, yet the race is real: a switch between the
load of ``counter`` and the store of ``counter + 1`` loses the other thread's update.
The hook makes such switches frequent. It yields most often just before a STORE
instruction (the end of every read-modify-write), and now and then anywhere else.
"""

from __future__ import annotations

import dataclasses
import dis
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["StressResult", "stress"]

#: Chance of yielding before a STORE_* instruction. Higher finds read-modify-write
#: races sooner but slows code that holds a lock (every yield inside a critical section
#: makes the other threads queue on the lock).
STORE_SWITCH_PROBABILITY = 1 / 4
#: Chance of yielding before any other instruction: catches check-then-act races that
#: end in a call rather than a store, at the price of more switches per call.
OTHER_SWITCH_PROBABILITY = 1 / 32

_STORES = frozenset(op for name, op in dis.opmap.items() if name.startswith("STORE_"))
#: Code never traced: this module, anypool.sync's locks and threading.py. A switch
#: inside a lock's own bookkeeping finds no bug of yours and only slows the run.
_UNTRACED = (str(Path(__file__).resolve()), str(Path(__file__).resolve().parent / "sync"))
_THREADING = threading.__file__


@dataclasses.dataclass(frozen=True, slots=True)
class StressResult:
    """What :func:`stress` did.

    Attributes:
        threads: threads that called ``fn`` at once.
        calls: calls of ``fn`` made, over all threads.
        switches: forced thread switches (0 with ``interleave=False``).
        seconds: wall time of the run.
    """

    threads: int
    calls: int
    switches: int
    seconds: float


def stress(
    fn: Callable[..., object],
    threads: int = 8,
    repeat: int = 1000,
    *,
    args: tuple[Any, ...] = (),
    interleave: bool = True,
    seed: int | None = None,
) -> StressResult:
    """Call ``fn(*args)`` ``repeat`` times from each of ``threads`` threads at once,
    forcing thread switches between bytecodes so that races happen in a test.

    With ``interleave`` (the default), each worker thread traces its own calls at the
    bytecode level and yields the GIL before some instructions, so a read-modify-write
    of shared state without a lock loses updates in practically every run. Nothing
    outside the worker threads is changed: their trace functions are restored when they
    finish, and no interpreter-wide setting is touched. Under a debugger or coverage
    tool that traces new threads, ``fn``'s lines run untraced by that tool.

    If ``fn`` raises, every thread stops at its next call and the first exception is
    re-raised here, with a note saying which thread and call raised it.

    Example::

        import threading
        from anypool.testing import stress

        counter = 0
        lock = threading.Lock()

        def increment():
            global counter
            with lock:
                counter += 1

        stress(increment, threads=8, repeat=1000)
        assert counter == 8000   # without the lock this fails (updates are lost)
    """
    _check_arguments(fn, threads, repeat, args)
    run = _Run(fn, args, repeat, interleave, seed, threads)
    workers = [
        threading.Thread(target=run.worker, args=(i,), name=f"anypool-stress-{i}", daemon=True)
        for i in range(threads)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    run.raise_first_error()
    return StressResult(threads, sum(run.calls), sum(run.switches), seconds)


def _check_arguments(fn: object, threads: object, repeat: object, args: object) -> None:
    if not callable(fn):
        raise TypeError(f"stress() needs a callable, got {fn!r}")
    for label, value in (("threads", threads), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{label} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{label} must be >= 1, got {value}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple, got {type(args).__name__}")


class _Run:
    """The state one stress() call shares between its worker threads."""

    def __init__(
        self,
        fn: Callable[..., object],
        args: tuple[Any, ...],
        repeat: int,
        interleave: bool,
        seed: int | None,
        threads: int,
    ) -> None:
        self.fn, self.args, self.repeat, self.interleave = fn, args, repeat, interleave
        self.seeds = random.Random(seed).sample(range(2**32), threads)
        self.start_line = threading.Barrier(threads)
        self.stop = False
        self.errors: list[tuple[int, int, BaseException]] = []
        self.calls = [0] * threads
        self.switches = [0] * threads

    def worker(self, index: int) -> None:
        tracer = _Tracer(self.seeds[index]) if self.interleave else None
        previous = sys.gettrace()
        self.start_line.wait()
        calls = 0
        try:
            if tracer is not None:
                sys.settrace(tracer.on_call)
            while calls < self.repeat and not self.stop:
                calls += 1
                self.fn(*self.args)
        except BaseException as exc:  # a worker must report, never die silently
            self.errors.append((index, calls, exc))
            self.stop = True
        finally:
            sys.settrace(previous)
            self.calls[index] = calls
            self.switches[index] = tracer.switches if tracer is not None else 0

    def raise_first_error(self) -> None:
        if not self.errors:
            return
        index, call, exc = min(self.errors, key=lambda e: e[1])
        exc.add_note(f"anypool.testing.stress: raised in stress thread {index}, call {call}")
        if len(self.errors) > 1:
            exc.add_note(f"({len(self.errors) - 1} other thread(s) also raised)")
        raise exc


class _Tracer:
    """One worker thread's opcode hook."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random
        self.switches = 0

    def on_call(self, frame: FrameType, event: str, arg: object) -> Any:
        filename = frame.f_code.co_filename
        if filename.startswith(_UNTRACED) or filename == _THREADING:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return self.on_opcode

    def on_opcode(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            store = frame.f_code.co_code[frame.f_lasti] in _STORES
            chance = STORE_SWITCH_PROBABILITY if store else OTHER_SWITCH_PROBABILITY
            if self.random() < chance:
                self.switches += 1
                time.sleep(0)  # releases the GIL: a waiting thread runs now
        return self.on_opcode
