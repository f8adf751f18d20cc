"""Measuring a function on the first items of a map, for ``backend="auto"`` (``_auto.py``).

::

    caller thread (the coordinator)               probe threads
    ───────────────────────────────               ─────────────
    start runner A ─────────────────────────────► A: take a chunk of items from the input
                                                     (under the lock), run it, deliver its
    at checkpoints, read A's CPU and run-queue       outcomes to the job: they are kept,
      clocks (/proc/self/task/TID/schedstat)         as if a backend had run them
    solo phase measured: start B ───────────────► B: the same on the next items, or, when
                                                     items are long, a watcher that times
                                                     how often A holds the GIL
    after the pair window: stop taking items ───► finish the chunk in hand, deliver, exit
    return the measurements; the input iterator
      continues with the chosen backend

The probe wastes no work: every item it takes is run once and its result delivered. What
it costs is the parallelism not used while it measures: about 40 ms, whatever the items'
length, because a long item is measured while it runs (its CPU clock is read from
outside) rather than after it ends. The runners take no new chunk after TAKE_LIMIT, even
if the coordinator, starved of the GIL or of a CPU, has not yet told them to stop.

Run-queue waits (time a thread was runnable but another process had the CPU) are taken
out of the solo phase's figures, so a busy machine does not make CPU work look like
waiting (not out of the pair's: see _pair_of_items). They are read from a file, and each
read lets go of the GIL: while a thread runs Python code, the coordinator then waits a
switch interval (5 ms) to go on. So the file of each thread is opened once and read with
one system call, and only when the CPU clock alone shows a share low enough for them to
change the figure.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import islice, starmap
from typing import Any

from ._errors import InitializerError, TaskTimeout, as_task_exception
from ._tasks import Batch, CallMode, FlushMode, Job, Work

__all__ = ["Measurements", "Probe", "thread_clock"]

#: When the coordinator looks at the solo runner (seconds after it started). The first
#: look can already tell waiting work (it then goes to threads at once, so a job of
#: 100 ms waits loses ~3%); the second ends the solo phase.
SOLO_CHECKS = (0.003, 0.006)
#: How long two threads run side by side. Long enough for several GIL hand-offs (one
#: every 5 ms by default) to average out, short enough to cost little.
PAIR_WINDOW = 0.02
#: CPU share under which the work counts as waiting (decided after the first look).
WAITING_SHARE = 0.5
#: Items A must finish in the solo phase for the pair test to run real items on two
#: threads: items of 3 ms or less, so that each thread runs several in the pair window
#: (and a second item ends soon if processes are chosen); fewer means items are long,
#: and a GIL watcher stands in for the second thread.
SHORT_ITEMS = 2
#: Probe chunks grow by doubling until one takes this long: tiny items are measured in
#: bulk (timing each one would cost more than the item), long ones one at a time.
CHUNK_TARGET = 0.001
#: Successful (argument, result) pairs kept for measuring what pickling them costs.
SAMPLES = 8
#: A CPU share (from the CPU clock alone) under which run-queue waits are read as well.
RUN_QUEUE_SHARE = 0.9
#: No chunk is taken this long after measuring began, even if the coordinator, starved of
#: the GIL or of a CPU, has not yet said stop: tiny items must not all run while measured.
TAKE_LIMIT = 0.1


#: ``(perf_counter, cpu seconds, run-queue seconds or None: not read)`` of one thread.
Reading = tuple[float, float, float | None]


def thread_clock(thread: threading.Thread, run_queue: bool = True) -> Reading | None:
    """``(perf_counter, cpu seconds, run-queue seconds)`` of a running thread, read from
    outside it.

    CPU time comes from the thread's CPU clock, exact at any moment, read right after
    the wall clock (the GIL can pass to another thread between any two lines, so the two
    are read together); the time spent runnable but waiting for a CPU comes from the
    scheduler's statistics (Linux), updated at each context switch, and reads 0 where
    those are missing. With ``run_queue=False`` it is not read (None): reading it costs
    the caller a switch interval when the thread runs Python code.
    """
    try:
        assert thread.ident is not None
        clock = time.pthread_getcpuclockid(thread.ident)
        now, cpu = time.perf_counter(), time.clock_gettime(clock)
    except (AttributeError, OSError, AssertionError):
        return None
    if not run_queue:
        return now, cpu, None
    try:
        with open(_schedstat_path(thread), "rb") as f:
            return now, cpu, _queued_seconds(f.read())
    except (OSError, ValueError, IndexError):
        return now, cpu, 0.0


def _schedstat_path(thread: threading.Thread) -> str:
    """The Linux scheduler's statistics of ``thread``: CPU, run-queue (ns), slices."""
    return f"/proc/self/task/{thread.native_id}/schedstat"


