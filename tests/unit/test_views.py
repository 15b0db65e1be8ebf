"""Projections of Node and Network bodies: only what the logic needs, detached from the body."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from netpool.annotation import PREFIX
from netpool.views import network_view, node_view


def test_node_view_keeps_labels_and_only_our_annotations() -> None:
    body = {
        "metadata": {
            "name": "node-1",
            "labels": {"role": "worker"},
            "annotations": {PREFIX + "default.net": '{"subnet":"10.0.1.0/24"}', "other.io/x": "y"},
        },
        "status": {"capacity": {"cpu": "4"}},
    }
    view = node_view(body)
    assert view.name == "node-1"
    assert view.labels == {"role": "worker"}
    assert view.subnets == {PREFIX + "default.net": '{"subnet":"10.0.1.0/24"}'}
    assert view.uid == ""


def test_node_view_of_a_bare_node() -> None:
    view = node_view({"metadata": {"name": "n", "labels": None, "annotations": None}})
    assert view.labels == {}
    assert view.subnets == {}
    assert node_view({"metadata": {"name": "n", "uid": "u-1"}}).uid == "u-1"
    assert node_view({"metadata": {"name": "n"}}).created == ""
    assert node_view({"metadata": {"name": "n", "creationTimestamp": "2026-01-01T00:00:00Z"}}).created == (
        "2026-01-01T00:00:00Z"
    )


def test_node_view_reads_pod_cidrs_and_the_primary_family() -> None:
    dual = {
        "metadata": {"name": "n"},
        "spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24", "fd00::/64"]},
        "status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "fd00::9"}]},
    }
    assert (node_view(dual).pod_cidrs, node_view(dual).primary) == (("10.0.1.0/24", "fd00::/64"), 6)
    # A client that knows only the old field wrote podCIDR alone.
    old = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.1.0/24"}}
    assert (node_view(old).pod_cidrs, node_view(old).primary) == (("10.0.1.0/24",), 4)
    assert node_view({"metadata": {"name": "n"}, "spec": {}}).pod_cidrs == ()


def test_network_view() -> None:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": "default",
            "name": "example",
            "uid": "u-1",
            "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {"cidr": "10.0.0.0/16", "reserved": ("10.0.0.5",)},
        "status": {"allocations": [{"node": "a", "subnet": "10.0.1.0/24"}]},
    }
    view = network_view(body)
    assert view.ref == "default/example"
    assert view.generation == 3
    assert view.created == "2024-01-01T00:00:00Z"
    assert view.deleting is False
    assert view.spec == {"cidr": "10.0.0.0/16", "reserved": ["10.0.0.5"]}
    assert view.object_ref() == {
        "apiVersion": "samplecrd.k8s.io/v1",
        "kind": "Network",
        "metadata": {"namespace": "default", "name": "example", "uid": "u-1"},
    }
    # a deep copy: later changes to the body do not leak into the view
    body["spec"]["cidr"] = "10.9.0.0/16"
    body["status"]["allocations"][0]["subnet"] = "changed"
    assert view.spec["cidr"] == "10.0.0.0/16"
    assert view.status == {"allocations": [{"node": "a", "subnet": "10.0.1.0/24"}]}


def test_network_view_defaults_and_plain_types() -> None:
    body = MappingProxyType({"metadata": {"name": "n"}, "spec": MappingProxyType({"a": MappingProxyType({})})})
    view = network_view(body)
    assert (view.namespace, view.uid, view.generation, view.created) == ("", "", 0, "")
    assert view.status == {}
    assert type(view.spec) is dict
    assert type(view.spec["a"]) is dict


def test_node_views_share_their_label_strings() -> None:
    """Two Nodes parsed apart hold one copy of each label key and value they share."""

    def parsed(name: str) -> dict[str, Any]:
        labels = {"kubernetes.io/" + "arch": "amd" + "64", "kubernetes.io/hostname": name}
        body: dict[str, Any] = json.loads(json.dumps({"metadata": {"name": name, "labels": labels}}))
        return body

    a, b = node_view(parsed("node-a")), node_view(parsed("node-b"))
    assert dict(a.labels) == {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "node-a"}
    key_a = next(k for k in a.labels if k.endswith("arch"))
    key_b = next(k for k in b.labels if k.endswith("arch"))
    assert key_a is key_b
    assert a.labels[key_a] is b.labels[key_b]
    assert not hasattr(a, "__dict__")  # slots: no per-view dict
