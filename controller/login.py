"""How the operator finds and authenticates to the API server: one login for
Kopf (operator.py) and for the operator's own client (controller/transport.py).

In a pod it does what client-go's in-cluster config does: the API server at
$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, an address the kubelet puts
into every pod's environment, with the mounted CA and ServiceAccount token.
No DNS name: an IPAM operator runs before cluster DNS and the pod network
exist, when `kubernetes.default.svc` does not resolve. Outside a pod it reads
the kubeconfig's current context ($KUBECONFIG, else ~/.kube/config): a
token, a token file or a client certificate, and the cluster's CA. Files of
a $KUBECONFIG list merge as kubectl merges them (the first value wins), and
relative paths are relative to the kubeconfig that names them. Credential
plugins (`exec`) are not run: such a context is refused with a message. A
cluster's `proxy-url` is not used: the operator talks to the API server
directly, as it does in a pod.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class LoginError(Exception):
    """No way to log in: what is missing, and where."""


@dataclasses.dataclass(frozen=True)
class Login:
    """The API server, and who the operator is to it."""

    server: str  # https://<host>:<port>
    ca_path: str | None = None
    ca_data: str | None = None  # base64 of the PEM, as a kubeconfig holds it
    insecure: bool = False  # no check of the server's certificate
    cert_path: str | None = None  # a client certificate: files, or base64 data
    key_path: str | None = None
    cert_data: str | None = None
    key_data: str | None = None
    token_value: str | None = None
    token_path: str | None = None  # read at every login: a pod's is rotated by the kubelet
    username: str | None = None
    password: str | None = None
    namespace: str | None = None  # the pod's own, or the context's

    def token(self) -> str | None:
        if self.token_path:
            return Path(self.token_path).read_text().strip()
        return self.token_value


def load() -> Login:
    """The pod's ServiceAccount in a pod, the kubeconfig elsewhere."""
    return in_cluster() or from_kubeconfig()


def in_cluster(env: Mapping[str, str] | None = None, account: Path | None = None) -> Login | None:
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
    return Login(
        f"https://{host}:{port}", ca_path=str(account / "ca.crt"), token_path=str(token), namespace=namespace or None
    )


def from_kubeconfig(env: Mapping[str, str] | None = None) -> Login:
    """The current context of the kubeconfig: $KUBECONFIG (files joined by
    the path separator), else ~/.kube/config."""
    env = os.environ if env is None else env
    paths = [Path(p).expanduser() for p in (env.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep) if p]
    found = [p for p in paths if p.is_file()]
    if not found:
        raise LoginError(f"not in a pod, and no kubeconfig at {os.pathsep.join(map(str, paths))}")
    current: str | None = None
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"cluster": {}, "context": {}, "user": {}}
    for path in found:
        doc = yaml.safe_load(path.read_text()) or {}
        current = current or doc.get("current-context")
        for kind, entries in named.items():
            for item in doc.get(f"{kind}s") or []:
                entries.setdefault(item["name"], (item.get(kind) or {}, path.parent))
    if not current:
        raise LoginError(f"no current-context in {os.pathsep.join(map(str, found))}")

    def entry(kind: str, name: str | None, by: str) -> tuple[dict[str, Any], Path]:
        if name not in named[kind]:
            raise LoginError(f"the kubeconfig's {by} names {kind} {name!r}, which it does not define")
        return named[kind][name]

    context, _ = entry("context", current, "current-context")
    cluster, at = entry("cluster", context.get("cluster"), f"context {current!r}")
    user, user_at = entry("user", context.get("user"), f"context {current!r}") if context.get("user") else ({}, at)
    if "exec" in user:
        command = (user["exec"] or {}).get("command")
        raise LoginError(
            f"the kubeconfig's user {context.get('user')!r} logs in through a credential plugin ({command}), "
            "which the operator does not run: give it a token, a token file or a client certificate"
        )

    def file(value: str | None, base: Path) -> str | None:
        return str(base / value) if value else None  # an absolute path stays as it is

    if not cluster.get("server"):
        raise LoginError(f"the kubeconfig's cluster {context.get('cluster')!r} has no server")
    return Login(
        server=cluster["server"],
        ca_path=file(cluster.get("certificate-authority"), at),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_path=file(user.get("client-certificate"), user_at),
        key_path=file(user.get("client-key"), user_at),
        cert_data=user.get("client-certificate-data"),
        key_data=user.get("client-key-data"),
        token_value=user.get("token") or ((user.get("auth-provider") or {}).get("config") or {}).get("access-token"),
        token_path=file(user.get("tokenFile"), user_at),
        username=user.get("username"),
        password=user.get("password"),
        namespace=context.get("namespace"),
    )
