"""The foundation: a real control plane, built here, behaving like Kubernetes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pykube
import pytest

from controlplane.cluster import alive
from tests.integration.support import ROOT, KubeCluster, Network, build

EXAMPLE = ROOT / "deploy" / "examples" / "example-network.yaml"


def pinned_version() -> str:
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)$", (ROOT / "controlplane" / "go.mod").read_text(), re.M)
    assert match, "controlplane/go.mod pins no k8s.io/kubernetes version"
    return match.group(1)


def test_version_is_the_pinned_release(cluster: KubeCluster) -> None:
    if cluster.local is None:
        pytest.skip("runs against $KUBECONFIG, not the control plane built here")
    status, body = cluster.local.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == pinned_version()
    client = cluster.kubectl("version", "--client", "-o", "json").stdout
    assert json.loads(client)["clientVersion"]["gitVersion"] == pinned_version()


def test_nodes_namespaces_crd_and_the_seed_example(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str
) -> None:
    node = pykube.Node(api, {"metadata": {"name": "foundation-node", "labels": {"a": "b"}}})
    node.create()
    assert pykube.Node.objects(api).get(name="foundation-node").labels == {"a": "b"}
    assert pykube.Namespace.objects(api).get(name=namespace).obj["status"]["phase"] == "Active"

    created = cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    assert "network.samplecrd.k8s.io/example-network created" in created.stdout
    net = Network.objects(api, namespace=namespace).get(name="example-network")
    assert net.obj["spec"] == {"cidr": "192.168.0.0/16", "gateway": "192.168.0.1"}
    # The schema still rejects what it can: a wrong type.
    bad = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input=json.dumps(
            {
                "apiVersion": "samplecrd.k8s.io/v1",
                "kind": "Network",
                "metadata": {"name": "bad"},
                "spec": {"cidr": 42},
            }
        ),
    )
    assert bad.returncode != 0
    assert 'spec.cidr: Invalid value: "integer": spec.cidr in body must be of type string' in bad.stderr


def test_tokenrequest_token_authenticates_and_rbac_denies(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str
) -> None:
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    token = cluster.kubectl("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a JWT

    def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(f"--token={token}", "--user=", *args, check=False)

    who = as_reader("auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    allowed = as_reader("get", "configmaps", "-n", namespace)
    assert allowed.returncode == 0, allowed.stderr
    denied = as_reader("get", "nodes")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr
    denied_write = as_reader("create", "configmap", "x", "-n", namespace)
    assert "forbidden" in denied_write.stderr
    assert 'cannot create resource "configmaps"' in denied_write.stderr


def test_make_cluster_up_and_down_leave_nothing_behind(tmp_path: Path) -> None:
    cluster_dir = tmp_path / "cp"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    started = time.monotonic()
    up = subprocess.run(
        ["make", "-s", "cluster-up", f"CLUSTER_DIR={cluster_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\nmake cluster-up from built binaries: {took:.1f}s ({up.stdout.strip().splitlines()[0]})")
    pids = json.loads((cluster_dir / "pids").read_text())
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(alive(pid) for pid in pids.values())
    ready = subprocess.run(
        [str(build() / "kubectl"), f"--kubeconfig={cluster_dir / 'kubeconfig'}", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
    )
    assert ready.stdout == "ok"

    down = subprocess.run(
        ["make", "-s", "cluster-down", f"CLUSTER_DIR={cluster_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(alive(pid) for pid in pids.values())
    assert not cluster_dir.exists()
    leftovers = subprocess.run(["pgrep", "-f", str(cluster_dir)], capture_output=True, text=True)
    assert leftovers.stdout == ""


def test_control_plane_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A test run killed outright (SIGKILL: no cleanup runs) leaves no control plane behind."""
    script = (
        "import json, sys, time\n"
        f"sys.path.append({str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from controlplane.cluster import Cluster\n"
        f"c = Cluster(Path({str(tmp_path / 'cp')!r}))\n"
        "c.start()\n"
        "print(json.dumps([p.pid for p in c.procs.values()]), flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert starter.stdout is not None
    pids = json.loads(starter.stdout.readline())
    assert len(pids) == 3
    assert all(alive(pid) for pid in pids)
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)
