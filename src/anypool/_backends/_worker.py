"""The loop a worker process runs (the child side of the processes backend).

::

    task pipe ──► header ("B", work id, fn digest, fn bytes | None, call mode, flush mode)
                  items  (pickled list)
              ◄── ("R", work id, first offset, count, elapsed | None, values, errors)
    result pipe   ("Y", pid) once ready; ("I", ...) if the initializer failed;
                  ("U", ...) if the items would not unpickle; ("F", ...) if the function
                  would not

While it works, the worker writes what it is doing into a two-slot shared array that the
parent reads after a crash or a timeout: ``[work id, position]``, where position is the
item being run (>= 0) or one of the ``PHASE_*`` values below. That is how a crash is
blamed on one item without a message per item.

This module is imported by every worker (and preloaded into the fork server), so it
imports little.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import socket
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from itertools import starmap
from typing import Any

import cloudpickle

__all__ = ["main"]

PHASE_UNPICKLING = -1  # unpickling the items of the work
PHASE_REPORTING = -2  # pickling and sending results
PHASE_IDLE = -3  # between works
PHASE_FAST = -4  # running a FAST work (position unknown: tight loop)
PHASE_CLEANUP = -5  # results sent; dropping them (a crash or hang here loses nothing)

# Modes, as in anypool._tasks (kept as ints here to avoid importing it).
_ONE, _STAR, _CALL = 0, 1, 2
_FAST, _TRACKED, _EACH = 0, 1, 2

# A TRACKED work reports its results when this much time passed since its last report.
FLUSH_INTERVAL = 0.02
# Functions a worker keeps unpickled. The parent mirrors this FIFO exactly, so it knows
# when it must send a function's bytes again.
FUNCTION_CACHE = 64

Record = tuple[bytes | None, str, str, str]


def main(
    task_conn: Any,
    result_conn: Any,
    slot_array: Any,
    init_payload: Any,
) -> None:
    """Entry point of a worker process."""
    _harden()
    slot = memoryview(slot_array).cast("B").cast("q")
    slot[0], slot[1] = 0, PHASE_IDLE
    send = result_conn.send_bytes
    if init_payload is not None and not _initialize(init_payload, send):
        return
    send(pickle.dumps(("Y", os.getpid()), 5))
    functions: OrderedDict[str, Callable[..., Any]] = OrderedDict()
    recv = task_conn.recv_bytes
    while True:
        try:
            header = pickle.loads(recv())
            kind = header[0]
            if kind == "A":
                _attach_segments(task_conn, header[1])
                continue
            if kind == "D":
                for serial in header[1]:
                    _segments.pop(serial, None)
                continue
            if kind != "B":
                return
            items_data = recv()
        except (EOFError, OSError):
            return  # the parent is gone or closed the pipe: nothing more to do
        _run_work(header, items_data, functions, slot, send)


# ── shared arrays (see _sharing.py for the parent's side) ───────────────────────

_segments: dict[int, mmap.mmap] = {}


def _attach_segments(conn: Any, segments: list[tuple[int, int]]) -> None:
    """Receive the descriptors of new segments and map each one read-only."""
    from multiprocessing.reduction import recvfds

    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        fds = recvfds(sock, len(segments))
    for (serial, size), fd in zip(segments, fds, strict=True):
        try:
            _segments[serial] = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)


def attach_array(serial: int, dtype: Any, shape: tuple[int, ...]) -> Any:
    """Unpickle a shared array: a read-only view of its segment (no copy)."""
    import numpy as np

    return np.ndarray(shape, dtype, buffer=_segments[serial])


def _harden() -> None:
    # Ctrl-C is the parent's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _release_forkserver()
    _die_with_parent()


def _release_forkserver() -> None:
    """Drop this worker's hold on the fork server that started it.

    Every process the fork server starts inherits the write end of the pipe whose EOF
    tells the server its main process is gone. While any worker holds it, a server whose
    main process was SIGKILLed never exits, and the workers, whose parent it is, never
    get their parent-death signal: both would outlive the program. A worker needs no
    such hold: if a task starts processes itself, multiprocessing starts a new server.
    """
    if "multiprocessing.forkserver" not in sys.modules:
        return
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None and getattr(server, "_forkserver_pid", None) is None:
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None


def _die_with_parent() -> None:
    """Ask the kernel to kill this worker when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _initialize(payload: Any, send: Callable[[bytes], None]) -> bool:
    try:
        if isinstance(payload, bytes):
            initializer, initargs = pickle.loads(payload)
        else:  # the parent's _AtWorkerStart: the initializer cloudpickled, or under fork as is
            initializer, initargs = payload.initializer, payload.initargs
            if isinstance(initializer, bytes):
                initializer = pickle.loads(initializer)
        initializer(*initargs)
    except BaseException as exc:
        _, type_name, message, text = _record(exc)
        send(pickle.dumps(("I", type_name, message, text), 5))
        return False
    return True


# ── running a work ──────────────────────────────────────────────────────────────


