"""The allocator: examples, a reference model on small pools, invariants on any pool."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from netpool.allocator import Plan, parse_subnet, plan
from netpool.pool import IPNetwork, Pool


def net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def pool_of(cidr: str, prefix: int, gateway: str | None = None, reserved: Iterable[str] = ()) -> Pool:
    network = net(cidr)
    gw = ipaddress.ip_address(gateway) if gateway else network.network_address + 1
    return Pool(network, prefix, gw, tuple(net(r) for r in reserved))


def subnets(allocations: Mapping[str, IPNetwork]) -> dict[str, str]:
    return {node: str(subnet) for node, subnet in allocations.items()}


# --- parse_subnet ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.1.0/24", "10.0.1.0/24"),
        ("2001:db8::/64", "2001:db8::/64"),
        ("10.0.1.5/24", None),  # host bits set: not something this operator wrote
        ("10.0.1.0", "10.0.1.0/32"),
        ("garbage", None),
        ("10.0.1.0/33", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_subnet(text: str | None, expected: str | None) -> None:
    parsed = parse_subnet(text)
    assert (str(parsed) if parsed is not None else None) == expected


# --- examples --------------------------------------------------------------------


def test_seed_example_allocates_lowest_free_subnets_in_name_order() -> None:
    pool = pool_of("192.168.0.0/16", 24, "192.168.0.1")
    result = plan(pool, ["node-b", "node-a", "node-c"], {})
    assert subnets(result.allocations) == {
        "node-a": "192.168.1.0/24",  # 192.168.0.0/24 holds the gateway
        "node-b": "192.168.2.0/24",
        "node-c": "192.168.3.0/24",
    }
    assert result.waiting == ()


def test_newcomers_are_served_in_join_order_then_by_name() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    joined = {"c": "2026-01-01T00:00:01Z", "b": "2026-01-01T00:00:02Z", "a": "2026-01-01T00:00:02Z"}
    result = plan(pool, ["a", "b", "c", "d"], {}, joined=joined)
    # d's join time is unknown: first; a and b joined in the same second: by name.
    assert subnets(result.allocations) == {
        "d": "10.0.1.0/24",
        "c": "10.0.2.0/24",
        "a": "10.0.3.0/24",
        "b": "10.0.4.0/24",
    }


def test_a_writer_that_knows_a_later_joiner_plans_the_same_for_the_others() -> None:
    """Two writers: one has seen n1 join, the other not yet. By name n1 comes
    first and moves n2 and n3, so the two would create different records for
    them; in join order n1 comes last and moves nothing."""
    pool = pool_of("10.0.0.0/16", 24)
    joined = {"n2": "2026-01-01T00:00:01Z", "n3": "2026-01-01T00:00:02Z", "n1": "2026-01-01T00:00:03Z"}
    by_name = plan(pool, ["n2", "n3"], {}), plan(pool, ["n1", "n2", "n3"], {})
    assert by_name[0].allocations["n2"] != by_name[1].allocations["n2"]
    by_joins = plan(pool, ["n2", "n3"], {}, joined=joined), plan(pool, ["n1", "n2", "n3"], {}, joined=joined)
    assert subnets(by_joins[0].allocations) == {"n2": "10.0.1.0/24", "n3": "10.0.2.0/24"}
    assert subnets(by_joins[1].allocations) == {"n2": "10.0.1.0/24", "n3": "10.0.2.0/24", "n1": "10.0.3.0/24"}


def test_duplicate_wanted_names_count_once() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    result = plan(pool, ["a", "a", "b", "a"], {})
    assert subnets(result.allocations) == {"a": "10.0.1.0/24", "b": "10.0.2.0/24"}


def test_held_subnet_is_kept_even_if_a_lower_one_is_free() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    result = plan(pool, ["a", "b"], {"a": net("10.0.200.0/24")})
    assert subnets(result.allocations) == {"a": "10.0.200.0/24", "b": "10.0.1.0/24"}


def test_exhausted_pool_leaves_the_last_names_waiting() -> None:
    pool = pool_of("10.0.0.0/22", 24)  # 4 subnets, one holds the gateway
    result = plan(pool, ["d", "c", "b", "a", "e"], {})
    assert subnets(result.allocations) == {"a": "10.0.1.0/24", "b": "10.0.2.0/24", "c": "10.0.3.0/24"}
    assert result.waiting == ("d", "e")


def test_waiting_nodes_keep_their_place_behind_holders() -> None:
    # "z" holds a subnet, so it keeps it even though "a".."c" come first by name.
    pool = pool_of("10.0.0.0/22", 24)
    result = plan(pool, ["a", "b", "c", "z"], {"z": net("10.0.3.0/24")})
    assert subnets(result.allocations) == {"z": "10.0.3.0/24", "a": "10.0.1.0/24", "b": "10.0.2.0/24"}
    assert result.waiting == ("c",)


def test_duplicate_holdings_go_to_the_first_name() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    held = {"b": net("10.0.9.0/24"), "a": net("10.0.9.0/24")}
    result = plan(pool, ["a", "b"], held)
    assert subnets(result.allocations) == {"a": "10.0.9.0/24", "b": "10.0.1.0/24"}


def test_the_holder_the_status_remembers_keeps_a_duplicated_subnet() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    # "b" had 10.0.9.0/24; someone copied its annotation onto "a" (earlier name).
    held = {"a": net("10.0.9.0/24"), "b": net("10.0.9.0/24")}
    result = plan(pool, ["a", "b"], held, {"b": net("10.0.9.0/24")})
    assert subnets(result.allocations) == {"a": "10.0.1.0/24", "b": "10.0.9.0/24"}


def test_holdings_beat_memories() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    # "a" remembers what "b" carries now: "b" keeps it, "a" gets a fresh one.
    result = plan(pool, ["a", "b"], {"b": net("10.0.5.0/24")}, {"a": net("10.0.5.0/24")})
    assert subnets(result.allocations) == {"a": "10.0.1.0/24", "b": "10.0.5.0/24"}


def test_garbage_annotation_gets_the_remembered_subnet_back() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    held = {"a": parse_subnet("garbage"), "b": net("10.0.7.0/25"), "c": net("10.9.0.0/24")}
    remembered = {"a": net("10.0.40.0/24"), "b": net("10.0.41.0/24"), "c": net("10.0.42.0/24")}
    result = plan(pool, ["a", "b", "c"], held, remembered)
    assert subnets(result.allocations) == {"a": "10.0.40.0/24", "b": "10.0.41.0/24", "c": "10.0.42.0/24"}


@pytest.mark.parametrize(
    ("held", "reason"),
    [
        ("10.0.0.0/24", "holds the gateway"),
        ("10.0.8.0/24", "reserved"),
        ("10.0.9.0/24", "partly reserved"),
        ("10.0.20.0/24", "taken by another pool"),
        ("10.0.21.0/24", "partly taken by another pool"),
        ("10.0.3.0/25", "wrong prefix length"),
        ("10.0.0.0/16", "the whole pool"),
        ("10.1.3.0/24", "outside the pool"),
        ("2001:db8::/32", "other family"),
    ],
)
def test_unusable_holding_is_replaced(held: str, reason: str) -> None:
    pool = pool_of("10.0.0.0/16", 24, "10.0.0.1", ["10.0.8.0/24", "10.0.9.17"])
    taken = [net("10.0.20.0/24"), net("10.0.21.128/25"), net("2001:db8::/32")]
    result = plan(pool, ["a"], {"a": net(held)}, {"a": net(held)}, taken)
    assert subnets(result.allocations) == {"a": "10.0.1.0/24"}, reason


def test_taken_subnets_are_skipped_when_handing_out() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    taken = [net("10.0.1.0/24"), net("10.0.2.0/23"), net("10.0.5.7/32"), net("10.99.0.0/16")]
    result = plan(pool, ["a", "b", "c"], {}, None, taken)
    assert subnets(result.allocations) == {"a": "10.0.4.0/24", "b": "10.0.6.0/24", "c": "10.0.7.0/24"}


def test_a_taken_supernet_blocks_the_whole_pool() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    result = plan(pool, ["a", "b"], {"a": net("10.0.3.0/24")}, None, [net("10.0.0.0/8")])
    assert result.allocations == {}
    assert result.waiting == ("a", "b")


def test_released_subnet_is_reused_lowest_first() -> None:
    pool = pool_of("10.0.0.0/16", 24)
    first = plan(pool, ["a", "b", "c", "d"], {})
    assert subnets(first.allocations) == {
        "a": "10.0.1.0/24",
        "b": "10.0.2.0/24",
        "c": "10.0.3.0/24",
        "d": "10.0.4.0/24",
    }
    held = {n: s for n, s in first.allocations.items() if n not in ("b", "d")}  # b and d leave
    second = plan(pool, ["a", "c", "x", "y", "z"], held, first.allocations)
    assert subnets(second.allocations) == {
        "a": "10.0.1.0/24",
        "c": "10.0.3.0/24",
        "x": "10.0.2.0/24",  # b's subnet, the lowest free
        "y": "10.0.4.0/24",  # d's subnet
        "z": "10.0.5.0/24",
    }


def test_memories_of_nodes_that_left_do_not_reserve_anything() -> None:
    pool = pool_of("10.0.0.0/22", 24)
    remembered = {"gone": net("10.0.1.0/24")}
    result = plan(pool, ["a"], {}, remembered)
    assert subnets(result.allocations) == {"a": "10.0.1.0/24"}


def test_holdings_of_unwanted_nodes_are_released() -> None:
    pool = pool_of("10.0.0.0/22", 24)
    held = {"old": net("10.0.1.0/24"), "a": net("10.0.2.0/24")}
    result = plan(pool, ["a", "b"], held)
    assert subnets(result.allocations) == {"a": "10.0.2.0/24", "b": "10.0.1.0/24"}


def test_ipv6_example() -> None:
    pool = pool_of("2001:db8::/48", 64, "2001:db8::1", ["2001:db8:0:2::/63"])
    result = plan(pool, ["n1", "n2", "n3"], {"n3": net("2001:db8:0:ffff::/64")})
    assert subnets(result.allocations) == {
        "n1": "2001:db8:0:1::/64",
        "n2": "2001:db8:0:4::/64",
        "n3": "2001:db8:0:ffff::/64",
    }


def test_low_ipv6_pool_hands_out_ipv6_subnets() -> None:
    # Subnet 0 of ::/0 in /16s is ::/16, not 0.0.0.0/16.
    pool = pool_of("::/0", 16, "8000::1")
    result = plan(pool, ["a"], {})
    assert result.allocations == {"a": net("::/16")}
    assert plan(pool, ["a"], result.allocations) == result


# --- huge pools: nothing may enumerate the pool --------------------------------


def test_thousand_nodes_in_a_2_to_the_64_pool() -> None:
    pool = pool_of("2001:db8::/32", 96, "2001:db8::1", ["2001:db8::/80"])  # reserves 2**16 subnets
    assert pool.total == 2**64
    nodes = [f"node-{i:04d}" for i in range(1000)]
    # two holders at the very top of the pool, and a big block taken by another pool
    held = {"node-0500": net("2001:db8:ffff:ffff:ffff:ffff::/96"), "node-0501": net("2001:db8:8000::/96")}
    taken = [net("2001:db8:0:0:1::/80")]
    result = plan(pool, nodes, held, None, taken)
    assert result.waiting == ()
    assert len(result.allocations) == 1000
    assert result.allocations["node-0500"] == net("2001:db8:ffff:ffff:ffff:ffff::/96")
    assert result.allocations["node-0501"] == net("2001:db8:8000::/96")
    # everyone else gets the lowest numbers after the reserved and taken blocks
    others = sorted(n for n in nodes if n not in held)
    expected_first = 2 * 2**16
    for i, node in enumerate(others):
        assert pool.number(result.allocations[node]) == expected_first + i
    assert plan(pool, nodes, result.allocations, None, taken) == result


def test_ipv6_slash_0_in_slash_128() -> None:
    pool = pool_of("::/0", 128, "::1")
    assert pool.total == 2**128
    nodes = [f"n{i:03d}" for i in range(300)]
    held = {"n000": net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), "n001": net("::/128")}
    result = plan(pool, nodes, held)
    assert result.allocations["n000"] == net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
    assert result.allocations["n001"] == net("::/128")
    assert result.allocations["n002"] == net("::2/128")  # ::1 is the gateway
    assert len(set(result.allocations.values())) == 300


def test_ipv4_slash_0_in_slash_32() -> None:
    pool = pool_of("0.0.0.0/0", 32)
    result = plan(pool, ["a", "b", "c"], {"c": net("255.255.255.255/32")})
    assert subnets(result.allocations) == {"a": "0.0.0.0/32", "b": "0.0.0.2/32", "c": "255.255.255.255/32"}


def test_slash_32_pool_in_slash_32_has_nothing_to_give() -> None:
    pool = pool_of("10.0.0.5/32", 32, "10.0.0.5")
    result = plan(pool, ["a", "b"], {"a": net("10.0.0.5/32")})
    assert result.allocations == {}
    assert result.waiting == ("a", "b")


# --- properties ------------------------------------------------------------------


NAMES = [f"n{i:02d}" for i in range(24)]


@st.composite
def pools(draw: st.DrawFn, small: bool = False) -> Pool:
    """A random pool of either family. Often a handful of subnets, so pools fill
    up; unless `small`, often an astronomically large one too."""
    v4 = draw(st.booleans())
    bits = 32 if v4 else 128
    network_type = ipaddress.IPv4Network if v4 else ipaddress.IPv6Network
    address_type = ipaddress.IPv4Address if v4 else ipaddress.IPv6Address
    prefix = draw(st.integers(0, bits))
    room = bits - prefix
    few = st.integers(min(room, 1), min(room, 6))
    subnet_prefix = prefix + draw(few if small else few | few | st.integers(0, room))
    network = network_type((draw(st.integers(0, 2**bits - 1)), prefix), strict=False)
    base, size = int(network.network_address), network.num_addresses
    gateway = address_type(base + draw(st.integers(0, size - 1)))
    reserved: list[IPNetwork] = []
    for _ in range(draw(st.integers(0, 3))):
        length = draw(st.integers(subnet_prefix, bits) | st.integers(prefix, bits))
        reserved.append(network_type((base + draw(st.integers(0, size - 1)), length), strict=False))
    return Pool(network, subnet_prefix, gateway, tuple(reserved))


def any_network(draw: st.DrawFn, v4: bool) -> IPNetwork:
    bits = 32 if v4 else 128
    network_type = ipaddress.IPv4Network if v4 else ipaddress.IPv6Network
    return network_type((draw(st.integers(0, 2**bits - 1)), draw(st.integers(0, bits))), strict=False)


@st.composite
def foreign_subnets(draw: st.DrawFn, pool: Pool) -> IPNetwork:
    """Subnets that other pools hold: inside this one, around it, elsewhere, other family."""
    v4 = pool.network.version == 4
    bits = pool.network.max_prefixlen
    network_type = type(pool.network)
    base, size = int(pool.network.network_address), pool.network.num_addresses
    length = draw(st.integers(pool.subnet_prefix, bits) | st.integers(pool.network.prefixlen, bits))
    inside = network_type((base + draw(st.integers(0, size - 1)), length), strict=False)
    around = pool.network.supernet(new_prefix=draw(st.integers(0, pool.network.prefixlen)))
    return draw(st.sampled_from([inside, inside, around, any_network(draw, v4), any_network(draw, not v4)]))


@st.composite
def holding(draw: st.DrawFn, pool: Pool, taken: list[IPNetwork]) -> IPNetwork | None:
    """What an annotation or a status entry may say: valid, duplicated, or garbage."""
    bits = pool.network.max_prefixlen
    network_type = type(pool.network)
    low = st.integers(0, min(pool.total, 8) - 1)  # low numbers: duplicates are likely
    anywhere = st.integers(0, pool.total - 1)
    choices: list[IPNetwork | None] = [
        None,
        parse_subnet(draw(st.sampled_from(["garbage", "10.0.0.1/24", "{}", ""]))),  # unparsable or misaligned
        pool.subnet(draw(low)),
        pool.subnet(draw(low)),
        pool.subnet(draw(anywhere)),
        pool.subnet(draw(anywhere)),
        any_network(draw, pool.network.version == 4),  # mostly outside, any prefix
        any_network(draw, pool.network.version != 4),  # other family
    ]
    if pool.subnet_prefix < bits:  # wrong size: a longer prefix inside the pool
        inner = pool.subnet(draw(st.integers(0, pool.total - 1)))
        choices.append(network_type((int(inner.network_address), pool.subnet_prefix + 1)))
    if pool.subnet_prefix > pool.network.prefixlen:  # wrong size: a shorter prefix inside the pool
        choices.append(pool.subnet(draw(st.integers(0, pool.total - 1))).supernet())
    if taken:
        choices.append(draw(st.sampled_from(taken)))
    return draw(st.sampled_from(choices))


Scenario = tuple[Pool, list[str], dict[str, IPNetwork | None], dict[str, IPNetwork | None], list[IPNetwork]]


@st.composite
def scenarios(draw: st.DrawFn, small: bool = False) -> Scenario:
    pool = draw(pools(small))
    taken = draw(st.lists(foreign_subnets(pool), max_size=4))
    wanted = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=16) | st.lists(st.sampled_from(NAMES)))
    keys = st.sampled_from(wanted) | st.sampled_from(NAMES) if wanted else st.sampled_from(NAMES)
    held = draw(st.dictionaries(keys, holding(pool, taken), max_size=16))
    remembered = draw(st.dictionaries(keys, holding(pool, taken), max_size=16))
    return pool, wanted, held, remembered, taken


def blocked_numbers_count(pool: Pool, taken: Iterable[IPNetwork]) -> int:
    """How many of the pool's subnets hold the gateway or share an address with a
    reserved or taken range; interval arithmetic on addresses, independent of Pool."""
    host_bits = pool.network.max_prefixlen - pool.subnet_prefix
    first, last = int(pool.network.network_address), int(pool.network.broadcast_address)
    gateway = ipaddress.ip_network(pool.gateway)
    spans = []
    for other in [gateway, *pool.reserved, *taken]:
        lo, hi = max(int(other.network_address), first), min(int(other.broadcast_address), last)
        if other.version == pool.network.version and lo <= hi:
            spans.append(((lo - first) >> host_bits, (hi - first) >> host_bits))
    count, reach = 0, -1
    for lo, hi in sorted(spans):
        if hi > reach:
            count += hi - max(lo, reach + 1) + 1
            reach = hi
    return count


def check_invariants(
    pool: Pool,
    wanted: Iterable[str],
    taken: Iterable[IPNetwork],
    result: Plan,
) -> None:
    taken = list(taken)
    wanted_set = set(wanted)
    handed = list(result.allocations.values())
    # every wanted node is either served or waiting, never both, nobody else
    assert set(result.allocations) | set(result.waiting) == wanted_set
    assert not set(result.allocations) & set(result.waiting)
    assert len(result.allocations) + len(result.waiting) == len(wanted_set)
    assert list(result.waiting) == sorted(set(result.waiting))
    # every subnet is one of the pool's, and none is handed out twice or overlaps another
    for subnet in handed:
        assert subnet.version == pool.network.version
        assert subnet.prefixlen == pool.subnet_prefix
        assert subnet.subnet_of(pool.network)  # type: ignore[arg-type]
        assert pool.gateway not in subnet
        for r in pool.reserved:
            assert not subnet.overlaps(r)
        for t in taken:
            assert t.version != subnet.version or not subnet.overlaps(t)
    ordered = sorted(handed, key=lambda s: int(s.network_address))
    for a, b in itertools.pairwise(ordered):
        assert int(a.broadcast_address) < int(b.network_address)
    # nodes wait only when every usable subnet is given out
    available = pool.total - blocked_numbers_count(pool, taken)
    assert len(result.allocations) == min(len(wanted_set), available)
    if result.waiting:
        assert len(result.allocations) == available


def reference_plan(
    pool: Pool,
    wanted: Iterable[str],
    held: Mapping[str, IPNetwork | None],
    remembered: Mapping[str, IPNetwork | None],
    taken: Iterable[IPNetwork],
) -> Plan:
    """The documented rules, by enumerating every subnet: only for small pools."""
    host_bits = pool.network.max_prefixlen - pool.subnet_prefix
    base = int(pool.network.network_address)
    network_type = type(pool.network)
    blockers = [ipaddress.ip_network(pool.gateway), *pool.reserved, *taken]
    by_subnet = {}
    for n in range(pool.total):
        subnet = network_type((base + (n << host_bits), pool.subnet_prefix))
        if not any(b.version == subnet.version and subnet.overlaps(b) for b in blockers):
            by_subnet[subnet] = n
    order = sorted(set(wanted))
    used: set[int] = set()
    numbers: dict[str, int] = {}
    confirmed = {n: s for n, s in held.items() if s is not None and remembered.get(n) == s}
    for source in (confirmed, held, remembered):
        for node in order:
            candidate = source.get(node)
            if node in numbers or candidate is None or candidate not in by_subnet:
                continue
            if by_subnet[candidate] not in used:
                numbers[node] = by_subnet[candidate]
                used.add(numbers[node])
    free = sorted(set(by_subnet.values()) - used)
    waiting = []
    for node in order:
        if node in numbers:
            continue
        if free:
            numbers[node] = free.pop(0)
        else:
            waiting.append(node)
    return Plan({node: pool.subnet(n) for node, n in numbers.items()}, tuple(waiting))


@given(scenarios())
def test_invariants(
    scenario: Scenario,
) -> None:
    pool, wanted, held, remembered, taken = scenario
    result = plan(pool, wanted, held, remembered, taken)
    check_invariants(pool, wanted, taken, result)
    event(f"IPv{pool.network.version}")
    event("some wait" if result.waiting else "none wait")
    kept = sum(1 for n, s in result.allocations.items() if held.get(n) == s)
    event("some keep what they hold" if kept else "nobody keeps a holding")
    event("taken blocks part of the pool" if any(pool.span(t) for t in taken) else "nothing taken here")


@given(scenarios(small=True))
def test_matches_the_reference_model_on_small_pools(scenario: Scenario) -> None:
    pool, wanted, held, remembered, taken = scenario
    result = plan(pool, wanted, held, remembered, taken)
    assert result == reference_plan(pool, wanted, held, remembered, taken)


@given(scenarios(), st.data())
def test_order_and_repetition_of_wanted_do_not_matter(scenario: Scenario, data: st.DataObject) -> None:
    pool, wanted, held, remembered, taken = scenario
    shuffled = data.draw(st.permutations(wanted)) + wanted[: len(wanted) // 2]
    assert plan(pool, shuffled, held, remembered, taken) == plan(pool, wanted, held, remembered, taken)


@given(scenarios())
def test_idempotent(
    scenario: Scenario,
) -> None:
    pool, wanted, held, remembered, taken = scenario
    first = plan(pool, wanted, held, remembered, taken)
    held_now: dict[str, IPNetwork | None] = dict(first.allocations)
    assert plan(pool, wanted, held_now, remembered, taken) == first
    assert plan(pool, wanted, held_now, held_now, taken) == first
    assert plan(pool, wanted, held_now, None, taken) == first


@given(scenarios(), st.data())
def test_holders_keep_their_subnets_when_others_join_or_leave(
    scenario: Scenario,
    data: st.DataObject,
) -> None:
    pool, wanted, held, remembered, taken = scenario
    first = plan(pool, wanted, held, remembered, taken)
    served = sorted(first.allocations)
    leaving = set(data.draw(st.lists(st.sampled_from(served), unique=True)) if served else [])
    newcomers = data.draw(st.lists(st.sampled_from([f"new-{i}" for i in range(12)]), unique=True))
    # newcomers carry nothing usable: no annotation, or garbage
    garbage = [None, parse_subnet("garbage"), net("2001:db8::/64" if pool.network.version == 4 else "10.0.0.0/8")]
    newcomer_held = {n: data.draw(st.sampled_from(garbage)) for n in newcomers}
    stayers = [n for n in first.allocations if n not in leaving] + list(first.waiting)
    held_now: dict[str, IPNetwork | None] = {n: s for n, s in first.allocations.items() if n not in leaving}
    held_now.update(newcomer_held)
    second = plan(pool, stayers + newcomers, held_now, first.allocations, taken)
    for node, subnet in first.allocations.items():
        if node not in leaving:
            assert second.allocations[node] == subnet
    check_invariants(pool, stayers + newcomers, taken, second)


@given(scenarios(), st.data())
def test_garbage_annotation_with_a_valid_memory_gets_the_memory_back(
    scenario: Scenario,
    data: st.DataObject,
) -> None:
    pool, wanted, held, remembered, taken = scenario
    first = plan(pool, wanted, held, remembered, taken)
    served = sorted(first.allocations)
    broken = set(data.draw(st.lists(st.sampled_from(served), unique=True)) if served else [])
    other_family = net("2001:db8::/64" if pool.network.version == 4 else "10.0.0.0/8")
    bits = pool.network.max_prefixlen
    garbage: list[IPNetwork | None] = [None, parse_subnet("{not json"), other_family]
    if pool.network.prefixlen > 0:  # a subnet just outside the pool
        garbage.append(_neighbour(pool))
    if pool.subnet_prefix < bits:
        garbage.append(type(pool.network)((int(pool.network.network_address), pool.subnet_prefix + 1)))
    held_now: dict[str, IPNetwork | None] = dict(first.allocations)
    for node in broken:
        held_now[node] = data.draw(st.sampled_from(garbage))
    second = plan(pool, wanted, held_now, first.allocations, taken)
    assert second == first


@given(pools(), st.data())
def test_writers_that_know_the_joins_up_to_different_points_agree_on_what_both_know(
    pool: Pool, data: st.DataObject
) -> None:
    """Every watch shows Nodes in the order they joined, so at any moment two
    writers each know the joins up to some point: whatever both know, and the
    holdings both know, they plan the same (so their creates agree instead of
    colliding). Join times here are distinct; Nodes of the same second go by name."""
    holders = [f"h{i}" for i in range(data.draw(st.integers(0, 4)))]
    held: dict[str, IPNetwork | None] = dict(plan(pool, holders, {}).allocations)
    joins = data.draw(st.permutations(NAMES))
    joined = {node: f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z" for i, node in enumerate(joins)}
    one, other = sorted(data.draw(st.integers(0, len(joins))) for _ in range(2))
    behind = plan(pool, holders + joins[:one], held, joined=joined)
    ahead = plan(pool, holders + joins[:other], held, joined=joined)
    for node in holders + joins[:one]:
        assert behind.allocations.get(node) == ahead.allocations.get(node), node
    assert set(behind.waiting) <= set(ahead.waiting)
    event("some wait" if ahead.waiting else "none wait")


def _neighbour(pool: Pool) -> IPNetwork:
    """The subnet of the pool's size right next to it: same prefix length, outside."""
    network = pool.network
    sibling = int(network.network_address) ^ (1 << (network.max_prefixlen - network.prefixlen))
    return type(network)((sibling, pool.subnet_prefix))


