"""The chart's pods under a real kubelet, in the order a cluster lives it:
installed before there is a pod network, serving, hardened, giving the node
the podCIDR its pod network is made from, upgraded to two replicas on that
network, cut off from the API server, and uninstalled. The tests run in file
order and build on each other.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pykube
import pytest
import yaml

from netpool import annotation, records
from netpool import status as st
from tests.e2e.conftest import Node
from tests.integration import support
from tests.integration.support import Network

ROOT = Path(__file__).resolve().parents[2]
CHART = str(ROOT / "deploy" / "helm" / "network-operator")
RELEASE, NAMESPACE = "network-operator", "network-system"
FULLNAME = "network-operator"  # the release name contains the chart's name
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
# The image tests/e2e/images.sh built from the Dockerfile, already on the node.
IMAGE = ["--set", "image.repository=localhost/network-operator,image.tag=0.1.0,image.pullPolicy=Never"]
# The Network whose subnet of the node becomes the node's podCIDR, and so its
# pod network. Outside the README's pool and the upgrade's probes (10.100-249).
POD_NETWORK = "pods"
POD_NETWORK_CIDR = "10.32.0.0/16"
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """The integration tests' wait, with the longer patience a real node needs."""
    return support.wait_for(what, check, timeout, interval)


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return str(cond["status"])
    return None


def operator_pods(node: Node) -> list[dict[str, Any]]:
    pods = node.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return sorted(pods, key=lambda p: p["metadata"]["name"])


