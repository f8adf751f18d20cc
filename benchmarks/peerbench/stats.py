"""The arithmetic of the report: medians, spreads, percentiles and ratios.

Kept apart from the runner and free of I/O so the tests can check it with plain numbers.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence

__all__ = ["Spread", "percentile", "ratio", "speedup", "spread"]


@dataclasses.dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of a sample of timings."""

    n: int
    median: float
    low: float  # minimum
    high: float  # maximum
    q1: float
    q3: float


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile with linear interpolation between closest ranks (as
    NumPy's default), so p50 of an even-sized sample is the mean of the middle two."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"pct must be within 0..100, got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    lower = math.floor(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


def spread(values: Iterable[float]) -> Spread | None:
    """Median, quartiles and range; ``None`` for an empty sample (every run failed)."""
    sample = sorted(values)
    if not sample:
        return None
    return Spread(
        n=len(sample),
        median=statistics.median(sample),
        low=sample[0],
        high=sample[-1],
        q1=percentile(sample, 25),
        q3=percentile(sample, 75),
    )


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference`` (e.g. time over the best peer's: below 1 is faster), or
    ``None`` when either is missing or the reference is zero."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def speedup(baseline: float | None, value: float | None) -> float | None:
    """How many times faster than the baseline (serial time over this time)."""
    return ratio(baseline, value)
