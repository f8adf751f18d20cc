"""Pickling for the process boundary, and finding the object that will not pickle.

Plain ``pickle`` (protocol 5) is tried first because it is the fastest for data;
``cloudpickle`` is the fallback that handles lambdas, closures and classes defined in
``__main__`` or inside functions. When both fail, :func:`find_unpicklable` walks the
object graph to name the path to the culprit, so the error can say
``args[0].conn -> socket.socket`` instead of ``cannot pickle '_socket.socket' object``.
"""

from __future__ import annotations

import io
import pickle
import types
from typing import Any

import cloudpickle

from ._errors import SerializationError, describe

__all__ = [
    "dumps",
    "dumps_function",
    "dumps_quietly",
    "find_unpicklable",
    "loads",
    "pickles",
    "serialization_error",
]

PROTOCOL = 5

# How far find_unpicklable looks. Deep or wide graphs are rare in arguments; these bound
# the cost of a diagnosis that only runs after pickling has already failed.
_MAX_DEPTH = 12
_MAX_CHILDREN = 200

# Hints for the types people most often pass by mistake (guide section 9.5).
_HINTS = {
    "lock": "a lock cannot be shared with another process: create it in the task or in an "
    "initializer, use multiprocessing.Manager().Lock(), or use backend='threads'",
    "RLock": "a lock cannot be shared with another process: create it in the task or in an "
    "initializer, or use backend='threads'",
    "socket": "a socket cannot be sent to another process: pass the address and connect in "
    "the task (or once per worker with initializer=), or use backend='threads'",
    "TextIOWrapper": "an open file cannot be sent to another process: pass its path and open "
    "it in the task, or use backend='threads'",
    "BufferedReader": "an open file cannot be sent to another process: pass its path and open "
    "it in the task, or use backend='threads'",
    "BufferedWriter": "an open file cannot be sent to another process: pass its path and open "
    "it in the task, or use backend='threads'",
    "generator": "a generator cannot be pickled: pass list(gen), or the values that create "
    "it, instead",
    "Connection": "a database or pipe connection cannot be sent to another process: open one "
    "per worker with initializer=, or use backend='threads'",
    "Channel": "create the channel with anypool.Channel(maxsize, processes=True) and give it "
    "to the workers in initargs= (see docs/channel.md), or use backend='threads'",
}
_DEFAULT_HINT = (
    "pass something that pickles (plain data), create the object in the task or once per "
    "worker with initializer=, or use backend='threads', which shares memory and needs no "
    "pickling"
)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def _plain_or_cloud(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        data: bytes = cloudpickle.dumps(obj, PROTOCOL)
        return data


def dumps(obj: Any, what: str = "args") -> bytes:
    """Pickle ``obj``; raise :class:`SerializationError` naming the culprit on failure."""
    try:
        return _plain_or_cloud(obj)
    except Exception as exc:
        raise serialization_error(obj, what, exc) from exc


def dumps_quietly(obj: Any) -> bytes:
    """Pickle ``obj`` (plain pickle, else cloudpickle); the caller diagnoses failures."""
    return _plain_or_cloud(obj)


def pickles(obj: Any) -> bool:
    """Whether ``obj`` can be pickled (plain pickle or cloudpickle)."""
    return _pickles(obj)


def dumps_function(fn: Any) -> bytes:
    """Pickle a task function with cloudpickle (lambdas and closures travel by value)."""
    try:
        data: bytes = cloudpickle.dumps(fn, PROTOCOL)
    except Exception as exc:
        raise serialization_error(fn, "function", exc) from exc
    return data


def serialization_error(
    obj: Any, what: str, cause: BaseException, where: str = ""
) -> SerializationError:
    """Build the error for ``obj`` (named ``what``) that failed to pickle with ``cause``.

    ``where`` is appended to the path, e.g. ``" (item 3 of map())"``.
    """
    found = find_unpicklable(obj, what)
    if found is None:
        path, culprit = what, obj
    else:
        path, culprit = found
    type_name = _type_name(culprit)
    hint = _hint_for(culprit)
    message = (
        f"cannot send {path} -> {type_name}{where} to a worker process ({describe(culprit)}: "
        f"{cause}). Hint: {hint}."
    )
    return SerializationError(message, path=path, type_name=type_name)


def _type_name(obj: Any) -> str:
    cls = type(obj)
    if cls.__module__ in ("builtins", "_thread"):
        return (
            f"{cls.__module__}.{cls.__qualname__}"
            if cls.__module__ == "_thread"
            else cls.__qualname__
        )
    return f"{cls.__module__}.{cls.__qualname__}"


def _hint_for(obj: Any) -> str:
    name = type(obj).__name__
    if isinstance(obj, types.GeneratorType):
        name = "generator"
    for key, hint in _HINTS.items():
        if key.lower() in name.lower():
            return hint
    if isinstance(obj, io.IOBase):
        return _HINTS["TextIOWrapper"]
    return _DEFAULT_HINT


def _pickles(obj: Any) -> bool:
    try:
        _plain_or_cloud(obj)
    except Exception:
        return False
    return True


def find_unpicklable(obj: Any, root: str = "obj") -> tuple[str, Any] | None:
    """Return ``(path, object)`` of the innermost part of ``obj`` that does not pickle.

    Returns ``None`` when ``obj`` pickles. The path reads like Python:
    ``args[0].conn``, ``kwargs['db']``, ``args[1][2]``.
    """
    if _pickles(obj):
        return None
    return _descend(obj, root, 0)


def _descend(obj: Any, path: str, depth: int) -> tuple[str, Any]:
    if depth >= _MAX_DEPTH or getattr(type(obj), "_refuses_pickling", False):
        return path, obj  # an object that refuses as a whole says why itself
    for child_path, child in _children(obj, path):
        if not _pickles(child):
            return _descend(child, child_path, depth + 1)
    return path, obj


def _children(obj: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(obj, (list, tuple)):
        return [(f"{path}[{i}]", v) for i, v in enumerate(obj[:_MAX_CHILDREN])]
    if isinstance(obj, dict):
        items = list(obj.items())[:_MAX_CHILDREN]
        return [(f"{path}[{k!r}]", v) for k, v in items]
    if isinstance(obj, (set, frozenset)):
        return [(f"{path}{{{describe(v)}}}", v) for v in list(obj)[:_MAX_CHILDREN]]
    if isinstance(obj, (types.FunctionType, type)):
        return _closure_children(obj, path)
    return _attribute_children(obj, path)


def _closure_children(obj: Any, path: str) -> list[tuple[str, Any]]:
    if not isinstance(obj, types.FunctionType) or not obj.__closure__:
        return []
    names = obj.__code__.co_freevars
    out = []
    for name, cell in zip(names, obj.__closure__, strict=False):
        try:
            out.append((f"{path}.<closure {name}>", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    return out


def _attribute_children(obj: Any, path: str) -> list[tuple[str, Any]]:
    state: dict[str, Any] = {}
    try:
        state.update(vars(obj))
    except TypeError:
        pass
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and slot not in state and hasattr(obj, slot):
                state[slot] = getattr(obj, slot)
    items = list(state.items())[:_MAX_CHILDREN]
    return [(f"{path}.{name}", value) for name, value in items]