def running_pods(node: Node) -> list[dict[str, Any]]:
    """Operator pods that run and are not being deleted."""
    return [
        p
        for p in operator_pods(node)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def container_pid(node: Node, pod: dict[str, Any]) -> int:
    """The host PID of the operator container's first process, from containerd."""
    (status,) = pod["status"]["containerStatuses"]
    container = status["containerID"].removeprefix("containerd://")
    for line in node.ctr("tasks", "ls").splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container:
            return int(pid)
    raise AssertionError(f"no task for container {container} in containerd")


def subnet_on_node(api: pykube.HTTPClient, node: str, namespace: str, name: str) -> str | None:
    value = pykube.Node.objects(api).get(name=node).annotations.get(annotation.key_for(namespace, name))
    return annotation.subnet_of(value)


def pod_cidrs(node: Node) -> tuple[str | None, list[str]]:
    """The Node's spec.podCIDR and spec.podCIDRs."""
    spec = node.get("node", node.name)["spec"]
    return spec.get("podCIDR"), spec.get("podCIDRs") or []


def network_doc(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "samplecrd.k8s.io/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def readme_network() -> dict[str, Any]:
    """The Network the README opens with."""
    for block in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and doc.get("kind") == "Network":
            return doc
    raise AssertionError("README.md has no Network example")


# --- before the pod network -------------------------------------------------------


def test_install_before_the_pod_network(node: Node) -> None:
    """`helm install --wait` on a node that is NotReady, tainted as a control
    plane and without a pod network: the bootstrap an IPAM operator must do."""
    before = node.get("node", node.name)
    assert condition(before, "Ready") == "False"
    taints = {t["key"] for t in before["spec"].get("taints") or []}
    assert {"node.kubernetes.io/not-ready", "node-role.kubernetes.io/control-plane"} <= taints, taints
    assert pod_cidrs(node) == (None, []), "the node has a podCIDR already"
    assert not list(node.cni_conf_dir.iterdir()), "a pod network is configured already"

    started = time.monotonic()
    node.helm(
        "install", RELEASE, CHART, "-n", NAMESPACE, "--create-namespace", *IMAGE,
        "--set", "hostNetwork=true", "--wait", "--timeout", "240s",
    )  # fmt: skip
    print(f"\nhelm install --wait: {time.monotonic() - started:.1f}s")
    (pod,) = operator_pods(node)
    spec = pod["spec"]
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    assert (spec["priorityClassName"], spec["priority"]) == ("system-cluster-critical", 2_000_000_000)
    assert spec["nodeName"] == node.name
    assert condition(pod, "Ready") == "True"
    assert condition(node.get("node", node.name), "Ready") == "False"


def test_readme_network_gets_a_subnet_for_the_node(node: Node, api: pykube.HTTPClient) -> None:
    doc = readme_network()
    namespace = doc["metadata"].get("namespace", "default")
    node.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
    name, cidr = doc["metadata"]["name"], doc["spec"]["cidr"]
    subnet = wait_for("the node's subnet", lambda: subnet_on_node(api, node.name, namespace, name))
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(cidr))  # type: ignore[arg-type]

    def ready_network() -> dict[str, Any] | None:
        net = node.get("network", "-n", namespace, name)
        return net if condition(net, "Ready") == "True" else None

    net = wait_for("the Network to be Ready", ready_network)
    assert net["status"]["allocated"] == 1
    # The allocation record: one NodeSubnet, named after the subnet, owned by the Node.
    record = node.get("nodesubnet", records.name_for(ipaddress.ip_network(subnet)))
    assert (record["spec"]["node"], record["spec"]["subnet"]) == (node.name, subnet)
    assert record["metadata"]["ownerReferences"][0]["name"] == node.name
    # Served before the pod network exists; without podCIDRs it leaves the
    # node's podCIDR alone, so there still is none.
    assert not doc["spec"].get("podCIDRs")
    assert pod_cidrs(node) == (None, [])
    assert "podCIDRs" not in net["status"], net["status"]
    assert condition(net, "PodCIDRs") is None, net["status"]
    assert not list(node.cni_conf_dir.iterdir())
    assert condition(node.get("node", node.name), "Ready") == "False"
    logs = node.kubectl("logs", "-n", NAMESPACE, f"deploy/{FULLNAME}").stdout
    assert f"add a node: {node.name}" in logs, logs[-3000:]


def test_webhook_refuses_a_bad_network_and_admits_a_good_one(node: Node, api: pykube.HTTPClient) -> None:
    """The API server calls the webhook through its Service (on the host network here)."""
    example = readme_network()
    bad = network_doc("default", "overlapping", {"cidr": "192.168.128.0/17"})
    refused = node.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validate.networks.samplecrd.k8s.io" denied the request' in refused.stderr
    message = st.overlaps("192.168.128.0/17", f"default/{example['metadata']['name']}", example["spec"]["cidr"]).message
    assert message in refused.stderr
    assert Network.objects(api, namespace="default").get_or_none(name="overlapping") is None

    good = network_doc("default", "good", {"cidr": "10.20.0.0/16"})
    node.kubectl("apply", "-f", "-", input=json.dumps(good))
    wait_for("the good Network's subnet", lambda: subnet_on_node(api, node.name, "default", "good"))


def test_hardening_holds_in_the_running_container(node: Node) -> None:
    """What the kernel says about the container's process, not what the manifest asks."""
    (pod,) = operator_pods(node)
    pid = container_pid(node, pod)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"/app/operator.py" in cmdline, cmdline
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    assert status["Uid"].split() == ["10001"] * 4, status["Uid"]
    assert status["Gid"].split() == ["10001"] * 4, status["Gid"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2", "no seccomp filter"  # 2: filtering (RuntimeDefault)
    options = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        options[fields[4]] = set(fields[5].split(","))
    assert "ro" in options["/"], options["/"]
    assert "rw" in options["/tmp"], options["/tmp"]


# --- with the pod network -----------------------------------------------------------


def fields_of(entry: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = entry.get("fieldsV1") or {}
    return fields


def test_node_becomes_ready_once_a_network_writes_its_pod_cidr(node: Node, api: pykube.HTTPClient) -> None:
    """The bootstrap of a pod network: a Network with podCIDRs writes the
    node's subnet into Node.spec.podCIDRs, the kubelet hands it to
    containerd, containerd renders its CNI conf_template with it, and only
    then is the node Ready."""
    assert condition(node.get("node", node.name), "Ready") == "False"
    assert pod_cidrs(node) == (None, [])
    assert not list(node.cni_conf_dir.iterdir())

    selector = {"matchLabels": {"kubernetes.io/hostname": node.name}}
    spec = {"cidr": POD_NETWORK_CIDR, "podCIDRs": True, "nodeSelector": selector}
    node.kubectl("apply", "-f", "-", input=json.dumps(network_doc("default", POD_NETWORK, spec)))
    subnet = wait_for("the node's subnet", lambda: subnet_on_node(api, node.name, "default", POD_NETWORK))
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(POD_NETWORK_CIDR))  # type: ignore[arg-type]
    assert wait_for("the node's podCIDRs", lambda: pod_cidrs(node)[1]) == [subnet]
    assert pod_cidrs(node) == (subnet, [subnet])
    record = node.get("nodesubnet", records.name_for(ipaddress.ip_network(subnet)))
    assert (record["spec"]["node"], record["spec"]["subnet"]) == (node.name, subnet)
    # Written by the operator, with the annotation (one manager holds both).
    key = f"f:{annotation.key_for('default', POD_NETWORK)}"
    entries = node.get("node", node.name, "--show-managed-fields")["metadata"]["managedFields"]
    (writer,) = [e for e in entries if "f:podCIDRs" in fields_of(e).get("f:spec", {})]
    assert key in fields_of(writer).get("f:metadata", {}).get("f:annotations", {}), writer
    assert "f:podCIDR" in fields_of(writer)["f:spec"], writer
    written = writer["time"]

    def reported() -> dict[str, Any] | None:
        net = node.get("network", "-n", "default", POD_NETWORK)
        return net if condition(net, "PodCIDRs") == "True" else None

    status = wait_for("the Network to report the podCIDR written", reported)["status"]
    assert (status["podCIDRs"], status["podCIDRConflicts"]) == (1, 0), status
    (said,) = [c for c in status["conditions"] if c["type"] == "PodCIDRs"]
    assert said["reason"] == "Written", said

    # containerd rendered its template with the podCIDR, and nothing else is there.
    rendered = wait_for("containerd's CNI configuration", lambda: node.cni_rendered.exists() or None, timeout=60)
    assert rendered
    assert list(node.cni_conf_dir.iterdir()) == [node.cni_rendered]
    config = json.loads(node.cni_rendered.read_text())
    ipam = config["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": subnet}]], ipam
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}], ipam
    # The rest is the template as written.
    template = json.loads(re.sub(r"\[\{\{range .*?\{\{end\}\}\]", "null", node.cni_template.read_text()))
    ipam["ranges"] = ipam["routes"] = None
    assert config == template
    assert config["plugins"][0]["bridge"] == node.cni_bridge

    def ready() -> dict[str, Any] | None:
        current = node.get("node", node.name)
        taints = {t["key"] for t in current["spec"].get("taints") or []}
        fine = condition(current, "Ready") == "True" and "node.kubernetes.io/not-ready" not in taints
        return current if fine else None

    now = wait_for("the node to be Ready without the not-ready taint", ready, timeout=120)
    (became,) = [c["lastTransitionTime"] for c in now["status"]["conditions"] if c["type"] == "Ready"]
    assert became >= written, f"Ready since {became}, podCIDRs written at {written}"  # both RFC 3339, UTC, seconds


