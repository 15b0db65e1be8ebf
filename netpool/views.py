"""Small projections of Nodes and Networks: what the logic needs, never whole bodies.

They are what the operator's indexes hold (the seed's Lister cache), so memory
stays O(nodes + allocations).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from netpool import annotation
from netpool.names import API_VERSION


@dataclasses.dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    labels: Mapping[str, str]
    subnets: Mapping[str, str]  # this operator's annotations: key -> value
    uid: str = ""  # the owner of its NodeSubnets
    pod_cidrs: tuple[str, ...] = ()  # spec.podCIDRs
    primary: int = 4  # IP family of its first InternalIP: podCIDRs list that family first
    created: str = ""  # creationTimestamp: newcomers are served in the order they joined


@dataclasses.dataclass(frozen=True)
class NetworkView:
    namespace: str
    name: str
    uid: str
    generation: int
    created: str
    deleting: bool
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)  # for the metrics (an alert opt-out)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def object_ref(self) -> dict[str, Any]:
        """Enough of the body to post events about it."""
        return {
            "apiVersion": API_VERSION,
            "kind": "Network",
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


def node_view(body: Mapping[str, Any]) -> NodeView:
    """What the operator keeps of a Node: about 1 KB where its body parsed
    takes about 50 KB. Labels are mostly the same across Nodes (arch, os,
    zone, instance type): their keys and values are interned, so the cache
    holds one copy of each string rather than one per Node."""
    meta = body.get("metadata") or {}
    return NodeView(
        name=meta["name"],
        labels={_interned(k): _interned(v) for k, v in (meta.get("labels") or {}).items()},
        subnets=annotation.ours(meta.get("annotations")),
        uid=meta.get("uid") or "",
        pod_cidrs=_pod_cidrs(body.get("spec") or {}),
        primary=_primary(body.get("status") or {}),
        created=meta.get("creationTimestamp") or "",
    )


def _interned(text: Any) -> Any:
    return sys.intern(text) if type(text) is str else text


def _pod_cidrs(spec: Mapping[str, Any]) -> tuple[str, ...]:
    # Clients that know only the old field write podCIDR alone.
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return tuple(c for c in cidrs if isinstance(c, str))


def _primary(status: Mapping[str, Any]) -> int:
    for address in status.get("addresses") or []:
        if isinstance(address, Mapping) and address.get("type") == "InternalIP":
            return 6 if ":" in str(address.get("address")) else 4
    return 4


def network_view(body: Mapping[str, Any]) -> NetworkView:
    meta = body.get("metadata") or {}
    return NetworkView(
        namespace=meta.get("namespace") or "",
        name=meta["name"],
        uid=meta.get("uid") or "",
        generation=int(meta.get("generation") or 0),
        created=meta.get("creationTimestamp") or "",
        deleting=bool(meta.get("deletionTimestamp")),
        spec=_plain(body.get("spec") or {}),
        status=_plain(body.get("status") or {}),
        labels=dict(meta.get("labels") or {}),
    )


def _plain(value: Any) -> Any:
    """A deep copy in plain dicts and lists, detached from Kopf's body views."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
