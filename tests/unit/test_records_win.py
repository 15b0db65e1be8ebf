"""The records are the truth: what Node annotations carry without a record
behind them is not free in a round, except a subnet one of the Network's own
records holds, which its Node keeps whatever another Node's annotation says."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.allocator import not_free, plan
from netpool.pool import IPNetwork, Pool

POOL = Pool(ipaddress.ip_network("10.0.0.0/24"), 28, ipaddress.ip_address("10.0.0.1"), ())  # 15 usable /28s
USABLE = [POOL.subnet(n) for n in range(1, 16)]  # number 0 holds the gateway
NODES = [f"n{i}" for i in range(8)]


def net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


@pytest.mark.parametrize(
    ("carried", "recorded", "expected"),
    [
        ([], [], []),
        (["10.0.0.16/28"], [], ["10.0.0.16/28"]),  # a Node still carries it: nobody else gets it yet
        (["10.0.0.16/28"], ["10.0.0.16/28"], []),  # a copy of a recorded subnet: its owner keeps it
        (["10.0.0.16/28", None, "10.0.0.32/28"], ["10.0.0.32/28"], ["10.0.0.16/28"]),  # None: garbage
        (["10.0.0.16/28", "10.0.0.16/28"], ["10.0.0.48/28"], ["10.0.0.16/28", "10.0.0.16/28"]),
    ],
)
def test_not_free(carried: list[str | None], recorded: list[str], expected: list[str]) -> None:
    found = not_free([net(c) if c else None for c in carried], {net(r) for r in recorded})
    assert [str(s) for s in found] == expected


def round_of(records: Mapping[str, IPNetwork], annotated: Mapping[str, IPNetwork | None]) -> dict[str, IPNetwork]:
    """One Network's round as controller/sync.py composes it: records first,
    then annotations of Nodes without one; what Nodes carry that is not their
    holding is taken unless a record holds it."""
    held: dict[str, IPNetwork | None] = dict(records)
    for node, subnet in annotated.items():
        held.setdefault(node, subnet)
    unrecorded = [s for n, s in annotated.items() if s is not None and held.get(n) != s]
    taken = not_free(unrecorded, set(records.values()))
    return plan(POOL, NODES, held, dict(records), taken).allocations


def test_a_copied_annotation_moves_the_copier_back_and_leaves_the_owner() -> None:
    # The issue's case: n1's value copied onto n0 (which has its own record),
    # n2's annotation deleted, n3's garbled.
    records = {"n0": USABLE[0], "n1": USABLE[5], "n2": USABLE[1], "n3": USABLE[2]}
    annotated = {"n0": USABLE[5], "n1": USABLE[5], "n3": None}
    allocations = round_of(records, annotated)
    assert {n: allocations[n] for n in records} == records
    # Without the exemption the copied value would be taken, and the owner moved.
    unrecorded = [USABLE[5]]
    held: dict[str, IPNetwork | None] = dict(records)
    moved = plan(POOL, NODES, held, dict(records), unrecorded).allocations
    assert moved["n1"] != records["n1"]


@st.composite
def edited(draw: st.DrawFn) -> tuple[dict[str, IPNetwork], dict[str, IPNetwork | None]]:
    """Records for some Nodes (distinct subnets), and annotations as hand edits
    leave them: the Node's own, another Node's copied, garbage, missing, any subnet."""
    holders = draw(st.lists(st.sampled_from(NODES), unique=True, max_size=len(NODES)))
    subnets = draw(st.lists(st.sampled_from(USABLE), unique=True, min_size=len(holders), max_size=len(holders)))
    records = dict(zip(holders, subnets, strict=True))
    annotated: dict[str, IPNetwork | None] = {}
    for node in NODES:
        choice = draw(st.sampled_from(["own", "copy", "garbage", "missing", "any"]))
        if choice == "own" and node in records:
            annotated[node] = records[node]
        elif choice == "copy" and records:
            annotated[node] = draw(st.sampled_from(sorted(records.values())))
        elif choice == "garbage":
            annotated[node] = None
        elif choice == "any":
            annotated[node] = draw(st.sampled_from(USABLE))
    return records, annotated


@given(edited())
def test_every_recorded_node_keeps_its_subnet_whatever_the_annotations_say(
    case: tuple[dict[str, IPNetwork], dict[str, IPNetwork | None]],
) -> None:
    records, annotated = case
    allocations = round_of(records, annotated)
    assert {n: allocations[n] for n in records} == records
    assert len(set(allocations.values())) == len(allocations)  # no subnet twice
    assert len(allocations) == len(NODES)  # 15 subnets: room for all
