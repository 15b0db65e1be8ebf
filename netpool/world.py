"""What one Network's round reads from the caches, and the questions it asks of them.

A `World` is built by the round (controller/sync.py) from the Node cache,
the record store and the operator's own writes the watch has not shown yet;
netpool/desired.py plans from it. The queries here say which subnets a
Network's pool must treat as taken: what other Networks' records and
annotations hold, but of Networks whose cidr lies apart.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence

from netpool import allocator, annotation
from netpool.names import Key
from netpool.overlap import Claim
from netpool.pool import IPNetwork, Pool
from netpool.records import Record, RecordStore
from netpool.selector import Selector
from netpool.spec import NetworkSpec
from netpool.views import NodeView


@dataclasses.dataclass(frozen=True)
class World:
    """What one Network's round reads: the caches, with the operator's own
    writes the watch has not shown yet laid over."""

    key: Key
    nodes: Sequence[NodeView]
    carried: Mapping[str, Mapping[str, str]]  # Node -> this operator's annotations on it
    records: RecordStore  # every Network's NodeSubnets
    rivals: Sequence[Claim] = ()  # every other valid Network's claim on its cidr
    gone: Collection[str] = ()  # Nodes known to be gone from the API
    resting: Collection[IPNetwork] = ()  # subnets of a second writer's duplicates, deleted a moment ago
    writers: Mapping[int, tuple[Key, Selector]] = dataclasses.field(default_factory=dict)  # podCIDRs, per family
    # Node -> its podCIDRs: read only when this Network writes them (`writes_pod_cidrs`)
    pod_cidrs: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)

    @property
    def ann_key(self) -> str:
        return annotation.key_for(*self.key)

    @functools.cached_property
    def uids(self) -> dict[str, str]:
        """Node -> its uid: the owner of its NodeSubnets."""
        return {n.name: n.uid for n in self.nodes}


def own_records(mine: Iterable[Record]) -> tuple[dict[str, Record], list[Record]]:
    """Each Node's record of one Network, and the extras: two writers can give a
    Node two; every replica keeps the same one, the older."""
    own: dict[str, Record] = {}
    extra: list[Record] = []
    for record in sorted(mine, key=lambda r: r.age):
        if record.node in own:
            extra.append(record)
        else:
            own[record.node] = record
    return own, extra


def annotated_subnets(world: World, spec: NetworkSpec, own: Mapping[str, Record]) -> dict[str, IPNetwork | None]:
    """Each Node's subnet as this Network's annotation on it says (None:
    garbage). Most carry exactly what their record holds: that is compared,
    not parsed (a round asks this of every Node)."""
    ann_key = world.ann_key
    render = annotation.renderer(*world.key, str(spec.pool.gateway))
    found: dict[str, IPNetwork | None] = {}
    for node, values in world.carried.items():
        value = values.get(ann_key)
        if value is None:
            continue
        record = own.get(node)
        if record is not None and value == render(record.text):
            found[node] = record.subnet
        else:
            found[node] = allocator.parse_subnet(annotation.subnet_of(value))
    return found


def apart_from(world: World, pool: Pool) -> set[Key]:
    """The other Networks whose cidr shares no address with this pool: most of
    the cluster's allocations are theirs, and reading them all made every
    reconcile O(allocations). Should one of them still hold a subnet here (its
    cidr just moved), the NodeSubnet's name is taken and its create loses:
    the Node is planned again next round."""
    return {c.key for c in world.rivals if not c.network.overlaps(pool.network)}


def recorded_elsewhere(world: World, pool: Pool) -> list[IPNetwork]:
    """The subnets other Networks' records hold, but of those apart."""
    apart, records = apart_from(world, pool), world.records
    return [r.subnet for k in records.networks() if k != world.key and k not in apart for r in records.of(k)]


def annotated_elsewhere(world: World, pool: Pool) -> list[IPNetwork | None]:
    """The subnets other Networks' annotations carry, but of those apart."""
    apart_keys = {annotation.key_for(*k) for k in apart_from(world, pool)} | {world.ann_key}
    values = (v for carried in world.carried.values() for k, v in carried.items() if k not in apart_keys)
    return [allocator.parse_subnet(annotation.subnet_of(v)) for v in values]
