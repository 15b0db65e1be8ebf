"""NodeSubnet objects: one per allocated subnet, the allocation record.

The object's name is derived from the subnet alone, so the API server itself
refuses a second record of the same subnet, whoever writes it (the model of
Kubernetes' IPAddress objects). Names:

    IPv4  10.1.2.0/24         -> 10.1.2.0-24
    IPv6  2001:db8:0:7::/64   -> 2001-0db8-0000-0007-0000-0000-0000-0000-64

IPv4: the dotted address, `-`, the prefix length. IPv6: the eight groups in
full (four hex digits each) joined by `-`, then `-` and the prefix length.
Both are valid DNS subdomains (lowercase alphanumerics, `-` and `.`, at most
43 characters); IPv4 names hold dots and IPv6 names never do, and each family
writes every bit of the address and the length, so no two subnets share a
name. `subnet_of_name` reads a name back.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from netpool import annotation, names
from netpool.names import API_VERSION, Key
from netpool.pool import IPNetwork

KIND = "NodeSubnet"
LABEL_NETWORK = names.LABEL_NETWORK
LABEL_NETWORK_UID = names.LABEL_NETWORK_UID
LABEL_NODE = names.LABEL_NODE


def name_for(subnet: IPNetwork) -> str:
    if subnet.version == 4:
        return f"{subnet.network_address}-{subnet.prefixlen}"
    return f"{subnet.network_address.exploded.replace(':', '-')}-{subnet.prefixlen}"


def subnet_of_name(name: str) -> IPNetwork | None:
    """The subnet a record's name stands for, or None if it is not such a name."""
    address, _, length = name.rpartition("-")
    if not length.isascii() or not length.isdigit():
        return None
    if "." not in address:
        address = address.replace("-", ":")
    try:
        subnet = ipaddress.ip_network(f"{address}/{length}", strict=True)
    except ValueError:
        return None
    return subnet if name_for(subnet) == name else None


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """What the operator keeps of a NodeSubnet."""

    name: str
    subnet: IPNetwork
    node: str
    network: Key
    uid: str = ""
    created: str = ""
    node_uid: str = ""  # its owner: a Node of the same name made later is another Node
    # str(subnet), made once: a round compares it with every Node's annotation and podCIDRs
    text: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", str(self.subnet))

    @property
    def age(self) -> tuple[str, str]:
        """Order of precedence when a Node has two records of one Network: the older keeps."""
        return self.created, self.name


def body(
    subnet: IPNetwork,
    gateway: str,
    node: str,
    node_uid: str,
    network: Key,
    network_uid: str,
) -> dict[str, Any]:
    """A new NodeSubnet. The Node owns it: when the Node goes, Kubernetes'
    garbage collector removes it, even while the operator is down."""
    namespace, name = network
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name_for(subnet),
            "labels": {
                LABEL_NETWORK: annotation.shorten(f"{namespace}.{name}", f"{namespace}/{name}"),
                LABEL_NETWORK_UID: network_uid,
                LABEL_NODE: annotation.shorten(node, node),
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
        },
        "spec": {
            "subnet": str(subnet),
            "gateway": gateway,
            "node": node,
            "network": {"namespace": namespace, "name": name, "uid": network_uid},
        },
    }


def parse(obj: Mapping[str, Any]) -> Record | None:
    """The record a NodeSubnet holds, or None if it is not one of ours."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    network = spec.get("network") or {}
    name = meta.get("name") or ""
    subnet = subnet_of_name(name)
    if subnet is None or not isinstance(spec.get("node"), str) or not isinstance(network.get("name"), str):
        return None
    return Record(
        node_uid=owner_uid(meta, spec["node"]),
        name=name,
        subnet=subnet,
        node=spec["node"],
        network=(network.get("namespace") or "", network["name"]),
        uid=meta.get("uid") or "",
        created=meta.get("creationTimestamp") or "",
    )


def owner_uid(meta: Mapping[str, Any], node: str) -> str:
    """The uid of the Node `node` among a NodeSubnet's owners, or ""."""
    for owner in meta.get("ownerReferences") or ():
        if owner.get("kind") == "Node" and owner.get("name") == node:
            return owner.get("uid") or ""
    return ""


class RecordStore:
    """The NodeSubnets the operator knows of, by name and by Network.

    Fed by a LIST at startup, by the watch (and its LISTs), and at once by
    the operator's own creates and deletes. A deleted object's uid is kept as a
    tombstone, so a late watch event cannot bring it back.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Record] = {}
        self._by_network: dict[Key, dict[str, Record]] = {}
        self._dead: set[str] = set()  # uids we deleted and the watch has not confirmed

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> Record | None:
        return self._by_name.get(name)

    def of(self, network: Key) -> list[Record]:
        return list(self._by_network.get(network, {}).values())

    def networks(self) -> list[Key]:
        return list(self._by_network)

    def put(self, record: Record) -> Record | None:
        """Store a record; returns the one it replaced. Ignored for a uid we deleted."""
        if record.uid and record.uid in self._dead:
            return self._by_name.get(record.name)
        old = self._by_name.get(record.name)
        if old is not None:
            self._unindex(old)
        self._by_name[record.name] = record
        self._by_network.setdefault(record.network, {})[record.name] = record
        return old

    def remove(self, name: str, uid: str = "") -> Record | None:
        """Forget a record (only the incarnation with this uid, if given); returns it."""
        old = self._by_name.get(name)
        if old is None or (uid and old.uid and old.uid != uid):
            return None
        del self._by_name[name]
        self._unindex(old)
        return old

    def bury(self, record: Record) -> None:
        """Forget a record we are deleting; its uid stays dead until the watch confirms it."""
        self.remove(record.name, record.uid)
        if record.uid:
            self._dead.add(record.uid)

    def unbury(self, record: Record) -> None:
        """Our delete of it failed: it is still there (unless another took its name meanwhile)."""
        self._dead.discard(record.uid)
        if record.name not in self._by_name:
            self.put(record)

    def confirm_deleted(self, uid: str) -> None:
        self._dead.discard(uid)

    def replace_all(self, records: Iterable[Record]) -> None:
        """Take a LIST as the truth."""
        self._by_name.clear()
        self._by_network.clear()
        self._dead.clear()
        for record in records:
            self.put(record)

    def _unindex(self, record: Record) -> None:
        group = self._by_network.get(record.network)
        if group is not None:
            group.pop(record.name, None)
            if not group:
                del self._by_network[record.network]
