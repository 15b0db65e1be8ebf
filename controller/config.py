"""The operator's settings, from environment variables (the Helm chart sets them).

| variable | default | meaning |
|---|---|---|
| NETWORK_RESYNC_SECONDS | 30 | how often every Network is resynced against the API |
| NETWORK_RELIST_SECONDS | 300 | how often a resync LISTs every Node, to catch what Kopf's watch missed |
| NETWORK_LIST_PAGE | 500 | objects per page of those LISTs |
| NETWORK_HTTP_ADDRESS | 127.0.0.1 | where /metrics, /nodes and /networks listen |
| NETWORK_HTTP_PORT | 9090 | their port; 0 turns them off |
| NETWORK_WEBHOOK_PORT | (unset: off) | serve the validating admission webhook on this port |
| NETWORK_WEBHOOK_ADDRESS | 127.0.0.1 | where the webhook listens |
| NETWORK_WEBHOOK_CERT, _KEY | (unset) | its TLS certificate and key (PEM files) |
| NETWORK_WEBHOOK_CA | (unset) | the CA that signed them, for a self-managed configuration |
| NETWORK_WEBHOOK_MANAGED | (unset) | a ValidatingWebhookConfiguration for the operator to keep itself (development) |
| NETWORK_WEBHOOK_HOST | 127.0.0.1 | the host name that configuration points at |
| NETWORK_PEERING | (unset: as `kopf run` says) | the ClusterKopfPeering to join: with several replicas one is active |
| NETWORK_PEERING_LIFETIME | 10 | seconds a replica's peering record lasts without keep-alives (failover time) |
| NETWORK_LEASE | (unset: none) | the Lease a replica must hold to write (controller/lease.py) |
| NETWORK_LEASE_NAMESPACE | $POD_NAMESPACE, else default | where that Lease is |
| POD_NAME | host name | this replica's name; breaks ties between peering priorities |
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path


def process_started() -> float:
    """When this process started, in seconds since the epoch (from /proc: the
    moment of exec, not of some later import)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


@dataclasses.dataclass(frozen=True)
class Config:
    resync_seconds: float = 30
    relist_seconds: float = 300
    list_page: int = 500
    http_address: str = "127.0.0.1"
    http_port: int = 9090
    webhook_port: int | None = None
    webhook_address: str = "127.0.0.1"
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_ca: str | None = None
    webhook_managed: str | None = None
    webhook_host: str = "127.0.0.1"
    peering: str | None = None
    peering_lifetime: int = 10
    lease: str | None = None
    lease_namespace: str = "default"
    pod_name: str = ""
    started: float = 0.0  # seconds since the epoch

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            return env.get(name) or None

        webhook_port = opt("NETWORK_WEBHOOK_PORT")
        return cls(
            resync_seconds=float(env.get("NETWORK_RESYNC_SECONDS", "30")),
            relist_seconds=float(env.get("NETWORK_RELIST_SECONDS", "300")),
            list_page=int(env.get("NETWORK_LIST_PAGE", "500")),
            http_address=env.get("NETWORK_HTTP_ADDRESS", "127.0.0.1"),
            http_port=int(env.get("NETWORK_HTTP_PORT", "9090")),
            webhook_port=int(webhook_port) if webhook_port else None,
            webhook_address=env.get("NETWORK_WEBHOOK_ADDRESS", "127.0.0.1"),
            webhook_cert=opt("NETWORK_WEBHOOK_CERT"),
            webhook_key=opt("NETWORK_WEBHOOK_KEY"),
            webhook_ca=opt("NETWORK_WEBHOOK_CA"),
            webhook_managed=opt("NETWORK_WEBHOOK_MANAGED"),
            webhook_host=env.get("NETWORK_WEBHOOK_HOST", "127.0.0.1"),
            peering=opt("NETWORK_PEERING"),
            peering_lifetime=int(env.get("NETWORK_PEERING_LIFETIME", "10")),
            lease=opt("NETWORK_LEASE"),
            lease_namespace=opt("NETWORK_LEASE_NAMESPACE") or opt("POD_NAMESPACE") or "default",
            pod_name=env.get("POD_NAME") or socket.gethostname(),
            started=process_started(),
        )

    @property
    def peering_priority(self) -> int:
        """The oldest replica works, younger ones stand by. A rollout then hands
        over once, when the old active pod exits (its handlers done, its
        peering record removed), and never to a pod that is still starting
        while the old one writes: Kopf's peering pauses a replica only when
        it sees a higher priority, it has no lock. Distinct per replica (Kopf
        freezes peers of equal priority): the pod name breaks ties."""
        tie = int(hashlib.sha256(self.pod_name.encode()).hexdigest()[:8], 16) % 1000
        return -int(self.started * 1000) * 1000 - tie
