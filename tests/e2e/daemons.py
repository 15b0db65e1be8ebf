"""One node's daemons for the end-to-end tests: containerd and a kubelet,
with their configuration, started as children of this process (they get
SIGKILL when it dies) in the freezer cgroup of tests/e2e/host.py.

A node runs in the caller's namespaces (tests/e2e/node.py: the single node)
or, given `netns` and `binds`, in a network namespace and a mount namespace
of its own (tests/e2e/cluster.py: one of several nodes on one machine). The
mount namespace binds per-node folders over the fixed paths a node's pod
network and kubelet use (/etc/cni/net.d, /opt/cni/bin, /run/flannel, ...),
so several nodes never share them and the host's own stay untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from controlplane.cluster import client_certificate, stop_pids
from tests.e2e.host import NAME, RUN, STATE, libc


def log(message: str) -> None:
    print(f"node: {message}", file=sys.stderr, flush=True)


def _child_setup(cgroup: Path | None) -> Any:
    def setup() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    return setup


def spawn(log_file: Path, argv: list[str], cgroup: Path | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
    out: IO[bytes] = open(log_file, "ab")  # noqa: SIM115  (owned by the child)
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, preexec_fn=_child_setup(cgroup), **kwargs
        )
    finally:
        out.close()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} is missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(what: str, check: Any, timeout: float, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail(logs / f'{name}.log')}"
                )
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.2)


def run_quiet(*argv: str, timeout: float = 120) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Cni:
    """Where containerd finds the pod network: plugins, configuration and,
    for the single node, the template it renders once the Node has a podCIDR."""

    bin_dir: str
    conf_dir: str
    template: str | None = None


def containerd_config(state: Path, run: Path, cni: Cni) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    template = f'\n    conf_template = "{cni.template}"' if cni.template else ""
    return f"""\
version = 2
root = "{state}/containerd"
state = "{run}/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{run}/containerd.sock"
[ttrpc]
  address = "{run}/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/containerd-opt"
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
        Root = "{run}/runc"
  [{cri}.cni]
    bin_dir = "{cni.bin_dir}"
    conf_dir = "{cni.conf_dir}"{template}
"""


def _ctr(socket: Path) -> list[str]:
    return ["ctr", "--address", str(socket), "--namespace", "k8s.io"]


def image_store(images: list[Path]) -> Path:
    """A containerd root with `images` imported, made once per run in the
    state folder: a node starts from a copy of it (`start_from`) instead of
    importing the archives itself, which took 15-20 s a node for the
    cluster's four. Made by a containerd of its own, stopped before use."""
    key = hashlib.sha256("\n".join(map(str, images)).encode()).hexdigest()[:12]
    store = STATE / "images" / key
    if store.exists():
        return store
    work, run = STATE / "images" / f"{key}.making", RUN / "images" / key
    for folder in (work, run):
        folder.mkdir(parents=True)
    (work / "containerd.toml").write_text(containerd_config(work, run, Cni("/usr/lib/cni", str(work / "net.d"))))
    proc = spawn(work / "containerd.log", ["containerd", "--config", str(work / "containerd.toml")])
    try:
        procs, socket = {"containerd": proc}, run / "containerd.sock"
        up = lambda: subprocess.run([*_ctr(socket), "version"], capture_output=True).returncode == 0  # noqa: E731
        wait_until("the image store's containerd", up, 60, procs, work)
        for image in images:
            run_quiet(*_ctr(socket), "images", "import", str(image), timeout=300)
    finally:
        stop_pids([proc.pid], grace=10)
    (work / "containerd").rename(store)
    return store


def start_from(store: Path, root: Path) -> None:
    """containerd's `root` as a copy of the image `store`: its files hard
    links (image layers and unpacked snapshots are never written once made),
    its databases real copies (bbolt writes them in place)."""
    run_quiet("cp", "-a", "--link", str(store), str(root))
    for db in root.rglob("*.db"):
        copy = db.with_name(db.name + ".copy")
        run_quiet("cp", "-a", str(db), str(copy))
        copy.replace(db)


def kubelet_config(state: Path, run: Path, ip: str, ca: Path, cgroup_root: str, taints: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{run}/containerd.sock",
        # containerd 1.6 cannot report its cgroup driver; this host has cgroup v1.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        # One root per kubelet: a kubelet removes the pod cgroups it does not know.
        "cgroupRoot": cgroup_root,
        "address": ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "registerWithTaints": [{"key": key, "effect": "NoSchedule"} for key in taints],
        "resolvConf": str(state / "resolv.conf"),
        "podLogsDir": str(state / "pod-logs"),
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


def kubeconfig(name: str, server: str, ca: Path, cert: Path, key: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
            "current-context": "e2e",
        }
    )


