"""Scale benchmark (not run in CI): one Network 10.0.0.0/8 in /24s, N Nodes
(default 50,000), on a fresh control plane.

    .venv/bin/python bench/scale.py 50000

Prints the time from the operator's start until every Node has its subnet
(the Network's status says allocated == N), its peak resident memory, the
size of the largest objects it writes (the Network with its status, a
NodeSubnet, a Node's annotation) against etcd's 1.5 MiB request limit, and its
writes per Node, from the API server's audit log.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import create_nodes  # noqa: E402
from bench.nodeipam import network  # noqa: E402
from bench.support import ADMIN, cluster_with_crds, create, peak_rss_mib, start_operator, writes_by  # noqa: E402
from controlplane.cluster import build  # noqa: E402

ETCD_LIMIT = 1536 * 1024  # etcd's default --max-request-bytes


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


def main(argv: list[str]) -> int:
    total = int(argv[1]) if len(argv) > 1 else 50_000
    bin_dir = build()
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        cluster, kubectl, token = cluster_with_crds(Path(tmp) / "cp", bin_dir)
        try:
            kubeconfig = cluster.kubeconfig
            made = create_nodes(kubeconfig, token, range(total))
            print(f"{total} Nodes created in {made:.0f} s", flush=True)
            create(kubectl, network(pod_cidrs=False))
            api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))

            since = time.time()
            started = time.monotonic()
            proc = start_operator(kubeconfig, Path(tmp) / "operator.log")
            try:
                while allocated(api) < total:
                    if proc.poll() is not None:
                        print((Path(tmp) / "operator.log").read_text()[-3000:])
                        raise RuntimeError("the operator exited early")
                    time.sleep(1)
                took = time.monotonic() - started
                rss = peak_rss_mib(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            writes = writes_by(cluster.audit_log, ADMIN, since, time.time())
            print(f"\n{total} Nodes, one Network in /24s")
            print(f"  until every Node is served  {took:8.1f} s")
            print(f"  operator peak RSS           {rss:8.0f} MiB")
            print(f"  writes                      {writes:8d} ({writes / total:.2f} per Node)")
            for what, size in largest_sizes(api).items():
                print(f"  {what:<27} {size:8d} bytes ({size / ETCD_LIMIT:.3%} of etcd's limit)")
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
