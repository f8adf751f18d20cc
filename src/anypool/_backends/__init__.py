"""Backends, loaded lazily by name so that an optional one costs nothing until used."""

from __future__ import annotations

import importlib

from ._base import Backend, ExecutorStats, available_cpus

__all__ = ["Backend", "ExecutorStats", "available_cpus", "backend_class", "backend_names"]

# name -> (module, class, the extra that provides its dependencies or None)
_REGISTRY: dict[str, tuple[str, str, str | None]] = {
    "serial": ("._serial", "SerialBackend", None),
    "threads": ("._threads", "ThreadBackend", None),
    "processes": ("._processes", "ProcessBackend", None),
    "asyncio": ("._asyncio", "AsyncioBackend", None),
    "dask": ("._dask", "DaskBackend", "dask"),
}


def backend_names() -> list[str]:
    """Every backend name, in the order they are documented."""
    return list(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The backend class for ``name``; a clear error for unknown or unavailable ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        accepted = ", ".join(repr(n) for n in _REGISTRY)
        raise ValueError(f"unknown backend {name!r}; accepted: {accepted}")
    module_name, class_name, extra = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name, __name__)
    except ImportError as exc:
        if extra is None:
            raise
        raise ImportError(
            f"backend {name!r} needs optional dependencies: pip install 'anypool[{extra}]' ({exc})"
        ) from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls
