"""What the benchmarks share: a control plane with the CRDs, the operator's
process, its CPU and memory from /proc, writes from the audit log, and a
watch that tells when every Node is done."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykube
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import kubelet_identity  # noqa: E402
from controlplane.cluster import Cluster  # noqa: E402

ADMIN = "admin"  # the operator and the peer run with the admin kubeconfig


def cluster_with_crds(root: Path, bin_dir: Path) -> tuple[Cluster, list[str], str]:
    """A started control plane with the CRDs served, a kubectl command line for
    it, and a token for the kubelets (bench/kubelet.py).

    The control plane's own kube-controller-manager is stopped: its TTL
    controller patches every Node's annotation each time the number of Nodes
    crosses one of its boundaries (100, 500, 1,000, 2,000), at 20 requests a
    second, which would go on for minutes into the measurements. Nothing the
    benchmarks do needs it (kube-controller-manager's node IPAM, the peer, is
    started on its own)."""
    cluster = Cluster(root, bin_dir)
    cluster.start()
    cluster.kill("kube-controller-manager")
    kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "--server-side", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "--all"], check=True, capture_output=True)
    return cluster, kubectl, kubelet_identity(kubectl)


def create(kubectl: list[str], doc: dict[str, Any]) -> None:
    """kubectl create, retried while the API server has not yet picked up the CRDs."""
    for _ in range(100):
        done = subprocess.run([*kubectl, "create", "-f", "-"], input=json.dumps(doc), text=True, capture_output=True)
        if not done.returncode:
            return
        time.sleep(0.2)
    raise RuntimeError(f"could not create {doc['metadata']['name']}")


def start_operator(
    kubeconfig: Path, log: Path, files: tuple[Path, ...] = (), kopf: tuple[str, ...] = (), **env: str
) -> subprocess.Popen[bytes]:
    """The operator as `kopf run` starts it, standalone, its output in `log`
    (with `files`: more handlers loaded after operator.py's; with `kopf`: the
    command that stands for `kopf`, e.g. bench/traced.py's)."""
    command = list(kopf) or [str(Path(sys.executable).parent / "kopf")]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NETWORK_HTTP_PORT": "0", **env}
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "run", "-A", "--standalone", str(ROOT / "operator.py"), *map(str, files)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StartupCPU(threading.Thread):
    """The CPU seconds a process has used when `marker` first appears in its
    log: what its start-up cost, before its first allocation. The log is
    read every 10 ms, so the reading may include up to that much of what
    came next."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, marker: str) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.log = log
        self.marker = marker.encode()
        self.started = time.monotonic()
        self.cpu: float | None = None
        self.seconds: float | None = None  # from this object's creation

    def run(self) -> None:
        seen = b""
        with self.log.open("rb") as f:
            while self.proc.poll() is None:
                seen = seen[-len(self.marker) :] + f.read()
                if self.marker in seen:
                    self.cpu = cpu_seconds(self.proc.pid)
                    self.seconds = time.monotonic() - self.started
                    return
                time.sleep(0.01)

    def wait_for(self, timeout: float) -> float:
        """The CPU seconds at the marker, waiting for it if need be."""
        self.join(timeout)
        if self.cpu is None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"no {self.marker.decode()!r} in {self.log.name} after {timeout:.0f} s:\n{tail}")
        return self.cpu


def control_plane_cpu(cluster: Cluster) -> float:
    """CPU seconds of the API server and etcd so far: who else works in a burst."""
    return sum(cpu_seconds(cluster.procs[name].pid) for name in ("kube-apiserver", "etcd"))


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
            if entry["user"]["username"] != user:
                continue
            when = datetime.datetime.fromisoformat(entry["stageTimestamp"].replace("Z", "+00:00")).timestamp()
            if (
                start <= when <= end
                and entry["verb"] in ("create", "patch", "update", "delete")
                and entry.get("objectRef", {}).get("resource") != "events"
            ):
                n += 1
    return n


class NodesDone(threading.Thread):
    """Counts the Nodes for which `done(node)` holds, from a LIST and then a
    watch (one informer's worth of load on the API server, where polling
    thousands of 10 KB Nodes would be far more); `finished` is the
    time.monotonic() at which the count reached `total`."""

    def __init__(self, kubeconfig: Path, total: int, done: Callable[[dict[str, Any]], bool]) -> None:
        super().__init__(daemon=True)
        self.api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        self.total = total
        self.is_done = done
        self.done: set[str] = set()
        self.finished: float | None = None
        self.version = ""
        self._list()

    def _list(self) -> None:
        listed = self.api.get(url="nodes", version="v1")
        listed.raise_for_status()
        body = listed.json()
        self.version = body["metadata"]["resourceVersion"]
        for node in body["items"]:
            self._see(node)

    def _see(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if self.is_done(node):
            self.done.add(name)
        else:
            self.done.discard(name)
        if self.finished is None and len(self.done) >= self.total:
            self.finished = time.monotonic()

    def run(self) -> None:
        while self.finished is None:
            params = {"watch": "true", "resourceVersion": self.version, "timeoutSeconds": "300"}
            try:
                with self.api.get(url="nodes", version="v1", params=params, stream=True, timeout=None) as resp:
                    for line in resp.iter_lines():
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # 410 Gone: the version is too old
                            self._list()
                            break
                        self.version = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._see(event["object"])
                        if self.finished is not None:
                            return
            except (OSError, requests.RequestException):
                time.sleep(0.5)  # the stream was cut: watch again from the last version

    def wait_for(self, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
        """Wait until every Node is done, `proc` running; when that was, by time.monotonic()."""
        deadline = time.monotonic() + timeout
        while self.finished is None:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.stem} exited early:\n{log.read_text()[-3000:]}")
            if not self.is_alive():
                raise RuntimeError("the watch of Nodes failed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.done)} of {self.total} Nodes done after {timeout:.0f} s")
            time.sleep(0.1)
        return self.finished
