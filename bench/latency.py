"""Join latencies from one watch of Nodes: the pure arithmetic of bench/joins.py."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q % of
    the values at or below it (so p100 is the maximum, and p99 of 100 values
    is the second largest). NaN for no values."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Latency:
    """Seconds from a Node's ADDED event to its first event with podCIDRs."""

    count: int  # Nodes that got podCIDRs
    missing: int  # Nodes seen joining that got none
    p50: float
    p99: float
    max: float


def latencies(added: Mapping[str, float], cidr: Mapping[str, float]) -> Latency:
    """From the watch's times (any one clock) of each Node's ADDED event and
    of its first event with podCIDRs set."""
    took = [cidr[name] - when for name, when in added.items() if name in cidr]
    return Latency(
        count=len(took),
        missing=len(added) - len(took),
        p50=percentile(took, 50),
        p99=percentile(took, 99),
        max=max(took, default=math.nan),
    )