def _queued_seconds(schedstat: bytes) -> float:
    """Seconds spent runnable but waiting for a CPU, from a schedstat file's text."""
    return int(schedstat.split()[1]) / 1e9


def _share(before: Reading, after: Reading) -> float:
    """CPU share between two ``(perf_counter, cpu, run-queue)`` readings of one thread;
    run-queue waits count only where both readings have them."""
    wall = after[0] - before[0]
    waited = 0.0
    if before[2] is not None and after[2] is not None:
        waited = after[2] - before[2]
    runnable = wall - waited
    cpu = after[1] - before[1]
    if wall <= 0:
        return 0.0  # the thread had ended before the window opened
    if runnable <= 0:
        return 1.0  # runnable all along, never given a CPU: a busy machine, not waiting
    return max(0.0, min(1.0, cpu / runnable))


@dataclasses.dataclass(frozen=True)
class Measurements:
    """What the probe saw. Times are seconds; shares are fractions of one CPU."""

    items_taken: int
    items_done: int
    exhausted: bool
    seconds_per_item: float | None
    per_item_is_lower_bound: bool
    cpu_share: float | None
    thread_speedup: float | None
    thread_test: str
    probe_seconds: float
    samples: tuple[tuple[Any, Any], ...]
    first_item: tuple[Any, ...]


class _Runner:
    """A probe thread: takes chunks of items and runs them until told to stop."""

    def __init__(self, probe: Probe, name: str) -> None:
        self.probe = probe
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.size = 1
        self.items_done = 0
        self.cpu_done = 0.0
        self.wall_done = 0.0
        self.work: Work | None = None  # the chunk in hand
        self.busy_since: float | None = None
        self.abandoned = False  # its chunk passed task_timeout and was failed already
        self.timer: threading.Timer | None = None
        self.started = 0.0
        self.finished = False
        self.final: Reading | None = None  # its last clock reading
        self.schedstat: int | None = None  # its scheduler statistics: a file descriptor

    def start(self) -> None:
        self.started = time.perf_counter()
        self.thread.start()

    def _run(self) -> None:
        probe = self.probe
        try:
            if probe.initializer is not None and not probe.run_initializer():
                return
            while (work := probe.take(self, self.size)) is not None:
                self._run_chunk(work)
        finally:
            clock = thread_clock(self.thread)
            with probe.lock:
                self.finished = True
                self.final = clock
            probe.changed.set()

    def _run_chunk(self, work: Work) -> None:
        job = work.job
        items = work.items()
        start, cpu_start = time.perf_counter(), time.thread_time()
        values, errors = _call_all(job, items)
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        probe = self.probe
        with probe.lock:
            self.work = self.busy_since = None
            abandoned, self.abandoned = self.abandoned, False
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.items_done += len(items)
            self.cpu_done += cpu
            self.wall_done += wall
            probe.keep_samples(items, values, errors)
        if not abandoned:
            job.deliver(work, 0, values, errors or None, wall)
        probe.changed.set()
        if wall < CHUNK_TARGET and job.task_timeout is None:
            self.size = min(self.size * 2, 65536)


class _GilWatcher:
    """Measures how much of the time another thread holds the GIL.

    It sleeps for a moment, again and again, and times how late it wakes. A thread that
    wakes while another runs Python code waits for the GIL until the holder is made to
    drop it, a full switch interval (5 ms by default); one that wakes while the other
    runs C code that released the GIL (hashlib, zlib, I/O), or on a Python without a
    GIL, goes on at once. It costs almost no CPU and takes no item. Only waits of most
    of a switch interval count, so that a busy machine's scheduling delays (usually
    shorter) are not taken for the GIL.
    """

    SLEEP = 0.0005

    def __init__(self) -> None:
        self.stop = False
        self.held = 0.0  # seconds of cycles that waited for the GIL
        self.total = 0.0  # seconds of all cycles
        self.interval = sys.getswitchinterval()
        self.late = 0.8 * self.interval
        self.thread = threading.Thread(target=self._watch, name="anypool-probe-gil", daemon=True)

    def _watch(self) -> None:
        while not self.stop:
            start = time.perf_counter()
            time.sleep(self.SLEEP)
            cycle = time.perf_counter() - start
            self.total += cycle
            if cycle - self.SLEEP > self.late:
                self.held += cycle

    def speedup(self, cpu: float) -> float | None:
        """Two threads' speed over one's, if the second held the GIL as the first did:
        ``2 / (1 + h)`` (Amdahl, with the GIL the serial part), where ``h`` is the time
        the GIL was held over the ``cpu`` seconds the watched thread ran meanwhile."""
        if self.total <= 0 or cpu <= 0:
            return None
        return 2 / (1 + min(1.0, self.held / cpu))


