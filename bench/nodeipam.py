"""Benchmark: one pool of per-node subnets for N Nodes, this operator against
kube-controller-manager's node IPAM controller (the peer), in one run.

    .venv/bin/python bench/nodeipam.py 1000 5000

For each N, on a fresh control plane with N kubelet-shaped Nodes
(bench/kubelet.py):
  - the operator with one Network 10.0.0.0/8 in /24s, until every Node has
    its subnet;
  - after it stops, kube-controller-manager with only node-ipam-controller
    (--cluster-cidr=10.0.0.0/8 --node-cidr-mask-size=24, API rate limits
    raised so neither side is throttled), until every Node has spec.podCIDR.
Where the operator can write Node.spec.podCIDRs (a Network's
`podCIDRs: true`), it does so on a second fresh control plane, so that both
sides write the same field and are done by the same test.

Each time is from the process's start (Python and Kopf's start-up, about
2 s, included) to the moment a watch sees the last Node done. CPU seconds and
peak resident memory (VmHWM) are the process's own, from /proc; writes are
from the API server's audit log. CPU is also read when the process logs
that its start-up is done (STARTED), before its first allocation: the
start-up's share, the rest is the allocations'.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import create_nodes  # noqa: E402
from bench.support import (  # noqa: E402
    ADMIN,
    NodesDone,
    StartupCPU,
    cluster_with_crds,
    control_plane_cpu,
    cpu_seconds,
    create,
    peak_rss_mib,
    start_operator,
    stop,
    writes_by,
)
from controlplane.cluster import Cluster, build  # noqa: E402

ANNOTATION = "network.samplecrd.k8s.io/default.bench"
# Whether this version of the operator can write Node.spec.podCIDRs.
POD_CIDRS = "podCIDRs" in (ROOT / "crds" / "network.yaml").read_text()
TIMEOUT = 600.0
# What each allocator logs once its start-up is done (its caches filled) and
# it begins to allocate: the end of the operator's startup handler, the
# start of the peer's CIDR allocator.
STARTED = {"operator": "Activity 'configure' succeeded.", "kcm": "Starting range CIDR allocator"}


def network(pod_cidrs: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"cidr": "10.0.0.0/8"}
    if pod_cidrs:
        spec["podCIDRs"] = True
    return {
        "apiVersion": "samplecrd.k8s.io/v1",
        "kind": "Network",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": spec,
    }


@dataclass
class Run:
    """One allocator's run over every Node."""

    seconds: float
    cpu: float
    rss: float
    writes: int
    control: float  # CPU seconds of the API server and etcd meanwhile
    startup_cpu: float = math.nan  # CPU seconds when its start-up was done

    def per_thousand(self, allocations: int) -> float:
        """CPU seconds per 1,000 allocations, start-up aside."""
        return (self.cpu - self.startup_cpu) / allocations * 1000


def has_subnet(node: dict[str, Any]) -> bool:
    return ANNOTATION in (node["metadata"].get("annotations") or {})


def has_pod_cidr(node: dict[str, Any]) -> bool:
    return bool(node.get("spec", {}).get("podCIDR"))


def race(
    cmd: list[str] | None,
    cluster: Cluster,
    total: int,
    done: Callable[[dict[str, Any]], bool],
    log: Path,
) -> Run:
    """Start `cmd` (None: the operator) and wait until `total` Nodes are done."""
    watch = NodesDone(cluster.kubeconfig, total, done)
    watch.start()
    since = time.time()
    started = time.monotonic()
    control = control_plane_cpu(cluster)
    if cmd is None:
        proc = start_operator(cluster.kubeconfig, log)
    else:
        with log.open("wb") as out:
            env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    startup = StartupCPU(proc, log, STARTED["operator" if cmd is None else "kcm"])
    startup.start()
    try:
        finished = watch.wait_for(proc, log, TIMEOUT)
        cpu, rss = cpu_seconds(proc.pid), peak_rss_mib(proc.pid)
        control = control_plane_cpu(cluster) - control
    finally:
        stop(proc)
    # The audit log is written as each request completes: a moment for the last.
    time.sleep(1)
    writes = writes_by(cluster.audit_log, ADMIN, since, time.time())
    return Run(finished - started, cpu, rss, writes, control, math.nan if startup.cpu is None else startup.cpu)


def peer(bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--leader-elect=false",
        "--controllers=node-ipam-controller",
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.0.0.0/8",
        "--node-cidr-mask-size=24",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--kube-api-qps=1000",
        "--kube-api-burst=1000",
    ]


def run(total: int, bin_dir: Path, work: Path, pod_cidrs: bool = POD_CIDRS) -> dict[str, Run]:
    """{"operator": ..., "kcm": ...} and, with `pod_cidrs`, "operator podCIDRs"."""
    results = {}
    modes = ([("operator podCIDRs", True)] if pod_cidrs else []) + [("operator", False)]
    for who, cidrs in modes:
        name = f"{total}-podcidrs" if cidrs else str(total)
        cluster, kubectl, token = cluster_with_crds(work / f"cp-{name}", bin_dir)
        try:
            create_nodes(cluster.kubeconfig, token, range(total))
            create(kubectl, network(pod_cidrs=cidrs))
            done = has_pod_cidr if cidrs else has_subnet
            results[who] = race(None, cluster, total, done, work / f"operator-{name}.log")
            if not cidrs:  # the peer on the same control plane, once the operator stopped
                cmd = peer(bin_dir, cluster.kubeconfig)
                results["kcm"] = race(cmd, cluster, total, has_pod_cidr, work / f"nodeipam-{total}.log")
        finally:
            cluster.stop()
    return results


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv[1:]] or [1000, 5000]
    bin_dir = build()
    head = f"{'nodes':>6}  {'allocator':<20} {'seconds':>8} {'CPU s':>7} {'start-up':>8} {'per 1,000':>9}"
    print(head + f" {'peak RSS MiB':>13} {'writes':>7} {'API server + etcd CPU s':>24}")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for total in sizes:
            for who, r in run(total, bin_dir, Path(tmp)).items():
                line = f"{total:>6}  {who:<20} {r.seconds:>8.1f} {r.cpu:>7.1f} {r.startup_cpu:>8.2f}"
                line += f" {r.per_thousand(total):>9.2f} {r.rss:>13.0f} {r.writes:>7}"
                print(line + f" {r.control:>24.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