# A TCP server on the pod's own address that answers each "ping" with who it
# is and whom it saw; and a client that pings an address and prints the answer.
# The server listens on each of the pod's addresses (one per IP family, so
# no peer shows as an IPv4-mapped IPv6 address) and answers from the one asked.
SERVER = """
import os, selectors, socket
listening = selectors.DefaultSelector()
for address in os.environ["POD_IPS"].split(","):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listening.register(socket.create_server((address, 8080), family=family), selectors.EVENT_READ)
while True:
    for key, _ in listening.select():
        conn, (peer, *_) = key.fileobj.accept()
        me = conn.getsockname()[0]
        with conn:
            conn.settimeout(5)
            try:
                asked = conn.recv(100).decode()
                if asked:  # the readiness probe only connects
                    print(f"{asked} from {peer}", flush=True)
                    conn.sendall(f"pong from {me} to {peer}".encode())
            except OSError as e:
                print(f"{peer}: {e}", flush=True)
"""
# One ping to each address given, one answer a line.
CLIENT = """
import socket, sys
for address in sys.argv[1:]:
    with socket.create_connection((address, 8080), timeout=10) as conn:
        conn.sendall(b"ping")
        conn.shutdown(socket.SHUT_WR)
        print(conn.recv(100).decode(), flush=True)
"""


