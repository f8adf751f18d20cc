"""Large NumPy arrays go to worker processes through shared memory, not pickles.

::

    parent (pickling a work's items)                      worker
    ────────────────────────────────                      ──────
    ndarray >= threshold: copy it once into an anonymous
    memory file (memfd), cached per array object; pickle
    a reference (serial, dtype, shape) in its place
    before the work is sent: ("A", [(serial, size)]) and ─► map each segment read-only,
    the file descriptors (SCM_RIGHTS) for segments this     close the fd, keep the map
    worker does not have yet                                by serial; the reference
                                                            unpickles to a read-only view
    the last work using a segment is gone (and a short
    linger passed): ("D", [serials]) to the workers that ─► drop the maps
    have it; close the parent's fd

Why memfd and descriptor passing instead of ``multiprocessing.shared_memory``: a memfd
has no name in /dev/shm, so nothing can leak there, whatever dies and however; the kernel
frees the memory once the last descriptor and mapping are gone, which also happens when
the parent is killed. A reference costs one copy of the array (in the parent), instead
of one pickle and one unpickle per task; every worker then reads the same pages.

Linux only (memfd_create and SCM_RIGHTS); elsewhere arrays are pickled as before.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle

from . import _worker

__all__ = ["DEFAULT_THRESHOLD", "ArraySharer", "Lease", "available", "is_shareable"]

#: Arrays at least this big (bytes) travel through shared memory. Below it, a pickle is
#: cheaper than a segment (a file descriptor, a mapping, page faults in each worker).
DEFAULT_THRESHOLD = 1 << 20
#: A segment no work uses any more is kept this long (seconds) in case the same array is
#: sent again right away (the next batch of the same map, say), then freed.
LINGER = 0.25


def available() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "memfd_create")


class _Segment:
    __slots__ = ("array", "fd", "idle_since", "nbytes", "serial", "users")

    def __init__(self, serial: int, fd: int, nbytes: int, array: Any) -> None:
        self.serial = serial
        self.fd = fd
        self.nbytes = nbytes
        self.array = weakref.ref(array)
        self.users = 0  # works alive that refer to it
        # Idle from birth: if the pickling that made it fails, no lease ever takes it,
        # and it expires like any other unused segment.
        self.idle_since: float | None = time.monotonic()


class Lease:
    """Held by a work while it refers to segments; releasing it is automatic."""

    __slots__ = ("__weakref__", "serials", "sharer")

    def __init__(self, sharer: ArraySharer, serials: tuple[int, ...]) -> None:
        self.sharer = sharer
        self.serials = serials
        sharer._use(serials)

    def __del__(self) -> None:
        # Runs when the last reference to the work goes, in whatever thread that is:
        # it only updates counts under the sharer's own lock and pokes the dispatcher.
        self.sharer._unuse(self.serials)


class ArraySharer:
    """Creates, hands out and frees the shared-memory segments of one process pool."""

    def __init__(self, threshold: int, wake: Callable[[], None]) -> None:
        self.threshold = threshold
        self._wake = wake
        self._lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}
        self._by_array: dict[int, int] = {}  # id(array) -> serial
        self._serials = iter(range(1, 1 << 62))

    # ── pickling (caller threads) ────────────────────────────────────────────────

    def dumps(self, items: list[Any]) -> tuple[bytes, Lease | None]:
        """Pickle ``items``, large arrays by reference; the lease keeps them alive."""
        if "numpy" not in sys.modules:
            return _plain_dumps(items), None
        used: list[int] = []
        data = self._dumps(items, used)
        return data, (Lease(self, tuple(dict.fromkeys(used))) if used else None)

    def _dumps(self, items: list[Any], used: list[int]) -> bytes:
        buffer = io.BytesIO()
        try:
            _ArrayPickler(buffer, self, used).dump(items)
        except Exception:
            buffer = io.BytesIO()
            used.clear()
            _ArrayCloudPickler(buffer, self, used).dump(items)
        return buffer.getvalue()

    def reference(self, array: Any, used: list[int]) -> Any:
        """The pickle reduction for a large array: a reference to its segment."""
        serial = self._segment_for(array)
        used.append(serial)
        return (_worker.attach_array, (serial, array.dtype, array.shape))

    def _segment_for(self, array: Any) -> int:
        with self._lock:
            serial = self._by_array.get(id(array))
            if serial is not None and self._segments[serial].array() is array:
                return serial
        segment = self._create(array)  # outside the lock: copying takes a while
        with self._lock:
            self._segments[segment.serial] = segment
            self._by_array[id(array)] = segment.serial
        return segment.serial

    def _create(self, array: Any) -> _Segment:
        import numpy as np

        nbytes = array.nbytes
        fd = os.memfd_create(f"anypool-array-{os.getpid()}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, nbytes)
            with mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED | _POPULATE) as view:
                np.copyto(np.ndarray(array.shape, array.dtype, buffer=view), array)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            serial = next(self._serials)
        return _Segment(serial, fd, nbytes, array)

    # ── lifetime ─────────────────────────────────────────────────────────────────

    def _use(self, serials: tuple[int, ...]) -> None:
        with self._lock:
            for serial in serials:
                segment = self._segments[serial]
                segment.users += 1
                segment.idle_since = None

    def _unuse(self, serials: tuple[int, ...]) -> None:
        now = time.monotonic()
        idle = False
        with self._lock:
            for serial in serials:
                segment = self._segments.get(serial)
                if segment is not None:
                    segment.users -= 1
                    if segment.users == 0:
                        segment.idle_since = now
                        idle = True
        if idle:
            self._wake()

    def describe(self, serials: tuple[int, ...]) -> list[tuple[int, int, int]]:
        """(serial, size, fd) for ``serials`` (for sending them to a worker)."""
        with self._lock:
            return [(s, self._segments[s].nbytes, self._segments[s].fd) for s in serials]

    def next_expiry(self) -> float | None:
        with self._lock:
            times = [s.idle_since + LINGER for s in self._segments.values() if s.idle_since]
        return min(times) if times else None

    def expire(self, now: float | None = None) -> list[int]:
        """Free segments idle for longer than the linger; return their serials."""
        now = time.monotonic() if now is None else now
        freed = []
        with self._lock:
            for serial, segment in list(self._segments.items()):
                if segment.idle_since is not None and now - segment.idle_since >= LINGER:
                    freed.append(serial)
                    self._forget(segment)
        return freed

    def close(self) -> None:
        with self._lock:
            for segment in list(self._segments.values()):
                self._forget(segment)

    def _forget(self, segment: _Segment) -> None:
        del self._segments[segment.serial]
        for key, serial in list(self._by_array.items()):
            if serial == segment.serial:
                del self._by_array[key]
        try:
            os.close(segment.fd)
        except OSError:
            pass

    def stats(self) -> tuple[int, int]:
        """(segments alive, bytes in them)."""
        with self._lock:
            return len(self._segments), sum(s.nbytes for s in self._segments.values())


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # fault the pages in at once: fewer traps


def is_shareable(obj: Any, threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Whether ``obj`` is a NumPy array that travels through shared memory."""
    np = sys.modules.get("numpy")
    return (
        np is not None
        and type(obj) is np.ndarray
        and obj.nbytes >= threshold
        and not obj.dtype.hasobject
    )


class _ArrayPickler(pickle.Pickler):
    def __init__(self, file: Any, sharer: ArraySharer, used: list[int]) -> None:
        super().__init__(file, protocol=5)
        self._sharer = sharer
        self._used = used

    def reducer_override(self, obj: Any) -> Any:
        # Called for every object that is not a plain int, str, list, ...: keep it cheap.
        if is_shareable(obj, self._sharer.threshold):
            return self._sharer.reference(obj, self._used)
        return NotImplemented


class _ArrayCloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: Any, sharer: ArraySharer, used: list[int]) -> None:
        super().__init__(file, protocol=5)
        self._sharer = sharer
        self._used = used

    def reducer_override(self, obj: Any) -> Any:
        if is_shareable(obj, self._sharer.threshold):
            return self._sharer.reference(obj, self._used)
        return super().reducer_override(obj)


def _plain_dumps(items: list[Any]) -> bytes:
    from .._serialize import dumps_quietly

    return dumps_quietly(items)
