"""Scale benchmark: one Network 10.0.0.0/8 in /24s (65,536 subnets), N
kubelet-shaped Nodes (bench/kubelet.py; default 50,000), on a fresh control
plane; `make bench` runs it as the memory row at N × 1 (BENCH_BIG).

    .venv/bin/python bench/scale.py [50000] [--annotations]

All N Nodes are there when the operator starts (a burst with no idle window
after it). The Network writes podCIDRs, as in bench/nodeipam.py, unless
--annotations. Prints how long creating the Nodes took, the time from the
operator's start until every Node has its subnet (the Network's status says
allocated == N), its CPU seconds (at the end of its start-up, and in all)
and peak resident memory, the size of the largest objects it writes (the
Network with its status, a NodeSubnet, a Node's annotation) against etcd's
1.5 MiB request limit, and its writes per Node, from the API server's audit
log.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import create_nodes  # noqa: E402
from bench.nodeipam import STARTED, network  # noqa: E402
from bench.support import (  # noqa: E402
    ADMIN,
    StartupCPU,
    cluster_with_crds,
    cpu_seconds,
    create,
    peak_rss_mib,
    start_operator,
    stop,
    writes_by,
)
from controlplane.cluster import build  # noqa: E402

ETCD_LIMIT = 1536 * 1024  # etcd's default --max-request-bytes
TIMEOUT = 3600.0


@dataclass
class Result:
    nodes: int
    pod_cidrs: bool
    created: float = 0.0  # seconds to create the Nodes
    seconds: float = 0.0  # from the operator's start until every Node is served
    startup_cpu: float = math.nan
    cpu: float = 0.0
    rss: float = 0.0  # peak, MiB
    writes: int = 0
    sizes: dict[str, int] = field(default_factory=dict)


def allocated(api: pykube.HTTPClient) -> int:
    resp = api.get(url="namespaces/default/networks/bench", version="samplecrd.k8s.io/v1")
    return int((resp.json().get("status") or {}).get("allocated") or 0) if resp.ok else 0


def largest_sizes(api: pykube.HTTPClient) -> dict[str, int]:
    """Bytes of each kind of object the operator writes, as JSON, the largest of each."""
    network = api.get(url="namespaces/default/networks/bench", version="samplecrd.k8s.io/v1").json()
    subnets = api.get(url="nodesubnets", version="samplecrd.k8s.io/v1").json()["items"]
    node = api.get(url="nodes", version="v1", params={"limit": 1}).json()["items"][0]
    annotations = node["metadata"].get("annotations") or {}
    return {
        "Network (whole object)": len(json.dumps(network)),
        "NodeSubnet (largest)": max(len(json.dumps(s)) for s in subnets),
        "Node annotation patch": len(json.dumps({"metadata": {"annotations": annotations}})),
    }


def run(total: int, bin_dir: Path, work: Path, pod_cidrs: bool = True) -> Result:
    result = Result(total, pod_cidrs)
    cluster, kubectl, token = cluster_with_crds(work / "cp", bin_dir)
    try:
        kubeconfig = cluster.kubeconfig
        result.created = create_nodes(kubeconfig, token, range(total))
        print(f"{total} Nodes created in {result.created:.0f} s", file=sys.stderr, flush=True)
        create(kubectl, network(pod_cidrs=pod_cidrs))
        api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        log = work / "operator.log"
        since = time.time()
        started = time.monotonic()
        proc = start_operator(kubeconfig, log)
        startup = StartupCPU(proc, log, STARTED["operator"])
        startup.start()
        try:
            while allocated(api) < total:
                if proc.poll() is not None:
                    raise RuntimeError(f"the operator exited early:\n{log.read_text()[-3000:]}")
                if time.monotonic() - started > TIMEOUT:
                    raise TimeoutError(f"{allocated(api)} of {total} Nodes served after {TIMEOUT:.0f} s")
                time.sleep(1)
            result.seconds = time.monotonic() - started
            result.cpu, result.rss = cpu_seconds(proc.pid), peak_rss_mib(proc.pid)
            result.startup_cpu = math.nan if startup.cpu is None else startup.cpu
        finally:
            stop(proc)
        time.sleep(1)  # the audit log is written as each request completes
        result.writes = writes_by(cluster.audit_log, ADMIN, since, time.time())
        result.sizes = largest_sizes(api)
    finally:
        cluster.stop()
    return result


def report(r: Result) -> str:
    mode = "podCIDRs" if r.pod_cidrs else "annotations only"
    lines = [
        f"{r.nodes} Nodes, one Network in /24s, {mode}",
        f"  Nodes created (register, then first status)  {r.created:8.1f} s",
        f"  until every Node is served                   {r.seconds:8.1f} s",
        f"  operator CPU                                 {r.cpu:8.1f} s (start-up {r.startup_cpu:.1f})",
        f"  operator peak RSS                            {r.rss:8.0f} MiB",
        f"  writes                                       {r.writes:8d} ({r.writes / r.nodes:.2f} per Node)",
    ]
    for what, size in r.sizes.items():
        lines.append(f"  {what:<44} {size:8d} bytes ({size / ETCD_LIMIT:.3%} of etcd's limit)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    total = int(args[0]) if args else 50_000
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        print(report(run(total, build(), Path(tmp), pod_cidrs="--annotations" not in argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