@given(pools(small=True), st.data())
def test_released_subnets_are_reused_lowest_first(pool: Pool, data: st.DataObject) -> None:
    nodes = [f"a{i:02d}" for i in range(data.draw(st.integers(0, 12)))]
    first = plan(pool, nodes, {})
    leaving = set(data.draw(st.lists(st.sampled_from(nodes), unique=True)) if nodes else [])
    kept = {n: s for n, s in first.allocations.items() if n not in leaving}
    newcomers = [f"b{i:02d}" for i in range(data.draw(st.integers(0, 12)))]
    second = plan(pool, list(kept) + newcomers, dict(kept), first.allocations)
    # newcomers get exactly the lowest usable subnets nobody keeps, in name order
    kept_subnets = set(kept.values())
    network_type = type(pool.network)
    host_bits = pool.network.max_prefixlen - pool.subnet_prefix
    base = int(pool.network.network_address)
    free = []
    for n in range(pool.total):
        subnet = network_type((base + (n << host_bits), pool.subnet_prefix))
        blocked = pool.gateway in subnet or any(subnet.overlaps(r) for r in pool.reserved)
        if not blocked and subnet not in kept_subnets:
            free.append(subnet)
    expected = dict(zip(newcomers, free, strict=False))
    assert {n: s for n, s in second.allocations.items() if n in newcomers} == expected
    assert second.waiting == tuple(newcomers[len(free) :])
    for node, subnet in kept.items():
        assert second.allocations[node] == subnet
