"""Helpers for integration tests: a pykube client, object classes, polling, the operator."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pykube
import requests
import yaml
from kopf.testing import KopfRunner

from controller.login import load as load_login
from controller.metrics import Metrics
from controller.transport import Transport
from controller.writes import each
from controlplane.cluster import Cluster, build, certificates, free_port
from netpool import annotation, records

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = str(ROOT / "operator.py")
CHART = ROOT / "deploy" / "helm" / "network-operator"
T = TypeVar("T")

__all__ = ["ROOT", "Cluster", "KubeCluster", "Network", "NodeSubnet", "build", "wait_for"]


@dataclass
class KubeCluster:
    kubeconfig: Path
    bin: Path  # kubectl, helm
    local: Cluster | None  # None when the tests run against $KUBECONFIG

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
        )


def service_account_kubeconfig(
    cluster: KubeCluster, namespace: str, account: str, rules: list[dict[str, Any]], where: Path
) -> Path:
    """A ServiceAccount bound to a ClusterRole with `rules`, and a kubeconfig
    that authenticates as it with a TokenRequest token."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{namespace}-{account}"},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{namespace}-{account}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{namespace}-{account}"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": account, "user": {"token": token}}]
    admin["contexts"] = [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}]
    admin["current-context"] = account
    path = where / f"{account}.kubeconfig"
    path.write_text(json.dumps(admin))
    return path


def chart_rules(cluster: KubeCluster) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [str(cluster.bin / "helm"), "template", "rbac", str(CHART), "--show-only", "templates/clusterrole.yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rules: list[dict[str, Any]] = yaml.safe_load(rendered)["rules"]
    return rules


def audit_log_end(cluster: KubeCluster) -> int:
    """Where the audit log ends now: an `offset` for audit_entries."""
    assert cluster.local is not None
    return cluster.local.audit_log.stat().st_size


def audit_entries(cluster: KubeCluster, user: str, since: float, offset: int = 0) -> list[dict[str, Any]]:
    """The audit log's entries for `user` since a time.time() stamp; with
    `offset` (from audit_log_end), only those written from there on."""
    assert cluster.local is not None
    found = []
    name = user.encode()
    with cluster.local.audit_log.open("rb") as f:
        f.seek(offset)
        for line in f:
            if not line.endswith(b"\n"):  # still being written
                break
            if name not in line:  # not this user's: no need to parse it
                continue
            entry = json.loads(line)
            when = datetime.datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if entry["user"].get("username") == user and when.timestamp() >= since:  # none if unauthenticated
                found.append(entry)
    return found


class Network(pykube.objects.NamespacedAPIObject):  # type: ignore[misc]
    version = "samplecrd.k8s.io/v1"
    endpoint = "networks"
    kind = "Network"


class NodeSubnet(pykube.objects.APIObject):  # type: ignore[misc]
    version = "samplecrd.k8s.io/v1"
    endpoint = "nodesubnets"
    kind = "NodeSubnet"


# For tests that wait through a few resyncs for something not to happen: a
# shorter period than conftest.py's, so that such a wait can be as much shorter.
QUICK_RESYNC = 1.5
QUICK_RESYNC_ENV = {"NETWORK_RESYNC_SECONDS": str(QUICK_RESYNC)}


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except (pykube.exceptions.ObjectDoesNotExist, AssertionError, KeyError) as e:  # not there yet
            last = e
        else:
            if result:
                return result
            last = result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def remove_networks_and_nodes(api: pykube.HTTPClient) -> None:
    """Leave no Network (finalizers stripped: the operator may not run) and no Node."""
    for net in Network.objects(api, namespace=pykube.all):
        if net.obj["metadata"].get("finalizers"):
            net.patch({"metadata": {"finalizers": None}})
        net.delete()
    for node in pykube.Node.objects(api):
        if node.obj["metadata"].get("finalizers"):
            node.patch({"metadata": {"finalizers": None}})
    # deletecollection: one call for thousands of objects, which takes a while.
    # NodeSubnets first: once their Nodes are gone, the garbage collector
    # would delete each of them as well, racing the collection's deletes.
    api.raise_for_status(api.delete(url="nodesubnets", version=NodeSubnet.version, timeout=300))
    api.raise_for_status(api.delete(url="nodes", version="v1", timeout=300))
    wait_for(
        "Networks, Nodes and NodeSubnets to be gone",
        lambda: (
            not list(Network.objects(api, namespace=pykube.all))
            and not list(pykube.Node.objects(api))
            and not list(NodeSubnet.objects(api))
        ),
    )


def create_nodes(names: Sequence[str]) -> None:
    """Bare Nodes in bulk, created in the given order, through the operator's
    own client ($KUBECONFIG) as a round sends its writes (8 pykube threads
    made about 210 a second here, this about 450)."""

    async def create() -> list[Any]:
        transport = Transport(load_login(), Metrics())
        node = {"apiVersion": "v1", "kind": "Node"}
        try:
            return await each(
                transport.request("POST", "/api/v1/nodes", body={**node, "metadata": {"name": n}}, answer=False)
                for n in names
            )
        finally:
            await transport.close()

    errors = [e for e in asyncio.run(create()) if isinstance(e, Exception)]
    if errors:
        raise errors[0]


@contextlib.contextmanager
def running_operator(*extra: str, env: dict[str, str] | None = None) -> Iterator[KopfRunner]:
    """The operator under KopfRunner, cluster-wide and without peering.

    Each run gets a fresh Kopf registry and re-imports the handlers: Kopf
    registers decorated functions once per import, and a second run in the
    same process would otherwise run operator.py's startup handlers twice.
    `env` sets environment variables (controller/config.py) for this run only.
    """
    for module in [m for m in sys.modules if m == "handlers" or m.startswith("handlers.")]:
        del sys.modules[module]
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        args = ["run", "-A", "--standalone", *extra, OPERATOR]
        with KopfRunner(args, timeout=60, registry=kopf.OperatorRegistry()) as runner:
            yield runner
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


WEBHOOK_CONFIG = "network-operator-test.samplecrd.k8s.io"


@contextlib.contextmanager
def operator_with_webhook(cluster: KubeCluster, where: Path) -> Iterator[KopfRunner]:
    """The operator serving its admission webhook to the real API server, on
    127.0.0.1 with a certificate made in `where`; the configuration is removed after."""
    ca, cert, key = certificates(where, "webhook", "IP:127.0.0.1", days=1)
    env = {
        "NETWORK_WEBHOOK_PORT": str(free_port()),
        "NETWORK_WEBHOOK_ADDRESS": "127.0.0.1",
        "NETWORK_WEBHOOK_HOST": "127.0.0.1",
        "NETWORK_WEBHOOK_MANAGED": WEBHOOK_CONFIG,
        "NETWORK_WEBHOOK_CERT": str(cert),
        "NETWORK_WEBHOOK_KEY": str(key),
        "NETWORK_WEBHOOK_CA": str(ca),
    }
    try:
        with running_operator(env=env) as runner:
            wait_for(
                "the webhook configuration",
                lambda: (
                    cluster.kubectl("get", "validatingwebhookconfiguration", WEBHOOK_CONFIG, check=False).returncode
                    == 0
                ),
            )
            yield runner
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "--ignore-not-found")


