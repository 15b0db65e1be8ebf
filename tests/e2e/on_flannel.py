"""What the cluster's tests (test_flannel_cluster.py) run and read: flannel's
upstream manifest with the changes the README lists, the images it names,
the README's commands, and the World the tests share: one cluster, its
control plane, its nodes.
"""

from __future__ import annotations

import ipaddress
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
# kube-controller-manager's --cluster-cidr, then the Networks' cidrs: kube-flannel.yml's
# own IPv4 one and, for dual-stack, an IPv6 one (a ULA /56 in /64s, as kube-controller-manager
# hands them out by default).
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_CIDR_V6 = "fd00:10:244::/56"
MOVE = "Moving off kube-controller-manager"  # the README section the move follows
WITH_FLANNEL = "Using it with flannel"  # the README section with flannel's dual-stack net-conf.json
# A client that pings a server every 200 ms, at each of its addresses in turn
# (one per IP family), and counts; one line per 25 pings and per failure. It
# counts from the first round every address answered: on a node's first pod,
# the bridge's new IPv6 gateway address answers no neighbour solicitation for
# a second or two (duplicate address detection), and the first IPv6 ping can
# time out.
STEADY_CLIENT = """
import itertools, socket, sys, time
addresses = sys.argv[1:]
ok = failed = 0
answered = set()
for address in itertools.cycle(addresses):
    counting = answered == set(addresses)
    started = time.monotonic()
    try:
        with socket.create_connection((address, 8080), timeout=2) as conn:
            conn.sendall(b"ping")
            conn.shutdown(socket.SHUT_WR)
            answer = conn.recv(100)
        if not answer.startswith(b"pong"):
            raise OSError(f"answer {answer!r}")
        answered.add(address)
        ok += counting
    except OSError as e:
        failed += counting
        print(f"{'failed' if counting else 'not yet'}: {address}: {e}", flush=True)
    if counting and ((ok + failed) % 25 == 0 or failed):
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


def flannel_manifest(images: dict[str, str], cidr: str, ipv6_cidr: str | None = None) -> list[dict[str, Any]]:
    """Upstream's Documentation/kube-flannel.yml with the changes the README
    lists under "Using it with flannel", and no other; with `ipv6_cidr`,
    dual-stack."""
    docs = [d for d in yaml.safe_load_all((flannel_source() / "Documentation" / "kube-flannel.yml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            net_conf = json.loads(doc["data"]["net-conf.json"])
            net_conf["Network"] = cidr  # 1. the Network's cidr
            if ipv6_cidr:  # 2. dual-stack: the IPv6 Network's cidr
                net_conf["EnableIPv6"] = True
                net_conf["IPv6Network"] = ipv6_cidr
            doc["data"]["net-conf.json"] = json.dumps(net_conf, indent=2)
            cni_conf = json.loads(doc["data"]["cni-conf.json"])
            cni_conf["cniVersion"] = "0.4.0"  # 3. what the flannel plugin of plugins v0.9.1 speaks
            doc["data"]["cni-conf.json"] = json.dumps(cni_conf, indent=2)
        if doc["kind"] == "DaemonSet":
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod["initContainers"], *pod["containers"]]:
                upstream = container["image"].split("/")[-1].split(":")[0]
                container["image"] = images[upstream]  # 4. the images built here
            (flanneld,) = pod["containers"]
            flanneld["args"].append(f"--iface={harness.NODE_LINK}")  # 5. no default route to find it by
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

    def pod_cidrs(self, name: str) -> dict[int, str]:
        """The node's podCIDRs by IP family (4, 6)."""
        return {ipaddress.ip_network(c).version: c for c in self.node(name)["spec"].get("podCIDRs", [])}


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


def readme_networks(title: str) -> list[dict[str, Any]]:
    """The Networks of a README section's ```yaml blocks, in order."""
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section(title), re.S)
    docs: list[dict[str, Any]] = [d for block in blocks for d in yaml.safe_load_all(block) if d]
    assert docs, title
    assert all(d["kind"] == "Network" for d in docs), docs
    return docs


def readme_json(title: str) -> Any:
    """The one ```json block of a README section."""
    (block,) = re.findall(r"```json\n(.*?)```", readme_section(title), re.S)
    return json.loads(block)


# flannel's vxlan links, by IP family.
FLANNEL_LINKS = {4: "flannel.1", 6: "flannel-v6.1"}


def flannel_routes(world: World, node: str, family: int = 4) -> set[str]:
    """The destinations node routes over flannel's vxlan link of `family`."""
    routes = json.loads(world.nodes[node].run("ip", "-j", f"-{family}", "route", "show", "dev", FLANNEL_LINKS[family]))
    return {r["dst"] for r in routes}
