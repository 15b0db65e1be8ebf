"""What the cluster's tests (test_flannel_cluster.py) run and read: flannel's
upstream manifest with the changes the README lists, the images it names,
the README's commands, and the World the tests share: one cluster, its
control plane, its nodes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.cluster import Cluster
from tests.e2e import cluster as harness
from tests.e2e.conftest import Tools

ROOT = Path(__file__).resolve().parents[2]
FLANNEL = ROOT / "tests" / "e2e" / "flannel"
# kube-controller-manager's --cluster-cidr, then the Network's cidr: kube-flannel.yml's own.
CLUSTER_CIDR = "10.244.0.0/16"
MOVE = "Moving off kube-controller-manager"  # the README section the move follows
# A client that pings a server every 200 ms and counts; one line per 25 pings and per failure.
STEADY_CLIENT = """
import socket, sys, time
ok = failed = 0
while True:
    started = time.monotonic()
    try:
        with socket.create_connection((sys.argv[1], 8080), timeout=2) as conn:
            conn.sendall(b"ping")
            conn.shutdown(socket.SHUT_WR)
            answer = conn.recv(100)
        if not answer.startswith(b"pong"):
            raise OSError(f"answer {answer!r}")
        ok += 1
    except OSError as e:
        failed += 1
        print(f"failed: {e}", flush=True)
    if (ok + failed) % 25 == 0 or failed:
        print(f"ok {ok} failed {failed}", flush=True)
    time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
"""


def flannel_source() -> Path:
    """The pinned flannel module's source in the Go module cache."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", "github.com/flannel-io/flannel"],
        cwd=FLANNEL, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(json.loads(done.stdout)["Dir"])


def flannel_manifest(images: dict[str, str], cidr: str) -> list[dict[str, Any]]:
    """Upstream's Documentation/kube-flannel.yml with the changes the README
    lists under "Using it with flannel", and no other."""
    docs = [d for d in yaml.safe_load_all((flannel_source() / "Documentation" / "kube-flannel.yml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            net_conf = json.loads(doc["data"]["net-conf.json"])
            net_conf["Network"] = cidr  # 1. the Network's cidr
            doc["data"]["net-conf.json"] = json.dumps(net_conf, indent=2)
            cni_conf = json.loads(doc["data"]["cni-conf.json"])
            cni_conf["cniVersion"] = "0.4.0"  # 2. what the flannel plugin of plugins v0.9.1 speaks
            doc["data"]["cni-conf.json"] = json.dumps(cni_conf, indent=2)
        if doc["kind"] == "DaemonSet":
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod["initContainers"], *pod["containers"]]:
                upstream = container["image"].split("/")[-1].split(":")[0]
                container["image"] = images[upstream]  # 3. the images built here
            (flanneld,) = pod["containers"]
            flanneld["args"].append(f"--iface={harness.NODE_LINK}")  # 4. no default route to find it by
    return docs


@dataclass
class World:
    tools: Tools
    cluster: Cluster
    bin: Path
    images: list[Path]
    nodes: dict[str, harness.Node] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)

    def add_node(self, index: int) -> harness.Node:
        node = harness.Node(index, self.bin, self.images)
        self.nodes[node.name] = node
        node.start(self.cluster)
        return node

    def node(self, name: str) -> dict[str, Any]:
        return self.tools.get("node", name)

    def pod_cidr(self, name: str) -> str:
        return str(self.node(name)["spec"]["podCIDR"])


def flannel_images(tars: list[Path]) -> dict[str, str]:
    """The tags images.sh gave flannel's two images, by upstream's image name."""
    tags = {}
    for tar in tars:
        manifest = subprocess.run(["tar", "-xOf", str(tar), "manifest.json"], capture_output=True, check=True).stdout
        (tag,) = json.loads(manifest)[0]["RepoTags"]
        tags[tag.split("/")[-1].split(":")[0]] = tag
    return tags


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def readme_commands(title: str) -> list[str]:
    """The shell commands of a README section's ```sh blocks, one per line
    (a trailing backslash joins lines)."""
    blocks = re.findall(r"```sh\n(.*?)```", readme_section(title), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def readme_network(title: str) -> dict[str, Any]:
    """The one ```yaml block of a README section: a Network."""
    (block,) = re.findall(r"```yaml\n(.*?)```", readme_section(title), re.S)
    doc: dict[str, Any] = yaml.safe_load(block)
    assert doc["kind"] == "Network", doc
    return doc


def flannel_routes(world: World, node: str) -> set[str]:
    """The destinations node routes over flannel's vxlan link."""
    routes = json.loads(world.nodes[node].run("ip", "-j", "route", "show", "dev", "flannel.1"))
    return {r["dst"] for r in routes}
