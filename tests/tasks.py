"""Task functions the tests run in workers (importable by spawned processes)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def identity(x: Any) -> Any:
    return x


def sleep_return(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def wait_for_file(path: str, timeout: float = 30.0) -> str:
    """Block until ``path`` exists (a test-controlled gate), then return it."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.005)
    return path


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def raise_type(kind: str) -> None:
    errors: dict[str, BaseException] = {
        "value": ValueError("a value error"),
        "key": KeyError("k"),
        "zero": ZeroDivisionError("division by zero"),
        "custom": CustomError("custom", 42),
    }
    raise errors[kind]


class CustomError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


class UnpicklableError(Exception):
    """An exception that pickles but does not unpickle (a common mistake)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a}-{b}")


def raise_unpicklable(_: Any) -> None:
    raise UnpicklableError("left", "right")


def return_lock(_: Any) -> Any:
    return threading.Lock()


def pid(_: Any = None) -> int:
    return os.getpid()


def thread_name(_: Any = None) -> str:
    return threading.current_thread().name


def record_init(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def failing_init() -> None:
    raise RuntimeError("initializer broke")


_initialized: list[str] = []


def set_marker(value: str) -> None:
    _initialized.append(value)


def read_marker(_: Any = None) -> list[str]:
    return list(_initialized)


class Holder:
    """An object with an attribute that may not pickle."""

    def __init__(self, conn: Any) -> None:
        self.name = "holder"
        self.conn = conn


def exit_on(x: int, bad: int = 3) -> int:
    if x == bad:
        os._exit(3)
    return x


def write_pid_then_wait(path: str, gate: str) -> int:
    """Record this worker's pid in ``path``, then block until ``gate`` exists."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    wait_for_file(gate)
    return os.getpid()


def spin(_: Any = None) -> None:
    while True:
        pass


def flaky(path: str, failures: int) -> str:
    """Fail the first ``failures`` calls (counted in a file), then succeed."""
    count = 0
    if os.path.exists(path):
        with open(path) as f:
            count = int(f.read())
    with open(path, "w") as f:
        f.write(str(count + 1))
    if count < failures:
        raise ConnectionError(f"attempt {count + 1} failed")
    return f"ok after {count + 1}"


def exit_always(_: Any = None) -> None:
    os._exit(5)


def array_info(a: Any, i: int = 0) -> tuple[float, bool, tuple[int, ...]]:
    """The sum of a strided slice, whether the array is writeable, and its shape."""
    return float(a[i::8].sum()), bool(a.flags.writeable), tuple(a.shape)


def mapped_segments(_: Any = None) -> int:
    """How many shared-array segments this worker process has mapped."""
    with open("/proc/self/maps") as f:
        return sum("anypool-array" in line for line in f)


def hold_array_then_wait(a: Any, pid_path: str, gate: str) -> float:
    with open(pid_path, "w") as f:
        f.write(str(os.getpid()))
    wait_for_file(gate)
    return float(a.sum())
