"""Several replicas, one writer: two operators in one Kopf peering; exactly one
writes, and stopping or killing it hands the work to the other."""

from __future__ import annotations

import datetime
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykube
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.cluster import free_port
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    OPERATOR,
    KubeCluster,
    a_hand_deleted_nodesubnet_is_made_again,
    audit_entries,
    chart_rules,
    make_network,
    network_ready_with,
    node_subnets,
    record_subnets,
    service_account_kubeconfig,
    wait_for,
    wait_subnets,
)
from tests.integration.test_records import make_nodes

KOPF = str(Path(sys.executable).parent / "kopf")


def _business(cluster: KubeCluster, namespace: str, account: str, since: float) -> list[dict[str, Any]]:
    return [
        e
        for e in audit_entries(cluster, f"system:serviceaccount:{namespace}:{account}", since)
        if e["verb"] in ("create", "update", "patch", "delete")
        and any(part in e["requestURI"] for part in ("/nodes/", "/networks/", "/nodesubnets", "/events"))
    ]


def business_writes(cluster: KubeCluster, namespace: str, account: str, since: float) -> list[str]:
    """What the replica wrote to Nodes, NodeSubnets, Networks and their status (not its peering keep-alive)."""
    return [f"{e['verb']} {e['requestURI']}" for e in _business(cluster, namespace, account, since)]


def write_times(cluster: KubeCluster, namespace: str, account: str, since: float) -> list[float]:
    """When the API server received each of those writes."""
    return sorted(
        datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        for e in _business(cluster, namespace, account, since)
    )


@pytest.fixture
def http_ports() -> dict[str, int]:
    """Where each replica serves /metrics."""
    return {"replica-a": free_port(), "replica-b": free_port()}