def python_pod(name: str, code: str, *args: str, server: bool = False) -> dict[str, Any]:
    """A small pod running `code` in the operator's image (the Python it has)."""
    container: dict[str, Any] = {
        "name": name,
        "image": "localhost/network-operator:0.1.0",
        "imagePullPolicy": "Never",
        # -P: the image's working folder holds operator.py, which hides the stdlib's operator module.
        "command": ["python", "-P", "-c", code, *args],
        "env": [{"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
    }
    if server:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "e2e-ping"}},
        "spec": {
            "containers": [container],
            "restartPolicy": "Always" if server else "Never",
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        },
    }


def pod_if(node: Node, name: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    pod = node.get("pod", "-n", "default", name)
    return pod if check(pod) else None


def pod_ready(pod: dict[str, Any]) -> bool:
    return condition(pod, "Ready") == "True"


def pod_finished(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") in ("Succeeded", "Failed")


def test_two_pods_get_addresses_of_the_pod_cidr_and_reach_each_other(node: Node, api: pykube.HTTPClient) -> None:
    subnet = subnet_on_node(api, node.name, "default", POD_NETWORK)
    assert subnet is not None
    assert pod_cidrs(node) == (subnet, [subnet])
    pod_cidr = ipaddress.ip_network(subnet)
    try:
        node.kubectl("apply", "-f", "-", input=json.dumps(python_pod("ping-server", SERVER, server=True)))
        server = wait_for("the server pod to be Ready", lambda: pod_if(node, "ping-server", pod_ready), timeout=90)
        server_ip = server["status"]["podIP"]
        node.kubectl("apply", "-f", "-", input=json.dumps(python_pod("ping-client", CLIENT, server_ip)))
        client = wait_for("the client pod to finish", lambda: pod_if(node, "ping-client", pod_finished), timeout=90)
        said = node.kubectl("logs", "-n", "default", "ping-client").stdout.strip()
        heard = node.kubectl("logs", "-n", "default", "ping-server").stdout
        assert client["status"]["phase"] == "Succeeded", said
        ips = []
        for pod in (server, client):
            (only,) = [ip["ip"] for ip in pod["status"]["podIPs"]]
            assert only == pod["status"]["podIP"]
            assert ipaddress.ip_address(only) in pod_cidr, (only, subnet)
            ips.append(only)
        server_ip, client_ip = ips
        assert server_ip != client_ip
        # Straight from one pod's address to the other's, and back, untranslated.
        assert said == f"pong from {server_ip} to {client_ip}"
        assert f"ping from {client_ip}" in heard.splitlines(), heard
    finally:
        node.kubectl("delete", "pod", "-n", "default", "-l", "app=e2e-ping", "--wait=false")


class Prober:
    """Creates a Network every second and waits for its subnet: whether
    Networks are admitted (the webhook answers) and served throughout."""

    def __init__(self, api: pykube.HTTPClient, node: str, within: float = 45) -> None:
        self.api, self.node, self.within = api, node, within
        self.served: dict[str, float] = {}  # name -> seconds from create to subnet
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.within + 30)

    def _run(self) -> None:
        for i in itertools.count():
            if self._stop.is_set() or i >= 150:
                return
            name = f"probe-{i}"
            started = time.monotonic()
            try:
                Network(self.api, network_doc("default", name, {"cidr": f"10.{100 + i}.0.0/16"})).create()
            except pykube.exceptions.HTTPError as e:
                self.failures.append(f"{name}: not admitted: {e}")
                time.sleep(1)
                continue
            while subnet_on_node(self.api, self.node, "default", name) is None:
                if time.monotonic() - started > self.within:
                    self.failures.append(f"{name}: no subnet after {self.within}s")
                    break
                time.sleep(0.2)
            else:
                self.served[name] = time.monotonic() - started
            time.sleep(1)


def audit_writers(node: Node, since: datetime.datetime) -> list[tuple[str, str, str]]:
    """(time, pod, request) of every write the operator made to Nodes and
    Networks since `since`, in time order; the pod from its bound token."""
    writes = []
    for line in node.audit_log.read_text().splitlines():
        entry = json.loads(line)
        when = datetime.datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))
        resource = (entry.get("objectRef") or {}).get("resource")
        if (
            entry["user"]["username"] == ACCOUNT
            and entry["verb"] in ("create", "update", "patch", "delete")
            and resource in ("nodes", "networks")
            and when >= since
        ):
            (pod,) = entry["user"]["extra"]["authentication.kubernetes.io/pod-name"]
            writes.append((entry["requestReceivedTimestamp"], pod, f"{entry['verb']} {entry['requestURI']}"))
    return sorted(writes)


