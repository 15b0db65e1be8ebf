"""One Network's desired state in a round, decided from what the caches show.

Which matching Nodes keep, get or lose a subnet, which Node annotations and
podCIDRs follow, which NodeSubnets go, and the status after. It takes two
steps, because the NodeSubnets it chooses are created in between (the API
server refuses a second record of a subnet, so a create can lose a race):

1. `choose`: the plan, and the NodeSubnets it adds (`Choice.new`);
2. `settle`, once those are created: the Node writes, the NodeSubnets to
   delete after them, and the status (`Desired`).

A Network that allocates nothing (invalid or overlapping) goes to `unserved`
instead. The round (controller/sync.py) reads the caches into a `World`
(netpool/world.py) and makes the API writes (controller/writes.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from netpool import allocator, annotation, podcidr
from netpool import status as st
from netpool.allocator import Plan
from netpool.names import Key
from netpool.pool import IPNetwork
from netpool.records import Record
from netpool.selector import Selector
from netpool.spec import NetworkSpec
from netpool.world import World, annotated_elsewhere, annotated_subnets, own_records, recorded_elsewhere

Status = Callable[[str], dict[str, Any]]  # the time now (RFC 3339) -> the status


@dataclasses.dataclass(frozen=True)
class Choice:
    """The plan of a Network that allocates: step 1."""

    key: Key
    spec: NetworkSpec
    plan: Plan
    wanted: list[str]  # matching Nodes, but those whose podCIDRs the pool cannot be
    fit: podcidr.Fit
    own: dict[str, Record]  # each Node's record of this Network
    extra: list[Record]  # a second record of a Node (two writers made them): deleted
    writer: tuple[Key, Selector] | None  # the Network writing podCIDRs of this family, if this one asks to

    @property
    def writes_pod_cidrs(self) -> bool:
        return self.writer is not None and self.writer[0] == self.key

    def new(self) -> list[tuple[str, IPNetwork]]:
        """The NodeSubnets the plan adds: Node -> subnet."""
        own = self.own
        return [(n, s) for n, s in self.plan.allocations.items() if n not in own or not _same(own[n].subnet, s)]


def writes_pod_cidrs(key: Key, spec: NetworkSpec, writers: Mapping[int, tuple[Key, Selector]]) -> bool:
    """Whether this Network writes its family's podCIDRs (only then are they read)."""
    writer = writers.get(spec.pool.network.version) if spec.pod_cidrs else None
    return writer is not None and writer[0] == key


@dataclasses.dataclass(frozen=True)
class Desired:
    """What the round writes for one Network, and the status after: step 2."""

    status: Status
    writes: Mapping[str, str | None] = dataclasses.field(default_factory=dict)  # Node -> annotation (None: remove)
    cidrs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # Node -> podCIDRs to set
    released: Sequence[Record] = ()  # NodeSubnets to delete once the Node writes are made
    duplicates: Sequence[Record] = ()  # of those, a second writer's: their subnets rest a while
    again: bool = False  # lost a race, or frees subnets that waiting Nodes can have: go round again
    # Node -> the record its new subnet replaces: deleted once the Node carries the new one
    moved: Mapping[str, Record] = dataclasses.field(default_factory=dict)


def choose(world: World, spec: NetworkSpec, previous: Mapping[str, Any]) -> Choice:
    """Which matching Node keeps, gets or waits for which subnet of the pool.

    The records are the truth; an annotation with no record is adopted if
    its subnet is free; what an older version's status remembered gives a
    Node back its subnet when both are missing (upgrade). A podCIDR never
    changes: inside the pool it is its Node's allocation, whoever else
    claims it; anywhere else the Node gets nothing here."""
    key, pool = world.key, spec.pool
    matching = [n.name for n in world.nodes if spec.selector.matches(n.labels)]
    own, extra = own_records(world.records.of(key))
    writer = world.writers.get(pool.network.version) if spec.pod_cidrs else None
    cidrs = world.pod_cidrs if writes_pod_cidrs(key, spec, world.writers) else {}
    fit = podcidr.fit(pool, matching, cidrs, own)
    wanted = [n for n in matching if n not in fit.conflicts]
    annotated = annotated_subnets(world, spec, own)
    held: dict[str, IPNetwork | None] = {n: r.subnet for n, r in own.items()}
    for node, subnet in annotated.items():
        held.setdefault(node, subnet)
    remembered: dict[str, IPNetwork | None] = {
        a.get("node", ""): allocator.parse_subnet(a.get("subnet"))
        for a in previous.get("allocations") or []
        if isinstance(a, Mapping)
    }
    remembered.update((n, r.subnet) for n, r in own.items())
    pinned = set(fit.pinned.values())
    for source in (held, remembered):
        for node, subnet in source.items():
            mine = fit.pinned.get(node)
            if mine is not subnet and subnet in pinned and mine != subnet:  # `is`: most are the same object
                source[node] = None
        source.update(fit.pinned)

    # Not free in this round: what other Networks' records hold, subnets about
    # to be released, and what Nodes carry without a record (other Networks'
    # annotations, values that are not their Node's record), unless one of
    # this Network's records holds it.
    taken = recorded_elsewhere(world, pool)
    wanted_set = set(wanted)
    taken += [r.subnet for r in extra] + [r.subnet for n, r in own.items() if n not in wanted_set]
    unrecorded = annotated_elsewhere(world, pool)
    unrecorded += [s for n, s in annotated.items() if s is not None and s is not held.get(n) and s != held.get(n)]
    recorded = {r.subnet for r in own.values()} if unrecorded or world.resting else set()
    taken += allocator.not_free(unrecorded, recorded)
    # Not a subnet a record holds again: the record is the truth, and its
    # Node must keep it (taken, it would get a new one each round).
    taken += [s for s in world.resting if s not in recorded]
    taken = [s for s in taken if s not in pinned] + fit.taken
    # Newcomers in join order: every writer's watch shows the same one (see allocator.plan).
    plan = allocator.plan(pool, wanted, held, remembered, taken, {n.name: n.created for n in world.nodes})
    return Choice(key, spec, plan, wanted, fit, own, extra, writer)