class Probe:
    """One measuring run over the start of a map's input. See the module docstring."""

    def __init__(
        self,
        job: Job,
        items: Iterator[Any],
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        limit: int = 2**62,
    ) -> None:
        self.job = job
        self.items = items
        self.limit = limit  # the most items to take: the map's max_in_flight
        self.initializer = initializer
        self.initargs = initargs
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.batches: list[Batch] = []
        self.taken = 0
        self.exhausted = False
        self.stopped = False
        self.init_error: BaseException | None = None
        self.samples: list[tuple[Any, Any]] = []
        self.first_item: tuple[Any, ...] = ()
        self.runners: list[_Runner] = []
        self.began = 0.0
        self.found: tuple[float | None, float | None, str] = (None, None, "")
        self.measured: Measurements | None = None
        self.transfer: Any = None  # what _auto measured of pickling, kept with the rest

    # ── called by runners ────────────────────────────────────────────────────────

    def take(self, runner: _Runner, size: int) -> Work | None:
        """The next chunk for ``runner`` as a work of a new batch, or None: stop."""
        with self.lock:
            if self.stopped or self.exhausted or self.init_error is not None:
                return None
            if time.perf_counter() - self.began > TAKE_LIMIT:
                return None
            size = min(size, self.limit - self.taken)
            if size <= 0:
                return None
            chunk = list(islice(self.items, size))
            if len(chunk) < size:
                self.exhausted = True
            if not chunk:
                return None
            if not self.first_item:
                self.first_item = (chunk[0],)
            batch = Batch(self.job, len(self.batches), self.taken, chunk)
            work = Work(batch, flush=FlushMode.FAST)
            if not self.job.on_start(work):
                self.stopped = True  # the map was closed: its caller wants nothing more
                return None
            self.batches.append(batch)
            self.taken += len(chunk)
            runner.work, runner.busy_since = work, time.perf_counter()
            return work

    def run_initializer(self) -> bool:
        assert self.initializer is not None
        try:
            self.initializer(*self.initargs)
        except BaseException as exc:
            error = InitializerError(f"the initializer failed in a measuring thread: {exc!r}")
            error.__cause__ = exc
            with self.lock:
                self.init_error = error
            self.changed.set()
            return False
        return True

    def keep_samples(
        self, items: list[Any], values: list[Any], errors: dict[int, BaseException]
    ) -> None:
        for k in range(len(items)):
            if len(self.samples) >= SAMPLES:
                return
            if k not in errors:
                self.samples.append((items[k], values[k]))

    # ── the coordinator (the caller's thread) ────────────────────────────────────

    def run(self) -> Measurements:
        """Measure; return when the choice can be made (items in hand still run)."""
        began = self.began = time.perf_counter()
        solo = _Runner(self, "anypool-probe-1")
        self.runners.append(solo)
        try:
            return self._measure(solo, began)
        finally:
            self.stop_taking()
            for runner in self.runners:
                if runner.schedstat is not None and runner.schedstat >= 0:
                    os.close(runner.schedstat)
                runner.schedstat = -1

    def _measure(self, solo: _Runner, began: float) -> Measurements:
        solo.start()
        origin = (solo.started, 0.0, 0.0)  # a new thread's clocks start at zero
        share: float | None = None
        run_queue = False  # whether it could matter alone: read it from then on
        for check in SOLO_CHECKS:
            if self._wait_until(solo.started + check):
                return self._result(began, share, None, "")
            share = _share(origin, self._reading(solo, run_queue))
            if share < RUN_QUEUE_SHARE and not run_queue:
                run_queue = True
                share = _share(origin, self._reading(solo, run_queue))
            if share < WAITING_SHARE:
                return self._result(began, share, None, "")
        assert share is not None
        if solo.items_done >= SHORT_ITEMS:
            speedup = self._pair_of_items(solo, share)
            return self._result(began, share, speedup, "items")
        speedup = self._pair_with_watcher(solo)
        return self._result(began, share, speedup, "gil-watch")

    def _reading(self, runner: _Runner, run_queue: bool = False) -> Reading:
        """``(perf_counter, cpu, run-queue)`` of ``runner``; its last reading once it ended.
        The run queue is read only with ``run_queue`` (see the module docstring)."""
        clock = thread_clock(runner.thread, run_queue=False)
        final = runner.final
        if final is not None:
            return final
        if clock is None:  # no way to read a thread's clock here: it counts as idle
            return (time.perf_counter(), 0.0, 0.0)
        if run_queue:
            return (clock[0], clock[1], self._run_queue(runner))
        return clock

    def _run_queue(self, runner: _Runner) -> float | None:
        """Seconds ``runner`` has waited in the run queue: 0 where the system does not
        say, None if it just ended (its file is gone; its final reading has the figure)."""
        if runner.schedstat is None:
            try:
                runner.schedstat = os.open(_schedstat_path(runner.thread), os.O_RDONLY)
            except OSError:
                runner.schedstat = -1
        if runner.schedstat < 0:
            return 0.0
        try:
            return _queued_seconds(os.pread(runner.schedstat, 128, 0))
        except OSError:
            return None
        except (ValueError, IndexError):
            return 0.0

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline``; True early if nothing more can be measured."""
        while True:
            if self._all_done():
                return True
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.changed.wait(remaining)
            self.changed.clear()

    def _all_done(self) -> bool:
        with self.lock:
            if self.init_error is not None:
                return True
            out = self.exhausted or self.taken >= self.limit
            return out and all(r.work is None for r in self.runners)

    def _pair_of_items(self, solo: _Runner, share_solo: float) -> float | None:
        """Run items on a second thread beside the first; their CPU shares, summed,
        against the first's share alone, say how much faster two threads go.

        Waits in the run queue are not taken out here: while two threads take turns
        with the GIL, the one waiting for it wakes every switch interval and can queue
        for a CPU meanwhile, and taking those waits out would make them look faster than
        one. On a machine that other processes keep busy, threads that release the GIL
        are then measured at the speed-up they would really get there.
        """
        second = _Runner(self, "anypool-probe-2")
        with self.lock:
            second.size = solo.size
            self.runners.append(second)
        before = self._reading(solo)
        second.start()
        second_before: Reading = (second.started, 0.0, 0.0)
        finished = self._wait_until(second.started + PAIR_WINDOW)
        if finished and time.perf_counter() - second.started < PAIR_WINDOW / 4:
            return None  # the input ran out at once: too short to tell
        shares = _share(before, self._reading(solo)) + _share(second_before, self._reading(second))
        return shares / max(share_solo, 1e-3)

    def _pair_with_watcher(self, solo: _Runner) -> float | None:
        """A long item runs while a watcher times how often it holds the GIL (taking a
        second item would leave it running on a thread if processes are chosen).

        The watcher's waits are set against the CPU time the item got meanwhile: on a
        busy machine a thread can sit in the run queue, and a GIL it does not hold then
        says nothing about the work. The window grows until the item has run enough; it
        ends early, after two switch intervals of the item's CPU time, if the watcher
        never had to wait for the GIL.
        """
        watcher = _GilWatcher()
        before = self._reading(solo)
        watcher.thread.start()
        # A look every switch interval while the watcher has never waited for the GIL:
        # an item holding it would have kept the watcher waiting within one interval, so
        # two intervals of the item's CPU time without a wait say enough. Once it has
        # waited, the full window decides.
        clear = 2 * watcher.interval
        deadline = before[0] + clear
        try:
            while not self._wait_until(deadline):
                ran = self._reading(solo)[1] - before[1]
                if watcher.held == 0 and ran >= clear and watcher.total >= clear:
                    break
                elapsed = deadline - before[0]
                if (elapsed >= PAIR_WINDOW and ran >= PAIR_WINDOW / 2) or elapsed > 5 * PAIR_WINDOW:
                    break
                if watcher.held == 0:
                    deadline += watcher.interval
                else:
                    deadline = max(deadline + PAIR_WINDOW / 2, before[0] + PAIR_WINDOW)
        finally:
            watcher.stop = True
            watcher.thread.join()
        ran = self._reading(solo)[1] - before[1]
        return watcher.speedup(ran)

    def wait_for_item(self, seconds: float) -> Measurements:
        """Measure again once an item in hand finishes, or after ``seconds``: for when the
        choice hinges on how long a long item really takes."""
        deadline = time.perf_counter() + seconds
        with self.lock:
            done = sum(r.items_done for r in self.runners)
        while time.perf_counter() < deadline:
            with self.lock:
                if sum(r.items_done for r in self.runners) > done:
                    break
                if not any(r.work for r in self.runners):
                    break
            self.changed.wait(max(0.0, deadline - time.perf_counter()))
            self.changed.clear()
        return self._result(self.began, *self.found)

    def _result(
        self, began: float, share: float | None, speedup: float | None, test: str
    ) -> Measurements:
        self.found = (share, speedup, test)
        with self.lock:
            self.stopped = True
            if self.init_error is not None:
                raise self.init_error
            done = sum(r.items_done for r in self.runners)
            cpu = sum(r.cpu_done for r in self.runners)
            wall = sum(r.wall_done for r in self.runners)
            busy = [time.perf_counter() - r.busy_since for r in self.runners if r.busy_since]
            exhausted = self.exhausted and not busy
        per_item, lower_bound = _per_item(done, cpu, wall, share, busy)
        self.measured = Measurements(
            items_taken=self.taken,
            items_done=done,
            exhausted=exhausted,
            seconds_per_item=per_item,
            per_item_is_lower_bound=lower_bound,
            cpu_share=share,
            thread_speedup=None if speedup is None else round(speedup, 2),
            thread_test=test if speedup is not None else "",
            probe_seconds=time.perf_counter() - began,
            samples=tuple(self.samples),
            first_item=self.first_item,
        )
        return self.measured

    @property
    def last(self) -> tuple[Measurements, Any] | None:
        """The latest measurements and transfer cost, for a later change of mind."""
        if self.measured is None or self.transfer is None:
            return None
        return self.measured, self.transfer

    # ── after the choice ─────────────────────────────────────────────────────────

    def stop_taking(self) -> None:
        with self.lock:
            self.stopped = True

    def watch_timeouts(self) -> None:
        """Fail a chunk still running past ``task_timeout`` (chunks are one item then),
        as the threads backend does: its thread is abandoned, its late result dropped."""
        timeout = self.job.task_timeout
        if timeout is None:
            return
        with self.lock:
            for runner in self.runners:
                if runner.work is not None and runner.busy_since is not None:
                    delay = max(0.0, runner.busy_since + timeout - time.perf_counter())
                    runner.timer = threading.Timer(delay, self._expire, (runner, runner.work))
                    runner.timer.daemon = True
                    runner.timer.start()

    def _expire(self, runner: _Runner, work: Work) -> None:
        with self.lock:
            if runner.work is not work:
                return  # it finished in time
            runner.abandoned = True
        timeout = self.job.task_timeout
        assert timeout is not None
        self.job.deliver(work, 0, [None], {0: TaskTimeout(timeout, work.index(0))}, None)

    def join(self) -> None:
        """Wait for the chunks still running (not those abandoned after a timeout)."""
        with self.lock:
            runners = [r for r in self.runners if not r.abandoned]
            timers = [r.timer for r in self.runners if r.timer is not None]
        for timer in timers:
            timer.join()
        for runner in runners:
            with self.lock:
                abandoned = runner.abandoned
            if not abandoned and runner.thread.is_alive():
                runner.thread.join()

    def alive(self) -> bool:
        return any(r.thread.is_alive() for r in self.runners)

    def items_done(self) -> int:
        with self.lock:
            return sum(r.items_done for r in self.runners)


def _per_item(
    done: int, cpu: float, wall: float, share: float | None, busy: list[float]
) -> tuple[float | None, bool]:
    """Seconds one item takes alone, and whether that is only a lower bound.

    From CPU time divided by the CPU share where the work computes (CPU time does not
    grow when the GIL or a busy machine makes a thread wait); from wall time where it
    mostly waits; from the item in hand (a lower bound) when none has finished.
    """
    if done:
        if share is not None and share >= 0.2:
            return cpu / done / share, False
        return wall / done, False
    if busy:
        return max(busy), True
    return None, False


def _call_all(job: Job, items: list[Any]) -> tuple[list[Any], dict[int, BaseException]]:
    """``job.fn`` over ``items`` in a tight loop; an exception takes only its item's slot."""
    mapper = map if job.mode is CallMode.ONE else starmap
    iterator = iter(items)
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    while True:
        try:
            values.extend(mapper(job.fn, iterator))
            return values, errors
        except BaseException as exc:
            errors[len(values)] = as_task_exception(exc)
            values.append(None)