def test_upgrade_to_two_replicas_rolls_with_one_writer(node: Node, api: pykube.HTTPClient) -> None:
    old = {p["metadata"]["name"] for p in operator_pods(node)}
    since = datetime.datetime.now(datetime.UTC)
    with Prober(api, node.name) as prober:
        time.sleep(3)
        started = time.monotonic()
        node.helm(
            "upgrade", RELEASE, CHART, "-n", NAMESPACE, *IMAGE, "--set", "replicaCount=2", "--wait", "--timeout", "300s"
        )

        def rolled() -> list[dict[str, Any]] | None:
            pods = operator_pods(node)
            names = {p["metadata"]["name"] for p in pods}
            fine = len(pods) == 2 and not names & old and all(condition(p, "Ready") == "True" for p in pods)
            return pods if fine else None

        pods = wait_for("two new Ready pods and no old one", rolled, timeout=120)
        print(f"\nhelm upgrade and rollout: {time.monotonic() - started:.1f}s")
        time.sleep(8)  # the new active replica serves for a while too
    pod_network = ipaddress.ip_network(pod_cidrs(node)[0])  # type: ignore[arg-type]
    for pod in pods:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in pod_network, pod["status"]["podIP"]
    print(f"probes served: {len(prober.served)}, slowest {max(prober.served.values(), default=0):.1f}s")
    assert prober.failures == []
    assert len(prober.served) >= 10

    writes = audit_writers(node, since)
    assert writes, "no writes during the rollout"
    blocks = [pod for pod, _ in itertools.groupby(w[1] for w in writes)]
    # One writer at a time: each replica's writes form one run, never interleaved.
    if len(blocks) != len(set(blocks)):
        peering = node.kubectl("get", "clusterkopfpeerings", "-o", "yaml").stdout
        raise AssertionError("two writers at once:\n" + "\n".join(" ".join(w) for w in writes) + "\n" + peering)
    assert blocks[0] in old, blocks
    assert blocks[-1] not in old, blocks

    subnets = [subnet_on_node(api, node.name, n.namespace, n.name) for n in Network.objects(api, namespace="default")]
    assert None not in subnets
    assert len(subnets) == len(set(subnets)), "a subnet is handed out twice"


def _readyz(pod: dict[str, Any]) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:9090/readyz", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _ready_endpoints(node: Node) -> set[str]:
    slices = node.get("endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={FULLNAME}")["items"]
    return {
        address
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    }


@pytest.fixture
def unreachable_api(node: Node) -> Iterator[tuple[dict[str, Any], Callable[[], None]]]:
    """One operator pod whose network namespace has no route to the API
    server, and how to give the route back."""
    pod = running_pods(node)[0]
    netns = f"--net=/proc/{container_pid(node, pod)}/ns/net"
    route = ["prohibit", f"{node.service_ip}/32"]
    subprocess.run(["nsenter", netns, "ip", "route", "add", *route], check=True)
    cut = True

    def restore() -> None:
        nonlocal cut
        if cut:
            subprocess.run(["nsenter", netns, "ip", "route", "del", *route], check=True)
            cut = False

    try:
        yield pod, restore
    finally:
        restore()


