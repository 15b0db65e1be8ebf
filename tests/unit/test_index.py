"""The Network index's routing of Node changes: only the Networks a change
concerns are reconciled (the index holds no API client: no call is made here)."""

from __future__ import annotations

from typing import Any

from controller.index import Networks
from netpool.views import NetworkView, NodeView


def network(name: str, spec: dict[str, Any], generation: int = 1) -> NetworkView:
    return NetworkView("ns", name, f"uid-{name}", generation, "2024-01-01T00:00:00Z", False, spec, {})


def index_with(*views: NetworkView) -> Networks:
    index = Networks()
    index.bind({("ns", v.name): [v] for v in views})
    return index


GPU = {"cidr": "10.1.0.0/16", "nodeSelector": {"matchLabels": {"pool": "gpu"}}}
CPU = {"cidr": "10.2.0.0/16", "nodeSelector": {"matchLabels": {"pool": "cpu"}}}
BROKEN = {"cidr": "10.3.0.0/16", "gateway": "10.9.0.1"}


def node(pool: str, **subnets: str) -> NodeView:
    return NodeView("n1", {"pool": pool}, {f"network.samplecrd.k8s.io/ns.{k}": v for k, v in subnets.items()}, "u")


def test_a_node_change_concerns_only_the_networks_it_matches_or_carries() -> None:
    index = index_with(network("gpu", GPU), network("cpu", CPU), network("broken", BROKEN))
    assert index.affected(None, node("gpu")) == [("ns", "gpu")]
    assert index.affected(node("gpu"), node("cpu")) == [("ns", "gpu"), ("ns", "cpu")]
    assert index.affected(node("gpu"), None) == [("ns", "gpu")]
    assert index.affected(node("gpu", broken="x"), node("gpu", broken="y")) == [("ns", "broken")]
    assert index.affected(node("cpu"), node("cpu")) == []


def test_a_spec_change_is_seen_at_the_next_generation() -> None:
    index = index_with(network("gpu", GPU))
    assert index.affected(None, node("cpu")) == []
    index.bind({("ns", "gpu"): [network("gpu", CPU, generation=2)]})
    assert index.affected(None, node("cpu")) == [("ns", "gpu")]


def test_claims_skip_invalid_and_the_excluded_network() -> None:
    index = index_with(network("gpu", GPU), network("cpu", CPU), network("broken", BROKEN))
    assert [c.ref for c in index.claims(exclude=("ns", "gpu"))] == ["ns/cpu"]


def test_pod_cidr_writers_are_the_oldest_asking_network_of_each_family() -> None:
    old = NetworkView("ns", "old", "u1", 1, "2024-01-01T00:00:00Z", False, {**GPU, "podCIDRs": True}, {})
    young = NetworkView("ns", "young", "u2", 1, "2024-02-01T00:00:00Z", False, {**CPU, "podCIDRs": True}, {})
    six = NetworkView("ns", "six", "u3", 1, "2024-03-01T00:00:00Z", False, {"cidr": "fd00::/48", "podCIDRs": True}, {})
    index = index_with(young, old, six, network("plain", {"cidr": "10.9.0.0/16"}))
    writers = index.pod_cidr_writers()
    assert {v: k for v, (k, _) in writers.items()} == {4: ("ns", "old"), 6: ("ns", "six")}
    assert writers[4][1].matches({"pool": "gpu"})
    assert not writers[4][1].matches({"pool": "cpu"})
