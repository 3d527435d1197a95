"""The one percentile every load test and benchmark reports (loadtests/common/stats.py)."""

from __future__ import annotations

import math

import pytest

from loadtests.common.stats import median, percentile


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 95))


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        # The overload runs' old percentile took index int(q / 100 * n): one rank too high whenever q / 100 * n is
        # a whole number. Nearest rank, ceil(q / 100 * n), is the 5th of 10 for p50 and the 99th of 100 for p99.
        (list(range(1, 11)), 50, 5),  # old: 6
        (list(range(1, 101)), 99, 99),  # old: 100
        (list(range(1, 5)), 25, 1),  # old: 2
        # Where q / 100 * n is not whole, both agreed: the rank rounds up.
        (list(range(1, 11)), 95, 10),
        (list(range(1, 8)), 50, 4),
    ],
)
def test_percentile_rounds_the_rank_up_not_the_index_down(values, q, expected):
    assert percentile(values, q) == expected


def test_percentile_sorts_its_input_and_leaves_it_alone():
    values = [30.0, 10.0, 20.0, 40.0]
    assert percentile(values, 50) == 20.0 and percentile(values, 75) == 30.0
    assert values == [30.0, 10.0, 20.0, 40.0]
    assert percentile(iter(values), 100) == 40.0


def test_median_averages_the_middle_two():
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5 and median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(median([]))
