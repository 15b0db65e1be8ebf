"""End-to-end fixtures: the real node that tests/e2e/node.py started
($E2E_NODE), and the command-line tools a user would run against it.

These tests run only inside `make e2e` (as root); anywhere else the node
fixture fails and says so. The cluster's tests (test_flannel_cluster.py)
start their own nodes inside tests/e2e/cluster.py's segment.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykube
import pytest


@dataclass(frozen=True)
class Tools:
    """kubectl and helm, as admin of the cluster."""

    kubeconfig: Path
    bin: Path

    def run(
        self, tool: str, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / tool), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check, input=input)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check)

    def get(self, *args: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return found


@dataclass(frozen=True)
class Node(Tools):
    name: str
    ip: str
    audit_log: Path
    containerd: Path
    cni_conf_dir: Path  # containerd's conf_dir: empty until the Node has a podCIDR
    cni_template: Path  # containerd's conf_template
    cni_rendered: Path  # what containerd renders from it into cni_conf_dir
    cni_bridge: str
    service_ip: str

    def ctr(self, *args: str) -> str:
        done = subprocess.run(
            ["ctr", "--address", str(self.containerd), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


@pytest.fixture(scope="session")
def node() -> Node:
    path = os.environ.get("E2E_NODE")
    if not path:
        pytest.fail("tests/e2e need the real node of `make e2e` (as root): $E2E_NODE is not set")
    info = json.loads(Path(path).read_text())
    return Node(
        name=info["node"],
        ip=info["node_ip"],
        kubeconfig=Path(info["kubeconfig"]),
        audit_log=Path(info["audit_log"]),
        bin=Path(info["bin"]),
        containerd=Path(info["containerd"]),
        cni_conf_dir=Path(info["cni_conf_dir"]),
        cni_template=Path(info["cni_template"]),
        cni_rendered=Path(info["cni_conf_dir"]) / info["cni_rendered"],
        cni_bridge=info["cni_bridge"],
        service_ip=info["service_ip"],
    )


@pytest.fixture(scope="session")
def api(node: Node) -> pykube.HTTPClient:
    return pykube.HTTPClient(pykube.KubeConfig.from_file(str(node.kubeconfig)))
