"""What the operator serves: the admission webhook (called by the real API server),
metrics and the read-only cache view."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pykube
from prometheus_client.parser import text_string_to_metric_families

from controlplane.cluster import free_port
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    KubeCluster,
    Network,
    apply_network,
    get_network,
    make_network,
    network_ready_with,
    node_subnets,
    operator_with_webhook,
    ready,
    record_subnets,
    running_operator,
    stored_before_the_address_rules,
    wait_for,
)


def test_webhook_rejects_invalid_and_overlapping_networks_at_apply_time(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, tmp_path: Path
) -> None:
    # Invalid, but older than the webhook and the CRD's address rules: it must stay
    # deletable (its finalizer removable).
    stored_before_the_address_rules(cluster, api, namespace, {"legacy": {"cidr": "10.9.9.9/8"}})
    with operator_with_webhook(cluster, tmp_path):
        # Kopf registers the configuration once its server listens; retry the first call briefly.
        def rejected() -> subprocess.CompletedProcess[str] | None:
            r = apply_network(cluster, namespace, "gw", {"cidr": "10.1.0.0/16", "gateway": "10.2.0.1"})
            return r if r.returncode != 0 and "denied the request" in r.stderr else None

        bad = wait_for("a rejection", rejected)
        assert bad.stderr.strip().endswith(
            'admission webhook "validate-network.network-operator-test.samplecrd.k8s.io" denied the request: '
            "invalid spec: gateway 10.2.0.1 is outside cidr 10.1.0.0/16"
        )
        # A malformed address never reaches the webhook: the CRD's rules refuse it first.
        malformed = apply_network(cluster, namespace, "bad", {"cidr": "10.0.0.5/16"})
        assert malformed.stderr.strip().endswith(
            'spec.cidr: Invalid value: "10.0.0.5/16": host bits set, did you mean 10.0.0.0/16'
        )
        assert "admission webhook" not in malformed.stderr

        good = apply_network(cluster, namespace, "good", {"cidr": "10.0.0.0/16"})
        assert good.returncode == 0, good.stderr
        overlap = apply_network(cluster, namespace, "overlap", {"cidr": "10.0.128.0/17"})
        assert overlap.returncode != 0
        assert f"cidr 10.0.128.0/17 overlaps cidr 10.0.0.0/16 of the older Network {namespace}/good" in overlap.stderr
        # An update is checked too, and an update to a valid spec is admitted.
        broken = apply_network(cluster, namespace, "good", {"cidr": "10.0.0.0/16", "gateway": "10.0.0.0"})
        assert "gateway 10.0.0.0 is the network address of 10.0.0.0/16" in broken.stderr
        fine = apply_network(cluster, namespace, "good", {"cidr": "10.0.0.0/16", "gateway": "10.0.0.9"})
        assert fine.returncode == 0, fine.stderr
        assert {n.name for n in Network.objects(api, namespace=namespace)} == {"good", "legacy"}
        wait_for("legacy's finalizer", lambda: get_network(api, namespace, "legacy")["metadata"].get("finalizers"))
        Network.objects(api, namespace=namespace).get(name="legacy").delete()
        wait_for("legacy gone", lambda: {n.name for n in Network.objects(api, namespace=namespace)} == {"good"})


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def test_metrics_nodes_and_networks_report_what_the_api_shows(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    make_node("a", {"zone": "z1"})
    make_node("b", {"zone": "z2"})
    make_network(api, namespace, "pool", {"cidr": "10.140.0.0/16"})
    make_network(api, namespace, "tiny", {"cidr": "10.141.0.0/23"})  # room for one: the other waits
    port = free_port()
    with running_operator(env={"NETWORK_HTTP_PORT": str(port)}):
        pool = wait_for("pool", network_ready_with(api, namespace, "pool", "True", "Allocated"))
        tiny = wait_for("tiny", network_ready_with(api, namespace, "tiny", "False", "PoolExhausted"))
        metrics = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(_get(port, "/metrics"))
            for s in family.samples
        }
        nodes = json.loads(_get(port, "/nodes"))
        # Served from Kopf's index, which sees the status a moment after the API does.
        networks = wait_for(
            "the index to show both statuses",
            lambda: (found := json.loads(_get(port, "/networks"))) and all(n["ready"] for n in found) and found,
        )

    def metric(name: str, net: str) -> float:
        return metrics[(name, (("namespace", namespace), ("network", net)))]

    assert metric("network_operator_pool_allocated", "pool") == pool["status"]["allocated"] == 2
    assert metric("network_operator_pool_capacity", "pool") == float(pool["status"]["capacity"]) == 255
    assert metric("network_operator_pool_free", "pool") == 253
    assert metric("network_operator_pool_ready", "pool") == 1
    assert metric("network_operator_pool_exhausted", "tiny") == 1
    assert metric("network_operator_pool_waiting", "tiny") == tiny["status"]["waiting"] == 1
    assert metrics[("network_operator_nodes_cached", ())] == 2
    assert metrics[("network_operator_reconciles_total", (("result", "ok"),))] >= 2
    # One PATCH per Node for both Networks, reconciled in one round at startup.
    assert metrics[("network_operator_api_writes_total", (("resource", "nodes"),))] == 2

    on_nodes = {ref: node_subnets(api, namespace, ref) for ref in ("pool", "tiny")}
    assert nodes == [
        {
            "name": n,
            "labels": {"zone": z},
            "subnets": {f"{namespace}/{ref}": on_nodes[ref][n] for ref in ("pool", "tiny") if n in on_nodes[ref]},
        }
        for n, z in (("a", "z1"), ("b", "z2"))
    ]
    assert {(n["name"], n["cidr"], n["ready"], n["reason"], n["allocated"], n["waiting"]) for n in networks} == {
        ("pool", "10.140.0.0/16", "True", "Allocated", 2, 0),
        ("tiny", "10.141.0.0/23", "False", "PoolExhausted", 1, 1),
    }
    assert record_subnets(api, namespace, "pool") == on_nodes["pool"]
    assert ready(tiny)["reason"] == "PoolExhausted"
