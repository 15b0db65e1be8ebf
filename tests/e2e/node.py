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

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from controlplane.cluster import Cluster, alive, client_certificate, stop_pids  # noqa: E402
from tests.e2e.host import (  # noqa: E402
    NAME,
    RUN,
    STATE,
    check_cgroups,
    clean,
    kill_cgroup_tree,
    libc,
    make_cgroups,
    save_sysctls,
)

LOGS = ROOT / ".cluster" / "e2e-logs"
LOCK = Path("/run") / f"{NAME}.lock"
NODE = "e2e-node"
NODE_IP = "10.89.0.2"
SERVICE_IP = "10.96.0.1"
CNI_NETWORK = NAME
CNI_BRIDGE = "cni-e2e0"
# What containerd names the configuration it renders from its conf_template.
CNI_RENDERED = "10-containerd-net.conflist"


def log(message: str) -> None:
    print(f"node: {message}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------


def _prctl_pdeathsig(sig: int) -> None:
    libc.prctl(1, sig)  # PR_SET_PDEATHSIG


def _child_setup(cgroup: Path | None) -> Any:
    def setup() -> None:
        _prctl_pdeathsig(signal.SIGKILL)
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    return setup


def spawn(name: str, argv: list[str], cgroup: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    out: IO[bytes] = open(STATE / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=_child_setup(cgroup),
            **kwargs,
        )
    finally:
        out.close()


def wait_until(what: str, check: Any, timeout: float, procs: dict[str, subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail(name)}")
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.2)


def tail(name: str, lines: int = 40) -> str:
    path = STATE / f"{name}.log"
    if not path.exists():
        return f"({path} is missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_quiet(*argv: str, timeout: float = 120) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


# --- the node ---------------------------------------------------------------------------


def containerd_config() -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{STATE}/containerd"
state = "{RUN}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{RUN}/containerd.sock"
[ttrpc]
  address = "{RUN}/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{STATE}/containerd-opt"
[{cri}]
  sandbox_image = "localhost/pause:e2e"
  # No process here may lower an OOM score (no CAP_SYS_RESOURCE in a VM
  # like this): keep the sandboxes' scores at or above ours.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state folder, not /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{RUN}/runc"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    # Empty until the Node has a podCIDR: then the kubelet hands it over
    # (UpdateRuntimeConfig) and containerd renders conf_template into it.
    conf_dir = "{STATE}/cni/net.d"
    conf_template = "{STATE}/cni/pod-network.template"
"""


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


def kubelet_config(ca: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{RUN}/containerd.sock",
        # containerd 1.6 cannot report its cgroup driver; this host has cgroup v1.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupRoot": f"/{NAME}",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        # A control-plane node: the chart must tolerate this taint.
        "registerWithTaints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "resolvConf": str(STATE / "resolv.conf"),
        "podLogsDir": str(STATE / "pod-logs"),
        # Never evict or garbage-collect on this shared machine's disk: the
        # images cannot be pulled again.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "staticPodPath": "",
        "failSwapOn": False,
    }


def kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": NODE, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": NODE}}],
            "current-context": "e2e",
        }
    )


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
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cluster: Cluster | None = None

    def start(self) -> dict[str, Any]:
        started = time.monotonic()
        STATE.mkdir(parents=True)
        RUN.mkdir(parents=True)
        save_sysctls()
        daemons = make_cgroups()
        network()
        self.cluster = cluster = Cluster(STATE / "controlplane", self.bin, node_ip=NODE_IP)
        cluster.start()
        log(f"control plane ready in {time.monotonic() - started:.1f}s")

        (STATE / "containerd.toml").write_text(containerd_config())
        (STATE / "cni" / "net.d").mkdir(parents=True)
        (STATE / "cni" / "pod-network.template").write_text(cni_template())
        self.procs["containerd"] = spawn(
            "containerd", ["containerd", "--config", str(STATE / "containerd.toml")], cgroup=daemons
        )
        sock = RUN / "containerd.sock"
        ctr = ["ctr", "--address", str(sock), "--namespace", "k8s.io"]
        wait_until(
            "containerd", lambda: subprocess.run([*ctr, "version"], capture_output=True).returncode == 0, 60, self.procs
        )
        for image in ("pause", "operator"):
            run_quiet(*ctr, "images", "import", str(self.images / f"{image}.tar"), timeout=300)
        log(f"containerd up, images imported at {time.monotonic() - started:.1f}s")

        pki = cluster.root / "pki"
        cert, key = client_certificate(pki, "kubelet", f"/O=system:nodes/CN=system:node:{NODE}")
        (STATE / "kubelet.kubeconfig").write_text(kubeconfig(f"https://{NODE_IP}:443", pki / "ca.crt", cert, key))
        (STATE / "kubelet.json").write_text(json.dumps(kubelet_config(pki / "ca.crt"), indent=1))
        (STATE / "resolv.conf").write_text("")
        self.procs["kubelet"] = spawn(
            "kubelet",
            [
                str(self.bin / "kubelet"),
                f"--config={STATE / 'kubelet.json'}",
                f"--kubeconfig={STATE / 'kubelet.kubeconfig'}",
                f"--root-dir={STATE / 'kubelet'}",
                f"--cert-dir={STATE / 'kubelet-pki'}",
                f"--hostname-override={NODE}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
            cgroup=daemons,
        )
        wait_until("the node to register", lambda: cluster.get(f"/api/v1/nodes/{NODE}")[0] == 200, 90, self.procs)
        log(f"node {NODE} registered at {time.monotonic() - started:.1f}s")
        if "strict decoding error" in tail("kubelet", 10_000):
            # The kubelet ignores what it does not know; a misspelt setting must not pass unnoticed.
            raise RuntimeError(f"the kubelet did not understand its configuration:\n{tail('kubelet', 200)}")
        info = {
            "node": NODE,
            "node_ip": NODE_IP,
            "kubeconfig": str(cluster.kubeconfig),
            "audit_log": str(cluster.audit_log),
            "bin": str(self.bin),
            "containerd": str(sock),
            "cni_conf_dir": str(STATE / "cni" / "net.d"),
            "cni_template": str(STATE / "cni" / "pod-network.template"),
            "cni_rendered": CNI_RENDERED,
            "cni_bridge": CNI_BRIDGE,
            "service_ip": SERVICE_IP,
            "state": str(STATE),
        }
        (STATE / "node.json").write_text(json.dumps(info, indent=1))
        return info

    def keep_pod_logs(self, stop: threading.Event) -> None:
        """Copy the containers' logs to LOGS as they grow: the kubelet deletes
        a pod's logs with the pod, and a failure is often about a pod gone."""
        while not stop.wait(1):
            for path in (STATE / "pod-logs").glob("*/*/*.log"):
                with contextlib.suppress(OSError):
                    target = LOGS / path.relative_to(STATE)
                    if not target.exists() or target.stat().st_size != path.stat().st_size:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, target)

    def report(self) -> None:
        """What to look at when something failed."""
        if self.cluster is not None and self.cluster.procs:
            kubectl = [str(self.bin / "kubectl"), f"--kubeconfig={self.cluster.kubeconfig}"]
            for args in (
                ["get", "nodes,pods", "-A", "-o", "wide"],
                ["get", "events", "-A", "--sort-by=.lastTimestamp"],
            ):
                done = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=30, check=False)
                print(f"\n--- kubectl {' '.join(args)}\n{done.stdout[-6000:]}{done.stderr[-2000:]}", file=sys.stderr)
        for name in ("kubelet", "containerd"):
            print(f"\n--- {name} (last lines)\n{tail(name, 60)}", file=sys.stderr)
        for path in sorted((LOGS / "pod-logs").glob("*/*/*.log")):
            text = path.read_text(errors="replace").splitlines()[-80:]
            print(f"\n--- operator pod {path.relative_to(LOGS)} (last lines)\n" + "\n".join(text), file=sys.stderr)

    def keep_logs(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        for path in [*STATE.glob("*.log"), *STATE.glob("controlplane/*.log"), *STATE.glob("pod-logs/*/*/*.log")]:
            with contextlib.suppress(OSError):
                target = LOGS / path.relative_to(STATE)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)

    def stop(self) -> None:
        kubelet = self.procs.get("kubelet")
        if kubelet is not None:
            stop_pids([kubelet.pid], grace=5)
        containerd = self.procs.get("containerd")
        if containerd is not None:
            stop_pids([containerd.pid], grace=5)
        kill_cgroup_tree()
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        if self.cluster is not None:
            self.cluster.stop(remove=False)


