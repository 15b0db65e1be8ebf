"""NodeSubnet records: names that are valid, injective and readable back;
bodies the API accepts; the store that the feed and the sync share."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool import records
from netpool.pool import IPNetwork
from netpool.records import Record, RecordStore, body, name_for, parse, subnet_of_name

# apimachinery IsDNS1123Subdomain: what a cluster-scoped object may be called
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@st.composite
def subnets(draw: st.DrawFn) -> IPNetwork:
    version = draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    length = draw(st.integers(0, bits))
    address = draw(st.integers(0, 2**bits - 1)) >> (bits - length) << (bits - length) if length else 0
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return cls((address, length))


@pytest.mark.parametrize(
    ("subnet", "name"),
    [
        ("10.1.2.0/24", "10.1.2.0-24"),
        ("0.0.0.0/0", "0.0.0.0-0"),
        ("255.255.255.255/32", "255.255.255.255-32"),
        ("2001:db8:0:7::/64", "2001-0db8-0000-0007-0000-0000-0000-0000-64"),
        ("::/0", "0000-0000-0000-0000-0000-0000-0000-0000-0"),
        ("fd00::1/128", "fd00-0000-0000-0000-0000-0000-0000-0001-128"),
    ],
)
def test_names(subnet: str, name: str) -> None:
    net = ipaddress.ip_network(subnet)
    assert name_for(net) == name
    assert subnet_of_name(name) == net


@given(subnets())
def test_every_name_is_a_dns_subdomain_that_reads_back(subnet: IPNetwork) -> None:
    name = name_for(subnet)
    assert DNS_SUBDOMAIN.fullmatch(name), name
    assert len(name) <= 43
    assert subnet_of_name(name) == subnet


@given(subnets(), subnets())
def test_names_are_injective(a: IPNetwork, b: IPNetwork) -> None:
    assert (name_for(a) == name_for(b)) == (a == b)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "10.1.2.0",
        "10.1.2.0-",
        "10.1.2.5-24",  # host bits set: not a name the operator makes
        "10.1.2.0-024",
        "10.1.2.0-33",
        "2001-db8--64",  # not in full form
        "2001-0DB8-0000-0007-0000-0000-0000-0000-64",
        "something-else",
        "10.1.2.0-２４",
    ],
)
def test_other_names_are_not_records(name: str) -> None:
    assert subnet_of_name(name) is None


def test_body_parses_back_into_its_record() -> None:
    subnet = ipaddress.ip_network("10.244.3.0/24")
    obj = body(subnet, "10.244.0.1", "node-1", "node-uid", ("team-a", "pods"), "net-uid")
    assert obj["metadata"]["name"] == "10.244.3.0-24"
    assert obj["metadata"]["labels"] == {
        records.LABEL_NETWORK: "team-a.pods",
        records.LABEL_NETWORK_UID: "net-uid",
        records.LABEL_NODE: "node-1",
    }
    assert obj["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "node-uid"}
    ]
    assert obj["spec"] == {
        "subnet": "10.244.3.0/24",
        "gateway": "10.244.0.1",
        "node": "node-1",
        "network": {"namespace": "team-a", "name": "pods", "uid": "net-uid"},
    }
    obj["metadata"] |= {"uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"}
    assert parse(obj) == Record(
        name="10.244.3.0-24",
        subnet=subnet,
        node="node-1",
        network=("team-a", "pods"),
        uid="u1",
        created="2024-01-01T00:00:00Z",
        node_uid="node-uid",
    )


def test_long_names_give_valid_label_values() -> None:
    node = "n" * 200 + ".example.com"
    obj = body(ipaddress.ip_network("10.0.0.0/24"), "10.0.0.1", node, "u", ("ns", "x" * 253), "uid")
    for value in obj["metadata"]["labels"].values():
        assert len(value) <= 63, value
        assert LABEL_VALUE.fullmatch(value), value


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": {"name": "not-a-subnet"}, "spec": {"node": "n", "network": {"name": "x"}}},
        {"metadata": {"name": "10.0.0.0-24"}, "spec": {"network": {"name": "x"}}},
        {"metadata": {"name": "10.0.0.0-24"}, "spec": {"node": "n"}},
    ],
)
def test_objects_that_are_not_records(obj: dict[str, object]) -> None:
    assert parse(obj) is None


def rec(name: str, node: str, network: tuple[str, str] = ("ns", "net"), uid: str = "") -> Record:
    subnet = subnet_of_name(name)
    assert subnet is not None
    return Record(name=name, subnet=subnet, node=node, network=network, uid=uid or f"uid-{name}")


def test_store_indexes_by_name_and_network() -> None:
    store = RecordStore()
    store.put(rec("10.0.1.0-24", "a"))
    store.put(rec("10.0.2.0-24", "b"))
    store.put(rec("10.1.1.0-24", "a", ("ns", "other")))
    assert len(store) == 3
    assert {r.node for r in store.of(("ns", "net"))} == {"a", "b"}
    assert sorted(store.networks()) == [("ns", "net"), ("ns", "other")]
    # A record that changes hands moves between Networks.
    store.put(rec("10.0.2.0-24", "b", ("ns", "other")))
    assert {r.name for r in store.of(("ns", "net"))} == {"10.0.1.0-24"}
    assert store.remove("10.0.1.0-24") is not None
    assert store.of(("ns", "net")) == []
    assert ("ns", "net") not in store.networks()


def test_a_buried_record_is_not_brought_back_by_a_late_event() -> None:
    store = RecordStore()
    old = rec("10.0.1.0-24", "a", uid="u1")
    store.put(old)
    store.bury(old)
    assert store.get(old.name) is None
    store.put(old)  # the watch's ADDED, late
    assert store.get(old.name) is None
    new = rec("10.0.1.0-24", "b", uid="u2")  # a new object of the same name is another matter
    store.put(new)
    assert store.get(new.name) == new
    store.confirm_deleted("u1")
    assert store.remove(old.name, old.uid) is None  # the DELETED of the old one leaves the new one
    assert store.get(new.name) == new


def test_a_list_replaces_everything() -> None:
    store = RecordStore()
    buried = rec("10.0.1.0-24", "a", uid="u1")
    store.put(buried)
    store.bury(buried)
    store.put(rec("10.0.9.0-24", "z"))
    store.replace_all([buried])  # the LIST is the truth, tombstones included
    assert [r.name for r in store] == ["10.0.1.0-24"]
