"""A state machine drives a process pool through submit / cancel / kill a worker /
shutdown in random orders: every future must reach a final state, and
done + failed + cancelled must equal submitted."""

from __future__ import annotations

import os
import signal
from concurrent.futures import Future, wait
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import anypool

from . import tasks
from ._leaks import pool_workers

ALLOWED_FAILURES = (anypool.WorkerCrashed, anypool.BrokenPool)


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ex = anypool.Executor("processes", workers=2)
        self.futures: list[Future[Any]] = []
        self.closed = False
        self.refused = 0

    @precondition(lambda self: not self.closed)
    @rule(value=st.integers(0, 100), delay=st.sampled_from([0.0, 0.001, 0.02]))
    def submit(self, value: int, delay: float) -> None:
        try:
            self.futures.append(self.ex.submit(tasks.sleep_return, delay, value))
        except anypool.BrokenPool:
            # Workers killed while starting, several times in a row, break the pool on
            # purpose (no endless respawning); a refused submit is then the right answer.
            self.refused += 1

    @precondition(lambda self: bool(self.futures))
    @rule(which=st.integers(0, 50))
    def cancel(self, which: int) -> None:
        self.futures[which % len(self.futures)].cancel()

    @rule(which=st.integers(0, 7))
    def kill_a_worker(self, which: int) -> None:
        # Which processes exist depends on timing, so the choice is an index, not a pid:
        # Hypothesis replays the same draws.
        pids = sorted(pool_workers())
        if pids:
            try:
                os.kill(pids[which % len(pids)], signal.SIGKILL)
            except ProcessLookupError:
                pass

    @precondition(lambda self: not self.closed)
    @rule(cancel=st.booleans())
    def shutdown(self, cancel: bool) -> None:
        self.ex.shutdown(wait=False, cancel_futures=cancel)
        self.closed = True

    @invariant()
    def results_are_right_when_done(self) -> None:
        for f in self.futures:
            if f.done() and not f.cancelled() and f.exception() is None:
                assert isinstance(f.result(), int)

    def teardown(self) -> None:
        self.ex.shutdown(wait=True)
        _done, not_done = wait(self.futures, timeout=30)
        assert not not_done, f"{len(not_done)} futures never finished"
        ok = failed = cancelled = 0
        for f in self.futures:
            if f.cancelled():
                cancelled += 1
            elif f.exception() is not None:
                assert isinstance(f.exception(), ALLOWED_FAILURES), repr(f.exception())
                failed += 1
            else:
                ok += 1
        assert ok + failed + cancelled == len(self.futures)


PoolMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_pool_state_machine = PoolMachine.TestCase