def settle(
    world: World,
    choice: Choice,
    own: Mapping[str, Record],
    lost: Collection[str],
    generation: int,
    previous: Mapping[str, Any],
) -> Desired:
    """The writes once the plan's NodeSubnets are created: `own` holds each
    Node's record now, `lost` the Nodes whose subnet another writer took first
    (they keep what they carry until the next round chooses again)."""
    key, ann_key, pool, plan = world.key, world.ann_key, choice.spec.pool, choice.plan
    served = {n: r for n, r in own.items() if _same(plan.allocations.get(n), r.subnet)}
    render = annotation.renderer(*key, str(pool.gateway))
    values = {n: render(r.text) for n, r in served.items()}
    writes: dict[str, str | None] = {n: v for n, v in values.items() if world.carried[n].get(ann_key) != v}
    writes.update({n: None for n, v in world.carried.items() if ann_key in v and n not in values and n not in lost})
    cidrs = _pod_cidrs_to_write(world, choice, served) if choice.writes_pod_cidrs else {}
    # A record whose Node is not in the cache stays (taken) unless the Node
    # is known to be gone: it may be a new Node the watch has not shown yet.
    stale = [r for n, r in own.items() if n not in served and (n in world.carried or n in world.gone)]
    stale += [r for n, r in own.items() if r.node_uid and world.uids.get(n, r.node_uid) != r.node_uid]
    released = list({r.name: r for r in stale + choice.extra}.values())
    # A Node moved off a subnet it can no longer have (reserved now, outside a
    # smaller cidr) leaves its old record, released once the Node carries the
    # new one (controller/writes.py); kept, the Node would hold two, and the
    # older would win when next reconciled and move the Node again.
    moved = {n: r for n, r in choice.own.items() if own[n] is not r}

    def status(now: str) -> dict[str, Any]:
        return st.build(
            generation=generation,
            outcome=st.served(pool, len(choice.wanted), len(served), len(plan.waiting)),
            pool=pool,
            allocated=len(served),
            waiting=len(plan.waiting),
            previous=previous,
            now=now,
            pod_cidrs=_pod_cidrs_outcome(world, choice, served, cidrs),
        )

    again = bool(lost) or bool(released and plan.waiting)
    return Desired(status, writes, cidrs, released, choice.extra, again, moved)


def _pod_cidrs_outcome(
    world: World, choice: Choice, served: Mapping[str, Record], cidrs: Mapping[str, tuple[str, ...]]
) -> st.PodCidrs | None:
    """What the PodCIDRs condition says, for a Network that asks to write them."""
    if choice.writer is None:
        return None
    version = choice.spec.pool.network.version
    if not choice.writes_pod_cidrs:
        return st.pod_cidrs_older(version, "/".join(choice.writer[0]))
    written = sum(
        1
        for n, r in served.items()
        if podcidr.of_family(cidrs.get(n) or world.pod_cidrs.get(n) or (), version, r) == r.subnet
    )
    if choice.fit.conflicts:
        return st.pod_cidrs_conflicts(written, len(choice.fit.conflicts), podcidr.summary(choice.fit.conflicts))
    return st.pod_cidrs_written(version, written, len(served))


def _pod_cidrs_to_write(world: World, choice: Choice, served: Mapping[str, Record]) -> dict[str, tuple[str, ...]]:
    """podCIDRs for the served Nodes that have none. The API server takes
    them once, so a Node the other family's writer selects gets both
    families in one write; until that Network has chosen the Node's subnet,
    this one waits, and that one writes both when it has."""
    version = choice.spec.pool.network.version
    partner = next((w for v, w in world.writers.items() if v != version), None)
    theirs = own_records(world.records.of(partner[0]))[0] if partner is not None else {}
    by_name = {n.name: n for n in world.nodes}
    found: dict[str, tuple[str, ...]] = {}
    for name, record in served.items():
        if world.pod_cidrs.get(name):
            continue
        cidrs: dict[int, IPNetwork] = {version: record.subnet}
        if partner is not None and partner[1].matches(by_name[name].labels):
            other = theirs.get(name)
            if other is None:
                continue
            cidrs[other.subnet.version] = other.subnet
        found[name] = tuple(podcidr.ordered(cidrs, by_name[name].primary))
    return found


def unserved(world: World, outcome: st.Outcome, generation: int, previous: Mapping[str, Any]) -> Desired:
    """An invalid or overlapping Network allocates nothing and releases
    nothing, so a typo in a spec never takes a subnet away from a running
    Node; its status counts the Nodes that still carry one."""
    ann_key = world.ann_key
    holders = {r.node for r in world.records.of(world.key)}
    holders |= {n for n, v in world.carried.items() if annotation.subnet_of(v.get(ann_key))}
    allocated = len(holders & world.carried.keys())

    def status(now: str) -> dict[str, Any]:
        return st.build(
            generation=generation,
            outcome=outcome,
            pool=None,
            allocated=allocated,
            waiting=0,
            previous=previous,
            now=now,
        )

    return Desired(status)


def _same(a: IPNetwork | None, b: IPNetwork | None) -> bool:
    """a == b, first by identity: a round compares every Node's subnet, and
    most are the very object its record holds."""
    return a is b or a == b
