"""One Network's desired state in a round (netpool/desired.py), rule by rule
as the README's *Behaviour* states them: each row is a cluster as the caches
show it, and what the round decides to create, write and delete."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from netpool import annotation, desired
from netpool import status as st
from netpool.names import Key
from netpool.overlap import Claim
from netpool.records import Record, RecordStore, name_for
from netpool.selector import parse_selector
from netpool.verdict import judge, refusal
from netpool.views import NodeView
from netpool.world import World

KEY: Key = ("ns", "pods")
OTHER: Key = ("ns", "other")
ANN = annotation.key_for(*KEY)
OLD, NEW = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"
NOW = "2024-03-01T00:00:00Z"
# 10.0.0.0/24 holds the gateway: the first subnet handed out is 10.0.1.0/24.
SPEC: dict[str, Any] = {"cidr": "10.0.0.0/16", "nodeSelector": {"matchLabels": {"pool": "gpu"}}}
PODS = {**SPEC, "podCIDRs": True}  # and write podCIDRs


def node(name: str, pool: str = "gpu", carries: str | None = None, pod_cidrs: Sequence[str] = ()) -> NodeView:
    """A Node; `carries` is this Network's annotation on it (a subnet, or any text)."""
    subnets = {} if carries is None else {ANN: annotation.render(*KEY, carries, "10.0.0.1")}
    if carries is not None and "/" not in carries:
        subnets = {ANN: carries}  # not a subnet: garbage
    return NodeView(name, {"pool": pool}, subnets, f"uid-{name}", tuple(pod_cidrs))


def record(node: str, subnet: str, network: Key = KEY, created: str = OLD, node_uid: str = "") -> Record:
    net = ipaddress.ip_network(subnet)
    return Record(name_for(net), net, node, network, f"rec-{subnet}", created, node_uid or f"uid-{node}")


@dataclasses.dataclass
class Case:
    rule: str
    nodes: list[NodeView]
    records: list[Record] = dataclasses.field(default_factory=list)
    new: dict[str, str] = dataclasses.field(default_factory=dict)  # NodeSubnets created: Node -> subnet
    writes: dict[str, str | None] = dataclasses.field(default_factory=dict)  # annotations: Node -> subnet, None
    released: set[str] = dataclasses.field(default_factory=set)  # NodeSubnets deleted: their subnets
    reason: str = st.ALLOCATED
    again: bool = False
    spec: Mapping[str, Any] = dataclasses.field(default_factory=lambda: SPEC)
    gone: set[str] = dataclasses.field(default_factory=set)
    resting: set[str] = dataclasses.field(default_factory=set)
    lose: set[str] = dataclasses.field(default_factory=set)  # Nodes whose NodeSubnet another writer makes first
    writer: Key | None = None  # the Network writing podCIDRs of the family
    cidrs: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # podCIDRs written
    pod_reason: str | None = None
    gets: dict[str, str] = dataclasses.field(default_factory=dict)  # created and written: Node -> subnet

    def __post_init__(self) -> None:
        self.new = {**self.gets, **self.new}
        self.writes = {**self.gets, **self.writes}


def pods(
    rule: str,
    nodes: list[NodeView],
    gets: dict[str, str],
    writer: Key = KEY,
    cidrs: dict[str, tuple[str, ...]] | None = None,
    reason: str = st.WRITTEN,
) -> Case:
    """A row of a Network that asks to write podCIDRs: `reason` is its PodCIDRs condition's."""
    return Case(rule, nodes, gets=gets, spec=PODS, writer=writer, cidrs=cidrs or {}, pod_reason=reason)


