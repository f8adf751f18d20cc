"""The ``race`` experiment: the guide's §9.2 unlocked counter, with and without a lock,
under normal scheduling and under :func:`anypool.testing.stress`'s forced switches.

It does not fit the per-backend table (it has no backend and no speed-up): it prints
its own table and goes under its own ``"race"`` key in the JSON.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ..testing import stress

__all__ = ["NAME", "RaceRow", "reading", "run", "table"]

NAME = "race"
THREADS = 8
#: Calls per thread. Normal scheduling gets many (it is cheap, and the point is that
#: even many lose nothing); stressed runs trace every bytecode, so they get fewer.
NORMAL_CALLS = 100_000
STRESSED_CALLS = 1_000


@dataclasses.dataclass(frozen=True)
class RaceRow:
    counter: str  # "unlocked" or "locked"
    scheduling: str  # "normal" or "stressed"
    threads: int
    expected: int
    got: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.expected - self.got

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "lost": self.lost}


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def unlocked(self) -> None:
        self.value += 1  # read, add, write: another thread may write in between

    def locked(self) -> None:
        with self.lock:
            self.value += 1


def run(quick: bool = False) -> list[RaceRow]:
    scale = 4 if quick else 1
    rows = []
    for scheduling, calls in (("normal", NORMAL_CALLS), ("stressed", STRESSED_CALLS)):
        for kind in ("unlocked", "locked"):
            counter = _Counter()
            result = stress(
                getattr(counter, kind),
                threads=THREADS,
                repeat=calls // scale,
                interleave=scheduling == "stressed",
            )
            expected = THREADS * (calls // scale)
            rows.append(RaceRow(kind, scheduling, THREADS, expected, counter.value, result.seconds))
    return rows


def table(rows: list[RaceRow]) -> Any:
    from rich.table import Table

    out = Table(title="anypool bench: race (the guide's §9.2 counter += 1 from 8 threads)")
    for column in ("counter", "scheduling", "threads", "expected", "got", "lost", "seconds"):
        out.add_column(column, justify="left" if column in ("counter", "scheduling") else "right")
    for r in rows:
        lost = f"{r.lost:,} ({r.lost / r.expected:.0%})"
        out.add_row(
            r.counter, r.scheduling, str(r.threads), f"{r.expected:,}", f"{r.got:,}", lost,
            f"{r.seconds:.2f}",
        )  # fmt: skip
    return out


def reading(rows: list[RaceRow]) -> str:
    lost = {(r.counter, r.scheduling): r.lost for r in rows}
    normal, stressed = lost[("unlocked", "normal")], lost[("unlocked", "stressed")]
    parts = [
        f"Under normal scheduling the unlocked counter lost {normal:,} updates: "
        "the interpreter switches threads rarely and only at a few kinds of instruction, "
        "so the race almost never shows."
        if normal == 0
        else f"Under normal scheduling the unlocked counter lost {normal:,} updates.",
        f"With forced switches between bytecodes (anypool.testing.stress) it lost "
        f"{stressed:,}: counter += 1 is a read, an add and a write, and a switch in "
        "between loses the other thread's update.",
    ]
    if lost[("locked", "normal")] == lost[("locked", "stressed")] == 0:
        parts.append("The locked counter was exact both ways.")
    return " ".join(parts)
