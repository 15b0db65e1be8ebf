"""Benchmark: how fast the operator recovers, next to the targets.

    .venv/bin/python bench/recovery.py

On one freshly built control plane, with the resync at 600 s so that only the
fast paths count:
  - API server restart: kube-apiserver is killed and started again; Nodes
    join and leave as soon as it answers; seconds from then until every Node
    is served and every deleted Node released;
  - watch gap: Nodes deleted in etcd while the API server is down, etcd
    compacted (the watch resumes into 410 Gone); seconds from the API server
    answering until they are released;
  - expired continue token: the operator paused (SIGSTOP) between two pages
    of its LIST of Nodes (a proxy holds the second page to stop it there),
    Nodes leave and join, etcd is compacted, the API server restarts; the
    operator resumed, its next page gets 410 Expired; seconds from the
    resume until every Node is served and every deleted Node released;
  - failover: two replicas in a Kopf peering, a 1,000-Node burst, the active
    replica killed (SIGKILL) or stopped (SIGTERM) once 100 Nodes are served;
    seconds until the standby's first write (from the API server's audit
    log; their Kopf peering keep-alives and Lease updates aside), whether the
    two ever wrote at once, and for SIGTERM how long the stopped replica took
    to exit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from controller.config import Config  # noqa: E402
from controlplane.cluster import Cluster, build  # noqa: E402
from tests.integration import faults  # noqa: E402
from tests.integration.faults import Fault, FaultProxy  # noqa: E402
from tests.integration.support import (  # noqa: E402
    CHART,
    KubeCluster,
    audit_entries,
    chart_rules,
    get_network,
    make_network,
    node_subnets,
    record_subnets,
    service_account_kubeconfig,
    wait_for,
)

KOPF = str(Path(sys.executable).parent / "kopf")
NAMESPACE = "bench"
BURST = 1000


def create_nodes(kubeconfig: Path, names: list[str], label: str) -> None:
    def create(chunk: list[str]) -> None:
        api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        for name in chunk:
            pykube.Node(api, {"metadata": {"name": name, "labels": {"bench": label}}}).create()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, [names[i::8] for i in range(8)]))


def until_answered(op: Callable[[], object]) -> None:
    """Retry an API call while the API server starts (connection refused, 429)."""
    while True:
        try:
            op()
            return
        except pykube.exceptions.HTTPError as e:
            if e.code in (404, 409):
                return
        except Exception:  # connection refused while it restarts
            pass
        time.sleep(0.1)


def converged(api: pykube.HTTPClient, name: str, live: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            records = record_subnets(api, NAMESPACE, name)
            status = get_network(api, NAMESPACE, name).get("status") or {}
            return (
                set(records) == live
                and node_subnets(api, NAMESPACE, name) == records
                and status.get("allocated") == len(live)
            )
        except Exception:  # 429 while the API server initializes
            return False

    return check


@contextlib.contextmanager
def operator(work: Path, name: str, kubeconfig: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    full = {**os.environ, "KUBECONFIG": str(kubeconfig), "NETWORK_RESYNC_SECONDS": "600", "NETWORK_HTTP_PORT": "0"}
    args = [KOPF, "run", "-A", *([] if "NETWORK_PEERING" in env else ["--standalone"]), str(ROOT / "operator.py")]
    with (work / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(args, env={**full, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def api_restart(local: Cluster, api: pykube.HTTPClient, work: Path) -> tuple[float, float]:
    nodes = [f"restart-{i:02d}" for i in range(20)]
    create_nodes(local.kubeconfig, nodes, "restart")
    make_network(
        api, NAMESPACE, "restart", {"cidr": "10.1.0.0/16", "nodeSelector": {"matchLabels": {"bench": "restart"}}}
    )
    with operator(work, "restart", local.kubeconfig):
        wait_for("served", converged(api, "restart", set(nodes)), timeout=60)
        local.kill("kube-apiserver")
        time.sleep(3)
        started = time.monotonic()
        local.start_apiserver()
        ready = time.monotonic() - started
        client = pykube.HTTPClient(pykube.KubeConfig.from_file(str(local.kubeconfig)))
        joined = [f"restart-{i:02d}" for i in range(20, 25)]
        for gone, new in zip(nodes[:5], joined, strict=True):
            until_answered(pykube.Node(client, {"metadata": {"name": gone}}).delete)
            node = {"metadata": {"name": new, "labels": {"bench": "restart"}}}
            until_answered(pykube.Node(client, node).create)
        wait_for("converged", converged(api, "restart", set(nodes[5:] + joined)), timeout=120, interval=0.1)
        return time.monotonic() - started, ready


def watch_gap(local: Cluster, api: pykube.HTTPClient, work: Path) -> tuple[float, float]:
    nodes = [f"gap-{i:02d}" for i in range(20)]
    create_nodes(local.kubeconfig, nodes, "gap")
    make_network(api, NAMESPACE, "gap", {"cidr": "10.2.0.0/16", "nodeSelector": {"matchLabels": {"bench": "gap"}}})
    with operator(work, "gap", local.kubeconfig):
        wait_for("served", converged(api, "gap", set(nodes)), timeout=60)
        local.kill("kube-controller-manager")  # its garbage collector would release them too
        try:
            local.kill("kube-apiserver")
            for name in nodes[:5]:
                local.etcd_delete(f"/registry/minions/{name}")
            local.compact()
            started = time.monotonic()
            local.start_apiserver()
            ready = time.monotonic() - started
            wait_for("released", converged(api, "gap", set(nodes[5:])), timeout=120, interval=0.1)
            took = time.monotonic() - started
        finally:
            local.start_controller_manager()
    log = (work / "gap.log").read_text()
    assert "dropped 5 Nodes the LIST no longer has" in log, "no watch gap seen"
    return took, ready


def expired_token(tc: KubeCluster, local: Cluster, api: pykube.HTTPClient, work: Path) -> float:
    nodes = [f"token-{i:02d}" for i in range(30)]
    create_nodes(local.kubeconfig, nodes, "token")
    spec = {"cidr": "10.3.0.0/16", "nodeSelector": {"matchLabels": {"bench": "token"}}}
    make_network(api, NAMESPACE, "token", spec)
    with FaultProxy(tc, work) as proxy:
        with operator(work, "token-first", proxy.kubeconfig):
            wait_for("served", converged(api, "token", set(nodes)), timeout=60)
        held = threading.Event()
        page = proxy.add(Fault(faults.nodes("page"), hold=held))
        local.kill("kube-controller-manager")  # its garbage collector would release them too
        try:
            with operator(work, "token", proxy.kubeconfig, NETWORK_LIST_PAGE="5") as proc:
                wait_for("the operator's LIST held after its first page", lambda: page.hits, timeout=60)
                proc.send_signal(signal.SIGSTOP)
                joined = [f"token-{i:02d}" for i in range(30, 35)]
                for gone in nodes[:5]:
                    pykube.Node(api, {"metadata": {"name": gone}}).delete()
                create_nodes(local.kubeconfig, joined, "token")
                local.compact()
                local.kill("kube-apiserver")
                local.start_apiserver()
                started = time.monotonic()
                proc.send_signal(signal.SIGCONT)
                held.set()
                wait_for("converged", converged(api, "token", set(nodes[5:] + joined)), timeout=120, interval=0.1)
                took = time.monotonic() - started
                alive = proc.poll() is None
        finally:
            local.start_controller_manager()
    log = (work / "token.log").read_text()
    assert "410 Expired" in log, "the LIST's next page did not expire"
    assert alive, "the operator exited"
    return took


def failover(tc: KubeCluster, api: pykube.HTTPClient, work: Path, sig: signal.Signals) -> tuple[float, float, bool]:
    """(seconds to the standby's first write, seconds for the stopped replica to exit, whether both wrote at once)."""
    tag = sig.name.lower()
    names = sorted([f"{tag}-a", f"{tag}-b"], key=lambda n: -Config(pod_name=n).peering_priority)
    configs = {n: service_account_kubeconfig(tc, NAMESPACE, n, chart_rules(tc), work) for n in names}
    spec = {"cidr": "10.64.0.0/10" if sig == signal.SIGKILL else "10.128.0.0/10"}
    make_network(api, NAMESPACE, tag, {**spec, "nodeSelector": {"matchLabels": {"bench": tag}}})
    peering = {"NETWORK_PEERING": "bench", "NETWORK_LEASE": "bench", "NETWORK_LEASE_NAMESPACE": NAMESPACE}
    with (
        operator(work, names[0], configs[names[0]], POD_NAME=names[0], **peering) as active,
        operator(work, names[1], configs[names[1]], POD_NAME=names[1], **peering),
    ):
        time.sleep(3)  # both in the peering
        since = time.time()
        nodes = [f"{tag}-{i:04d}" for i in range(BURST)]
        creator = threading.Thread(target=create_nodes, args=(tc.kubeconfig, nodes, tag), daemon=True)
        creator.start()
        wait_for("100 served", lambda: len(node_subnets(api, NAMESPACE, tag)) >= 100, timeout=120, interval=0.1)
        stopped = time.time()
        active.send_signal(sig)
        active.wait(timeout=60)
        exited = time.time() - stopped
        creator.join()
        wait_for("the burst served", converged(api, tag, set(nodes)), timeout=300, interval=1)
        subnets = node_subnets(api, NAMESPACE, tag)
        assert len(set(subnets.values())) == BURST, "a subnet on two Nodes"

    def writes(account: str) -> list[tuple[float, str]]:
        return sorted(
            (
                datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp(),
                f"{e['verb']} {e['requestURI']}",
            )
            for e in audit_entries(tc, f"system:serviceaccount:{NAMESPACE}:{account}", since)
            if e["verb"] in ("create", "update", "patch", "delete")
            and not any(coordination in e["requestURI"] for coordination in ("kopfpeerings", "/leases"))
        )

    by_active, by_standby = writes(names[0]), writes(names[1])
    overlap = bool(by_active and by_standby and by_active[-1][0] >= by_standby[0][0])
    if overlap:
        print(f"{sig.name}: the standby wrote at once with the active replica, stopped at {stopped:.1f}:")
        print(*(f"  {t:.1f} {w}" for t, w in by_standby[:5]), f"  active's last: {by_active[-1]}", sep="\n")
    return by_standby[0][0] - stopped, exited, overlap


def main(argv: list[str]) -> int:
    bin_dir = build()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        local = Cluster(work / "cp", bin_dir)
        local.start()
        try:
            tc = KubeCluster(local.kubeconfig, bin_dir, local)
            tc.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            tc.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "clusterkopfpeering.yaml"))
            tc.kubectl("wait", "--for=condition=Established", "--all", "crd")
            wait_for(
                "CRDs served", lambda: tc.kubectl("get", "networks,clusterkopfpeerings", check=False).returncode == 0
            )
            peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "bench"}}
            tc.kubectl("apply", "-f", "-", input=json.dumps(peering))
            tc.kubectl("create", "namespace", NAMESPACE)
            api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(local.kubeconfig)))
            restart = api_restart(local, api, work)
            gap = watch_gap(local, api, work)
            token = expired_token(tc, local, api, work)
            kill, _, kill_overlap = failover(tc, api, work, signal.SIGKILL)
            term, exited, term_overlap = failover(tc, api, work, signal.SIGTERM)
        finally:
            local.stop()
    rows = [
        ("API server restart, Nodes joining and leaving: all served and released", restart, "a few s after it answers"),
        ("watch gap, 410 Gone: the Nodes deleted in the gap released", gap, "as soon as it answers"),
    ]
    print(f"{'recovery':<74} {'seconds':>8}  target")
    for what, (took, ready), target in rows:
        print(f"{what:<74} {took:>8.1f}  {target} (it answered after {ready:.1f})")
    expired = "expired continue token: from the resume, all served and released"
    print(f"{expired:<74} {token:>8.1f}  5")
    print(f"{'SIGKILL of the active replica in a 1,000-Node burst: the standby writes':<74} {kill:>8.1f}  15")
    print(f"{'SIGTERM of the active replica in a 1,000-Node burst: the standby writes':<74} {term:>8.1f}  2")
    print(f"{'SIGTERM of the active replica in a 1,000-Node burst: it exits':<74} {exited:>8.1f}  5")
    print(f"both replicas writing at once: after SIGKILL {kill_overlap}, after SIGTERM {term_overlap} (target: never)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
