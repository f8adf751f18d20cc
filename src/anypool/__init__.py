"""anypool: run Python work concurrently on the right pool, with clear errors.

Example::

    import anypool

    def square(x):
        return x * x

    if __name__ == "__main__":
        print(anypool.map(square, range(10), backend="processes"))

        with anypool.Executor("threads", workers=8) as ex:
            future = ex.submit(square, 12)
            print(future.result())
"""

from __future__ import annotations

from ._backends import ExecutorStats
from ._errors import (
    AnypoolError,
    BrokenPool,
    ClusterUnreachable,
    Failure,
    InitializerError,
    RemoteTraceback,
    SerializationError,
    TaskError,
    TaskTimeout,
    WorkerCrashed,
)
from ._executor import DEFAULT_BACKEND, Executor, imap, imap_unordered, map
from ._version import __version__

__all__ = [
    "DEFAULT_BACKEND",
    "AnypoolError",
    "BrokenPool",
    "ClusterUnreachable",
    "Executor",
    "ExecutorStats",
    "Failure",
    "InitializerError",
    "RemoteTraceback",
    "SerializationError",
    "TaskError",
    "TaskTimeout",
    "WorkerCrashed",
    "__version__",
    "imap",
    "imap_unordered",
    "map",
]

# Public objects say they come from `anypool`, not from the private module that
# defines them (tracebacks and reprs then show the name users import).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("anypool._"):
        try:
            _obj.__module__ = "anypool"
        except (AttributeError, TypeError):
            pass
del _name, _obj
