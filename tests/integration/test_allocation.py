"""Allocation on the real control plane: the seed's example, joins and leaves, selectors."""

from __future__ import annotations

import ipaddress

import pykube
import yaml

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    ROOT,
    KubeCluster,
    events,
    make_network,
    network_ready_with,
    node_subnets,
    record_subnets,
    running_operator,
    wait_for,
    wait_network,
    wait_subnets,
    within,
)

EXAMPLE = yaml.safe_load((ROOT / "deploy" / "examples" / "example-network.yaml").read_text())


def test_seed_example_gives_every_node_a_distinct_24(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(5):
        make_node(f"worker-{i}")
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "deploy" / "examples" / "example-network.yaml"))
    with running_operator() as runner:
        net = wait_for(
            "the example to be Ready", network_ready_with(api, namespace, "example-network", "True", "Allocated")
        )
        on_nodes = wait_subnets(api, namespace, "example-network", "5 annotated nodes", lambda s: len(s) == 5)
        # The event is posted after the status is written, by Kopf's poster in the background.
        wait_for(
            "the Synced event",
            lambda: [e for e in events(api, namespace, "example-network") if e["reason"] == "Synced"],
        )

    # The seed's informer output: the node list once synced, then each node added.
    assert "nodelist (5): worker-0, worker-1, worker-2, worker-3, worker-4" in runner.output
    assert all(f"add a node: worker-{i}" in runner.output for i in range(5))

    assert record_subnets(api, namespace, "example-network") == on_nodes
    subnets = [ipaddress.ip_network(s) for s in on_nodes.values()]
    pool = ipaddress.ip_network(EXAMPLE["spec"]["cidr"])
    gateway = ipaddress.ip_address(EXAMPLE["spec"]["gateway"])
    assert len(set(subnets)) == 5
    assert all(s.prefixlen == 24 and within(str(s), str(pool)) and gateway not in s for s in subnets)
    assert net["status"]["gateway"] == "192.168.0.1"
    assert (net["status"]["capacity"], net["status"]["allocated"], net["status"]["free"]) == ("255", 5, "250")
    synced = [e for e in events(api, namespace, "example-network") if e["reason"] == "Synced"]
    assert [e["type"] for e in synced] == ["Normal"]
    assert synced[0]["message"] == "Network synced successfully: 5 of 5 matching nodes have a subnet"


def test_nodes_join_and_leave(api: pykube.HTTPClient, namespace: str, make_node: NodeFactory) -> None:
    make_node("a")
    make_node("b")
    make_network(api, namespace, "pool", {"cidr": "10.20.0.0/16"})
    with running_operator():
        wait_for("a and b", lambda: len(node_subnets(api, namespace, "pool")) == 2)
        make_node("c")
        first = wait_subnets(api, namespace, "pool", "c allocated", lambda s: "c" in s)
        assert len(set(first.values())) == 3

        # Deletion begins but the Node is still in the API: its subnet stays.
        blocker = "test.example/hold"
        pykube.Node.objects(api).get(name="b").patch({"metadata": {"finalizers": [blocker]}})
        pykube.Node.objects(api).get(name="b").delete()
        wait_for(
            "b terminating", lambda: pykube.Node.objects(api).get(name="b").obj["metadata"].get("deletionTimestamp")
        )
        make_node("d")
        during = wait_subnets(api, namespace, "pool", "d allocated", lambda s: "d" in s)
        assert during["b"] == first["b"]
        assert during["d"] not in first.values()

        # Gone from the API: released, and the next node reuses it.
        pykube.Node.objects(api).get(name="b").patch({"metadata": {"finalizers": None}})
        wait_for("b released", lambda: "b" not in record_subnets(api, namespace, "pool"))
        make_node("e")
        after = wait_subnets(api, namespace, "pool", "e allocated", lambda s: "e" in s)
        assert after["e"] == first["b"]
        assert {k: after[k] for k in ("a", "c", "d")} == {"a": first["a"], "c": first["c"], "d": during["d"]}
        wait_for("records to agree", lambda: record_subnets(api, namespace, "pool") == after)
        wait_network(api, namespace, "pool", "status to agree", lambda n: n["status"]["allocated"] == 4)


def test_node_selector_moves_nodes_in_and_out(api: pykube.HTTPClient, namespace: str, make_node: NodeFactory) -> None:
    make_node("gpu-1", {"pool": "gpu"})
    make_node("cpu-1", {"pool": "cpu"})
    make_node("bare")
    make_network(
        api,
        namespace,
        "gpu",
        {
            "cidr": "10.30.0.0/16",
            "nodeSelector": {"matchLabels": {"pool": "gpu"}},
        },
    )
    make_network(
        api,
        namespace,
        "not-gpu",
        {
            "cidr": "10.31.0.0/16",
            "nodeSelector": {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu"]}]},
        },
    )
    with running_operator():
        wait_for("gpu-1 only", lambda: set(node_subnets(api, namespace, "gpu")) == {"gpu-1"})
        wait_for("the rest", lambda: set(node_subnets(api, namespace, "not-gpu")) == {"cpu-1", "bare"})

        pykube.Node.objects(api).get(name="cpu-1").patch({"metadata": {"labels": {"pool": "gpu"}}})
        wait_for("cpu-1 moved in", lambda: set(node_subnets(api, namespace, "gpu")) == {"gpu-1", "cpu-1"})
        wait_for("cpu-1 moved out", lambda: set(node_subnets(api, namespace, "not-gpu")) == {"bare"})
        wait_network(api, namespace, "gpu", "status", lambda n: n["status"]["allocated"] == 2)
        assert set(record_subnets(api, namespace, "gpu")) == {"gpu-1", "cpu-1"}
