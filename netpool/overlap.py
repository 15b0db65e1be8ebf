"""Pools share one cluster-wide address space: the oldest claim on an address wins."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from netpool.pool import IPNetwork


@dataclasses.dataclass(frozen=True, order=True)
class Claim:
    """A valid Network's cidr. Ordered by age: creationTimestamp, then namespace/name."""

    created: str  # RFC 3339 in UTC: sorts as text
    ref: str  # namespace/name
    network: IPNetwork = dataclasses.field(compare=False)
    pod_cidrs: bool = dataclasses.field(default=False, compare=False)  # spec.podCIDRs: it asks to write them

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name): namespaces hold no "/"."""
        namespace, _, name = self.ref.partition("/")
        return namespace, name


def older_overlap(me: Claim, others: Iterable[Claim]) -> Claim | None:
    """The oldest claim that is older than `me` and shares an address with it."""
    rivals = [
        o
        for o in others
        if o.ref != me.ref and o < me and o.network.version == me.network.version and o.network.overlaps(me.network)
    ]
    return min(rivals, default=None)