def test_a_pod_that_cannot_reach_the_api_is_not_ready(
    node: Node, api: pykube.HTTPClient, unreachable_api: tuple[dict[str, Any], Callable[[], None]]
) -> None:
    pod, restore = unreachable_api
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    code, text = _readyz(pod)
    assert code == 503, text
    assert "API server" in text

    def cut_off() -> bool:
        return condition(node.get("pod", "-n", NAMESPACE, name), "Ready") == "False" and ip not in _ready_endpoints(
            node
        )

    wait_for(f"{name} to be unready and out of the endpoints", cut_off, timeout=60)
    # The other replica still serves the webhook.
    node.kubectl(
        "apply", "-f", "-", input=json.dumps(network_doc("default", "while-cut-off", {"cidr": "10.21.0.0/16"}))
    )

    restore()

    def back() -> bool:
        return condition(node.get("pod", "-n", NAMESPACE, name), "Ready") == "True" and ip in _ready_endpoints(node)

    wait_for(f"{name} to be Ready and in the endpoints again", back, timeout=60)


def test_uninstall_removes_the_chart_but_keeps_crds_networks_and_annotations(
    node: Node, api: pykube.HTTPClient
) -> None:
    manifest = [d for d in yaml.safe_load_all(node.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout) if d]
    # The CRDs are in the release but kept (helm.sh/resource-policy: keep).
    kept = [d for d in manifest if (d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"]
    assert sorted(d["metadata"]["name"] for d in kept) == ["networks.samplecrd.k8s.io", "nodesubnets.samplecrd.k8s.io"]
    made = [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in manifest if d not in kept]
    assert {"Deployment", "Service", "ValidatingWebhookConfiguration", "ClusterKopfPeering"} <= {k for k, _, _ in made}
    example = readme_network()["metadata"]["name"]
    subnet = subnet_on_node(api, node.name, "default", example)
    assert subnet is not None
    podcidrs = pod_cidrs(node)
    assert podcidrs[0] is not None

    node.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "120s")

    def gone(kind: str, name: str, namespace: str | None) -> bool:
        where = ["-n", namespace] if namespace else []
        got = node.kubectl("get", kind, name, *where, check=False)
        return got.returncode != 0 and "NotFound" in got.stderr

    for kind, name, namespace in made:
        wait_for(f"{kind} {name} to be gone", lambda k=kind, n=name, ns=namespace: gone(k, n, ns), timeout=60)  # type: ignore[misc]
    wait_for("the operator pods to be gone", lambda: not operator_pods(node), timeout=90)
    for crd in ("networks.samplecrd.k8s.io", "nodesubnets.samplecrd.k8s.io", "clusterkopfpeerings.kopf.dev"):
        node.kubectl("get", "crd", crd)
    assert Network.objects(api, namespace="default").get_or_none(name=example) is not None
    assert subnet_on_node(api, node.name, "default", example) == subnet
    assert pod_cidrs(node) == podcidrs


# --- the namespace ---------------------------------------------------------------------


def test_no_route_out_of_the_node(node: Node) -> None:
    """Nothing the node runs can reach beyond the machine: no default route,
    routes only to the node's own addresses and the pod bridge."""
    routes = json.loads(
        subprocess.run(["ip", "-j", "route", "show", "table", "all"], capture_output=True, check=True).stdout
    )
    assert not [r for r in routes if r.get("dst") in ("default", "0.0.0.0/0", "::/0")], routes
    bridge = node.cni_bridge
    # Over the bridge: the node's podCIDR (and IPv6 link-local, on every link).
    over_bridge = [r["dst"] for r in routes if r.get("dev") == bridge and r.get("table", "main") == "main"]
    assert [d for d in over_bridge if not ipaddress.ip_network(d).is_link_local] == [pod_cidrs(node)[0]], routes
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, check=True).stdout)
    for link in links:
        # Besides lo and the bridge only veths, whose other end is in a pod.
        assert link["ifname"] in ("lo", bridge) or (link.get("master") == bridge and "link_netnsid" in link), link
    assert {r.get("dev") for r in routes} <= {link["ifname"] for link in links}, routes
    for family, address in ((socket.AF_INET, ("192.0.2.1", 80)), (socket.AF_INET6, ("2001:db8::1", 80))):
        with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(OSError, match="unreachable"):
            s.connect(address)
