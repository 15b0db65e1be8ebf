"""A real node for the end-to-end tests: the control plane, containerd and a
kubelet in a network namespace of their own, with no route out.

    python3 tests/e2e/node.py run BIN IMAGES -- COMMAND...   # start, run COMMAND in it, stop
    python3 tests/e2e/node.py clean                          # what a killed run left behind

`run` re-executes itself under `unshare --net`: everything it starts, and
COMMAND, lives in a fresh network namespace whose only interfaces are `lo`
(with the node's address and the `kubernetes` Service's address) and the pod
bridge. There is no default route, so no packet can leave the machine.
The node starts without a pod network: containerd's CNI conf_dir is empty
until the Node gets a podCIDR, which the kubelet then hands to containerd,
and containerd renders its conf_template (bridge + host-local) with it.
BIN holds the binaries of `controlplane/build.sh node`, IMAGES the image
archives of tests/e2e/images.sh. COMMAND gets $KUBECONFIG (admin), $PATH with
kubectl and helm first, and $E2E_NODE, a JSON file describing the node.

Needs root: containerd, runc and the kubelet mount file systems, make cgroups
and network namespaces. Only cgroup v1 (the layout this was built on) is
supported; anything else stops with a message.

What it makes outside the work tree, and removes on every exit (and at the
start of the next run, if this one was killed with SIGKILL; tests/e2e/host.py):
- processes: all are children of this one (they get SIGKILL when it dies,
  PR_SET_PDEATHSIG) or sit in the freezer cgroup /network-operator-e2e
  (containerd's shims and the containers), which is frozen and killed whole;
- cgroups /network-operator-e2e in every hierarchy (the kubelet's cgroupRoot);
- /run/network-operator-e2e: containerd's and runc's state, its sockets, the
  pods' network namespaces;
- mounts under those and under the state folder .cluster/e2e;
- the kernel settings the kubelet changes (vm.overcommit_memory,
  kernel.panic, kernel.panic_on_oops, kernel.keys.root_max*): restored;
- what the kubelet, containerd and CNI write at fixed paths:
  /var/lib/kubelet/device-plugins, the links in /var/log/containers, the
  results in /var/lib/cni, the shim sockets in /run/containerd/s.
Logs are kept in .cluster/e2e-logs for a look after a failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from controlplane.cluster import Cluster  # noqa: E402
from tests.e2e import harness  # noqa: E402
from tests.e2e.daemons import Cni, Daemons, log, run_quiet, tail  # noqa: E402
from tests.e2e.host import RUN, STATE, kill_cgroup_tree, make_cgroups, make_state, save_sysctls  # noqa: E402

NODE = "e2e-node"
NODE_IP = "10.89.0.2"
SERVICE_IP = "10.96.0.1"
CNI_NETWORK = "network-operator-e2e"
CNI_BRIDGE = "cni-e2e0"
# What containerd names the configuration it renders from its conf_template.
CNI_RENDERED = "10-containerd-net.conflist"


def cni_template() -> str:
    """The pod network, as a template containerd renders (Go text/template,
    fields PodCIDR, PodCIDRRanges, Routes) with the podCIDRs of the Node: a
    bridge on the node with host-local addresses from them. Pods' default
    route leads to the node, which has none: nothing leaves."""
    ranges = '{{range $i, $cidr := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$cidr}}"}]{{end}}'
    routes = '{{range $i, $dst := .Routes}}{{if $i}}, {{end}}{"dst": "{{$dst}}"}{{end}}'
    config = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": "RANGES",
                    "routes": "ROUTES",
                    "dataDir": f"{STATE}/cni/ipam",
                },
            }
        ],
    }
    text = json.dumps(config, indent=1)
    return text.replace('"RANGES"', f"[{ranges}]").replace('"ROUTES"', f"[{routes}]")


def network() -> None:
    """The namespace's addresses: the node's and the `kubernetes` Service's, on lo."""
    run_quiet("ip", "link", "set", "lo", "up")
    run_quiet("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
    run_quiet("ip", "addr", "add", f"{SERVICE_IP}/32", "dev", "lo")
    routes = json.loads(run_quiet("ip", "-j", "route", "show", "table", "all"))
    if any(r.get("dst") == "default" for r in routes):
        raise RuntimeError(f"a default route in the node's namespace: {routes}")


class Node:
    def __init__(self, bin_dir: Path, images: Path) -> None:
        self.bin = bin_dir
        self.images = images
        self.cluster: Cluster | None = None
        self.daemons: Daemons | None = None

    def start(self) -> dict[str, str]:
        started = time.monotonic()
        make_state()
        RUN.mkdir(parents=True)
        save_sysctls()
        network()
        self.cluster = cluster = Cluster(STATE / "controlplane", self.bin, node_ip=NODE_IP)
        cluster.start()
        log(f"control plane ready in {time.monotonic() - started:.1f}s")

        cni = Cni("/usr/lib/cni", str(STATE / "cni" / "net.d"), str(STATE / "cni" / "pod-network.template"))
        # Empty until the Node has a podCIDR: then the kubelet hands it over
        # (UpdateRuntimeConfig) and containerd renders conf_template into it.
        (STATE / "cni" / "net.d").mkdir(parents=True)
        (STATE / "cni" / "pod-network.template").write_text(cni_template())
        self.daemons = node = Daemons(
            NODE, NODE_IP, STATE, RUN, cni, make_cgroups(), taints=["node-role.kubernetes.io/control-plane"]
        )
        images = [self.images / f"{image}.tar" for image in ("pause", "operator")]
        node.start(self.bin, images, cluster.root / "pki", f"https://{NODE_IP}:443")
        node_exists = lambda: cluster.get(f"/api/v1/nodes/{NODE}")[0] == 200  # noqa: E731
        node.wait_for("the node to register", node_exists, 90)
        log(f"node {NODE} registered at {time.monotonic() - started:.1f}s")
        node.check_config()
        info = {
            "node": NODE,
            "node_ip": NODE_IP,
            "kubeconfig": str(cluster.kubeconfig),
            "audit_log": str(cluster.audit_log),
            "bin": str(self.bin),
            "containerd": str(node.socket),
            "cni_conf_dir": cni.conf_dir,
            "cni_template": str(cni.template),
            "cni_rendered": CNI_RENDERED,
            "cni_bridge": CNI_BRIDGE,
            "service_ip": SERVICE_IP,
            "state": str(STATE),
        }
        (STATE / "node.json").write_text(json.dumps(info, indent=1))
        return {
            "E2E_NODE": str(STATE / "node.json"),
            "KUBECONFIG": info["kubeconfig"],
            "PATH": f"{self.bin}:{os.environ['PATH']}",
        }

    def report(self) -> None:
        """What to look at when something failed."""
        if self.cluster is not None and self.cluster.procs:
            harness.kubectl_report([str(self.bin / "kubectl"), f"--kubeconfig={self.cluster.kubeconfig}"])
        for name in ("kubelet", "containerd"):
            print(f"\n--- {name} (last lines)\n{tail(STATE / f'{name}.log', 60)}", file=sys.stderr)
        for path in sorted((harness.LOGS / "pod-logs").glob("*/*/*.log")):
            text = path.read_text(errors="replace").splitlines()[-80:]
            print(
                f"\n--- operator pod {path.relative_to(harness.LOGS)} (last lines)\n" + "\n".join(text), file=sys.stderr
            )

    def stop(self) -> None:
        if self.daemons is not None:
            self.daemons.stop()
        kill_cgroup_tree()
        if self.cluster is not None:
            self.cluster.stop(remove=False)


if __name__ == "__main__":
    sys.exit(harness.main(sys.argv, Node, __doc__ or ""))
