"""Poison objects for the fault-injection matrix (importable by worker processes).

Each fault can be injected in one phase of a task's life:

* ``unpickle``  - unpickling the arguments in the worker      (FaultOnUnpickle as item)
* ``call``      - the call itself                             (fault_at)
* ``pickle``    - pickling the result in the worker          (returns FaultOnPickle)
* ``parent``    - unpickling the result in the parent        (returns FaultOnUnpickle)
* ``gc``        - collecting the result after it was sent    (returns FaultOnDel)
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

FAULTS = ["exception", "sys.exit", "os._exit", "sigkill", "segfault", "hang"]
PHASES = ["unpickle", "call", "pickle", "parent", "gc"]
#: Faults that would kill or hang the *calling* process if injected there.
DESTRUCTIVE = {"os._exit", "sigkill", "segfault", "hang"}
BAD = 3


class PoisonError(Exception):
    pass


def do_fault(fault: str) -> Any:
    if fault == "exception":
        raise PoisonError("poison")
    if fault == "sys.exit":
        sys.exit(7)
    if fault == "os._exit":
        os._exit(7)
    if fault == "sigkill":
        # Killed from outside: another process sends the signal.
        subprocess.run(["kill", "-9", str(os.getpid())], check=False)
        signal.pause()
    if fault == "segfault":
        ctypes.string_at(0)
    if fault == "hang":
        while True:  # pure Python: never releases the GIL, ignores nothing
            pass
    raise AssertionError(fault)


class FaultOnUnpickle:
    def __init__(self, fault: str) -> None:
        self.fault = fault

    def __reduce__(self) -> Any:
        return (do_fault, (self.fault,))


class FaultOnPickle:
    def __init__(self, fault: str) -> None:
        self.fault = fault

    def __reduce__(self) -> Any:
        do_fault(self.fault)
        return (str, ("unreachable",))


class FaultOnDel:
    """A result whose destructor faults, but only in the process that made it."""

    def __init__(self, fault: str, value: int) -> None:
        self.fault = fault
        self.value = value
        self.origin = os.getpid()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultOnDel) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __del__(self) -> None:
        if os.getpid() == self.origin:
            do_fault(self.fault)


def value_of(x: Any) -> int:
    return int(x) * 10


def fault_at(x: int, fault: str, phase: str) -> Any:
    if x != BAD:
        return x * 10
    if phase == "call":
        return do_fault(fault)
    if phase == "pickle":
        return FaultOnPickle(fault)
    if phase == "parent":
        return FaultOnUnpickle(fault)
    if phase == "gc":
        return FaultOnDel(fault, x * 10)
    raise AssertionError(phase)
