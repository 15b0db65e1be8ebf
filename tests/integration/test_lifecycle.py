"""Restarts, resync, deletion: state converges and nothing is written twice."""

from __future__ import annotations

import time

import pykube
import pytest

from netpool import annotation
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    QUICK_RESYNC,
    QUICK_RESYNC_ENV,
    KubeCluster,
    Network,
    audit_entries,
    make_network,
    network_exists,
    network_ready_with,
    node_subnets,
    record_subnets,
    running_operator,
    wait_for,
    wait_network,
    wait_subnets,
)


def test_restart_converges_without_duplicates_or_losses(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(1, 5):
        make_node(f"n{i}")
    make_network(api, namespace, "pool", {"cidr": "10.100.0.0/16"})
    with running_operator():
        before = wait_subnets(api, namespace, "pool", "four nodes", lambda s: len(s) == 4)
        wait_for("records", lambda: record_subnets(api, namespace, "pool") == before)

    # While the operator is down: a node leaves, one joins, one annotation is garbage, one is gone.
    key = annotation.key_for(namespace, "pool")
    pykube.Node.objects(api).get(name="n2").delete()
    make_node("n5")
    pykube.Node.objects(api).get(name="n3").patch({"metadata": {"annotations": {key: "}{ not json"}}})
    pykube.Node.objects(api).get(name="n4").patch({"metadata": {"annotations": {key: None}}})

    with running_operator():
        after = wait_subnets(
            api, namespace, "pool", "n1 n3 n4 n5", lambda s: set(s) == {"n1", "n3", "n4", "n5"}, timeout=10
        )
        # Allocations outlive the restart, even the damaged ones (restored from their NodeSubnets).
        assert {n: after[n] for n in ("n1", "n3", "n4")} == {n: before[n] for n in ("n1", "n3", "n4")}
        assert len(set(after.values())) == 4
        wait_for("records to agree", lambda: record_subnets(api, namespace, "pool") == after, timeout=10)
        wait_network(api, namespace, "pool", "status to agree", lambda n: n["status"]["allocated"] == 4)


def test_resync_with_nothing_drifted_writes_nothing_and_repairs_drift(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    if cluster.local is None:
        pytest.skip("counts writes in the audit log of the control plane built here")
    for i in range(3):
        make_node(f"n{i}")
    make_network(api, namespace, "quiet", {"cidr": "10.110.0.0/16"})
    make_network(api, namespace, "invalid", {"cidr": "10.111.0.0/16", "gateway": "10.112.0.1"})
    with running_operator(env=QUICK_RESYNC_ENV):
        wait_for("ready", network_ready_with(api, namespace, "quiet", "True", "Allocated"))
        wait_for("invalid", network_ready_with(api, namespace, "invalid", "False", "InvalidSpec"))
        subnets = wait_subnets(api, namespace, "quiet", "three nodes", lambda s: len(s) == 3)
        time.sleep(QUICK_RESYNC + 1)  # let the creation settle: events posted, first resync done
        since = time.time()
        time.sleep(3 * QUICK_RESYNC + 1)  # three resyncs of both Networks
        writes = [
            f"{e['verb']} {e['requestURI']}"
            for e in audit_entries(cluster, "admin", since)
            if e["verb"] in ("create", "update", "patch", "delete")
        ]
        assert writes == []

        # Drift: a hand edit is repaired by the next event or resync, with the same subnet.
        key = annotation.key_for(namespace, "quiet")
        pykube.Node.objects(api).get(name="n1").patch({"metadata": {"annotations": {key: "garbage"}}})
        repaired = wait_subnets(api, namespace, "quiet", "repair", lambda s: s == subnets, timeout=10)
        assert repaired == subnets


def test_a_node_joining_three_pools_is_written_once_for_all_of_them(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    if cluster.local is None:
        pytest.skip("counts writes in the audit log of the control plane built here")
    make_node("first")
    for i in range(3):
        make_network(api, namespace, f"pool{i}", {"cidr": f"10.{130 + i}.0.0/16"})
    # No resync during the test: a resync's round could take one pool alone.
    with running_operator(env={"NETWORK_RESYNC_SECONDS": "300"}):
        for i in range(3):
            wait_subnets(api, namespace, f"pool{i}", "the first Node", lambda s: len(s) == 1)
        since = time.time()
        make_node("joiner")
        for i in range(3):
            wait_subnets(api, namespace, f"pool{i}", "the joiner", lambda s: len(s) == 2)
        time.sleep(1)  # the audit log is written as each request completes
        patches = [e for e in audit_entries(cluster, "admin", since) if e["verb"] == "patch"]
        assert [e["requestURI"] for e in patches if "/nodes/" in e["requestURI"]] == ["/api/v1/nodes/joiner"]
        keys = {annotation.key_for(namespace, f"pool{i}") for i in range(3)}
        joiner = pykube.Node.objects(api).get(name="joiner").obj
        assert keys <= joiner["metadata"]["annotations"].keys()


def test_deleting_a_network_removes_annotations_then_finalizer(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(3):
        make_node(f"n{i}")
    make_network(api, namespace, "doomed", {"cidr": "10.120.0.0/16"})
    make_network(api, namespace, "keeper", {"cidr": "10.121.0.0/16"})
    with running_operator():
        wait_subnets(api, namespace, "doomed", "three", lambda s: len(s) == 3)
        keep = wait_subnets(api, namespace, "keeper", "three", lambda s: len(s) == 3)
        doomed = Network.objects(api, namespace=namespace).get(name="doomed")
        assert doomed.obj["metadata"]["finalizers"] == ["samplecrd.k8s.io/network-operator"]
        doomed.delete()
        wait_for("doomed gone", lambda: not network_exists(api, namespace, "doomed"))
        assert node_subnets(api, namespace, "doomed") == record_subnets(api, namespace, "doomed") == {}
        assert node_subnets(api, namespace, "keeper") == keep == record_subnets(api, namespace, "keeper")
    for node in pykube.Node.objects(api):
        assert node.obj["metadata"].get("finalizers") is None
        assert [k for k in node.annotations if "kopf" in k] == []


def test_network_deleted_mid_allocation_leaves_nothing(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(150):
        make_node(f"m{i:03d}")
    with running_operator():
        net = make_network(api, namespace, "brief", {"cidr": "10.130.0.0/16"})
        wait_for("some allocated", lambda: len(node_subnets(api, namespace, "brief")) > 0, interval=0.05)
        net.delete()
        wait_for("brief gone", lambda: not network_exists(api, namespace, "brief"), timeout=60)
        time.sleep(1)
        assert node_subnets(api, namespace, "brief") == record_subnets(api, namespace, "brief") == {}
