"""netpool/podcidr.py: who writes podCIDRs, and how existing ones fit a pool."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool import podcidr
from netpool.overlap import Claim
from netpool.pool import Pool
from netpool.records import Record

net = ipaddress.ip_network
BLOCKED = "which holds the gateway or a reserved range of 10.0.0.0/16"
POOL = Pool(net("10.0.0.0/16"), 24, ipaddress.ip_address("10.0.0.1"), (net("10.0.9.0/24"),))


def claim(created: str, ref: str, cidr: str, pod_cidrs: bool = True) -> Claim:
    return Claim(created, ref, net(cidr), pod_cidrs)


# --- writers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ([], {}),
        ([claim("t1", "ns/a", "10.0.0.0/16", pod_cidrs=False)], {}),
        ([claim("t1", "ns/a", "10.0.0.0/16")], {4: "ns/a"}),
        # The oldest of a family writes; names break a tie of creation times.
        ([claim("t2", "ns/b", "10.1.0.0/16"), claim("t1", "ns/a", "10.0.0.0/16")], {4: "ns/a"}),
        ([claim("t1", "ns/b", "10.1.0.0/16"), claim("t1", "ns/a", "10.0.0.0/16")], {4: "ns/a"}),
        # One per family.
        ([claim("t2", "ns/b", "fd00::/48"), claim("t1", "ns/a", "10.0.0.0/16")], {4: "ns/a", 6: "ns/b"}),
        # An older Network that does not ask does not stop a younger one.
        ([claim("t1", "ns/a", "10.0.0.0/16", False), claim("t2", "ns/b", "10.1.0.0/16")], {4: "ns/b"}),
        # A Network that an older one overlaps allocates nothing, so writes nothing.
        ([claim("t1", "ns/a", "10.0.0.0/8", False), claim("t2", "ns/b", "10.1.0.0/16")], {}),
        (
            [
                claim("t1", "ns/a", "10.0.0.0/8", False),
                claim("t2", "ns/b", "10.1.0.0/16"),
                claim("t3", "ns/c", "11.0.0.0/8"),
            ],
            {4: "ns/c"},
        ),
    ],
)
def test_writers(claims: list[Claim], expected: dict[int, str]) -> None:
    assert {v: c.ref for v, c in podcidr.writers(claims).items()} == expected


# --- parse and order ---------------------------------------------------------------


def test_parse_keeps_the_first_of_each_family_and_skips_garbage() -> None:
    assert podcidr.parse(["10.0.1.0/24", "garbage", "fd00::/64", "10.0.2.0/24"]) == {
        4: net("10.0.1.0/24"),
        6: net("fd00::/64"),
    }
    assert podcidr.parse([]) == {}


@pytest.mark.parametrize(
    ("primary", "expected"),
    [(4, ["10.0.1.0/24", "fd00::/64"]), (6, ["fd00::/64", "10.0.1.0/24"])],
)
def test_ordered_puts_the_primary_family_first(primary: int, expected: list[str]) -> None:
    assert podcidr.ordered({6: net("fd00::/64"), 4: net("10.0.1.0/24")}, primary) == expected
    assert podcidr.ordered({4: net("10.0.1.0/24")}, 6) == ["10.0.1.0/24"]


# --- fit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "pinned", "conflict"),
    [
        ([], None, None),
        (["10.0.5.0/24"], "10.0.5.0/24", None),
        (["10.0.5.0/24", "fd00::/64"], "10.0.5.0/24", None),
        (["fd00::/64", "10.0.5.0/24"], "10.0.5.0/24", None),
        (["10.1.0.0/24"], None, "node n has podCIDR 10.1.0.0/24, outside 10.0.0.0/16"),
        (["10.0.4.0/23"], None, "node n has podCIDR 10.0.4.0/23, not one of the /24 subnets of 10.0.0.0/16"),
        (["10.0.4.0/25"], None, "node n has podCIDR 10.0.4.0/25, not one of the /24 subnets of 10.0.0.0/16"),
        (["10.0.0.0/8"], None, "node n has podCIDR 10.0.0.0/8, not one of the /24 subnets of 10.0.0.0/16"),
        (["10.0.0.0/24"], None, f"node n has podCIDR 10.0.0.0/24, {BLOCKED}"),
        (["10.0.9.0/24"], None, f"node n has podCIDR 10.0.9.0/24, {BLOCKED}"),
        (
            ["fd00::/64"],
            None,
            "node n has podCIDRs fd00::/64 and no IPv4 one; Kubernetes sets podCIDRs only once, "
            "so it can never gain one",
        ),
    ],
)
def test_fit_of_one_wanted_node(cidrs: list[str], pinned: str | None, conflict: str | None) -> None:
    fit = podcidr.fit(POOL, ["n"], {"n": cidrs})
    assert fit.pinned == ({"n": net(pinned)} if pinned else {})
    assert fit.conflicts == ({"n": conflict} if conflict else {})
    # A conflicting podCIDR of the pool's family is kept out of the pool all the same.
    mine = podcidr.parse(cidrs).get(4)
    assert fit.taken == ([mine] if conflict and mine is not None else [])


def test_fit_of_nodes_not_wanted_only_takes_their_pod_cidrs() -> None:
    fit = podcidr.fit(POOL, ["n"], {"other": ["10.0.7.0/24"], "v6": ["fd00::/64"], "far": ["10.9.0.0/24"]})
    assert fit.pinned == {}
    assert fit.conflicts == {}
    assert fit.taken == [net("10.9.0.0/24"), net("10.0.7.0/24")]


def test_fit_two_nodes_sharing_a_pod_cidr_the_first_name_keeps_it() -> None:
    fit = podcidr.fit(POOL, ["b", "a"], {"a": ["10.0.7.0/24"], "b": ["10.0.7.0/24"]})
    assert fit.pinned == {"a": net("10.0.7.0/24")}
    assert fit.conflicts == {"b": "node b has podCIDR 10.0.7.0/24, which node a has too"}


def test_moved_names_each_node_whose_pod_cidr_leaves_the_pool() -> None:
    given_out = {"a": net("10.0.1.0/24"), "b": net("10.0.200.0/24")}
    smaller = Pool(net("10.0.0.0/17"), 24, ipaddress.ip_address("10.0.0.1"))
    assert podcidr.moved(smaller, given_out) == {"b": "node b has podCIDR 10.0.200.0/24, outside 10.0.0.0/17"}
    assert podcidr.moved(POOL, given_out) == {}
    reserving = Pool(net("10.0.0.0/16"), 24, ipaddress.ip_address("10.0.0.1"), (net("10.0.1.7/32"),))
    assert list(podcidr.moved(reserving, given_out)) == ["a"]


@pytest.mark.parametrize(
    ("count", "expected_tail"),
    [(1, "node n0 is x"), (3, "node n0 is x; node n1 is x; node n2 is x"), (5, "node n2 is x; and 2 more")],
)
def test_summary_names_three_and_counts_the_rest(count: int, expected_tail: str) -> None:
    conflicts = {f"n{i}": f"node n{i} is x" for i in range(count)}
    assert podcidr.summary(conflicts).endswith(expected_tail)
    assert podcidr.summary(conflicts).startswith("node n0 is x")


# --- properties --------------------------------------------------------------------

subnet_numbers = st.integers(min_value=0, max_value=255)
node_cidrs = st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(12)]),
    st.lists(
        st.one_of(
            subnet_numbers.map(lambda i: f"10.0.{i}.0/24"),
            subnet_numbers.map(lambda i: f"10.1.{i}.0/24"),
            st.sampled_from(["10.0.0.0/23", "fd00::/64", "10.0.4.0/25"]),
        ),
        max_size=2,
    ),
    max_size=12,
)


@given(node_cidrs, st.sets(st.sampled_from([f"n{i}" for i in range(12)])))
def test_fit_partitions_the_wanted_nodes_and_never_pins_a_subnet_twice(
    cidrs: dict[str, list[str]], wanted: set[str]
) -> None:
    fit = podcidr.fit(POOL, wanted, cidrs)
    has = {n for n, c in cidrs.items() if c}
    assert fit.pinned.keys() | fit.conflicts.keys() == wanted & has
    assert not fit.pinned.keys() & fit.conflicts.keys()
    assert len(set(fit.pinned.values())) == len(fit.pinned)
    for node, subnet in fit.pinned.items():
        assert podcidr.parse(cidrs[node])[4] == subnet
        assert POOL.number(subnet) is not None
        assert subnet not in fit.taken
    for node, why in fit.conflicts.items():
        assert why.startswith(f"node {node} has podCIDR")


texts = st.lists(
    st.one_of(
        subnet_numbers.map(lambda i: f"10.0.{i}.0/24"),
        st.sampled_from(
            ["10.0.3.7/24", "fd00::/64", "fd00:0::/64", "::ffff:10.0.3.0/120", "garbage", "", "10.0.3.0/33"]
        ),
    ),
    max_size=3,
)


@given(texts, st.sampled_from([4, 6]), st.sampled_from(["10.0.3.0/24", "fd00::/64", "10.0.4.0/24"]))
def test_of_family_finds_what_parse_does_with_or_without_a_hint(
    given_texts: list[str], version: int, hinted: str
) -> None:
    hint = Record("r", net(hinted), "n", ("default", "pool"))
    assert podcidr.of_family(given_texts, version) == podcidr.parse(given_texts).get(version)
    assert podcidr.of_family(given_texts, version, hint) == podcidr.parse(given_texts).get(version)


@given(node_cidrs, st.sets(st.sampled_from([f"n{i}" for i in range(12)])), st.data())
def test_fit_is_the_same_with_records_as_hints(
    cidrs: dict[str, list[str]], wanted: set[str], data: st.DataObject
) -> None:
    hinted = data.draw(
        st.dictionaries(st.sampled_from(sorted(cidrs) or ["n0"]), subnet_numbers.map(lambda i: f"10.0.{i}.0/24"))
    )
    known = {n: Record(n, net(s), n, ("default", "pool")) for n, s in hinted.items()}
    assert podcidr.fit(POOL, wanted, cidrs, known) == podcidr.fit(POOL, wanted, cidrs)