CASES = [
    Case(
        "each matching Node gets one subnet, the lowest free first, in name order",
        [node("b"), node("a")],
        gets={"a": "10.0.1.0/24", "b": "10.0.2.0/24"},
    ),
    Case(
        "a Node the selector does not match gets nothing",
        [node("a", pool="cpu")],
        reason=st.NO_MATCHING_NODES,
    ),
    Case(
        "an allocation never changes: its NodeSubnet gives a Node back its removed annotation",
        [node("a")],
        [record("a", "10.0.5.0/24")],
        writes={"a": "10.0.5.0/24"},
    ),
    Case(
        "... and its annotation edited to garbage",
        [node("a", carries="garbage")],
        [record("a", "10.0.5.0/24")],
        writes={"a": "10.0.5.0/24"},
    ),
    Case(
        "a Node that carries its subnet and has its record needs no write",
        [node("a", carries="10.0.5.0/24")],
        [record("a", "10.0.5.0/24")],
    ),
    Case(
        "an annotation with no NodeSubnet is adopted if its subnet is free",
        [node("a", carries="10.0.7.0/24")],
        new={"a": "10.0.7.0/24"},
    ),
    Case(
        "... and replaced if another Node's record holds it",
        [node("a", carries="10.0.7.0/24"), node("b", carries="10.0.7.0/24")],
        [record("b", "10.0.7.0/24")],
        gets={"a": "10.0.1.0/24"},
    ),
    Case(
        "a NodeSubnet wins over another Node's copy of its annotation: the copy is replaced",
        [node("a", carries="10.0.5.0/24"), node("b", carries="10.0.5.0/24")],
        [record("a", "10.0.5.0/24")],
        gets={"b": "10.0.1.0/24"},
    ),
    Case(
        "a Node that stops matching loses its annotation, then its NodeSubnet",
        [node("a", pool="cpu", carries="10.0.5.0/24")],
        [record("a", "10.0.5.0/24")],
        writes={"a": None},
        released={"10.0.5.0/24"},
        reason=st.NO_MATCHING_NODES,
    ),
    Case(
        "a record of a Node the cache does not show stays: it may be a Node the watch has not shown yet",
        [node("a", carries="10.0.1.0/24")],
        [record("a", "10.0.1.0/24"), record("c", "10.0.2.0/24")],
    ),
    Case(
        "... and is released once the Node is known to be gone",
        [node("a", carries="10.0.1.0/24")],
        [record("a", "10.0.1.0/24"), record("c", "10.0.2.0/24")],
        released={"10.0.2.0/24"},
        gone={"c"},
    ),
    Case(
        "no subnet twice across Networks: another pool's record is never handed out",
        [node("a")],
        [record("x", "10.0.1.0/24", network=OTHER)],
        gets={"a": "10.0.2.0/24"},
    ),
    Case(
        "Nodes without room wait, and the Network is PoolExhausted",
        [node("a"), node("b")],
        gets={"a": "10.0.1.0/24"},
        reason=st.POOL_EXHAUSTED,
        spec={**SPEC, "cidr": "10.0.0.0/23"},
    ),
    Case(
        "a subnet freed while Nodes wait sends the Network round again, to serve them",
        [node("a", pool="cpu", carries="10.0.1.0/24"), node("b")],
        [record("a", "10.0.1.0/24")],
        writes={"a": None},
        released={"10.0.1.0/24"},
        reason=st.POOL_EXHAUSTED,
        again=True,
        spec={**SPEC, "cidr": "10.0.0.0/23"},
    ),
    Case(
        "two records of one Node (two writers): the older keeps, the younger is released",
        [node("a", carries="10.0.1.0/24")],
        [record("a", "10.0.2.0/24", created=NEW), record("a", "10.0.1.0/24")],
        released={"10.0.2.0/24"},
    ),
    Case(
        "a released duplicate's subnet rests: the next Node does not get it",
        [node("a"), node("b", carries="10.0.1.0/24")],
        [record("b", "10.0.1.0/24")],
        gets={"a": "10.0.3.0/24"},
        resting={"10.0.2.0/24"},
    ),
    Case(
        "a create lost to another writer: the Node keeps what it carries, and is planned again",
        [node("a", carries="10.0.7.0/24"), node("b")],
        new={"a": "10.0.7.0/24", "b": "10.0.1.0/24"},
        writes={"b": "10.0.1.0/24"},
        lose={"a"},
        again=True,
    ),
    Case(
        "a Node of the same name made again (another uid) loses the old Node's record",
        [node("a", carries="10.0.1.0/24")],
        [record("a", "10.0.1.0/24", node_uid="uid-of-the-old-a")],
        released={"10.0.1.0/24"},
    ),
    pods(
        "podCIDRs: a served Node without them gets its subnet as its podCIDR",
        [node("a")],
        {"a": "10.0.1.0/24"},
        cidrs={"a": ("10.0.1.0/24",)},
    ),
    pods(
        "podCIDRs: a podCIDR inside the pool is its Node's allocation",
        [node("a", pod_cidrs=["10.0.9.0/24"])],
        {"a": "10.0.9.0/24"},
    ),
    pods(
        "podCIDRs: a Node whose podCIDR lies outside the pool gets no subnet of it",
        [node("a", pod_cidrs=["10.9.0.0/24"]), node("b")],
        {"b": "10.0.1.0/24"},
        cidrs={"b": ("10.0.1.0/24",)},
        reason=st.CONFLICTS,
    ),
    pods(
        "podCIDRs: while an older Network writes them, this one writes none",
        [node("a")],
        {"a": "10.0.1.0/24"},
        writer=OTHER,
        reason=st.OLDER_NETWORK,
    ),
]


def world_of(case: Case) -> World:
    store = RecordStore()
    for r in case.records:
        store.put(r)
    writers = {}
    if case.writer is not None:
        writers[4] = (case.writer, parse_selector(SPEC["nodeSelector"])[0])
    return World(
        KEY,
        case.nodes,
        {n.name: dict(n.subnets) for n in case.nodes},
        store,
        gone=case.gone,
        resting={ipaddress.ip_network(s) for s in case.resting},
        writers=writers,
        pod_cidrs={n.name: n.pod_cidrs for n in case.nodes},
    )


