"""Nodes as kubelets make them, and their status heartbeats, for the benchmarks.

A kubelet registers its Node (POST), then writes its status through the
status subresource; a Node so made is about 12 KB as the API serves it
(managedFields included): kubelet-like labels, five conditions with
heartbeat times, addresses, capacity and allocatable, nodeInfo and 34
images with their sizes.

Heartbeats: a kubelet computes its Node's status every
nodeStatusUpdateFrequency (10 s) and PATCHes it when something changed, or
when nodeStatusReportFrequency (5 min) has passed since its last report; its
liveness goes to a Lease in kube-node-lease every 10 s, which the operator
does not watch. A status report of an otherwise unchanged Node is a
strategic-merge patch of the conditions' lastHeartbeatTime, which is what
`heartbeats` sends, each Node at its own phase of the period.

Everything goes through one aiohttp session as the `kubelets`
ServiceAccount (see `kubelet_identity`), so that the audit log tells these
writes from the operator's.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

KUBELET_USER = "system:serviceaccount:default:kubelets"
REPORT_SECONDS = 300.0  # a kubelet's nodeStatusReportFrequency
UPDATE_SECONDS = 10.0  # its nodeStatusUpdateFrequency
CONCURRENCY = 32

# (repository, tag, size in bytes): what a worker node's container runtime holds.
IMAGES = [
    ("registry.k8s.io/kube-proxy", "v1.37.2", 30_912_334),
    ("registry.k8s.io/pause", "3.10", 320_368),
    ("registry.k8s.io/coredns/coredns", "v1.12.1", 20_939_036),
    ("registry.k8s.io/metrics-server/metrics-server", "v0.8.0", 19_538_734),
    ("registry.k8s.io/ingress-nginx/controller", "v1.13.1", 104_981_522),
    ("registry.k8s.io/sig-storage/csi-node-driver-registrar", "v2.14.0", 14_023_402),
    ("registry.k8s.io/sig-storage/livenessprobe", "v2.16.0", 13_440_876),
    ("registry.k8s.io/sig-storage/csi-provisioner", "v5.3.0", 30_230_123),
    ("registry.k8s.io/sig-storage/csi-attacher", "v4.9.0", 28_765_901),
    ("registry.k8s.io/sig-storage/csi-resizer", "v1.14.0", 28_990_411),
    ("registry.k8s.io/sig-storage/csi-snapshotter", "v8.3.0", 27_612_908),
    ("registry.k8s.io/kube-state-metrics/kube-state-metrics", "v2.16.0", 21_803_215),
    ("registry.k8s.io/node-problem-detector/node-problem-detector", "v0.8.21", 48_212_997),
    ("registry.k8s.io/dns/k8s-dns-node-cache", "1.26.4", 37_281_004),
    ("registry.k8s.io/cpa/cluster-proportional-autoscaler", "v1.10.2", 16_338_417),
    ("quay.io/cilium/cilium", "v1.18.1", 224_815_766),
    ("quay.io/cilium/operator-generic", "v1.18.1", 32_017_432),
    ("quay.io/prometheus/node-exporter", "v1.9.1", 12_430_987),
    ("quay.io/prometheus/prometheus", "v3.5.0", 139_902_331),
    ("quay.io/jetstack/cert-manager-controller", "v1.18.2", 21_004_583),
    ("docker.io/fluent/fluent-bit", "4.0.7", 39_880_211),
    ("docker.io/grafana/promtail", "3.5.3", 84_102_730),
    ("docker.io/library/nginx", "1.29.1", 72_235_004),
    ("docker.io/library/redis", "8.2.1", 52_730_118),
    ("docker.io/library/postgres", "17.6", 158_330_712),
    ("docker.io/library/busybox", "1.37.0", 2_160_403),
    ("docker.io/library/python", "3.13-slim", 49_802_331),
    ("ghcr.io/example/api-server", "2025.11.3", 96_412_870),
    ("ghcr.io/example/worker", "2025.11.3", 88_019_266),
    ("ghcr.io/example/frontend", "2025.11.2", 41_552_107),
    ("ghcr.io/example/scheduler", "2025.10.7", 35_004_128),
    ("ghcr.io/example/batch-runner", "2025.11.1", 120_440_731),
    ("docker.io/library/memcached", "1.6.39", 31_118_206),
    ("docker.io/bitnami/kubectl", "1.37.2", 77_250_813),
]
KUBELET_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def _hex(seed: str, n: int = 64) -> str:
    out = ""
    while len(out) < n:
        seed = hashlib.sha256(seed.encode()).hexdigest()
        out += seed
    return out[:n]


def _stamp(when: float) -> str:
    return datetime.datetime.fromtimestamp(int(when), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_name(i: int) -> str:
    return f"node-{i:05d}"


def node_address(i: int) -> str:
    """Node i's InternalIP, in 172.16.0.0/12 (away from the benchmarks' pools)."""
    return f"172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}"


def node_object(i: int) -> dict[str, Any]:
    """What a kubelet POSTs to register Node i: metadata and spec."""
    name = node_name(i)
    zone = "abc"[i % 3]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{zone}",
                "failure-domain.beta.kubernetes.io/region": "eu-west-1",
                "failure-domain.beta.kubernetes.io/zone": f"eu-west-1{zone}",
                "node-role.kubernetes.io/worker": "",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                "alpha.kubernetes.io/provided-node-ip": node_address(i),
                "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": f"i-{_hex(name, 17)}"}),
            },
        },
        "spec": {"providerID": f"aws:///eu-west-1{zone}/i-{_hex(name, 17)}"},
    }


def node_status(i: int, now: float) -> dict[str, Any]:
    """Node i's status as its kubelet reports it (plus the CNI's NetworkUnavailable)."""
    name = node_name(i)
    booted = _stamp(now - 86_400)
    beat = _stamp(now)
    quantities = {
        "cpu": "8",
        "ephemeral-storage": "104845292Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "32386524Ki",
        "pods": "110",
    }
    pressures = {
        "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    }
    conditions: list[dict[str, str]] = [
        {
            "type": "NetworkUnavailable",
            "status": "False",
            "lastHeartbeatTime": booted,
            "lastTransitionTime": booted,
            "reason": "CiliumIsUp",
            "message": "Cilium is running on this node",
        }
    ]
    for kind, (reason, message) in pressures.items():
        conditions.append(
            {
                "type": kind,
                "status": "False",
                "lastHeartbeatTime": beat,
                "lastTransitionTime": booted,
                "reason": reason,
                "message": message,
            }
        )
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "lastHeartbeatTime": beat,
            "lastTransitionTime": booted,
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
    )
    images = [
        {
            "names": [f"{repo}@sha256:{_hex(repo + tag)}", f"{repo}:{tag}"],
            "sizeBytes": size,
        }
        for repo, tag, size in IMAGES
    ]
    return {
        "capacity": quantities,
        "allocatable": {**quantities, "cpu": "7910m", "ephemeral-storage": "95551679124", "memory": "31235548Ki"},
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": node_address(i)},
            {"type": "InternalDNS", "address": f"ip-{node_address(i).replace('.', '-')}.eu-west-1.compute.internal"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": _hex(name + "machine", 32),
            "systemUUID": "ec2" + _hex(name + "uuid", 29),
            "bootID": _hex(name + "boot", 32),
            "kernelVersion": "6.12.48-cloud-amd64",
            "osImage": "Debian GNU/Linux 13 (trixie)",
            "containerRuntimeVersion": "containerd://2.1.4",
            "kubeletVersion": "v1.37.2",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": images,
    }


def heartbeat_patch(now: float) -> dict[str, Any]:
    """The strategic-merge patch a kubelet sends to report an unchanged Node:
    every condition it owns gets a new lastHeartbeatTime."""
    beat = _stamp(now)
    return {
        "status": {
            "$setElementOrder/conditions": [{"type": "NetworkUnavailable"}] + [{"type": t} for t in KUBELET_CONDITIONS],
            "conditions": [{"type": t, "lastHeartbeatTime": beat} for t in KUBELET_CONDITIONS],
        }
    }


def kubelet_identity(kubectl: list[str]) -> str:
    """A token of the `kubelets` ServiceAccount (cluster-admin): the
    benchmarks' Node writes are told from the operator's by it."""
    binding = ["clusterrolebinding", "kubelets", "--clusterrole=cluster-admin", "--serviceaccount=default:kubelets"]
    for args in (["create", "serviceaccount", "kubelets", "-n", "default"], ["create", *binding]):
        subprocess.run([*kubectl, *args], check=True, capture_output=True)
    out = subprocess.run(
        [*kubectl, "create", "token", "kubelets", "-n", "default", "--duration=6h"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class Client:
    """Just enough of an API client, on aiohttp, for many small requests at once."""

    def __init__(self, kubeconfig: Path, token: str) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(ssl=self.ssl, limit=CONCURRENCY)
        self.session = aiohttp.ClientSession(connector=connector, headers=self.headers)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def call(self, method: str, path: str, body: object, content_type: str = "application/json") -> int:
        """One request, retried on 429 and 5xx; its final status."""
        assert self.session is not None
        data = json.dumps(body).encode()
        for attempt in range(20):
            async with self.session.request(
                method, self.server + path, data=data, headers={"Content-Type": content_type}
            ) as resp:
                await resp.read()
                if resp.status != 429 and resp.status < 500:
                    return resp.status
            await asyncio.sleep(min(0.05 * 2**attempt, 2))
        return resp.status


async def _bounded(job: Callable[[int], Awaitable[None]], items: Iterable[int], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with gate:
            await job(i)

    await asyncio.gather(*(one(i) for i in items))


async def register(api: Client, i: int) -> None:
    """Node i joins as a kubelet registers: its POST, then its first status."""
    status = await api.call("POST", "/api/v1/nodes", node_object(i))
    if status not in (201, 409):
        raise RuntimeError(f"creating {node_name(i)}: HTTP {status}")
    status = await api.call(
        "PATCH",
        f"/api/v1/nodes/{node_name(i)}/status",
        {"status": node_status(i, time.time())},
        "application/strategic-merge-patch+json",
    )
    if status != 200:
        raise RuntimeError(f"reporting the status of {node_name(i)}: HTTP {status}")


def create_nodes(kubeconfig: Path, token: str, nodes: range) -> float:
    """Register each Node and report its first status, as a kubelet does;
    CONCURRENCY kubelets at a time. Returns the seconds it took."""

    async def run() -> None:
        async with Client(kubeconfig, token) as api:
            await _bounded(lambda i: register(api, i), nodes, CONCURRENCY)

    started = time.monotonic()
    asyncio.run(run())
    return time.monotonic() - started


def join_at_rate(kubeconfig: Path, token: str, nodes: range, per_second: float) -> float:
    """Node k of the range starts to register at t0 + k/per_second, whenever
    the ones before it finish (as kubelets of new machines do, each on its
    own): a schedule that does not drift. Returns the most a registration
    started after its turn, in seconds."""

    async def run() -> float:
        late = 0.0
        async with Client(kubeconfig, token) as api:
            joining = []
            started = time.monotonic()
            for k, i in enumerate(nodes):
                due = started + k / per_second
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                late = max(late, time.monotonic() - due)
                joining.append(asyncio.create_task(register(api, i)))
            await asyncio.gather(*joining)
        return late

    return asyncio.run(run())


@dataclass
class Beats:
    sent: int
    failed: int
    seconds: float
    late: float  # the most a patch was sent after its turn, in seconds

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def heartbeats(kubeconfig: Path, token: str, nodes: range, period: float, seconds: float) -> Beats:
    """For `seconds`, patch each Node's status once every `period`, Node k of
    the range at phase k/len(nodes) of the period (so evenly spread)."""

    async def run() -> Beats:
        sent = failed = 0
        late = 0.0
        gate = asyncio.Semaphore(CONCURRENCY)
        pending: set[asyncio.Task[None]] = set()
        async with Client(kubeconfig, token) as api:

            async def beat(i: int) -> None:
                nonlocal sent, failed
                try:
                    status = await api.call(
                        "PATCH",
                        f"/api/v1/nodes/{node_name(i)}/status",
                        heartbeat_patch(time.time()),
                        "application/strategic-merge-patch+json",
                    )
                finally:
                    gate.release()
                sent += 1
                failed += status != 200

            started = time.monotonic()
            step = period / len(nodes)
            k = 0
            while True:
                due = started + k * step
                if due >= started + seconds:
                    break
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                await gate.acquire()
                late = max(late, time.monotonic() - due)
                task = asyncio.create_task(beat(nodes[k % len(nodes)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                k += 1
            await asyncio.gather(*pending)
            return Beats(sent, failed, time.monotonic() - started, late)

    return asyncio.run(run())
