"""The join-latency arithmetic of bench/joins.py: nearest-rank percentiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.latency import latencies, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0], 51, 2.0),
        ([3.0, 1.0, 2.0], 50, 2.0),  # unsorted input
        (list(map(float, range(1, 101))), 50, 50.0),
        (list(map(float, range(1, 101))), 99, 99.0),  # of 100 values: the second largest
        (list(map(float, range(1, 101))), 100, 100.0),
        (list(map(float, range(1, 1001))), 99, 990.0),
        (list(map(float, range(1, 2401))), 99, 2376.0),
    ],
)
def test_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_no_values() -> None:
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], q)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1), st.floats(0.01, 100))
def test_a_value_with_at_least_q_percent_at_or_below(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    at_or_below = sum(v <= p for v in values)
    below = sum(v < p for v in values)
    assert at_or_below >= q / 100 * len(values)
    assert below < q / 100 * len(values)  # and the smallest such value


def test_latencies_from_the_watch() -> None:
    added = {"a": 10.0, "b": 11.0, "c": 12.0}
    cidr = {"a": 10.5, "b": 13.0}  # c never got one
    lat = latencies(added, cidr)
    assert (lat.count, lat.missing) == (2, 1)
    assert (lat.p50, lat.p99, lat.max) == (0.5, 2.0, 2.0)


def test_latencies_of_nothing() -> None:
    lat = latencies({}, {})
    assert (lat.count, lat.missing) == (0, 0)
    assert math.isnan(lat.p99)
    assert math.isnan(lat.max)