def one_round(world: World, spec: Mapping[str, Any], lose: Iterable[str] = ()) -> desired.Desired:
    """choose, the creates (those of `lose` made first by another writer), settle."""
    parsed = judge(spec).spec
    assert parsed is not None
    choice = desired.choose(world, parsed, {})
    own, lost = dict(choice.own), set()
    for name, subnet in choice.new():
        if name in lose:
            lost.add(name)
        else:
            own[name] = record(name, str(subnet))
    return desired.settle(world, choice, own, lost, 1, {})


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_the_rules_of_a_round(case: Case) -> None:
    world = world_of(case)
    parsed = judge(case.spec).spec
    assert parsed is not None
    choice = desired.choose(world, parsed, {})
    assert {n: str(s) for n, s in choice.new()} == case.new
    result = one_round(world, case.spec, case.lose)
    assert {n: annotation.subnet_of(v) for n, v in result.writes.items()} == case.writes
    assert {str(r.subnet) for r in result.released} == case.released
    assert dict(result.cidrs) == case.cidrs
    assert result.again == case.again
    status = result.status(NOW)
    assert (st.ready_condition(status) or {}).get("reason") == case.reason
    assert (st.ready_condition(status, st.POD_CIDRS) or {}).get("reason") == case.pod_reason


def test_a_released_duplicates_subnet_is_named_to_rest() -> None:
    younger = record("a", "10.0.2.0/24", created=NEW)
    world = world_of(Case("", [node("a", carries="10.0.1.0/24")], [younger, record("a", "10.0.1.0/24")]))
    assert list(one_round(world, SPEC).duplicates) == [younger]


def test_a_node_moved_off_a_subnet_now_reserved_names_its_old_record_to_go() -> None:
    """Its old NodeSubnet goes once the Node carries the new subnet (the
    writes decide when); kept, the older record would win and move it back."""
    old = record("a", "10.0.1.0/24")
    world = world_of(Case("", [node("a", carries="10.0.1.0/24")], [old]))
    result = one_round(world, {**SPEC, "reserved": ["10.0.1.0/24"]})
    assert {n: annotation.subnet_of(v) for n, v in result.writes.items()} == {"a": "10.0.2.0/24"}
    assert (dict(result.moved), list(result.released)) == ({"a": old}, [])


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"cidr": "10.0.0.0/16", "gateway": "10.9.0.1"}, st.INVALID_SPEC),
        ({"cidr": "10.0.128.0/17"}, st.OVERLAPS),
    ],
)
def test_an_invalid_or_overlapping_network_allocates_and_releases_nothing_and_counts_its_holders(
    spec: dict[str, Any], reason: str
) -> None:
    """A typo never takes a running Node's subnet: nothing is written or
    deleted, and the status counts the Nodes that still carry one."""
    nodes = [node("a", carries="10.0.1.0/24"), node("b"), node("c", pool="cpu", carries="10.0.2.0/24")]
    world = world_of(Case("", nodes, [record("a", "10.0.1.0/24")]))
    older = Claim(OLD, "ns/older", ipaddress.ip_network("10.0.0.0/16"))
    outcome = refusal(judge(spec), NEW, "ns/pods", [older])
    assert outcome is not None
    result = desired.unserved(world, outcome, 1, {})
    assert (dict(result.writes), list(result.released), dict(result.cidrs), result.again) == ({}, [], {}, False)
    status = result.status(NOW)
    assert (st.ready_condition(status) or {}).get("reason") == reason
    assert status["allocated"] == 2


def written(subnets: Mapping[str, str], value: str | None) -> dict[str, str]:
    """A Node's annotations after a write of this Network's (None removes it, "" is no write)."""
    after = dict(subnets)
    if value is None:
        after.pop(ANN, None)
    elif value:
        after[ANN] = value
    return after


@given(
    labels=hs.lists(hs.sampled_from(["gpu", "cpu"]), min_size=1, max_size=12),
    carried=hs.lists(hs.sampled_from([None, "garbage", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]), max_size=12),
    cidr=hs.sampled_from(["10.0.0.0/16", "10.0.0.0/22"]),
)
def test_a_round_applied_leaves_nothing_for_the_next(labels: list[str], carried: list[str | None], cidr: str) -> None:
    """Idempotent: once a round's creates, writes and deletes are made, the
    next round over the same Nodes creates, writes and deletes nothing, and
    no Node carries a subnet another Node carries."""
    spec = {**SPEC, "cidr": cidr}
    nodes = [node(f"n{i}", pool, carried[i] if i < len(carried) else None) for i, pool in enumerate(labels)]
    first = one_round(world_of(Case("", nodes)), spec)
    parsed = judge(spec).spec
    assert parsed is not None
    # What the first round leaves: its records, and the annotations it wrote.
    choice = desired.choose(world_of(Case("", nodes)), parsed, {})
    made = [record(n, str(s)) for n, s in choice.new()]
    kept = [r for r in [*choice.own.values(), *made] if r not in first.released]
    after = [dataclasses.replace(n, subnets=written(n.subnets, first.writes.get(n.name, ""))) for n in nodes]
    second_world = world_of(Case("", after, kept))
    second = one_round(second_world, spec)
    assert desired.choose(second_world, parsed, {}).new() == []
    assert (dict(second.writes), list(second.released)) == ({}, [])
    held = [annotation.subnet_of(n.subnets.get(ANN)) for n in after if ANN in n.subnets]
    assert len(held) == len(set(held))
