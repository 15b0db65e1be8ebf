"""A cluster of real nodes for the end-to-end tests, on one machine.

    python3 tests/e2e/cluster.py run BIN IMAGES -- COMMAND...   # the segment, COMMAND in it, clean up

`run` re-executes itself in a fresh network namespace: the control plane's.
It makes the cluster's L2 segment, a bridge in a network namespace of its own
(NAME-segment), and links the control plane's namespace to it (addresses
CONTROL_PLANE_IP and CONTROL_PLANE_IPV6, with the `kubernetes` Service's
address on lo). The segment carries both IP families: every node has an
address of each, so the cluster can be dual-stack. Then it
runs COMMAND there, with $E2E_CLUSTER naming a JSON file (the binaries, the
images) and $PATH with kubectl and helm first. COMMAND (pytest) starts the
control plane and the nodes with the classes below: each node is a network
namespace of its own (NAME-<node>) on the segment, with containerd and a
kubelet (tests/e2e/daemons.py) in a mount namespace of its own.
No namespace has a default route or an interface that leads out; a node's
only routes go to the segment and, through the control plane's address, to
the `kubernetes` Service's address: nothing can leave the machine.
What a run leaves on the host is removed as for the single node
(tests/e2e/host.py, `make e2e-clean`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from controlplane.cluster import Cluster  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.e2e.daemons import Cni, Daemons, log, run_quiet, tail  # noqa: E402
from tests.e2e.host import (  # noqa: E402
    CGROUPS,
    NAME,
    NODE_BINDS,
    RUN,
    STATE,
    kill_cgroup_tree,
    make_cgroups,
    make_mount_points,
    make_state,
    save_sysctls,
)

SEGMENT = f"{NAME}-segment"
BRIDGE = "segment0"
SEGMENT_PREFIX = "10.89.0"  # a /24: the control plane .1, nodes from .11
CONTROL_PLANE_IP = f"{SEGMENT_PREFIX}.1"
SEGMENT_PREFIX6 = "fd00:89::"  # a /64, numbered as the IPv4 one: the control plane ::1, nodes from ::11
CONTROL_PLANE_IPV6 = f"{SEGMENT_PREFIX6}1"
SERVICE_IP = "10.96.0.1"
# What every node calls its link to the segment (flanneld's --iface names it).
NODE_LINK = "eth0"
# The Debian CNI plugins flannel delegates to, copied into each node's /opt/cni/bin.
DEBIAN_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def ip(*args: str, netns: str | None = None) -> str:
    return run_quiet("ip", *(["-n", netns] if netns else []), *args)


def in_netns(netns: str, *argv: str) -> str:
    return run_quiet("nsenter", f"--net=/run/netns/{netns}", *argv)


def no_default_route(netns: str | None) -> None:
    routes = json.loads(ip("-j", "route", "show", "table", "all", netns=netns))
    if any(r.get("dst") in ("default", "0.0.0.0/0", "::/0") for r in routes):
        raise RuntimeError(f"a default route in {netns or 'the control plane namespace'}: {routes}")


class Segment:
    """The harness's part (tests/e2e/harness.py Setup): the segment and the
    control plane's link to it; the tests start everything else."""

    def __init__(self, bin_dir: Path, images: Path) -> None:
        self.bin, self.images = bin_dir, images

    def start(self) -> dict[str, str]:
        make_state()
        RUN.mkdir(parents=True)
        save_sysctls()
        make_mount_points()
        ip("link", "set", "lo", "up")
        ip("addr", "add", f"{SERVICE_IP}/32", "dev", "lo")
        ip("netns", "add", SEGMENT)
        ip("link", "add", BRIDGE, "type", "bridge", netns=SEGMENT)
        ip("link", "set", BRIDGE, "up", netns=SEGMENT)
        ip("link", "add", "control-plane", "netns", SEGMENT, "type", "veth", "peer", "name", NODE_LINK)
        ip("link", "set", "control-plane", "master", BRIDGE, "up", netns=SEGMENT)
        ip("addr", "add", f"{CONTROL_PLANE_IP}/24", "dev", NODE_LINK)
        ip("addr", "add", f"{CONTROL_PLANE_IPV6}/64", "dev", NODE_LINK, "nodad")
        ip("link", "set", NODE_LINK, "up")
        no_default_route(None)
        info = {"bin": str(self.bin), "images": str(self.images), "state": str(STATE)}
        (STATE / "cluster.json").write_text(json.dumps(info, indent=1))
        return {"E2E_CLUSTER": str(STATE / "cluster.json"), "PATH": f"{self.bin}:{os.environ['PATH']}"}

    def report(self) -> None:
        for path in sorted(STATE.glob("*/kubelet.log")):
            print(f"\n--- {path.relative_to(STATE)} (last lines)\n{tail(path, 40)}", file=sys.stderr)

    def stop(self) -> None:
        pass  # harness.run's clean() removes it all


