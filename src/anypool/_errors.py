"""The errors anypool raises, and the record it keeps of a failed task.

Every error anypool raises itself derives from :class:`AnypoolError`. An exception raised
*by a task* is delivered as itself (a ``ValueError`` stays a ``ValueError``), with the
worker's traceback attached as ``__cause__`` and a note naming the failing item.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import signal
from typing import Any

__all__ = [
    "AnypoolError",
    "BrokenPool",
    "ClusterUnreachable",
    "Failure",
    "InitializerError",
    "RemoteTraceback",
    "SerializationError",
    "TaskError",
    "TaskTimeout",
    "WorkerCrashed",
]


class AnypoolError(Exception):
    """Base class of every error that anypool itself raises."""


class TaskError(AnypoolError):
    """A task failed with an exception that cannot be delivered as itself.

    Raised in place of the task's own exception when that exception could not be sent
    back from a worker process (it does not pickle or unpickle), and for ``SystemExit``,
    ``KeyboardInterrupt`` and other ``BaseException`` subclasses raised *by a task*, so
    that a task cannot end the calling program.

    Attributes:
        type_name: qualified name of the original exception's type.
        message: ``str()`` of the original exception.
        traceback: the worker's formatted traceback text.

    Example::

        try:
            anypool.map(lambda x: sys.exit(3), [1], backend="threads")
        except anypool.TaskError as exc:
            print(exc.type_name)   # 'SystemExit'
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(type_name, message, traceback)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        if self.message:
            return f"task raised {self.type_name}: {self.message}"
        return f"task raised {self.type_name}"


class TaskTimeout(AnypoolError, TimeoutError):
    """A task ran longer than its ``task_timeout``.

    On the processes backend the worker running it was killed and replaced; on threads
    the thread could not be stopped and was abandoned (see ``Executor.stats()``).

    Attributes:
        timeout: the limit, in seconds.
        index: the item's index in its ``map`` call; ``None`` for ``submit``.
    """

    def __init__(self, timeout: float, index: int | None = None) -> None:
        super().__init__(timeout, index)
        self.timeout = timeout
        self.index = index

    def __str__(self) -> str:
        where = "" if self.index is None else f" (item {self.index})"
        return f"task{where} did not finish within its task_timeout of {self.timeout:g} s"


class WorkerCrashed(AnypoolError):
    """The worker process running a task died before the task finished.

    Only that task fails; the worker is replaced and the other tasks carry on.

    Attributes:
        exitcode: the worker's exit status (negative: killed by a signal), or ``None``.
        pid: the worker's process id.
        index: the item's index in its ``map`` call; ``None`` for ``submit``.
        phase: what the worker was doing: ``"running the task"``, ``"unpickling the
            arguments"`` or ``"pickling the result"``.
    """

    def __init__(
        self,
        exitcode: int | None,
        pid: int | None = None,
        index: int | None = None,
        phase: str = "running the task",
    ) -> None:
        super().__init__(exitcode, pid, index, phase)
        self.exitcode = exitcode
        self.pid = pid
        self.index = index
        self.phase = phase

    @property
    def signal_name(self) -> str | None:
        """The name of the signal that killed the worker (``"SIGKILL"``), if any."""
        if self.exitcode is None or self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"

    def __str__(self) -> str:
        if self.signal_name is not None:
            how = f"was killed by {self.signal_name}"
            if self.signal_name == "SIGKILL":
                how += " (killed from outside, or by the kernel's out-of-memory killer)"
            elif self.signal_name == "SIGSEGV":
                how += " (a segmentation fault in native code)"
        elif self.exitcode is None:
            how = "died"
        else:
            how = f"exited with status {self.exitcode}"
        where = "" if self.index is None else f" item {self.index}:"
        who = "a worker process" if self.pid is None else f"worker process {self.pid}"
        return f"{who} {how} while {self.phase};{where} task lost"


class SerializationError(AnypoolError, TypeError):
    """An argument, function or result could not be pickled to cross a process boundary.

    The message names the path to the offending object, e.g.
    ``args[0].conn -> socket.socket``, and how to avoid it.

    Attributes:
        path: where the unpicklable object sits (``"args[0].conn"``), or ``""``.
        type_name: the type of the unpicklable object.
    """

    def __init__(self, message: str, path: str = "", type_name: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class BrokenPool(AnypoolError, concurrent.futures.BrokenExecutor):
    """The pool cannot run tasks any more (workers could not start, or it was terminated)."""


class InitializerError(BrokenPool):
    """The ``initializer`` failed in a worker; no task can run, so none is started.

    Attributes:
        traceback: the worker's formatted traceback of the failure.
    """

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback


class ClusterUnreachable(AnypoolError, ConnectionError):
    """The Dask scheduler could not be reached within the connection timeout.

    Raised by ``Executor(backend="dask", address=...)`` when no scheduler answers at the
    address in time (nothing listens there, a firewall drops the packets, or TLS
    settings do not match). The message names the address and the timeout.

    Attributes:
        address: the scheduler address that was tried.
        timeout: the connection timeout, in seconds.

    Example::

        try:
            anypool.Executor("dask", address="tcp://127.0.0.1:1", connect_timeout=1)
        except anypool.ClusterUnreachable as exc:
            print(exc.address)   # tcp://127.0.0.1:1
    """

    def __init__(self, message: str, address: str = "", timeout: float | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.timeout = timeout


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process, as text.

    Set as the ``__cause__`` of an exception delivered from a worker process, so that the
    usual traceback printout shows where in the worker the task failed.
    """

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback.rstrip()}\n"""'


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A failed task's slot in the results of ``map(..., on_error="collect")``.

    Attributes:
        exception: the exception the task raised (or ``TaskTimeout``, ``WorkerCrashed``).
        index: the item's index in the input.
        traceback: the worker's formatted traceback text.

    Example::

        results = anypool.map(int, ["1", "x", "3"], on_error="collect")
        [r for r in results if isinstance(r, anypool.Failure)][0].index   # 1
    """

    exception: BaseException
    index: int
    traceback: str = ""

    def __bool__(self) -> bool:
        # A Failure is falsy so that ``[r for r in results if r]`` drops failures.
        return False

    def __repr__(self) -> str:
        return f"Failure(index={self.index}, exception={self.exception!r})"


def exception_summary(exc: BaseException) -> tuple[str, str]:
    """Return ``(qualified type name, message)`` for ``exc``."""
    cls = type(exc)
    module = cls.__module__
    name = (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure itself
        message = "<unprintable message>"
    return name, message


def attach(exc: BaseException, note: str) -> BaseException:
    """Add ``note`` to ``exc`` (PEP 678) unless it is already there; return ``exc``."""
    notes: list[str] = getattr(exc, "__notes__", [])
    if note not in notes:
        exc.add_note(note)
    return exc


def as_task_exception(exc: BaseException, traceback: str = "") -> BaseException:
    """Map a task's exception to what the caller receives.

    Ordinary exceptions pass through unchanged. ``BaseException`` subclasses that are not
    ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``) become
    :class:`TaskError`, so that a task cannot end or interrupt the calling program.
    """
    if isinstance(exc, Exception):
        return exc
    type_name, message = exception_summary(exc)
    error = TaskError(type_name, message, traceback)
    error.__cause__ = exc
    return error


def describe(value: Any) -> str:
    """A short, safe description of ``value`` for error messages."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__} object>"
    return text if len(text) <= 60 else text[:57] + "..."
