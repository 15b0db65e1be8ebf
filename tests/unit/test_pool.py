"""Pool arithmetic and the interval helpers it is built on."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.pool import Interval, IPAddress, IPNetwork, Pool, covered, gaps, merge


def net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def addr(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def numbers_in(intervals: list[Interval]) -> set[int]:
    return {n for lo, hi in intervals for n in range(lo, hi + 1)}


# --- merge / covered / gaps ----------------------------------------------------

small_intervals = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
)


@pytest.mark.parametrize(
    ("intervals", "merged"),
    [
        ([], []),
        ([(3, 3)], [(3, 3)]),
        ([(5, 6), (1, 2)], [(1, 2), (5, 6)]),
        ([(1, 2), (3, 4)], [(1, 4)]),  # touching intervals merge
        ([(1, 2), (4, 5)], [(1, 2), (4, 5)]),  # a one-number gap keeps them apart
        ([(1, 5), (2, 3)], [(1, 5)]),  # contained
        ([(1, 3), (2, 8), (10, 10), (9, 9)], [(1, 10)]),
        ([(7, 7), (7, 7)], [(7, 7)]),
        ([(0, 2**128), (5, 2**64)], [(0, 2**128)]),
    ],
)
def test_merge_table(intervals: list[Interval], merged: list[Interval]) -> None:
    assert merge(intervals) == merged


@given(small_intervals)
def test_merge_keeps_the_same_numbers_in_sorted_separate_intervals(intervals: list[Interval]) -> None:
    merged = merge(intervals)
    assert numbers_in(merged) == numbers_in(intervals)
    for (_, hi), (lo, _) in itertools.pairwise(merged):
        assert hi + 1 < lo  # sorted, disjoint and not even touching
    assert all(lo <= hi for lo, hi in merged)


@given(small_intervals)
def test_covered_counts_distinct_numbers(intervals: list[Interval]) -> None:
    assert covered(intervals) == len(numbers_in(intervals))


@pytest.mark.parametrize(
    ("blocked", "total", "expected"),
    [
        ([], 0, []),
        ([], 4, [0, 1, 2, 3]),
        ([(0, 0)], 4, [1, 2, 3]),
        ([(1, 2)], 5, [0, 3, 4]),
        ([(0, 1), (3, 3)], 5, [2, 4]),
        ([(2, 100)], 5, [0, 1]),  # a blocked interval reaching past the end
        ([(0, 4)], 5, []),
    ],
)
def test_gaps_table(blocked: list[Interval], total: int, expected: list[int]) -> None:
    assert list(gaps(blocked, total)) == expected


@given(small_intervals, st.integers(0, 80))
def test_gaps_yields_every_unblocked_number_in_order(intervals: list[Interval], total: int) -> None:
    blocked = numbers_in(intervals)
    assert list(gaps(merge(intervals), total)) == [n for n in range(total) if n not in blocked]


def test_gaps_is_lazy_over_huge_ranges() -> None:
    free = gaps([(0, 2**100), (2**100 + 2, 2**127)], 2**128)
    assert next(free) == 2**100 + 1
    assert next(free) == 2**127 + 1


# --- Pool: totals and capacity -------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "prefix", "gateway", "reserved", "total", "capacity"),
    [
        ("192.168.0.0/16", 24, "192.168.0.1", (), 256, 255),
        ("0.0.0.0/0", 32, "0.0.0.1", (), 2**32, 2**32 - 1),
        ("10.0.0.5/32", 32, "10.0.0.5", (), 1, 0),
        ("10.0.0.0/8", 8, "10.0.0.1", (), 1, 0),
        ("10.0.0.0/30", 32, "10.0.0.1", (), 4, 3),
        ("::/0", 128, "::1", (), 2**128, 2**128 - 1),
        ("::/64", 128, "::1", (), 2**64, 2**64 - 1),
        ("2001:db8::/32", 96, "2001:db8::1", (), 2**64, 2**64 - 1),
        ("2001:db8::/32", 64, "2001:db8::1", (), 2**32, 2**32 - 1),
        ("2001:db8::/127", 128, "2001:db8::1", (), 2, 1),
        # reserved ranges: the gateway's own subnet counts once; a /22 blocks four /24s
        ("10.0.0.0/16", 24, "10.0.0.1", ("10.0.0.0/24", "10.0.255.255/32", "10.0.4.0/22"), 256, 250),
        # overlapping reserved ranges are not counted twice
        ("10.0.0.0/16", 24, "10.0.0.1", ("10.0.8.0/21", "10.0.12.0/22", "10.0.15.7/32"), 256, 247),
        # a reserved range smaller than a subnet blocks the whole subnet
        ("10.0.0.0/16", 24, "10.0.0.1", ("10.0.7.128/25",), 256, 254),
        ("2001:db8::/32", 64, "2001:db8::1", ("2001:db8::/48",), 2**32, 2**32 - 2**16),
        ("2001:db8::/32", 96, "2001:db8::1", ("2001:db8:1::/48",), 2**64, 2**64 - 2**48 - 1),
    ],
)
def test_total_and_capacity(
    cidr: str, prefix: int, gateway: str, reserved: tuple[str, ...], total: int, capacity: int
) -> None:
    pool = Pool(net(cidr), prefix, addr(gateway), tuple(net(r) for r in reserved))
    assert pool.total == total
    assert pool.capacity == capacity


@st.composite
def small_pools(draw: st.DrawFn) -> Pool:
    """Pools of at most 64 subnets, any family, with reserved ranges anywhere inside."""
    v4 = draw(st.booleans())
    bits = 32 if v4 else 128
    address_type = ipaddress.IPv4Address if v4 else ipaddress.IPv6Address
    network_type = ipaddress.IPv4Network if v4 else ipaddress.IPv6Network
    prefix = draw(st.integers(0, bits))
    subnet_prefix = prefix + draw(st.integers(0, min(6, bits - prefix)))
    network = network_type((draw(st.integers(0, 2**bits - 1)), prefix), strict=False)
    size = network.num_addresses
    base = int(network.network_address)
    gateway = address_type(base + draw(st.integers(0, size - 1)))
    reserved: list[IPNetwork] = []
    for _ in range(draw(st.integers(0, 3))):
        length = draw(st.integers(prefix, bits))
        start = base + draw(st.integers(0, size - 1))
        reserved.append(network_type((start, length), strict=False))
    return Pool(network, subnet_prefix, gateway, tuple(reserved))


def brute_force_usable(pool: Pool) -> list[int]:
    """Numbers of the subnets that hold neither the gateway nor any reserved address."""
    host_bits = pool.network.max_prefixlen - pool.subnet_prefix
    base = int(pool.network.network_address)
    network_type = type(pool.network)
    usable = []
    for n in range(pool.total):
        subnet = network_type((base + (n << host_bits), pool.subnet_prefix))
        if pool.gateway in subnet or any(subnet.overlaps(r) for r in pool.reserved):
            continue
        usable.append(n)
    return usable


@given(small_pools())
def test_capacity_matches_brute_force(pool: Pool) -> None:
    assert pool.capacity == len(brute_force_usable(pool))
    blocked = numbers_in(pool.blocked())
    assert sorted(set(range(pool.total)) - blocked) == brute_force_usable(pool)


# --- Pool: subnet numbering ----------------------------------------------------


@given(small_pools(), st.data())
def test_subnet_and_number_are_inverse(pool: Pool, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, pool.total - 1))
    subnet = pool.subnet(n)
    assert subnet.prefixlen == pool.subnet_prefix
    assert subnet.subnet_of(pool.network)  # type: ignore[arg-type]
    host_bits = pool.network.max_prefixlen - pool.subnet_prefix
    assert int(subnet.network_address) == int(pool.network.network_address) + (n << host_bits)
    assert pool.number(subnet) == n


@pytest.mark.parametrize("number", [-1, 256, 2**40])
def test_subnet_out_of_range(number: int) -> None:
    pool = Pool(net("10.0.0.0/16"), 24, addr("10.0.0.1"))
    with pytest.raises(IndexError):
        pool.subnet(number)


def test_subnet_at_the_ends_of_a_huge_pool() -> None:
    pool = Pool(net("::/0"), 128, addr("::1"))
    assert pool.subnet(0) == net("::/128")
    assert pool.subnet(2**128 - 1) == net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
    assert pool.number(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")) == 2**128 - 1


@pytest.mark.parametrize(
    ("cidr", "prefix", "first"),
    [
        ("::/0", 16, "::/16"),
        ("::/0", 32, "::/32"),
        ("::/8", 8, "::/8"),
        ("::/96", 128, "::/128"),
        ("0.0.0.0/0", 16, "0.0.0.0/16"),
    ],
)
def test_first_subnet_keeps_the_pools_family(cidr: str, prefix: int, first: str) -> None:
    # Low IPv6 addresses are small integers: they must not come back as IPv4 subnets.
    pool = Pool(net(cidr), prefix, addr("8000::1") if ":" in cidr else addr("128.0.0.1"))
    subnet = pool.subnet(0)
    assert subnet == net(first)
    assert subnet.version == pool.network.version
    assert pool.number(subnet) == 0


@pytest.mark.parametrize(
    ("subnet", "number"),
    [
        ("10.0.0.0/24", 0),
        ("10.0.7.0/24", 7),
        ("10.0.255.0/24", 255),
        ("10.0.7.0/25", None),  # wrong prefix length
        ("10.0.0.0/16", None),  # the whole pool
        ("10.0.0.0/8", None),  # contains the pool
        ("10.1.0.0/24", None),  # outside
        ("9.255.255.0/24", None),  # just below
        ("::a00:700/120", None),  # other family, same bits
        ("2001:db8::/32", None),
    ],
)
def test_number_accepts_only_the_pools_own_subnets(subnet: str, number: int | None) -> None:
    pool = Pool(net("10.0.0.0/16"), 24, addr("10.0.0.1"))
    assert pool.number(net(subnet)) == number


@pytest.mark.parametrize(
    ("other", "span"),
    [
        ("10.0.0.1/32", (0, 0)),
        ("10.0.3.0/24", (3, 3)),
        ("10.0.3.128/25", (3, 3)),
        ("10.0.4.0/22", (4, 7)),
        ("10.0.0.0/16", (0, 255)),
        ("10.0.0.0/8", (0, 255)),  # larger than the pool: clipped to it
        ("0.0.0.0/0", (0, 255)),
        ("10.1.0.0/24", None),
        ("9.0.0.0/8", None),
        ("::/0", None),  # other family
        ("::a00:0/112", None),
    ],
)
def test_span(other: str, span: Interval | None) -> None:
    pool = Pool(net("10.0.0.0/16"), 24, addr("10.0.0.1"))
    assert pool.span(net(other)) == span


def test_blocked_lists_gateway_and_reserved_subnets_merged() -> None:
    pool = Pool(
        net("10.0.0.0/16"),
        24,
        addr("10.0.9.1"),
        (net("10.0.10.0/24"), net("10.0.200.0/21"), net("10.0.203.3/32"), net("10.0.0.0/25")),
    )
    assert pool.blocked() == [(0, 0), (9, 10), (200, 207)]