@dataclass
class Daemons:
    """containerd and the kubelet of the node `name` at `ip` (and `ipv6`);
    state under `state`, sockets under `run`, both this node's own."""

    name: str
    ip: str
    state: Path
    run: Path
    cni: Cni
    cgroup: Path  # the freezer cgroup the daemons run in
    cgroup_root: str = f"/{NAME}"
    taints: list[str] = field(default_factory=list)
    netns: Path | None = None
    binds: dict[str, Path] = field(default_factory=dict)  # path in the node -> folder of this node
    ipv6: str | None = None  # a dual-stack node's IPv6 address: its second InternalIP
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.run / "containerd.sock"

    def _enter(self) -> list[str]:
        """The command prefix that runs something in the node's namespaces."""
        if self.netns is None:
            return []
        holder = self.procs.get("namespaces")  # none yet: it is being started
        mount = [f"--mount=/proc/{holder.pid}/ns/mnt"] if holder else []
        return ["nsenter", f"--net={self.netns}", *mount, "--"]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs[name] = spawn(self.state / f"{name}.log", [*self._enter(), *argv], cgroup=self.cgroup)

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        return wait_until(f"{self.name}: {what}", check, timeout, self.procs, self.state)

    def _mount_namespace(self) -> None:
        """A process that holds the node's mount namespace, where each of
        `binds` is this node's own folder (mounts there never reach the host)."""
        self._spawn("namespaces", ["unshare", "--mount", "--propagation", "slave", "sleep", "infinity"])
        own = os.readlink("/proc/self/ns/mnt")
        holder = self.procs["namespaces"].pid
        self.wait_for("its mount namespace", lambda: os.readlink(f"/proc/{holder}/ns/mnt") != own, 10)
        for target, source in self.binds.items():
            source.mkdir(parents=True, exist_ok=True)
            run_quiet("nsenter", f"--mount=/proc/{holder}/ns/mnt", "mount", "--bind", str(source), target)

    def start(self, bin_dir: Path, images: list[Path], pki: Path, server: str) -> None:
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        if self.binds:
            self._mount_namespace()
        start_from(image_store(images), self.state / "containerd")
        (self.state / "containerd.toml").write_text(containerd_config(self.state, self.run, self.cni))
        self._spawn("containerd", ["containerd", "--config", str(self.state / "containerd.toml")])
        up = lambda: subprocess.run([*_ctr(self.socket), "version"], capture_output=True).returncode == 0  # noqa: E731
        self.wait_for("containerd", up, 60)
        log(f"{self.name}: containerd up with its images in {time.monotonic() - started:.1f}s")

        cert, key = client_certificate(pki, f"kubelet-{self.name}", f"/O=system:nodes/CN=system:node:{self.name}")
        config = kubelet_config(self.state, self.run, self.ip, pki / "ca.crt", self.cgroup_root, self.taints)
        (self.state / "kubelet.kubeconfig").write_text(kubeconfig(self.name, server, pki / "ca.crt", cert, key))
        (self.state / "kubelet.json").write_text(json.dumps(config, indent=1))
        (self.state / "resolv.conf").write_text("")
        self._spawn(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={self.state / 'kubelet.json'}",
                f"--kubeconfig={self.state / 'kubelet.kubeconfig'}",
                f"--root-dir={self.state / 'kubelet'}",
                f"--cert-dir={self.state / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.ip}" + (f",{self.ipv6}" if self.ipv6 else ""),
                "--v=1",
            ],
        )

    def check_config(self) -> None:
        if "strict decoding error" in tail(self.state / "kubelet.log", 10_000):
            # The kubelet ignores what it does not know; a misspelt setting must not pass unnoticed.
            raise RuntimeError(
                f"the kubelet did not understand its configuration:\n{tail(self.state / 'kubelet.log', 200)}"
            )

    def stop(self) -> None:
        """The kubelet, then containerd; what they leave (shims, containers)
        is killed with the freezer cgroup by the caller."""
        for name in ("kubelet", "containerd"):
            proc = self.procs.get(name)
            if proc is not None:
                stop_pids([proc.pid], grace=5)
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=10)
