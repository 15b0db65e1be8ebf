"""Several replicas, one writer: two operators in one Kopf peering; exactly one
writes, and stopping it hands the work to the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pykube
import pytest

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    OPERATOR,
    KubeCluster,
    audit_entries,
    chart_rules,
    make_network,
    network_ready_with,
    service_account_kubeconfig,
    wait_for,
    wait_subnets,
)

KOPF = str(Path(sys.executable).parent / "kopf")


def business_writes(cluster: KubeCluster, namespace: str, account: str, since: float) -> list[str]:
    """What the replica wrote to Nodes, NodeSubnets, Networks and their status (not its peering keep-alive)."""
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in audit_entries(cluster, f"system:serviceaccount:{namespace}:{account}", since)
        if e["verb"] in ("create", "update", "patch", "delete")
        and any(part in e["requestURI"] for part in ("/nodes/", "/networks/", "/nodesubnets", "/events"))
    ]


@pytest.fixture
def replicas(
    cluster: KubeCluster, namespace: str, peering: str, tmp_path: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Two operator processes, each as its own ServiceAccount; `first` starts first, so it outranks `second`."""
    names = ["replica-a", "replica-b"]
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(account: str) -> None:
        kubeconfig = service_account_kubeconfig(cluster, namespace, account, chart_rules(cluster), tmp_path)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "NETWORK_PEERING": peering,
            "POD_NAME": account,
            "NETWORK_HTTP_PORT": "0",
        }
        log = (tmp_path / f"{account}.log").open("wb")
        procs[account] = subprocess.Popen([KOPF, "run", "-A", OPERATOR], env=env, stdout=log, stderr=subprocess.STDOUT)

    for name in names:
        start(name)
    try:
        yield {"first": procs[names[0]], "second": procs[names[1]], **procs}
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(timeout=60)


def test_one_replica_writes_and_hands_over_when_stopped(
    cluster: KubeCluster,
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    replicas: dict[str, subprocess.Popen[bytes]],
) -> None:
    if cluster.local is None:
        pytest.skip("reads the audit log of the control plane built here")
    active = next(n for n, p in replicas.items() if p is replicas["first"] and n != "first")
    standby = next(n for n, p in replicas.items() if p is replicas["second"] and n != "second")
    time.sleep(3)  # both see each other in the peering before there is work
    since = time.time()
    make_node("n0")
    make_node("n1")
    make_network(api, namespace, "ha", {"cidr": "10.160.0.0/16"})
    wait_for("ready", network_ready_with(api, namespace, "ha", "True", "Allocated"), timeout=30)
    wait_subnets(api, namespace, "ha", "two nodes", lambda s: len(s) == 2)
    time.sleep(2)
    assert business_writes(cluster, namespace, active, since)
    assert business_writes(cluster, namespace, standby, since) == []

    replicas["first"].send_signal(signal.SIGTERM)
    assert replicas["first"].wait(timeout=60) == 0
    handed = time.time()
    make_node("n2")
    subnets = wait_subnets(api, namespace, "ha", "n2 served by the other replica", lambda s: "n2" in s, timeout=60)
    assert len(set(subnets.values())) == 3
    took = time.time() - handed
    print(f"\nhand-over after a clean stop: n2 served {took:.1f}s later")
    assert business_writes(cluster, namespace, standby, handed)
    assert business_writes(cluster, namespace, active, handed) == []