@pytest.fixture
def replicas(
    cluster: KubeCluster, namespace: str, peering: str, tmp_path: Path, http_ports: dict[str, int]
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
            "NETWORK_LEASE": "network-operator",
            "NETWORK_LEASE_NAMESPACE": namespace,
            "POD_NAME": account,
            "NETWORK_HTTP_PORT": str(http_ports[account]),
            # Only the hand-over can serve new Nodes in these tests.
            "NETWORK_RESYNC_SECONDS": "600",
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


def _stamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def nodesubnet_watches(cluster: KubeCluster, namespace: str, account: str) -> list[tuple[float, float]]:
    """When each of the replica's NodeSubnet watches was open: (from, to), `to` infinite while it is."""
    opened: dict[str, float] = {}
    closed: dict[str, float] = {}
    for e in audit_entries(cluster, f"system:serviceaccount:{namespace}:{account}", 0):
        if e["verb"] == "watch" and e["requestURI"].startswith("/apis/samplecrd.k8s.io/v1/nodesubnets?"):
            opened[e["auditID"]] = _stamp(e["requestReceivedTimestamp"])
            if e["stage"] == "ResponseComplete":
                closed[e["auditID"]] = _stamp(e["stageTimestamp"])
    return [(start, closed.get(audit_id, math.inf)) for audit_id, start in opened.items()]


def nodesubnet_creates(cluster: KubeCluster, namespace: str, account: str, since: float) -> list[str]:
    return [w for w in business_writes(cluster, namespace, account, since) if w.startswith("create /apis/samplecrd")]


def test_a_standby_watches_no_nodesubnets_and_acts_on_them_once_active(
    cluster: KubeCluster,
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    replicas: dict[str, subprocess.Popen[bytes]],
) -> None:
    """The NodeSubnet watch is the operator's own, not Kopf's: it stops while
    Kopf's peering pauses the replica, as Kopf's watches do. A NodeSubnet
    deleted by hand is made again once, by the active replica; the standby
    has no NodeSubnet watch open meanwhile. Once the active replica is
    gone, the other lists and watches them, and makes the next one again."""
    if cluster.local is None:
        pytest.fail("reads the audit log of the control plane built here: run without $KUBECONFIG")
    active = next(n for n, p in replicas.items() if p is replicas["first"] and n != "first")
    standby = next(n for n, p in replicas.items() if p is replicas["second"] and n != "second")
    time.sleep(3)  # both see each other in the peering before there is work
    for name in ("n0", "n1", "n2"):
        make_node(name)
    make_network(api, namespace, "ha", {"cidr": "10.162.0.0/16"})
    wait_subnets(api, namespace, "ha", "three nodes", lambda s: len(s) == 3)
    time.sleep(2)
    since = time.time()
    a_hand_deleted_nodesubnet_is_made_again(api, "n0")
    time.sleep(3)  # a standby acting on the event would have written by now
    until = time.time()
    assert len(nodesubnet_creates(cluster, namespace, active, since)) == 1
    assert business_writes(cluster, namespace, standby, since) == []
    assert [w for w in nodesubnet_watches(cluster, namespace, standby) if w[0] < until and w[1] > since] == []
    assert any(end == math.inf for _, end in nodesubnet_watches(cluster, namespace, active))

    replicas["first"].send_signal(signal.SIGTERM)
    assert replicas["first"].wait(timeout=60) == 0
    handed = time.time()
    wait_for(
        "the other replica watches NodeSubnets",
        lambda: any(end == math.inf for _, end in nodesubnet_watches(cluster, namespace, standby)),
        timeout=60,
        interval=1,
    )
    a_hand_deleted_nodesubnet_is_made_again(api, "n1")
    assert len(nodesubnet_creates(cluster, namespace, standby, handed)) == 1
    assert business_writes(cluster, namespace, active, handed) == []
    assert wait_subnets(api, namespace, "ha", "three nodes", lambda s: len(s) == 3)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_active_replica_killed_or_stopped_in_the_middle_of_a_burst(
    cluster: KubeCluster,
    api: pykube.HTTPClient,
    namespace: str,
    replicas: dict[str, subprocess.Popen[bytes]],
    sig: signal.Signals,
) -> None:
    """SIGKILL: no clean exit; the standby takes over once the killed
    replica's peering record and Lease expire. SIGTERM: the active replica
    stops writing, gives both back and exits cleanly. Either way the standby
    finishes the burst: no duplicate, no Node whose subnet moved, and the two
    never wrote at once."""
    if cluster.local is None:
        pytest.fail("reads the audit log of the control plane built here: run without $KUBECONFIG")
    active = next(n for n, p in replicas.items() if p is replicas["first"] and n != "first")
    standby = next(n for n, p in replicas.items() if p is replicas["second"] and n != "second")
    time.sleep(3)  # both see each other in the peering before there is work
    since = time.time()
    make_network(api, namespace, "burst", {"cidr": "10.0.0.0/8"})
    total = 1000
    creator = threading.Thread(target=make_nodes, args=(cluster, [f"b-{i:04d}" for i in range(total)]), daemon=True)
    creator.start()

    def served(at_least: int) -> Callable[[], dict[str, str] | None]:
        def check() -> dict[str, str] | None:
            subnets = node_subnets(api, namespace, "burst")
            return subnets if len(subnets) >= at_least else None

        return check

    before = wait_for("part of the burst served", served(100), timeout=120, interval=0.1)
    replicas["first"].send_signal(sig)
    killed = time.time()
    code = replicas["first"].wait(timeout=60)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    creator.join(timeout=120)
    after = wait_for("every Node served by the standby", served(total), timeout=180, interval=1)
    assert len(set(after.values())) == total  # no subnet on two Nodes
    assert {n: after[n] for n in before} == before  # no subnet moved
    assert record_subnets(api, namespace, "burst") == after  # one record per Node, equal to its annotation
    by_active = write_times(cluster, namespace, active, since)
    by_standby = write_times(cluster, namespace, standby, since)
    assert by_active
    assert by_standby
    assert by_active[-1] < by_standby[0], "both replicas wrote at once"
    print(f"\nfailover after {sig.name}: the standby's first write {by_standby[0] - killed:.1f}s later")


def pool_series(port: int, namespace: str) -> dict[str, float] | None:
    """A replica's active_writer and its per-Network series of `namespace`; None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "network_operator_active_writer":
                found[s.name] = s.value
            elif s.name.startswith("network_operator_pool_") and s.labels.get("namespace") == namespace:
                found[f"{s.name}/{s.labels['network']}"] = s.value
    return found


def test_only_the_active_replica_reports_pools_so_a_sum_counts_each_once(
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    replicas: dict[str, subprocess.Popen[bytes]],
    http_ports: dict[str, int],
) -> None:
    first, second = http_ports["replica-a"], http_ports["replica-b"]
    wait_for("both replicas serve", lambda: all(pool_series(p, namespace) is not None for p in (first, second)), 120)
    time.sleep(3)  # both see each other in the peering before there is work
    make_node("n0")
    make_node("n1")
    make_network(api, namespace, "ha", {"cidr": "10.161.0.0/16"})
    wait_for("ready", network_ready_with(api, namespace, "ha", "True", "Allocated"), timeout=30)

    def summed(name: str) -> float:
        return sum((pool_series(port, namespace) or {}).get(name, 0.0) for port in (first, second))

    wait_for("the active replica's gauges", lambda: summed("network_operator_pool_allocated/ha") == 2)
    active, standby = pool_series(first, namespace), pool_series(second, namespace)
    assert active is not None
    assert active["network_operator_active_writer"] == 1
    assert active["network_operator_pool_capacity/ha"] == 255
    assert standby == {"network_operator_active_writer": 0}

    # Another holder takes the Lease: the replica that lost it stops reporting.
    lease = pykube.object_factory(api, "coordination.k8s.io/v1", "Lease")
    held = lease.objects(api, namespace=namespace).get(name="network-operator")
    for _ in range(3):
        held.reload()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        held.obj["spec"].update({"holderIdentity": "intruder", "leaseDurationSeconds": 10, "renewTime": now})
        held.update()
        time.sleep(1)
    assert pool_series(first, namespace) == {"network_operator_active_writer": 0}
    assert pool_series(second, namespace) == {"network_operator_active_writer": 0}
    # Once the intruder's Lease has run out, the replica writes and reports again.
    make_node("n2")
    wait_for("n2 served", lambda: summed("network_operator_pool_allocated/ha") == 3, timeout=40)
    assert pool_series(first, namespace)["network_operator_active_writer"] == 1  # type: ignore[index]

    # The active replica stops: the other takes over, and reports the pool alone.
    replicas["first"].send_signal(signal.SIGTERM)
    assert replicas["first"].wait(timeout=60) == 0
    make_node("n3")
    wait_for("the new active replica's gauges", lambda: summed("network_operator_pool_allocated/ha") == 4, timeout=60)
    took_over = pool_series(second, namespace)
    assert took_over is not None
    assert took_over["network_operator_active_writer"] == 1
    assert took_over["network_operator_pool_free/ha"] == 251