# --- entry points ------------------------------------------------------------------------


class Stopped(Exception):
    pass


def _stop_on_signal(signum: int, _: Any) -> None:
    raise Stopped(f"signal {signum}")


def lock() -> IO[str]:
    f = LOCK.open("w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"node: another end-to-end run holds {LOCK}; wait for it to finish") from None
    return f


def run(bin_dir: Path, images: Path, command: list[str], timeout: float) -> int:
    if os.environ.get("E2E_NETNS") != str(os.getpid()):
        # Once more, in a network namespace of our own (same process: exec).
        os.environ["E2E_NETNS"] = str(os.getpid())
        os.execvp("unshare", ["unshare", "--net", "--", sys.executable, "-P", *sys.argv])
    _prctl_pdeathsig(signal.SIGTERM)  # make (or whoever started us) is gone: clean up
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    held = lock()
    code = 1
    node = Node(bin_dir, images)
    copying = threading.Event()
    try:
        clean()
        shutil.rmtree(LOGS, ignore_errors=True)
        info = node.start()
        env = {
            **os.environ,
            "E2E_NODE": str(STATE / "node.json"),
            "KUBECONFIG": info["kubeconfig"],
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        child = subprocess.Popen(command, env=env, preexec_fn=_child_setup(None))
        copier = threading.Thread(target=node.keep_pod_logs, args=(copying,), daemon=True)
        copier.start()
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{' '.join(command)} still running after {timeout:.0f}s: stopping it")
            stop_pids([child.pid])
            code = 124
        finally:
            if alive(child.pid):
                stop_pids([child.pid])
        copying.set()
        node.keep_logs()
        if code != 0:
            node.report()
    except Stopped as e:
        log(f"stopped by {e}")
        code = 130
    except Exception as e:
        log(f"failed: {type(e).__name__}: {e}")
        with contextlib.suppress(Exception):
            node.keep_logs()
            node.report()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        copying.set()
        with contextlib.suppress(Exception):
            node.keep_logs()
        node.stop()
        clean()
        held.close()
        LOCK.unlink(missing_ok=True)
        log(f"stopped and cleaned up; logs in {LOGS}")
    return code


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("node: the end-to-end node needs root (containerd, the kubelet, mounts, cgroups).", file=sys.stderr)
        return 1
    check_cgroups()
    if len(argv) >= 5 and argv[1] == "run" and argv[4] == "--":
        timeout = float(os.environ.get("E2E_TIMEOUT", "1500"))
        return run(Path(argv[2]).resolve(), Path(argv[3]).resolve(), argv[5:], timeout)
    if len(argv) == 2 and argv[1] == "clean":
        held = lock()
        try:
            clean()
        finally:
            held.close()
            LOCK.unlink(missing_ok=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
