"""``backend="auto"``: measure the work, then choose serial, threads, processes or asyncio.

::

    Executor.map(fn, items) ──► AutoChooser.choose_for_map
                                  async def? ─────────────────────────► asyncio
                                  Probe(first items) on 1, then 2 threads (_probe.py):
                                    per-item time, CPU share, thread speed-up;
                                    results delivered to the map (kept)
                                  pickle a sample: argument/result sizes, transfer cost
                                  decide(): the rules below ──────────► a pool, created once
                                                                        per executor, reused
    Executor.submit(fn) ──────► AutoChooser.route_submit
                                  async def → asyncio; a function map() measured → its
                                  pool; else threads, watching the first tasks: if they
                                  overlapped yet kept only one CPU busy (the GIL), later
                                  submits of that function go to processes (once)

The rules of ``decide()`` (docs/auto.md explains them with examples):

1. the input ran out while being measured → serial (the work is done);
2. the items left need less than ``MIN_POOL_WORK`` in a loop → serial;
3. CPU share under ``WAITING_SHARE`` (the work mostly waits) → threads, many of them;
4. two threads ran it ``THREAD_SPEEDUP`` times as fast as one → threads (the GIL is
   released, or this Python has none);
5. otherwise predict each pool's time for the items left (per-item time, transfer cost of
   its argument and result, pool start-up) and take the fastest, a pool only when it
   beats the loop by ``POOL_GAIN``.

Within a map, auto changes its mind once if later items take 10x more or less time than
the measured ones and deciding again picks another backend (``_MapWatch``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import multiprocessing.forkserver
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import _serialize
from ._backends import Backend, ExecutorStats, available_cpus
from ._backends._asyncio import is_coroutine_function
from ._backends._sharing import is_shareable
from ._errors import describe
from ._info import gil_enabled
from ._probe import Measurements, Probe
from ._tasks import Batch, CallMode, Job

__all__ = ["AUTO", "AutoChooser", "Costs", "Profile", "decide", "profile"]

AUTO = "auto"
#: Pickled samples past this many bytes in all are enough to estimate the transfer cost
#: (pickling more big arguments only to measure them would cost tens of milliseconds).
BIG_SAMPLE = 1 << 20

#: Work left (seconds, in a loop) under which no pool is worth starting.
MIN_POOL_WORK = 0.002
#: CPU share under which work counts as waiting (see ``_probe.WAITING_SHARE``).
WAITING_SHARE = 0.5
#: Speed-up of two threads over one from which threads are chosen for CPU work. Under
#: it, a gain may be noise; over it, only released GIL (or no GIL) explains it.
THREAD_SPEEDUP = 1.5
#: A pool must be predicted to take at most this share of the loop's time: estimates
#: are rough, and a pool costs memory and start-up that a loop does not.
POOL_GAIN = 0.8
#: Threads for waiting work when ``workers`` is not given: enough to overlap many waits,
#: few enough that their stacks and the switching between them stay cheap (a thread
#: costs ~50 us to start and a few tens of KiB of memory actually touched).
WAITING_THREADS = 256
#: Tasks of one function that submit() watches on threads before deciding where later
#: submits of it go; and the CPU time per task below which processes cannot pay.
SUBMIT_SAMPLE = 8
SUBMIT_PROCESS_MIN = 0.002
#: Within a map, the per-item time must change by this factor, seen after this many more
#: items, for auto to decide again: rarely enough that noise never triggers it.
RECHOOSE_FACTOR = 10.0
RECHOOSE_AFTER = 100


# ── costs ───────────────────────────────────────────────────────────────────────


class Costs:
    """What starting and feeding each kind of pool costs, in seconds.

    The figures were measured on a 2-core Linux machine with CPython 3.11 (see
    docs/auto.md). Replace ``AutoChooser.costs`` (or pass ``costs=`` to :func:`profile`)
    with a subclass to plug in other figures, e.g. for pools kept warm across calls.
    """

    #: Starting one thread.
    THREAD_START = 1e-4
    #: A process pool when the fork server is already running: a fork per worker.
    FORKSERVER_WARM = 0.02
    #: The first pool of the program with forkserver: the server itself starts too.
    FORKSERVER_COLD = 0.15
    #: spawn: a fresh interpreter per worker, importing the main module.
    SPAWN_PER_WORKER = 0.1
    #: Moving bytes through a pipe, per byte (about 1 GB/s).
    PIPE_PER_BYTE = 1e-9
    #: Per item inside a batch, on either side: the worker's loop and the bookkeeping.
    PER_ITEM = 2e-6

    def startup(self, backend: str, workers: int, *, warm: bool, start_method: str) -> float:
        """Seconds before a new pool of ``workers`` runs its first task (0 if ``warm``)."""
        if warm or backend == "serial":
            return 0.0
        if backend in ("threads", "asyncio"):
            return self.THREAD_START * (workers if backend == "threads" else 1)
        if start_method == "fork":
            return 0.005 * workers
        if start_method == "spawn":
            return self.SPAWN_PER_WORKER * math.ceil(workers / available_cpus())
        return self.FORKSERVER_WARM if _forkserver_running() else self.FORKSERVER_COLD

    def transfer(self, arg_bytes: int, result_bytes: int, pickle_seconds: float) -> float:
        """Seconds to send one item to a worker process and its result back."""
        return pickle_seconds + (arg_bytes + result_bytes) * self.PIPE_PER_BYTE + self.PER_ITEM


def _forkserver_running() -> bool:
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    return bool(getattr(server, "_forkserver_pid", None))


# ── the profile ─────────────────────────────────────────────────────────────────


@dataclasses.dataclass(frozen=True)
class Profile:
    """What ``backend="auto"`` measured about a function, and what it chose.

    Returned by :func:`anypool.profile` and ``Executor.explain()``; ``str()`` of it is a
    readable report. Times are seconds; ``None`` means not measured.

    Attributes:
        function: the function's name.
        backend: the chosen backend's name.
        reason: one sentence naming the measurement that decided.
        decided_by: that measurement's field name (``"cpu_share"``, ``"thread_speedup"``,
            ``"transfer_seconds"``, ``"process_start_seconds"``, ``"items_left"``,
            ``"coroutine_function"``, ``"submit_rule"``, ``"submit_watch"``, ``"pickling"``,
            ``"cpus"``).
        workers: the pool size chosen (``None``: the backend's default).
        items_total: items in the input, when known.
        items_measured: items finished while measuring (their results are kept).
        seconds_per_item: one item's time, running alone.
        per_item_is_lower_bound: no item had finished; the item in hand had run this long.
        cpu_share: CPU time over wall time of one thread running items alone.
        thread_speedup: how much faster two threads ran it than one.
        thread_test: how that was measured: ``"items"`` (items on two threads) or
            ``"gil-watch"`` (for long items: how often the item held the GIL while
            another thread kept asking for it).
        arg_bytes, result_bytes: pickled size of one argument and one result.
        transfer_seconds: cost of sending one item to a process and its result back.
        picklable: whether the function, arguments and results pickle.
        process_start_seconds: estimated start-up of a process pool (0 when warm).
        predicted: seconds each candidate backend is predicted to need for the rest.
        probe_seconds: how long measuring took (its items' work is not lost).
        cpus: CPUs available to this process.
        gil_enabled: False on a free-threaded Python running without the GIL.
        note: anything else, e.g. a change of mind.

    Example::

        import anypool

        def square(x):
            return x * x

        if __name__ == "__main__":
            report = anypool.profile(square, range(100_000))
            print(report.backend, "-", report.reason)
            print(report)
    """

    function: str
    backend: str
    reason: str
    decided_by: str
    workers: int | None = None
    items_total: int | None = None
    items_measured: int = 0
    seconds_per_item: float | None = None
    per_item_is_lower_bound: bool = False
    cpu_share: float | None = None
    thread_speedup: float | None = None
    thread_test: str = ""
    arg_bytes: int | None = None
    result_bytes: int | None = None
    transfer_seconds: float | None = None
    picklable: bool | None = None
    process_start_seconds: float | None = None
    predicted: Mapping[str, float] = dataclasses.field(default_factory=dict)
    probe_seconds: float = 0.0
    cpus: int = 1
    gil_enabled: bool = True
    note: str = ""

    def __str__(self) -> str:
        rows = [
            f"anypool auto: {self.function} -> {self.backend}"
            + ("" if self.workers is None else f" ({_plural(self.workers, 'worker')})"),
            f"  reason:            {self.reason}",
        ]
        for label, value in self._rows():
            rows.append(f"  {label + ':':<19}{value}")
        if self.predicted:
            guesses = ", ".join(f"{k} {_seconds(v)}" for k, v in self.predicted.items())
            per = "the items left" if self.items_total is not None else "1000 items"
            rows.append(f"  {'predicted:':<19}{guesses} (for {per})")
        if self.note:
            rows.append(f"  {'note:':<19}{self.note}")
        return "\n".join(rows)

    def _rows(self) -> list[tuple[str, str]]:
        rows = []
        if self.items_total is not None or self.items_measured:
            total = "unknown" if self.items_total is None else str(self.items_total)
            rows.append(("items", f"{total} in all, {self.items_measured} run while measuring"))
        if self.seconds_per_item is not None:
            bound = "at least " if self.per_item_is_lower_bound else ""
            rows.append(("per item", bound + _seconds(self.seconds_per_item)))
        if self.cpu_share is not None:
            rows.append(("CPU share", f"{self.cpu_share:.0%} of wall time"))
        if self.thread_speedup is not None:
            how = {"items": "items on 2 threads", "gil-watch": "from how often it held the GIL"}
            rows.append(
                ("thread speed-up", f"{self.thread_speedup:.2f}x ({how.get(self.thread_test)})")
            )
        if self.arg_bytes is not None:
            result = "?" if self.result_bytes is None else f"{self.result_bytes} B"
            rows.append(("pickled sizes", f"argument {self.arg_bytes} B, result {result}"))
        if self.transfer_seconds is not None:
            rows.append(("transfer", f"{_seconds(self.transfer_seconds)} per item to a process"))
        if self.picklable is False:
            rows.append(("pickles", "no: processes cannot run it"))
        if self.process_start_seconds is not None:
            start = self.process_start_seconds
            text = _seconds(start) if start else "none: this executor's process pool is running"
            rows.append(("process start-up", text))
        gil = "enabled" if self.gil_enabled else "disabled (free-threaded)"
        rows.append(("machine", f"{self.cpus} CPU(s), GIL {gil}"))
        if self.probe_seconds:
            rows.append(("measuring took", _seconds(self.probe_seconds)))
        return rows


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} µs"


def _name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or describe(fn)


# ── measuring the cost of pickling ──────────────────────────────────────────────


@dataclasses.dataclass(frozen=True)
class Transfer:
    picklable: bool
    arg_bytes: int | None = None
    result_bytes: int | None = None
    pickle_seconds: float = 0.0  # per item: argument and result, out and back
    why: str = ""


def measure_transfer(job: Job, measured: Measurements) -> Transfer:
    """Pickle (and unpickle) a sample of arguments and results, as processes would."""
    try:
        job.fn_payload()
    except Exception:
        return Transfer(False, why=f"{_name(job.fn)} itself does not pickle")
    args = [a for a, _ in measured.samples] or list(measured.first_item)
    results = [r for _, r in measured.samples]
    if not args:
        return Transfer(True)
    try:
        arg_bytes, arg_seconds = _pickle_cost(args)
    except Exception:
        return Transfer(False, why="its arguments do not pickle")
    if not results:
        return Transfer(True, arg_bytes, None, arg_seconds)
    try:
        result_bytes, result_seconds = _pickle_cost(results)
    except Exception:
        return Transfer(False, arg_bytes, why="its results do not pickle")
    return Transfer(True, arg_bytes, result_bytes, arg_seconds + result_seconds)


def _pickle_cost(objects: list[Any]) -> tuple[int, float]:
    """Bytes per object pickled, and seconds per object to pickle and unpickle it.

    Large NumPy arrays are counted as the processes backend sends them: by reference to
    shared memory (copied once, not per task), so they are not pickled here either.
    """
    total_bytes = count = 0
    total_seconds = 0.0
    for obj in objects:
        count += 1
        start = time.perf_counter()
        data = _stand_in_dumps(obj)
        if len(data) < BIG_SAMPLE:
            _serialize.loads(data)
            seconds = time.perf_counter() - start
        else:  # unpickling costs about what pickling did: measuring it would double that
            seconds = 2 * (time.perf_counter() - start)
        total_bytes += len(data)
        total_seconds += seconds
        if total_bytes >= BIG_SAMPLE:
            break  # big arguments: one or two samples say enough, more would cost
    return total_bytes // count, total_seconds / count


def _stand_in_dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    try:
        _SharedArrayStandIn(buffer).dump(obj)
    except Exception:
        return _serialize.dumps_quietly(obj)
    return buffer.getvalue()


class _SharedArrayStandIn(pickle.Pickler):
    """Pickles like the processes backend: a large array becomes a small reference."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, protocol=5)

    def reducer_override(self, obj: Any) -> Any:
        if is_shareable(obj):
            return (tuple, ((obj.dtype.str, obj.shape),))
        return NotImplemented


# ── deciding ────────────────────────────────────────────────────────────────────


@dataclasses.dataclass(frozen=True)
class Context:
    """What decide() needs besides the measurements."""

    function: str
    items_total: int | None
    workers: int | None
    cpus: int
    gil_enabled: bool
    serial_allowed: bool  # False with task_timeout: a loop cannot stop a task
    process_start: float
    thread_start: float
    costs: Costs


def decide(m: Measurements, transfer: Transfer, ctx: Context) -> Profile:
    """Apply the rules in this module's docstring to the measurements."""
    left = None if ctx.items_total is None else max(0, ctx.items_total - m.items_taken)
    base = _base_profile(m, transfer, ctx)
    if m.exhausted or left == 0:
        return _finish(
            base,
            "serial",
            "items_left",
            f"all {m.items_taken} items ran while being measured "
            f"({_seconds(m.probe_seconds)}), so nothing is left for a pool to speed up",
            ctx,
        )
    t = m.seconds_per_item or 0.0
    if left is not None and not m.per_item_is_lower_bound and left * t < MIN_POOL_WORK:
        return _finish(
            base,
            "serial",
            "items_left",
            f"the {left} items left need about {_seconds(left * t)} in a loop, "
            f"less than a pool is worth",
            ctx,
        )
    share = m.cpu_share if m.cpu_share is not None else 1.0
    if share < WAITING_SHARE:
        # Judged while the first item was still waiting, the CPU share is an upper
        # bound (the wait goes on, the CPU time does not): allow the most threads.
        bound = 0.0 if m.per_item_is_lower_bound else share
        workers = ctx.workers or _waiting_threads(bound, left, ctx.cpus)
        return _finish(
            base,
            "threads",
            "cpu_share",
            f"it waits most of the time (CPU share {share:.0%} of wall time per item), "
            f"so {workers} threads overlap the waits",
            ctx,
            workers,
        )
    return _cpu_bound(base, m, transfer, ctx, left, t, share)


def _cpu_bound(
    base: Profile,
    m: Measurements,
    transfer: Transfer,
    ctx: Context,
    left: int | None,
    t: float,
    share: float,
) -> Profile:
    speedup = m.thread_speedup
    if speedup is not None and speedup >= THREAD_SPEEDUP and ctx.cpus >= 2:
        why = "this Python runs without the GIL" if not ctx.gil_enabled else "it releases the GIL"
        return _finish(
            base,
            "threads",
            "thread_speedup",
            f"{_thread_phrase(m)} ({why}), so threads scale it without pickling anything",
            ctx,
            ctx.workers or ctx.cpus,
        )
    predicted = _predict(base, ctx, left, t)
    base = dataclasses.replace(base, predicted=predicted)
    held = _thread_phrase(m)
    if ctx.cpus < 2:
        return _finish(
            base, "serial", "cpus", f"{held} and only 1 CPU is available: a loop is fastest", ctx
        )
    if not transfer.picklable:
        return _finish(
            base,
            "serial",
            "pickling",
            f"{held}, and {transfer.why}, so processes cannot run it: a loop is fastest",
            ctx,
        )
    serial, processes = predicted["serial"], predicted["processes"]
    per_item_cost = base.transfer_seconds or 0.0
    if processes <= POOL_GAIN * serial:
        return _finish(
            base,
            "processes",
            "transfer_seconds",
            f"{held} and each item's {_seconds(t)} of work outweighs the "
            f"{_seconds(per_item_cost)} it costs to send it to a process and back: "
            f"processes are predicted at {_seconds(processes)} against {_seconds(serial)}",
            ctx,
            ctx.workers or ctx.cpus,
        )
    if t <= per_item_cost:
        decided_by, why = (
            "transfer_seconds",
            f"at {_seconds(t)} per item, sending an item to a process "
            f"({_seconds(per_item_cost)}) costs more than computing it",
        )
    else:
        decided_by, why = (
            "process_start_seconds",
            f"starting processes ({_seconds(ctx.process_start)}) costs more than the "
            f"{_seconds(serial)} of work left would gain",
        )
    return _finish(base, "serial", decided_by, f"{held} and {why}: a loop is fastest", ctx)


def break_even(m: Measurements, chosen: Profile, ctx: Context) -> float | None:
    """How much longer the item in hand must run before processes would be chosen:
    ``start + n (t + c) / W <= POOL_GAIN * n * t`` solved for ``t``."""
    left = 1000 if ctx.items_total is None else max(0, ctx.items_total - m.items_taken)
    workers = min(ctx.workers or ctx.cpus, ctx.cpus, left)
    gain = POOL_GAIN - 1 / max(workers, 1)
    if gain <= 0 or left == 0 or m.seconds_per_item is None:
        return None
    cost = chosen.transfer_seconds or 0.0
    needed = (ctx.process_start + left * cost / workers) / (left * gain)
    return max(0.0, 1.1 * needed - m.seconds_per_item)  # 10% past the break-even point


def _predict(base: Profile, ctx: Context, left: int | None, t: float) -> dict[str, float]:
    """Seconds for the items left on each backend; with an unknown length, per 1000."""
    n = left if left is not None else 1000
    cpus = ctx.cpus
    workers = min(ctx.workers or cpus, cpus)
    per_item_cost = base.transfer_seconds or 0.0
    # Pickling the arguments and unpickling the results happens in this process, one
    # item at a time; the rest happens in the workers, in parallel.
    parent = n * per_item_cost / 2
    in_workers = n * (t + per_item_cost / 2) / workers
    speedup = base.thread_speedup or 1.0
    return {
        "serial": n * t,
        "threads": ctx.thread_start + n * t / max(speedup, 1e-3),
        "processes": ctx.process_start + max(parent, in_workers),
    }


def _thread_phrase(m: Measurements) -> str:
    speedup = m.thread_speedup
    if speedup is None:
        return "it computes"
    if m.thread_test == "items":
        return f"two threads ran it {speedup:.2f}x as fast as one"
    return f"the GIL watch says two threads would run it {speedup:.2f}x as fast as one"


def _waiting_threads(share: float, left: int | None, cpus: int) -> int:
    # A thread per concurrent wait, as many as keep the CPU part of the work busy on one
    # core (1 / share), within [CPUs + 4, WAITING_THREADS] and no more than items left.
    wanted = max(cpus + 4, min(WAITING_THREADS, math.ceil(2 / max(share, 1e-3))))
    wanted = min(wanted, WAITING_THREADS)
    return max(1, min(wanted, left)) if left is not None else wanted


def _base_profile(m: Measurements, transfer: Transfer, ctx: Context) -> Profile:
    transfer_seconds = None
    if transfer.picklable and transfer.arg_bytes is not None:
        transfer_seconds = ctx.costs.transfer(
            transfer.arg_bytes, transfer.result_bytes or 0, transfer.pickle_seconds
        )
    return Profile(
        function=ctx.function,
        backend="",
        reason="",
        decided_by="",
        items_total=ctx.items_total,
        items_measured=m.items_done,
        seconds_per_item=m.seconds_per_item,
        per_item_is_lower_bound=m.per_item_is_lower_bound,
        cpu_share=None if m.cpu_share is None else round(m.cpu_share, 3),
        thread_speedup=m.thread_speedup,
        thread_test=m.thread_test,
        arg_bytes=transfer.arg_bytes,
        result_bytes=transfer.result_bytes,
        transfer_seconds=transfer_seconds,
        picklable=transfer.picklable,
        process_start_seconds=ctx.process_start,
        probe_seconds=m.probe_seconds,
        cpus=ctx.cpus,
        gil_enabled=ctx.gil_enabled,
    )


def _finish(
    base: Profile,
    backend: str,
    decided_by: str,
    reason: str,
    ctx: Context,
    workers: int | None = None,
) -> Profile:
    note = base.note
    if backend == "serial" and not ctx.serial_allowed:
        # task_timeout needs a pool that can stop (or at least abandon) a task.
        backend, workers = "threads", ctx.workers or 1
        note = "serial would do, but task_timeout needs a pool: threads instead"
    if backend == "serial":
        workers = 1
    return dataclasses.replace(
        base,
        backend=backend,
        decided_by=decided_by,
        reason=reason[0].upper() + reason[1:] + ".",
        workers=workers,
        note=note,
    )


# ── the chooser an Executor holds ───────────────────────────────────────────────


@dataclasses.dataclass
class MapChoice:
    """A map's backend, the batches its probe already started (to adopt), and a
    callback for the map to ask, as it goes, whether to move to another backend."""

    backend: Backend
    batches: list[Batch]
    profile: Profile
    rechoose: Callable[[float, int], Backend | None] | None = None


class _MapWatch:
    """The one change of mind within a map: while the per-item time its backend reports
    differs from the measured one by ``RECHOOSE_FACTOR`` or more, after at least
    ``RECHOOSE_AFTER`` more items, decide again with the new time (every other
    measurement kept); the first time that picks another backend, the rest of the input
    goes there, and the choice is final."""

    def __init__(
        self,
        chooser: AutoChooser,
        job: Job,
        total: int | None,
        chosen: Profile,
        probe: tuple[Measurements, Transfer] | None,
    ) -> None:
        self.chooser = chooser
        self.job = job
        self.total = total
        self.chosen = chosen
        self.probe = probe

    def __call__(self, per_item: float, submitted: int) -> Backend | None:
        if self.probe is None:
            return None
        measured, transfer = self.probe
        t = measured.seconds_per_item
        if not t or submitted < measured.items_taken + RECHOOSE_AFTER:
            return None
        if self.total is not None and submitted >= self.total:
            return None  # every item is already on its way: nothing left to move
        if 1 / RECHOOSE_FACTOR < per_item / t < RECHOOSE_FACTOR:
            return None
        later = dataclasses.replace(
            measured,
            seconds_per_item=per_item,
            per_item_is_lower_bound=False,
            items_taken=submitted,
            exhausted=False,
        )
        again = decide(later, transfer, self.chooser._context(self.job, self.total))
        if again.backend == self.chosen.backend:
            return None
        self.probe = None  # once: the choice is final now
        note = (
            f"changed its mind: later items took {_seconds(per_item)} each, not "
            f"{_seconds(t)}; first {self.chosen.backend}"
        )
        return self.chooser._use(dataclasses.replace(again, note=note))


class _SubmitWatch:
    """Timings of the first submitted tasks of one function on threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[tuple[float, float, float]] = []  # (start, end, cpu)

    def record(self, start: float, end: float, cpu: float) -> bool:
        """Record a task; True when the sample is complete (once)."""
        with self.lock:
            self.spans.append((start, end, cpu))
            return len(self.spans) == SUBMIT_SAMPLE


class _Measured:
    """Runs a submitted function on a thread and times it for the submit watch."""

    def __init__(self, fn: Callable[..., Any], on_sample: Callable[[], None]) -> None:
        self.fn = fn
        self.watch = _SubmitWatch()
        self.on_sample = on_sample
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            end = time.perf_counter()
            if self.watch.record(start, end, time.thread_time() - cpu):
                self.on_sample()


class AutoChooser:
    """Chooses a backend per call and keeps one pool of each kind it has chosen.

    It holds no reference to its Executor (a forgotten executor is collected and its
    pools stopped through ``shutdown``).
    """

    costs: Costs = Costs()

    def __init__(
        self,
        make_backend: Callable[[str, int | None], Backend],
        *,
        workers: int | None,
        start_method: str | None,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        has_warm: Callable[[str], bool] | None = None,
    ) -> None:
        self._make = make_backend
        # Whether a pool of a kind is already running elsewhere (the warm pools kept
        # between module-level calls): then it costs nothing to start.
        self._has_warm = has_warm
        self._workers = workers
        self._start_method = start_method or _default_start_method()
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.Lock()
        self._pools: dict[str, Backend] = {}
        self._probes: list[Probe] = []
        self._probed = 0  # items run by probes already forgotten
        self._current: Backend | None = None
        self._last: Profile | None = None
        self._routes: dict[Any, tuple[str, Profile]] = {}  # submit: function -> backend
        self._watched: dict[Any, _Measured] = {}
        self._closed = False

    # ── state ────────────────────────────────────────────────────────────────────

    @property
    def current(self) -> Backend | None:
        """The backend of the latest call, or None before any."""
        return self._current

    def explain(self) -> Profile:
        if self._last is None:
            raise RuntimeError(
                "explain() reports what backend='auto' chose for a map() or submit() on "
                "this executor; nothing has been run yet"
            )
        return self._last

    def stats(self) -> ExecutorStats:
        """The current pool's state; ``tasks_done`` counts every pool's and the probes'."""
        with self._lock:
            current, pools, probes = self._current, list(self._pools.values()), self._probes
            probed = self._probed + sum(p.items_done() for p in probes)
        done = probed + sum(p.stats().tasks_done for p in pools)
        if current is None:
            return ExecutorStats(AUTO, 0, tasks_done=done)
        return dataclasses.replace(current.stats(), tasks_done=done)

    # ── map ──────────────────────────────────────────────────────────────────────

    def choose_for_map(
        self, job: Job, items: Iterator[Any], total: int | None, limit: int = 2**62
    ) -> MapChoice:
        """Measure ``job.fn`` on the first of ``items`` (at most ``limit`` of them, which
        it consumes) and choose."""
        chosen, probe = self.measure(job, items, total, limit)
        backend = self._use(chosen)
        if probe is None:
            return MapChoice(backend, [], chosen)
        probe.watch_timeouts()
        if chosen.backend != "serial":
            self._remember(job.fn, chosen)
        batches, probe.batches = probe.batches, []  # the map owns them now
        watch = _MapWatch(self, job, total, chosen, probe.last)
        return MapChoice(backend, batches, chosen, watch)

    def measure(
        self, job: Job, items: Iterator[Any], total: int | None, limit: int = 2**62
    ) -> tuple[Profile, Probe | None]:
        """The choice for ``job`` and the probe that ran its first items (still running
        the chunks in hand); no probe for a coroutine function."""
        if is_coroutine_function(job.fn):
            return self._coroutine_profile(job.fn, total), None
        probe = Probe(
            job, items, initializer=self._initializer, initargs=self._initargs, limit=limit
        )
        with self._lock:
            self._check_open()
            self._forget_finished_probes()
            self._probes.append(probe)
        measured = probe.run()
        transfer = probe.transfer = measure_transfer(job, measured)
        context = self._context(job, total)
        chosen = decide(measured, transfer, context)
        if chosen.decided_by == "process_start_seconds" and measured.per_item_is_lower_bound:
            # Serial only because the item in hand has not run long enough yet: wait (it
            # keeps running) until it ends or passes the time at which processes win.
            wait = break_even(measured, chosen, context)
            if wait is not None:
                measured = probe.wait_for_item(wait)
                chosen = decide(measured, transfer, context)
        return chosen, probe

    def _forget_finished_probes(self) -> None:
        """With the lock held: keep only probes whose threads still run (to join them)."""
        finished = [p for p in self._probes if not p.alive()]
        self._probed += sum(p.items_done() for p in finished)
        self._probes = [p for p in self._probes if p not in finished]

    def _context(self, job: Job, total: int | None) -> Context:
        with self._lock:
            warm = set(self._pools)
        if self._has_warm is not None:
            warm |= {kind for kind in ("processes",) if self._has_warm(kind)}
        cpus = available_cpus()
        workers = self._workers or cpus
        return Context(
            function=_name(job.fn),
            items_total=total,
            workers=self._workers,
            cpus=cpus,
            gil_enabled=gil_enabled(),
            serial_allowed=job.task_timeout is None,
            process_start=self.costs.startup(
                "processes", workers, warm="processes" in warm, start_method=self._start_method
            ),
            thread_start=self.costs.startup(
                "threads", workers, warm="threads" in warm, start_method=self._start_method
            ),
            costs=self.costs,
        )

    def _coroutine_profile(self, fn: Any, total: int | None) -> Profile:
        return Profile(
            function=_name(fn),
            backend="asyncio",
            reason=f"{_name(fn)} is a coroutine function (async def), so its calls run "
            "concurrently on one event loop.",
            decided_by="coroutine_function",
            workers=self._workers,
            items_total=total,
            cpus=available_cpus(),
            gil_enabled=gil_enabled(),
        )

    def _use(self, chosen: Profile) -> Backend:
        with self._lock:
            self._check_open()
            backend = self._pools.get(chosen.backend)
            if backend is None:
                backend = self._make(chosen.backend, chosen.workers)
                self._pools[chosen.backend] = backend
            elif chosen.backend == "threads" and chosen.workers:
                # A threads pool grows on demand up to `workers`: a later call that
                # wants more (waiting work) gets them.
                backend.workers = max(backend.workers, chosen.workers)
            self._current, self._last = backend, chosen
            return backend

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new tasks after shutdown")

    # ── submit ───────────────────────────────────────────────────────────────────

    def route_submit(self, fn: Callable[..., Any]) -> tuple[Backend, Callable[..., Any]]:
        """The backend for ``submit(fn, ...)``, and the callable to run there."""
        if is_coroutine_function(fn):
            return self._use(self._coroutine_profile(fn, None)), fn
        key = _key(fn)
        with self._lock:
            route = self._routes.get(key)
            measured = self._watched.get(key)
        if route is not None:
            return self._use(route[1]), fn
        if measured is None:
            measured = _Measured(fn, lambda: self._judge_submits(key, fn))
            with self._lock:
                measured = self._watched.setdefault(key, measured)
        return self._use(self._submit_profile(fn)), measured

    def threads_for(self, fn: Callable[..., Any]) -> Backend:
        """The threads pool, for a submit whose arguments cannot go to processes."""
        return self._use(
            dataclasses.replace(
                self._submit_profile(fn),
                note="its arguments do not pickle, so this call ran on threads",
            )
        )

    def _submit_profile(self, fn: Any) -> Profile:
        return Profile(
            function=_name(fn),
            backend="threads",
            reason="submit() has no list of items to measure, so it runs on threads (any "
            f"function, nothing pickled); after {SUBMIT_SAMPLE} tasks of a function, auto "
            "checks whether they held the GIL and then sends the rest to processes.",
            decided_by="submit_rule",
            workers=self._workers,
            cpus=available_cpus(),
            gil_enabled=gil_enabled(),
        )

    def _judge_submits(self, key: Any, fn: Callable[..., Any]) -> None:
        with self._lock:
            measured = self._watched.pop(key, None)
        if measured is None:
            return
        verdict = judge_submits(_name(fn), measured.watch.spans, fn, self._workers)
        with self._lock:
            self._routes.setdefault(key, (verdict.backend, verdict))

    def _remember(self, fn: Any, chosen: Profile) -> None:
        with self._lock:
            self._routes[_key(fn)] = (chosen.backend, chosen)

    # ── stopping ─────────────────────────────────────────────────────────────────

    def shutdown(
        self,
        *,
        wait: bool = True,
        cancel_futures: bool = False,
        keep: Callable[[Backend], bool] | None = None,
    ) -> None:
        """Stop every pool, except those ``keep`` takes over (warm pools given back)."""
        with self._lock:
            self._closed = True
            pools, probes = list(self._pools.values()), list(self._probes)
        for probe in probes:
            probe.stop_taking()
        for pool in pools:
            if keep is None or not keep(pool):
                pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            for probe in probes:
                probe.join()

    def terminate(self) -> None:
        with self._lock:
            self._closed = True
            pools, probes = list(self._pools.values()), list(self._probes)
        for probe in probes:
            probe.stop_taking()
        for pool in pools:
            pool.terminate()


def judge_submits(
    name: str, spans: Sequence[tuple[float, float, float]], fn: Any, workers: int | None
) -> Profile:
    """Where later submits of a function go, from its first tasks' timings on threads.

    Tasks that ran ``overlap`` at a time on average used ``overlap`` CPUs if they ran in
    parallel, but only about one if they took turns holding the GIL. When they overlapped
    (``overlap >= 1.25``), kept a CPU busy (they compute rather than wait) and used
    nearer one CPU than ``overlap``, they held the GIL: processes run them in parallel.
    Anything else stays on threads.
    """
    span = _union_length(spans)
    busy = sum(end - start for start, end, _ in spans)
    cpu = sum(c for _, _, c in spans)
    overlap = busy / span if span > 0 else 1.0
    cores = cpu / span if span > 0 else 0.0
    per_task = cpu / max(1, len(spans))
    cpus = available_cpus()
    common: dict[str, Any] = {
        "function": name,
        "workers": workers,
        "cpus": cpus,
        "gil_enabled": gil_enabled(),
        "decided_by": "submit_watch",
        "seconds_per_item": busy / max(1, len(spans)),
        "cpu_share": round(cpu / busy, 3) if busy > 0 else None,
    }
    held = overlap >= 1.25 and 0.6 <= cores < 1 + (overlap - 1) / 2 and gil_enabled()
    if held and cpus >= 2 and per_task >= SUBMIT_PROCESS_MIN and _pickles(fn):
        reason = (
            f"{len(spans)} submitted tasks of {name} overlapped ({overlap:.1f} at a time) "
            f"yet kept only {cores:.1f} CPU busy: they hold the GIL, so later submits of it "
            "go to processes."
        )
        return Profile(backend="processes", reason=reason, note="changed its mind", **common)
    reason = (
        f"{len(spans)} submitted tasks of {name} ran {overlap:.1f} at a time using "
        f"{cores:.1f} CPU: threads suit them, and later submits of it stay there."
    )
    return Profile(backend="threads", reason=reason, **common)


def _pickles(fn: Any) -> bool:
    try:
        _serialize.dumps_function(fn)
    except Exception:
        return False
    return True


def _union_length(spans: Sequence[tuple[float, float, float]]) -> float:
    total, end = 0.0, -math.inf
    for start, stop, _ in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _key(fn: Any) -> Any:
    """What identifies "the same function" across submits: its code object when it has
    one (so a lambda written once in a loop is one function), else the object."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)
    code = getattr(target, "__code__", None)
    return code if code is not None else id(target)


def _default_start_method() -> str:
    from ._backends._processes import default_start_method

    return default_start_method()


# ── anypool.profile ─────────────────────────────────────────────────────────────


def profile(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    costs: Costs | None = None,
) -> Profile:
    """Measure ``fn`` on the first of ``items`` and say which backend ``auto`` would choose.

    It runs ``fn`` on a few items (at least one; as many as fit in about 40 ms), on one
    thread and then on two, and pickles a sample of arguments and results; their results
    are discarded. It returns once the items it started have finished. No pool is
    started: the processes start-up in the report is an estimate.

    Example::

        import time

        import anypool

        def fetch(url):
            time.sleep(0.01)
            return url

        if __name__ == "__main__":
            report = anypool.profile(fetch, [f"https://example.com/{i}" for i in range(50)])
            print(report.backend)        # threads
            print(report.reason)         # It waits most of the time (CPU share 1% ...)
    """
    if not callable(fn):
        raise TypeError(f"profile() needs a callable, got {describe(fn)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    total: int | None
    try:
        total = len(items)  # type: ignore[arg-type]
    except TypeError:
        total = None
    chooser = AutoChooser(
        _no_pool, workers=workers, start_method=None, initializer=None, initargs=()
    )
    if costs is not None:
        chooser.costs = costs
    job = _DiscardJob(fn, CallMode.ONE)
    try:
        return chooser.measure(job, iter(items), total)[0]
    finally:
        chooser.shutdown(wait=True)


def _no_pool(name: str, workers: int | None) -> Backend:
    raise AssertionError("profile() starts no pool")


class _DiscardJob(Job):
    """The job of a profile() run: outcomes are measured, then dropped."""

    __slots__ = ()

    def deliver(self, *args: Any, **kwargs: Any) -> None:
        pass