def control_plane(bin_dir: Path, allocate_node_cidrs: str | None) -> Cluster:
    """The control plane, in this (the control plane's) namespace, serving
    the nodes at CONTROL_PLANE_IP:443 and pods at the Service's address."""
    cluster = Cluster(STATE / "controlplane", bin_dir, node_ip=CONTROL_PLANE_IP)
    cluster.allocate_node_cidrs = allocate_node_cidrs
    cluster.start()
    return cluster


@dataclass
class Node:
    """One node of the cluster: `index` gives its name (node-<index>) and
    its addresses on the segment (SEGMENT_PREFIX.<10 + index> and
    SEGMENT_PREFIX6<10 + index>, the kubelet's --node-ip, IPv4 first)."""

    index: int
    bin: Path
    images: list[Path]
    daemons: Daemons | None = None

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def ip(self) -> str:
        return f"{SEGMENT_PREFIX}.{10 + self.index}"

    @property
    def ipv6(self) -> str:
        return f"{SEGMENT_PREFIX6}{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"{NAME}-{self.name}"

    @property
    def state(self) -> Path:
        return STATE / self.name

    def _network(self) -> None:
        ip("netns", "add", self.netns)
        link = f"to-{self.name}"
        ip("link", "add", link, "netns", SEGMENT, "type", "veth", "peer", "name", NODE_LINK, "netns", self.netns)
        ip("link", "set", link, "master", BRIDGE, "up", netns=SEGMENT)
        ip("link", "set", "lo", "up", netns=self.netns)
        ip("addr", "add", f"{self.ip}/24", "dev", NODE_LINK, netns=self.netns)
        # No duplicate address detection: the address is usable at once (a
        # tentative one cannot be bound), and the segment's addresses are all ours.
        ip("addr", "add", f"{self.ipv6}/64", "dev", NODE_LINK, "nodad", netns=self.netns)
        ip("link", "set", NODE_LINK, "up", netns=self.netns)
        # Host-network pods (flanneld, the operator) reach the API server at
        # the `kubernetes` Service's address, which the control plane holds.
        ip("route", "add", f"{SERVICE_IP}/32", "via", CONTROL_PLANE_IP, netns=self.netns)
        # A node routes its pods' packets (to other nodes over flannel's vxlan).
        in_netns(self.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        no_default_route(self.netns)

    def start(self, cluster: Cluster) -> None:
        started = time.monotonic()
        self._network()
        binds = {str(p): self.state / "host" / p.relative_to("/") for p in NODE_BINDS}
        cni_bin = binds["/opt/cni/bin"]
        cni_bin.mkdir(parents=True)
        for plugin in DEBIAN_PLUGINS:
            (cni_bin / plugin).write_bytes(Path(f"/usr/lib/cni/{plugin}").read_bytes())
            (cni_bin / plugin).chmod(0o755)
        self.daemons = Daemons(
            self.name,
            self.ip,
            self.state,
            RUN / self.name,
            Cni("/opt/cni/bin", "/etc/cni/net.d"),
            make_cgroups(self.name),
            cgroup_root=f"/{NAME}/{self.name}",
            netns=Path(f"/run/netns/{self.netns}"),
            binds=binds,
            ipv6=self.ipv6,
        )
        self.daemons.start(self.bin, self.images, cluster.root / "pki", f"https://{CONTROL_PLANE_IP}:443")
        registered = lambda: cluster.get(f"/api/v1/nodes/{self.name}")[0] == 200  # noqa: E731
        self.daemons.wait_for("the node to register", registered, 90)
        self.daemons.check_config()
        log(f"{self.name} registered in {time.monotonic() - started:.1f}s")

    def stop(self) -> None:
        """The node is switched off: every process of it killed, its network gone."""
        if self.daemons is not None:
            self.daemons.stop()
        kill_cgroup_tree(CGROUPS / "freezer" / NAME / self.name)
        ip("netns", "delete", self.netns)

    def run(self, *argv: str) -> str:
        """A command in the node's network namespace."""
        return in_netns(self.netns, *argv)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, Segment, __doc__ or ""))
