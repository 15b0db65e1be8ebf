"""Benchmark: per-node subnets for N Nodes, this operator against kube-controller-manager's
node IPAM controller (the peer), on the same freshly built control plane, in one run.

    .venv/bin/python bench/nodeipam.py 1000 5000

For each N: a fresh control plane, N Nodes created, then
  - the operator with one Network 10.0.0.0/8 in /24s, until every Node has a subnet;
  - after it stops, kube-controller-manager with only node-ipam-controller
    (--cluster-cidr=10.0.0.0/8 --node-cidr-mask-size=24, API rate limits raised
    so neither side is throttled), until every Node has spec.podCIDR.
It prints the time from process start to the last allocation, the peak
resident memory (VmHWM) and the number of writes each made (from the API
server's audit log).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from controlplane.cluster import Cluster, build  # noqa: E402

NETWORK = {
    "apiVersion": "samplecrd.k8s.io/v1",
    "kind": "Network",
    "metadata": {"name": "bench", "namespace": "default"},
    "spec": {"cidr": "10.0.0.0/8"},
}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def create_nodes(kubeconfig: Path, total: int) -> None:
    def create(chunk: range) -> None:
        api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        for i in chunk:
            pykube.Node(api, {"metadata": {"name": f"node-{i:05d}"}}).create()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, [range(i, total, 8) for i in range(8)]))


def cluster_with_crds(root: Path, bin_dir: Path) -> tuple[Cluster, list[str]]:
    """A started control plane with the CRDs served, and a kubectl command line for it."""
    cluster = Cluster(root, bin_dir)
    cluster.start()
    kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "--all"], check=True, capture_output=True)
    return cluster, kubectl


def start_operator(kubeconfig: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """The operator as `kopf run` starts it, standalone, its output in `log`."""
    kopf = str(Path(sys.executable).parent / "kopf")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NETWORK_HTTP_PORT": "0", **env}
    with log.open("wb") as out:
        return subprocess.Popen(
            [kopf, "run", "-A", "--standalone", str(ROOT / "operator.py")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def count(kubeconfig: Path, done: Callable[[dict[str, object]], bool]) -> int:
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
    return sum(1 for node in pykube.Node.objects(api) if done(node.obj))


def writes_by(audit_log: Path, user: str, start: float, end: float) -> int:
    """Writes `user` made between two time.time() stamps (creates, updates,
    patches, deletes), Events aside: NodeSubnets count, as Node patches do."""
    n = 0
    # The API server rotates a large log: read its backups too (audit-<time>.log).
    for path in audit_log.parent.glob(f"{audit_log.stem}*{audit_log.suffix}"):
        n += _writes_in(path, user, start, end)
    return n


def _writes_in(path: Path, user: str, start: float, end: float) -> int:
    n = 0
    with path.open() as f:
        for line in f:
            entry = json.loads(line)
            when = datetime.datetime.fromisoformat(entry["stageTimestamp"].replace("Z", "+00:00")).timestamp()
            if (
                entry["user"]["username"] == user
                and start <= when <= end
                and entry["verb"] in ("create", "patch", "update", "delete")
                and entry.get("objectRef", {}).get("resource") != "events"
            ):
                n += 1
    return n


def race(
    cmd: list[str],
    env: dict[str, str],
    kubeconfig: Path,
    total: int,
    done: Callable[[dict[str, object]], bool],
    log: Path,
) -> tuple[float, float]:
    """Start `cmd`; return (seconds until `total` Nodes are done, peak RSS in MiB)."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        while count(kubeconfig, done) < total:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited early; see {log}")
            time.sleep(0.25)
        took = time.monotonic() - started
        return took, peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def has_subnet(node: dict[str, object]) -> bool:
    annotations = (node.get("metadata") or {}).get("annotations") or {}  # type: ignore[attr-defined]
    return "network.samplecrd.k8s.io/default.bench" in annotations


def has_pod_cidr(node: dict[str, object]) -> bool:
    return bool((node.get("spec") or {}).get("podCIDR"))  # type: ignore[attr-defined]


def run(total: int, bin_dir: Path, work: Path) -> dict[str, tuple[float, float, int]]:
    cluster, kubectl = cluster_with_crds(work / f"cp-{total}", bin_dir)
    try:
        kubeconfig = cluster.kubeconfig
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        create_nodes(kubeconfig, total)
        for _ in range(100):
            if (
                subprocess.run(
                    [*kubectl, "create", "-f", "-"], input=json.dumps(NETWORK), text=True, capture_output=True
                ).returncode
                == 0
            ):
                break
            time.sleep(0.2)

        results = {}
        since = time.time()
        kopf = str(Path(sys.executable).parent / "kopf")
        took, rss = race(
            [kopf, "run", "-A", "--standalone", str(ROOT / "operator.py")],
            env,
            kubeconfig,
            total,
            has_subnet,
            work / f"operator-{total}.log",
        )
        results["network-operator"] = (took, rss, writes_by(cluster.audit_log, "admin", since, time.time()))

        since = time.time()
        peer = [
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
        took, rss = race(peer, env, kubeconfig, total, has_pod_cidr, work / f"nodeipam-{total}.log")
        results["kube-controller-manager node IPAM"] = (
            took,
            rss,
            writes_by(cluster.audit_log, "admin", since, time.time()),
        )
        return results
    finally:
        cluster.stop()


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv[1:]] or [1000, 5000]
    bin_dir = build()
    print(f"{'nodes':>6}  {'allocator':<36} {'seconds':>8} {'peak RSS MiB':>13} {'writes':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for total in sizes:
            for who, (took, rss, writes) in run(total, bin_dir, Path(tmp)).items():
                print(f"{total:>6}  {who:<36} {took:>8.1f} {rss:>13.0f} {writes:>7}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