def _run_work(
    header: tuple[Any, ...],
    items_data: bytes,
    functions: OrderedDict[str, Callable[..., Any]],
    slot: memoryview,
    send: Callable[[bytes], None],
) -> None:
    _, work_id, digest, fn_bytes, mode, flush = header
    slot[0], slot[1] = work_id, PHASE_UNPICKLING
    fn = _function(digest, fn_bytes, functions, work_id, send)
    if fn is None:
        return
    try:
        items = pickle.loads(items_data)
    except BaseException as exc:
        send(pickle.dumps(("U", work_id, _record(exc)), 5))
        slot[1] = PHASE_IDLE
        return
    del items_data
    if flush == _FAST:
        _run_fast(work_id, fn, mode, items, slot, send)
    else:
        _run_tracked(work_id, fn, mode, flush == _EACH, items, slot, send)
    slot[1] = PHASE_IDLE


def _function(
    digest: str,
    fn_bytes: bytes | None,
    functions: OrderedDict[str, Callable[..., Any]],
    work_id: int,
    send: Callable[[bytes], None],
) -> Callable[..., Any] | None:
    if fn_bytes is None:
        return functions[digest]
    try:
        fn: Callable[..., Any] = pickle.loads(fn_bytes)
    except BaseException as exc:
        send(pickle.dumps(("F", work_id, _record(exc)), 5))
        return None
    functions[digest] = fn
    if len(functions) > FUNCTION_CACHE:
        functions.popitem(last=False)
    return fn


def _run_fast(
    work_id: int,
    fn: Callable[..., Any],
    mode: int,
    items: list[Any],
    slot: memoryview,
    send: Callable[[bytes], None],
) -> None:
    mapper = map if mode == _ONE else starmap
    it = iter(items)
    results: list[Any] = []
    errors: dict[int, Record] = {}
    slot[1] = PHASE_FAST
    start = time.perf_counter()
    while True:
        try:
            # list.extend keeps what map produced before an exception and `it` has moved
            # past the failing item, so the loop resumes right after it at C speed.
            results.extend(mapper(fn, it))
            break
        except BaseException as exc:
            errors[len(results)] = _record(exc)
            results.append(None)
    elapsed = time.perf_counter() - start
    _report(work_id, 0, results, errors, elapsed, slot, send)


def _run_tracked(
    work_id: int,
    fn: Callable[..., Any],
    mode: int,
    each: bool,
    items: list[Any],
    slot: memoryview,
    send: Callable[[bytes], None],
) -> None:
    results: list[Any] = []
    errors: dict[int, Record] = {}
    base = 0
    last = start = time.perf_counter()
    busy = 0.0
    n = len(items)
    for offset, item in enumerate(items):
        slot[1] = offset
        began = time.perf_counter()
        try:
            if mode == _ONE:
                value = fn(item)
            elif mode == _STAR:
                value = fn(*item)
            else:
                value = fn(*item[0], **item[1])
        except BaseException as exc:
            value = None
            errors[offset - base] = _record(exc)
        results.append(value)
        now = time.perf_counter()
        busy += now - began
        if each or now - last >= FLUSH_INTERVAL or offset + 1 == n:
            elapsed = busy if offset + 1 == n else None
            _report(work_id, base, results, errors, elapsed, slot, send)
            # Dropping the results here is where a result's __del__ runs: after it was
            # sent, so a crash in it loses nothing.
            results, errors = [], {}
            base, last = offset + 1, time.perf_counter()
    del start


def _report(
    work_id: int,
    base: int,
    values: list[Any],
    errors: dict[int, Record],
    elapsed: float | None,
    slot: memoryview,
    send: Callable[[bytes], None],
) -> None:
    slot[1] = PHASE_REPORTING
    try:
        blob = _dumps(values)
    except BaseException:
        blob = _dumps(_sanitize(values, errors))
    error_blob = pickle.dumps(errors, 5) if errors else None
    send(pickle.dumps(("R", work_id, base, len(values), elapsed, blob, error_blob), 5))
    slot[1] = PHASE_CLEANUP


def _dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, 5)
    except Exception:
        data: bytes = cloudpickle.dumps(obj, 5)
        return data


def _sanitize(values: list[Any], errors: dict[int, Record]) -> list[Any]:
    """Replace each result that will not pickle by an error naming why."""
    clean = list(values)
    for i, value in enumerate(values):
        try:
            _dumps(value)
        except BaseException as exc:
            clean[i] = None
            errors[i] = _record(_result_error(value, exc))
    return clean


def _result_error(value: Any, cause: BaseException) -> BaseException:
    from anypool._serialize import serialization_error

    try:
        error: BaseException = serialization_error(value, "result", cause)
    except BaseException:  # the diagnosis itself tripped over the object
        from anypool._errors import SerializationError

        error = SerializationError(f"the task's result could not be pickled: {cause!r}")
    return error


def _record(exc: BaseException) -> Record:
    """An exception as (pickled exception or None, type name, message, traceback)."""
    from anypool._errors import as_task_exception, exception_summary

    text = "".join(traceback.format_exception(exc))
    type_name, message = exception_summary(exc)
    delivered = as_task_exception(exc, text)
    delivered.__traceback__ = None
    delivered.__context__ = None
    try:
        data: bytes | None = _dumps(delivered)
        assert data is not None
        pickle.loads(data)  # an exception that pickles but will not unpickle is common
    except BaseException:
        data = None
    return data, type_name, message, text
