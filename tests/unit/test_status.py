"""Network status: the Ready condition, the counts, and which change deserves an event."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool import status as st_
from netpool.pool import Pool

POOL = Pool(ipaddress.ip_network("192.168.0.0/16"), 24, ipaddress.ip_address("192.168.0.1"))
BIG = Pool(ipaddress.ip_network("2001:db8::/32"), 96, ipaddress.ip_address("2001:db8::1"))
T0, T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z", "2024-01-01T00:10:00Z"


def ready(status: dict[str, Any]) -> dict[str, Any]:
    (cond,) = status["conditions"]
    assert isinstance(cond, dict)
    return cond


# --- outcomes ----------------------------------------------------------------------


def test_invalid() -> None:
    assert st_.invalid("cidr 'x' is bad; gateway 'y' is bad") == st_.Outcome(
        False, "InvalidSpec", "invalid spec: cidr 'x' is bad; gateway 'y' is bad"
    )


def test_overlaps() -> None:
    assert st_.overlaps("10.0.0.0/16", "default/old", "10.0.0.0/8") == st_.Outcome(
        False,
        "Overlaps",
        "cidr 10.0.0.0/16 overlaps cidr 10.0.0.0/8 of the older Network default/old; "
        "choose a cidr that does not overlap it (this Network allocates nothing until then)",
    )


@pytest.mark.parametrize(
    ("matching", "allocated", "waiting", "outcome"),
    [
        (3, 3, 0, st_.Outcome(True, "Allocated", "3 of 3 matching nodes have a subnet")),
        (0, 0, 0, st_.Outcome(True, "NoMatchingNodes", "nodeSelector matches no node; nothing to allocate")),
        (
            300,
            255,
            45,
            st_.Outcome(
                False,
                "PoolExhausted",
                "45 of 300 matching nodes wait for a subnet: all 255 usable /24 subnets of 192.168.0.0/16 "
                "are allocated; grow cidr or remove nodes",
            ),
        ),
    ],
)
def test_served(matching: int, allocated: int, waiting: int, outcome: st_.Outcome) -> None:
    assert st_.served(POOL, matching, allocated, waiting) == outcome


# --- build -------------------------------------------------------------------------


def test_build_full_status() -> None:
    status = st_.build(
        generation=4,
        outcome=st_.served(POOL, 2, 2, 0),
        pool=POOL,
        allocated=2,
        waiting=0,
        previous=None,
        now=T0,
    )
    assert status == {
        "observedGeneration": 4,
        "gateway": "192.168.0.1",
        "nodeSubnetPrefix": 24,
        "capacity": "255",
        "allocated": 2,
        "free": "253",
        "waiting": 0,
        "allocations": None,  # clears the per-Node list an older version wrote
        "podCIDRs": None,  # no spec.podCIDRs: counts that were written before are removed
        "podCIDRConflicts": None,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Allocated",
                "message": "2 of 2 matching nodes have a subnet",
                "lastTransitionTime": T0,
                "observedGeneration": 4,
            }
        ],
    }


def test_capacity_and_free_are_decimal_strings_beyond_int64() -> None:
    status = st_.build(
        generation=1,
        outcome=st_.served(BIG, 1, 1, 0),
        pool=BIG,
        allocated=1,
        waiting=0,
        previous=None,
        now=T0,
    )
    assert status["capacity"] == "18446744073709551615"  # 2**64 - 1
    assert status["free"] == "18446744073709551614"
    assert isinstance(status["allocated"], int)


def test_build_without_a_pool() -> None:
    status = st_.build(
        generation=2,
        outcome=st_.invalid("cidr 'x' is bad"),
        pool=None,
        allocated=1,  # what nodes still carry
        waiting=0,
        previous=None,
        now=T0,
    )
    assert status["gateway"] is None
    assert status["nodeSubnetPrefix"] is None
    assert status["capacity"] is None
    assert status["free"] is None
    assert status["allocated"] == 1
    assert ready(status)["status"] == "False"
    assert ready(status)["reason"] == "InvalidSpec"


def build(
    outcome: st_.Outcome, previous: dict[str, Any] | None, now: str, generation: int = 1, count: int = 3
) -> dict[str, Any]:
    waiting = 5 if outcome.reason == "PoolExhausted" else 0
    return st_.build(
        generation=generation,
        outcome=outcome,
        pool=POOL,
        allocated=count,
        waiting=waiting,
        previous=previous,
        now=now,
    )


ALLOCATED = st_.served(POOL, 3, 3, 0)
ALLOCATED_4 = st_.served(POOL, 4, 4, 0)
NO_NODES = st_.served(POOL, 0, 0, 0)
EXHAUSTED = st_.served(POOL, 260, 255, 5)
INVALID = st_.invalid("gateway 10.1.0.1 is outside cidr 10.0.0.0/16")
INVALID_OTHER = st_.invalid("reserved[0] 'x' is not an IP address or CIDR prefix")
OVERLAPS = st_.overlaps("192.168.0.0/16", "default/old", "192.168.0.0/8")


@pytest.mark.parametrize(
    ("before", "after", "kept"),
    [
        (ALLOCATED, ALLOCATED_4, True),  # still True
        (ALLOCATED, NO_NODES, True),  # True, other reason
        (INVALID, EXHAUSTED, True),  # still False, other reason
        (INVALID, INVALID_OTHER, True),
        (OVERLAPS, INVALID, True),
        (ALLOCATED, EXHAUSTED, False),  # flips
        (EXHAUSTED, ALLOCATED, False),
        (INVALID, NO_NODES, False),
    ],
)
def test_last_transition_time_moves_only_when_the_status_flips(
    before: st_.Outcome, after: st_.Outcome, kept: bool
) -> None:
    first = build(before, None, T0)
    second = build(after, first, T1, generation=2)
    assert ready(first)["lastTransitionTime"] == T0
    assert ready(second)["lastTransitionTime"] == (T0 if kept else T1)
    assert ready(second)["observedGeneration"] == 2
    third = build(after, second, T2, generation=2)
    assert ready(third)["lastTransitionTime"] == ready(second)["lastTransitionTime"]


def test_previous_condition_without_a_time_gets_now() -> None:
    previous = {"conditions": [{"type": "Ready", "status": "True", "reason": "Allocated"}]}
    assert ready(build(ALLOCATED, previous, T1))["lastTransitionTime"] == T1


def test_other_condition_types_are_not_mistaken_for_ready() -> None:
    previous = {"conditions": ["junk", {"type": "Progressing", "status": "True", "lastTransitionTime": T0}]}
    assert ready(build(ALLOCATED, previous, T1))["lastTransitionTime"] == T1


# --- same --------------------------------------------------------------------------


def test_same_treats_none_as_missing() -> None:
    assert st_.same({"a": 1, "b": None}, {"a": 1})
    assert st_.same(None, {})
    assert st_.same(None, {"gateway": None})
    assert not st_.same({"a": 1}, {"a": 2})
    assert not st_.same({"a": 1}, {})
    assert not st_.same({"a": 0}, {})  # falsy is not None


def test_same_compares_whole_statuses() -> None:
    a = build(ALLOCATED, None, T0)
    assert st_.same(a, build(ALLOCATED, None, T0))
    assert not st_.same(a, build(ALLOCATED, None, T1))
    assert not st_.same(a, build(ALLOCATED_4, None, T0, count=4))


# --- events ------------------------------------------------------------------------

SYNCED_3 = ("Normal", "Synced", "Network synced successfully: 3 of 3 matching nodes have a subnet")


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        # warnings on the way into a bad state
        (None, INVALID, ("Warning", "InvalidSpec", INVALID.message)),
        (ALLOCATED, INVALID, ("Warning", "InvalidSpec", INVALID.message)),
        (ALLOCATED, OVERLAPS, ("Warning", "Overlaps", OVERLAPS.message)),
        (ALLOCATED, EXHAUSTED, ("Warning", "PoolExhausted", EXHAUSTED.message)),
        (ALLOCATED, NO_NODES, ("Warning", "NoMatchingNodes", NO_NODES.message)),
        (None, NO_NODES, ("Warning", "NoMatchingNodes", NO_NODES.message)),
        (INVALID, OVERLAPS, ("Warning", "Overlaps", OVERLAPS.message)),
        (OVERLAPS, EXHAUSTED, ("Warning", "PoolExhausted", EXHAUSTED.message)),
        # ... and not again while it lasts
        (INVALID, INVALID, None),
        (INVALID, INVALID_OTHER, None),
        (OVERLAPS, OVERLAPS, None),
        (EXHAUSTED, EXHAUSTED, None),
        (NO_NODES, NO_NODES, None),
        # Normal Synced when it becomes Ready
        (None, ALLOCATED, SYNCED_3),
        (INVALID, ALLOCATED, SYNCED_3),
        (OVERLAPS, ALLOCATED, SYNCED_3),
        (EXHAUSTED, ALLOCATED, SYNCED_3),
        (NO_NODES, ALLOCATED, SYNCED_3),
        # nothing when only the counts change
        (ALLOCATED, ALLOCATED, None),
        (ALLOCATED, ALLOCATED_4, None),
    ],
)
def test_event_for_transitions(
    before: st_.Outcome | None, after: st_.Outcome, event: tuple[str, str, str] | None
) -> None:
    previous = build(before, None, T0) if before is not None else None
    current = build(after, previous, T1, count=4 if after is ALLOCATED_4 else 3)
    assert st_.event_for(previous, current) == event


def test_synced_again_after_a_spec_change_while_ready() -> None:
    previous = build(ALLOCATED, None, T0, generation=1)
    current = build(ALLOCATED, previous, T1, generation=2)
    assert st_.event_for(previous, current) == SYNCED_3


def test_spec_edited_from_one_mistake_to_another_warns_again() -> None:
    previous = build(INVALID, None, T0, generation=1)
    current = build(INVALID_OTHER, previous, T1, generation=2)
    assert st_.event_for(previous, current) == ("Warning", "InvalidSpec", INVALID_OTHER.message)
    # ...but a resync with the same generation does not, even if the words changed.
    assert st_.event_for(previous, build(INVALID_OTHER, previous, T1, generation=1)) is None


def test_spec_change_in_a_bad_state_with_the_same_message_posts_nothing_new() -> None:
    previous = build(EXHAUSTED, None, T0, generation=1)
    current = build(EXHAUSTED, previous, T1, generation=2)
    assert st_.event_for(previous, current) is None
    previous = build(NO_NODES, None, T0, generation=1)
    current = build(NO_NODES, previous, T1, generation=2)
    assert st_.event_for(previous, current) is None


def test_synced_counts_waiting_nodes_as_matching() -> None:
    current = st_.build(generation=1, outcome=ALLOCATED, pool=POOL, allocated=7, waiting=0, previous=None, now=T0)
    assert st_.event_for({}, current) == (
        "Normal",
        "Synced",
        "Network synced successfully: 7 of 7 matching nodes have a subnet",
    )


def test_no_event_without_a_ready_condition() -> None:
    assert st_.event_for(None, {"observedGeneration": 1}) is None
    assert st_.event_for(None, {"conditions": []}) is None


def test_empty_previous_status_counts_as_a_transition() -> None:
    # A new Network has no status at all.
    assert st_.event_for({}, build(ALLOCATED, {}, T0)) == SYNCED_3
    assert st_.event_for({}, build(INVALID, {}, T0)) == ("Warning", "InvalidSpec", INVALID.message)


OUTCOMES = [ALLOCATED, ALLOCATED_4, NO_NODES, EXHAUSTED, INVALID, INVALID_OTHER, OVERLAPS]


@given(st.lists(st.tuples(st.sampled_from(OUTCOMES), st.integers(1, 3)), min_size=1, max_size=8))
def test_event_sequences(steps: list[tuple[st_.Outcome, int]]) -> None:
    previous: dict[str, Any] | None = None
    for outcome, generation in steps:
        current = build(outcome, previous, T1, generation=generation)
        event = st_.event_for(previous, current)
        old = ready(previous) if previous else None
        flipped = old is None or (old["status"], old["reason"]) != (ready(current)["status"], outcome.reason)
        respec = previous is None or previous["observedGeneration"] != generation
        if outcome.reason in st_.WARNING_REASONS:
            reworded = respec and old is not None and old["message"] != outcome.message
            assert event == (("Warning", outcome.reason, outcome.message) if flipped or reworded else None)
        elif flipped or respec:
            assert event is not None
            assert event[:2] == ("Normal", "Synced")
        else:
            assert event is None
        # the same status seen twice never posts anything
        assert st_.event_for(current, current) is None
        previous = current


# --- the PodCIDRs condition ----------------------------------------------------------


def with_pod_cidrs(pod: st_.PodCidrs, previous: dict[str, Any] | None, now: str, generation: int = 1) -> dict[str, Any]:
    return st_.build(
        generation=generation,
        outcome=ALLOCATED,
        pool=POOL,
        allocated=3,
        waiting=0,
        previous=previous,
        now=now,
        pod_cidrs=pod,
    )


def pod_condition(status: dict[str, Any]) -> dict[str, Any]:
    return dict(st_.ready_condition(status, "PodCIDRs") or {})


WRITTEN = st_.pod_cidrs_written(4, 3, 3)
OLDER = st_.pod_cidrs_older(4, "ns/first")
CONFLICT_1 = st_.pod_cidrs_conflicts(2, 1, "node a has podCIDR 10.9.0.0/24, outside 192.168.0.0/16")
CONFLICT_2 = st_.pod_cidrs_conflicts(2, 2, "node a has podCIDR 10.9.0.0/24, outside 192.168.0.0/16; node b ...")


def test_pod_cidrs_outcomes_and_counts() -> None:
    assert WRITTEN.outcome == st_.Outcome(True, "Written", "3 of 3 nodes with a subnet have it as their IPv4 podCIDR")
    assert (WRITTEN.written, WRITTEN.conflicts) == (3, 0)
    assert OLDER.outcome == st_.Outcome(
        False,
        "OlderNetwork",
        "the older Network ns/first writes the IPv4 podCIDRs and only one Network per IP family may; "
        "this Network writes none",
    )
    assert (OLDER.written, OLDER.conflicts) == (0, 0)
    assert CONFLICT_1.outcome.message == (
        "1 matching nodes have podCIDRs this Network cannot write and get no subnet from it "
        "(a podCIDR never changes once set): node a has podCIDR 10.9.0.0/24, outside 192.168.0.0/16"
    )
    status = with_pod_cidrs(CONFLICT_1, None, T0)
    assert (status["podCIDRs"], status["podCIDRConflicts"]) == (2, 1)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "PodCIDRs"]
    assert pod_condition(status) | {"message": ""} == {
        "type": "PodCIDRs",
        "status": "False",
        "reason": "Conflicts",
        "message": "",
        "lastTransitionTime": T0,
        "observedGeneration": 1,
    }


def test_pod_cidrs_condition_keeps_its_own_transition_time() -> None:
    first = with_pod_cidrs(WRITTEN, None, T0)
    second = with_pod_cidrs(st_.pod_cidrs_written(4, 4, 4), first, T1)
    assert pod_condition(second)["lastTransitionTime"] == T0
    third = with_pod_cidrs(CONFLICT_1, second, T2)
    assert pod_condition(third)["lastTransitionTime"] == T2
    assert st_.ready_condition(third)["lastTransitionTime"] == T0  # type: ignore[index]  # Ready did not flip


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (None, WRITTEN, None),
        (WRITTEN, WRITTEN, None),
        (None, OLDER, ("Warning", "OlderNetwork", OLDER.outcome.message)),
        (OLDER, OLDER, None),
        (WRITTEN, CONFLICT_1, ("Warning", "Conflicts", CONFLICT_1.outcome.message)),
        (CONFLICT_1, CONFLICT_1, None),
        # Each Node more that conflicts is worth a word; one fewer is not.
        (CONFLICT_1, CONFLICT_2, ("Warning", "Conflicts", CONFLICT_2.outcome.message)),
        (CONFLICT_2, CONFLICT_1, None),
        (CONFLICT_1, WRITTEN, None),
    ],
)
def test_pod_cidrs_event(before: st_.PodCidrs | None, after: st_.PodCidrs, event: tuple[str, str, str] | None) -> None:
    previous = with_pod_cidrs(before, None, T0) if before else build(ALLOCATED, None, T0)
    assert st_.pod_cidrs_event(previous, with_pod_cidrs(after, previous, T1)) == event


def test_without_pod_cidrs_there_is_no_condition_and_no_event() -> None:
    status = build(ALLOCATED, None, T0)
    assert pod_condition(status) == {}
    assert (status["podCIDRs"], status["podCIDRConflicts"]) == (None, None)
    assert st_.pod_cidrs_event(with_pod_cidrs(CONFLICT_1, None, T0), status) is None
