"""How the operator finds and authenticates to the API server: one login for
Kopf (operator.py) and for the operator's own client (controller/kube.py).

In a pod it does what client-go's in-cluster config does: the API server at
$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, an address the kubelet puts
into every pod's environment, with the mounted CA and ServiceAccount token.
No DNS name: an IPAM operator runs before cluster DNS and the pod network
exist, when `kubernetes.default.svc` does not resolve. Outside a pod the
caller falls back to the kubeconfig ($KUBECONFIG).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclasses.dataclass(frozen=True)
class InCluster:
    server: str  # https://<host>:<port>
    ca_path: str
    token_path: str
    namespace: str | None  # the pod's own namespace

    def token(self) -> str:
        """Read at every login: the kubelet rotates the projected token file."""
        return Path(self.token_path).read_text().strip()


def in_cluster(env: Mapping[str, str] | None = None, account: Path | None = None) -> InCluster | None:
    """The pod's credentials, or None outside a pod (no service address in the
    environment, or no mounted token)."""
    env = os.environ if env is None else env
    account = account or SERVICE_ACCOUNT
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token = account / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    namespace_file = account / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    return InCluster(f"https://{host}:{port}", str(account / "ca.crt"), str(token), namespace or None)