def apply_network(
    cluster: KubeCluster, namespace: str, name: str, spec: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` a Network, as a user would; the result, not checked."""
    doc = {"apiVersion": "samplecrd.k8s.io/v1", "kind": "Network", "metadata": {"name": name}, "spec": spec}
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)


def get_network(api: pykube.HTTPClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(Network.objects(api, namespace=namespace).get(name=name).obj)


def network_exists(api: pykube.HTTPClient, namespace: str, name: str) -> bool:
    return Network.objects(api, namespace=namespace).get_or_none(name=name) is not None


def ready(network: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition, or {} if there is none yet."""
    for cond in (network.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return {}


def network_ready_with(
    api: pykube.HTTPClient, namespace: str, name: str, status: str, reason: str
) -> Callable[[], dict[str, Any] | None]:
    """A check for wait_for: the Network once Ready has this status and reason, and status is current."""

    def check() -> dict[str, Any] | None:
        net = get_network(api, namespace, name)
        cond = ready(net)
        current = (net.get("status") or {}).get("observedGeneration") == net["metadata"]["generation"]
        return net if current and (cond.get("status"), cond.get("reason")) == (status, reason) else None

    return check


def node_subnets(api: pykube.HTTPClient, namespace: str, name: str) -> dict[str, str]:
    """node -> subnet, from every Node's annotation for this Network ("<garbage>" if unreadable)."""
    key = annotation.key_for(namespace, name)
    found = {}
    for node in pykube.Node.objects(api):
        value = node.annotations.get(key)
        if value is not None:
            found[node.name] = annotation.subnet_of(value) or "<garbage>"
    return found


def wait_subnets(
    api: pykube.HTTPClient,
    namespace: str,
    name: str,
    what: str,
    check: Callable[[dict[str, str]], bool],
    timeout: float = 30,
) -> dict[str, str]:
    """Wait until the Nodes' subnets of this Network pass `check`; returns them."""

    def probe() -> dict[str, str] | None:
        subnets = node_subnets(api, namespace, name)
        return subnets if check(subnets) else None

    return wait_for(what, probe, timeout)


def wait_network(
    api: pykube.HTTPClient,
    namespace: str,
    name: str,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Wait until the Network passes `check`; returns it."""

    def probe() -> dict[str, Any] | None:
        net = get_network(api, namespace, name)
        return net if check(net) else None

    return wait_for(what, probe, timeout)


def within(subnet: str, pool: str) -> bool:
    """Whether `subnet` lies inside `pool` (both in CIDR notation)."""
    inner, outer = ipaddress.ip_network(subnet), ipaddress.ip_network(pool)
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def record_subnets(api: pykube.HTTPClient, namespace: str, name: str) -> dict[str, str]:
    """node -> subnet, from this Network's NodeSubnets (found by their label, as a user would)."""
    label = records.LABEL_NETWORK + "=" + annotation.key_for(namespace, name).removeprefix(annotation.PREFIX)
    found: dict[str, str] = {}
    for obj in NodeSubnet.objects(api).filter(selector=label):
        spec = obj.obj["spec"]
        assert spec["node"] not in found, f"{spec['node']} holds two NodeSubnets of {namespace}/{name}"
        found[spec["node"]] = spec["subnet"]
    return found


def events(api: pykube.HTTPClient, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about this Network, oldest first."""
    found = [
        e.obj
        for e in pykube.Event.objects(api, namespace=namespace)
        if e.obj["involvedObject"].get("kind") == "Network" and e.obj["involvedObject"].get("name") == name
    ]
    # Timestamps have one-second resolution; etcd's revision orders within a second.
    return sorted(found, key=lambda e: (e["metadata"]["creationTimestamp"], int(e["metadata"]["resourceVersion"])))


def make_network(api: pykube.HTTPClient, namespace: str, name: str, spec: dict[str, Any]) -> Network:
    net = Network(
        api,
        {
            "apiVersion": "samplecrd.k8s.io/v1",
            "kind": "Network",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )
    net.create()
    return net


CRD = ROOT / "crds" / "network.yaml"
_ADDRESS_FIELDS = ("cidr", "gateway")


def _crd_without_address_rules() -> dict[str, Any]:
    """The CRD as it was before its CEL rules on addresses: any string was stored."""
    crd: dict[str, Any] = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for field in _ADDRESS_FIELDS:
        del spec[field]["x-kubernetes-validations"]
    del spec["reserved"]["items"]["x-kubernetes-validations"]
    return crd


def _malformed_is_stored(cluster: KubeCluster) -> bool:
    probe = {
        "apiVersion": "samplecrd.k8s.io/v1",
        "kind": "Network",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"cidr": "10.0.0.1/8"},
    }
    return (
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False).returncode == 0
    )


def stored_before_the_address_rules(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, specs: dict[str, dict[str, Any]]
) -> None:
    """Networks with malformed addresses, as an upgrade finds them: created under
    the CRD without its address rules, which is then applied again as it is now."""
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(_crd_without_address_rules()))
    try:
        # The API server takes a moment to serve with the new schema.
        wait_for("the CRD without address rules", lambda: _malformed_is_stored(cluster))
        for name, spec in specs.items():
            make_network(api, namespace, name, spec)
    finally:
        cluster.kubectl("apply", "--server-side", "-f", str(CRD))
        wait_for("the CRD with its address rules", lambda: not _malformed_is_stored(cluster))


def converged(api: pykube.HTTPClient, namespace: str, name: str, live: set[str]) -> Callable[[], dict[str, str]]:
    """A check: exactly the live Nodes hold a subnet (record and annotation agree,
    no two alike) and the status counts them."""

    def check() -> dict[str, str]:
        try:
            records = record_subnets(api, namespace, name)
            status = get_network(api, namespace, name).get("status") or {}
        except (pykube.exceptions.HTTPError, requests.HTTPError) as e:  # 429 while a restarted API server initializes
            raise AssertionError(str(e)) from e
        ok = (
            set(records) == live
            and node_subnets(api, namespace, name) == records
            and len(set(records.values())) == len(records)
            and status.get("allocated") == len(live)
        )
        return records if ok else {}

    return check


def a_hand_deleted_nodesubnet_is_made_again(api: pykube.HTTPClient, node: str, timeout: float = 30) -> None:
    """Delete the Node's NodeSubnet by hand; it is made again (the same
    subnet, a new object). With the resync far away, only the operator's
    NodeSubnet watch can tell it."""
    mine = [s for s in NodeSubnet.objects(api) if s.obj["spec"]["node"] == node]
    assert len(mine) == 1
    name, uid = mine[0].name, mine[0].obj["metadata"]["uid"]
    mine[0].delete()

    def made_again() -> bool:
        again = NodeSubnet.objects(api).get_or_none(name=name)
        return again is not None and again.obj["metadata"]["uid"] != uid and again.obj["spec"]["node"] == node

    wait_for(f"{node}'s NodeSubnet deleted by hand made again", made_again, timeout=timeout)
