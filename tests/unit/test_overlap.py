"""Overlap between pools: the oldest claim on an address wins."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.overlap import Claim, older_overlap


def claim(created: str, ref: str, cidr: str) -> Claim:
    return Claim(created, ref, ipaddress.ip_network(cidr))


T1 = "2024-01-01T00:00:00Z"
T2 = "2024-01-02T00:00:00Z"
T3 = "2024-06-30T23:59:59Z"


def test_older_overlapping_claim_wins() -> None:
    old = claim(T1, "default/old", "10.0.0.0/16")
    new = claim(T2, "default/new", "10.0.128.0/17")
    assert older_overlap(new, [old]) == old
    assert older_overlap(old, [new]) is None


def test_same_creation_time_falls_back_to_namespace_and_name() -> None:
    a = claim(T1, "default/a", "10.0.0.0/16")
    b = claim(T1, "default/b", "10.0.0.0/16")
    z = claim(T1, "aaa/z", "10.0.0.0/16")  # namespace sorts first
    assert older_overlap(b, [a]) == a
    assert older_overlap(a, [b]) is None
    assert older_overlap(a, [z]) == z
    assert older_overlap(z, [a, b]) is None


def test_creation_time_beats_name() -> None:
    early = claim(T1, "zzz/zzz", "10.0.0.0/8")
    late = claim(T2, "aaa/aaa", "10.1.0.0/16")
    assert older_overlap(late, [early]) == early
    assert older_overlap(early, [late]) is None


def test_the_oldest_rival_is_reported() -> None:
    me = claim(T3, "default/me", "10.0.0.0/16")
    rivals = [
        claim(T2, "default/b", "10.0.1.0/24"),
        claim(T1, "default/c", "10.0.0.0/8"),
        claim(T1, "default/a", "10.0.200.0/24"),
        claim(T1, "default/older-but-apart", "10.1.0.0/16"),
    ]
    assert older_overlap(me, rivals) == rivals[2]


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ("10.0.0.0/16", "10.1.0.0/16"),  # neighbours
        ("10.0.0.0/24", "10.0.1.0/24"),
        ("10.0.0.0/8", "::/0"),  # other family, even the whole IPv6 space
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),  # IPv4-mapped IPv6 is still IPv6
        ("2001:db8::/32", "2001:db9::/32"),
        ("0.0.0.0/0", "2001:db8::/32"),
    ],
)
def test_no_overlap_returns_none(mine: str, theirs: str) -> None:
    me = claim(T2, "default/me", mine)
    assert older_overlap(me, [claim(T1, "default/other", theirs)]) is None


def test_own_claim_is_ignored() -> None:
    # The same Network seen twice (an old copy of itself) is no rival.
    me = claim(T2, "default/me", "10.0.0.0/16")
    assert older_overlap(me, [claim(T1, "default/me", "10.0.0.0/16")]) is None


def test_no_others() -> None:
    assert older_overlap(claim(T1, "default/me", "10.0.0.0/16"), []) is None


@st.composite
def claims(draw: st.DrawFn) -> Claim:
    v4 = draw(st.booleans())
    bits = 32 if v4 else 128
    network_type = ipaddress.IPv4Network if v4 else ipaddress.IPv6Network
    # few distinct prefixes in a small corner of the space, so overlaps are common
    prefix = draw(st.integers(max(0, bits - 8), bits))
    network = network_type((draw(st.integers(0, 255)), prefix), strict=False)
    created = draw(st.sampled_from([T1, T2, T3]))
    ref = draw(st.sampled_from(["default/a", "default/b", "other/a", "x/y"]))
    return Claim(created, ref, network)


@given(st.lists(claims(), max_size=8), claims())
def test_properties(others: list[Claim], me: Claim) -> None:
    rival = older_overlap(me, others)
    candidates = [
        o
        for o in others
        if o.ref != me.ref
        and o.network.version == me.network.version
        and int(o.network.network_address) <= int(me.network.broadcast_address)
        and int(me.network.network_address) <= int(o.network.broadcast_address)
        and (o.created, o.ref) < (me.created, me.ref)
    ]
    if not candidates:
        assert rival is None
        return
    assert rival is not None
    assert rival in candidates
    assert all((rival.created, rival.ref) <= (c.created, c.ref) for c in candidates)


@given(claims(), claims())
def test_of_two_overlapping_networks_exactly_one_yields(a: Claim, b: Claim) -> None:
    if a.ref == b.ref or a.network.version != b.network.version or not a.network.overlaps(b.network):
        assert older_overlap(a, [b]) is None
        assert older_overlap(b, [a]) is None
        return
    blocked = [older_overlap(a, [b]) is not None, older_overlap(b, [a]) is not None]
    assert blocked.count(True) == 1
