"""Summary statistics of latencies, one definition for every load test and benchmark."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): the smallest value with at least q % of the values at or below it.

    That is the value of rank ceil(q / 100 * n) in ascending order (rank 1 for q = 0); NaN when there are none.
    It is always one of the values, never an interpolation, so p100 is the maximum and p50 of 1..10 is 5.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    """The median (the mean of the middle two for an even count); NaN when there are none."""
    values = list(values)
    return statistics.median(values) if values else math.nan
