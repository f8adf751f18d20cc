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

from ._amap import amap
from ._auto import Profile, profile
from ._backends import ExecutorStats
from ._channel import Channel, ChannelClosed, ChannelStats
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
from ._group import TaskGroup, TaskGroupStats, cancelled
from ._pipeline import Pipeline, PipelineRun, PipelineStats, StageStats
from ._resources import (
    PoolClosed,
    PoolTimeout,
    ResourceLeakWarning,
    ResourcePool,
    ResourcePoolStats,
)
from ._version import __version__
from ._warm import close_pools

__all__ = [
    "DEFAULT_BACKEND",
    "AnypoolError",
    "BrokenPool",
    "Channel",
    "ChannelClosed",
    "ChannelStats",
    "ClusterUnreachable",
    "Executor",
    "ExecutorStats",
    "Failure",
    "InitializerError",
    "Pipeline",
    "PipelineRun",
    "PipelineStats",
    "PoolClosed",
    "PoolTimeout",
    "Profile",
    "RemoteTraceback",
    "ResourceLeakWarning",
    "ResourcePool",
    "ResourcePoolStats",
    "SerializationError",
    "StageStats",
    "TaskError",
    "TaskGroup",
    "TaskGroupStats",
    "TaskTimeout",
    "WorkerCrashed",
    "__version__",
    "amap",
    "cancelled",
    "close_pools",
    "imap",
    "imap_unordered",
    "map",
    "profile",
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

# Public submodules: anypool.sync (instrumented threading primitives, lock-order
# checking) and anypool.testing (stress). Imported last: they import the names above.
from . import sync as sync  # noqa: E402
from . import testing as testing  # noqa: E402
