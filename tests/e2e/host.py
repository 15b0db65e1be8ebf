"""What the end-to-end nodes (tests/e2e/node.py, tests/e2e/cluster.py) make
on the host outside the work tree, and how each piece is removed: cgroups,
mounts, named network namespaces, the mount points the cluster's nodes bind
over, the kernel settings the kubelet changes, and what the kubelet,
containerd and CNI leave at fixed paths. `clean()` removes all of it, after a run and at the
start of the next one (a killed run leaves things behind); `make e2e-clean`
calls it too. Standard library only: `make e2e-clean` runs it with the
system's Python.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = "network-operator-e2e"
STATE = ROOT / ".cluster" / "e2e"
RUN = Path("/run") / NAME
CGROUPS = Path("/sys/fs/cgroup")
FREEZER = CGROUPS / "freezer" / NAME
# Kernel settings the kubelet sets to its liking (they are not per namespace).
SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys"]
SYSCTLS += ["kernel/keys/root_maxbytes"]
# Paths the kubelet, containerd and libcni use whatever their configuration says.
KUBELET_FIXED = Path("/var/lib/kubelet")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
CNI_CACHE = Path("/var/lib/cni")
SHIM_SOCKETS = Path("/run/containerd")
# Paths the nodes of tests/e2e/cluster.py each bind a folder of their own
# over, in a mount namespace of their own: their mount points are made on the
# host when missing (and removed again), nothing is written into them here.
NODE_BINDS = [Path(p) for p in ("/etc/cni/net.d", "/opt/cni/bin", "/run/flannel", "/var/lib/cni", "/var/lib/kubelet")]
# A file kube-flannel.yml mounts from the host (FileOrCreate): iptables' lock.
XTABLES_LOCK = Path("/run/xtables.lock")

libc = ctypes.CDLL("libc.so.6", use_errno=True)


# --- cgroups ------------------------------------------------------------------------


def hierarchies() -> list[Path]:
    """The cgroup hierarchies (cpu, memory, freezer, ..., name=systemd, and
    the hybrid layout's unified one, where the kubelet makes its root too)."""
    return sorted(p for p in CGROUPS.iterdir() if (p / "cgroup.procs").exists() and p.is_dir())


def check_cgroups() -> None:
    if (CGROUPS / "cgroup.controllers").exists() or not (CGROUPS / "freezer" / "cgroup.procs").exists():
        raise SystemExit(
            "node: this host does not have the cgroup v1 layout (with a freezer hierarchy) that make e2e "
            "supports; the end-to-end node cannot run here."
        )


def make_cgroups(node: str = "") -> Path:
    """The kubelet's cgroupRoot in every hierarchy (/NAME, or /NAME/<node>
    for one of several nodes), and a freezer cgroup for the daemons in it."""
    path = Path(NAME) / node
    for h in hierarchies():
        for parent in (Path(NAME), path):
            (h / parent).mkdir(exist_ok=True)
            if h.name == "cpuset":  # an empty cpuset takes no process
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (h / parent / f).write_text((h / f).read_text())
    daemons = CGROUPS / "freezer" / path / "daemons"
    daemons.mkdir(exist_ok=True)
    return daemons


def _cgroup_pids(root: Path) -> list[int]:
    pids = []
    for d, _, _ in os.walk(root):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (Path(d) / "cgroup.procs").read_text().split()]
    return pids


def kill_cgroup_tree(root: Path = FREEZER) -> None:
    """Freeze every process under the freezer cgroup `root` (so none can fork
    away), SIGKILL them all, thaw, and wait until they are gone."""
    if not root.exists():
        return
    state = root / "freezer.state"
    state.write_text("FROZEN")
    deadline = time.monotonic() + 10
    while state.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _cgroup_pids(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    state.write_text("THAWED")
    deadline = time.monotonic() + 30
    while (left := _cgroup_pids(root)) and time.monotonic() < deadline:
        for pid in left:  # our own children: reap them
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if left:
        raise RuntimeError(f"processes {left} in {root} survived SIGKILL")


def remove_cgroups() -> None:
    for h in hierarchies():
        top = h / NAME
        if not top.exists():
            continue
        for d, _, _ in sorted(os.walk(top), key=lambda w: -len(Path(w[0]).parts)):
            deadline = time.monotonic() + 10
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy for a moment after its last process exits
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


# --- mounts ---------------------------------------------------------------------------


def mounts_under(*prefixes: Path) -> list[str]:
    """Mount points at or below any prefix, deepest (latest) first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            found.append(point)
    return list(reversed(found))


def unmount_all(*prefixes: Path) -> None:
    for _ in range(10):
        points = mounts_under(*prefixes)
        if not points:
            return
        for point in points:
            libc.umount2(point.encode(), 2)  # MNT_DETACH
    raise RuntimeError(f"still mounted: {mounts_under(*prefixes)}")


def make_state() -> None:
    """The state folder, on a tmpfs of its own: the nodes' images are
    unpacked there (about 1.6 GB, which the nodes share as hard links,
    tests/e2e/daemons.py image_store), and removing it all is an unmount (`rm` of
    the same tree on this disk took 20 s for three nodes). `clean` unmounts
    it with everything below it."""
    STATE.mkdir(parents=True)
    if libc.mount(b"tmpfs", str(STATE).encode(), b"tmpfs", 0, b"mode=0755,size=16g") != 0:
        raise OSError(ctypes.get_errno(), f"mounting a tmpfs on {STATE}")


def remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount point into what it holds."""
    if mounts_under(path):
        raise RuntimeError(f"not removing {path}: still mounted: {mounts_under(path)}")
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise RuntimeError(f"could not remove {path}")


# --- kernel settings ---------------------------------------------------------------


def save_sysctls() -> None:
    saved = RUN / "sysctls.json"
    if not saved.exists():
        saved.write_text(json.dumps({k: (Path("/proc/sys") / k).read_text().strip() for k in SYSCTLS}))


def restore_sysctls() -> None:
    saved = RUN / "sysctls.json"
    if saved.exists():
        for key, value in json.loads(saved.read_text()).items():
            if (Path("/proc/sys") / key).read_text().strip() != value:
                (Path("/proc/sys") / key).write_text(value)
        saved.unlink()


# --- the cluster's nodes ------------------------------------------------------------


def make_mount_points() -> None:
    """NODE_BINDS on the host, noting in RUN which folders (and whether the
    xtables lock) this made, for remove_mount_points."""
    made: list[str] = []
    for path in NODE_BINDS:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        made += [str(p) for p in missing]
    if not XTABLES_LOCK.exists():
        made.append(str(XTABLES_LOCK))
    saved = RUN / "made-on-host.json"
    before = json.loads(saved.read_text()) if saved.exists() else []
    saved.write_text(json.dumps(sorted(set(before + made), key=lambda p: -len(Path(p).parts))))


def remove_mount_points() -> None:
    saved = RUN / "made-on-host.json"
    if not saved.exists():
        return
    for path in map(Path, json.loads(saved.read_text())):  # deepest first
        if path == XTABLES_LOCK:
            path.unlink(missing_ok=True)
        else:
            _rmdir_empty(path, path)
    saved.unlink()


def network_namespaces() -> list[str]:
    """The named network namespaces of a run: NAME-<something>."""
    names = Path("/run/netns")
    return sorted(p.name for p in names.iterdir() if p.name.startswith(f"{NAME}-")) if names.is_dir() else []


def remove_network_namespaces() -> None:
    for name in network_namespaces():
        subprocess.run(["ip", "netns", "delete", name], check=True, capture_output=True)


# --- fixed paths -------------------------------------------------------------------


def _rmdir_empty(path: Path, stop: Path) -> None:
    """Remove `path` and its parents up to `stop` while they are empty."""
    while path != stop.parent and path.is_dir():
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def clean_fixed_paths() -> None:
    # The kubelet's device-plugin socket folder (not moved by --root-dir).
    plugins = KUBELET_FIXED / "device-plugins"
    for f in ("kubelet.sock", "DEPRECATION", "kubelet_internal_checkpoint"):
        with contextlib.suppress(FileNotFoundError):
            (plugins / f).unlink()
    for sub in ("device-plugins", "plugins_registry", "plugins", "pod-resources", "checkpoints"):
        _rmdir_empty(KUBELET_FIXED / sub, KUBELET_FIXED)
    _rmdir_empty(KUBELET_FIXED, KUBELET_FIXED)
    # The kubelet's links to container logs: ours point into the state folder.
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(f"{STATE}/"):
                link.unlink()
        _rmdir_empty(CONTAINER_LOG_LINKS, CONTAINER_LOG_LINKS)
    # libcni's result cache: ours name a pod network namespace under RUN.
    results = CNI_CACHE / "results"
    if results.is_dir():
        for result in results.iterdir():
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                interfaces = json.loads(result.read_text())["result"]["interfaces"]
                if any(str(i.get("sandbox", "")).startswith(f"{RUN}/") for i in interfaces):
                    result.unlink()
        _rmdir_empty(results, CNI_CACHE)
    _rmdir_empty(CNI_CACHE, CNI_CACHE)
    # Shim sockets (containerd 1.6 puts them here whatever its state folder):
    # remove the ones nothing listens on any more.
    sockets = SHIM_SOCKETS / "s"
    if sockets.is_dir():
        for sock in sockets.iterdir():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                except OSError:
                    sock.unlink(missing_ok=True)
        _rmdir_empty(sockets, SHIM_SOCKETS)


def clean() -> None:
    """Remove everything a run (this one, or a killed one) made outside the
    work tree, and its state folder."""
    kill_cgroup_tree()
    unmount_all(STATE, RUN, KUBELET_FIXED)
    remove_network_namespaces()
    remove_cgroups()
    if RUN.exists():
        restore_sysctls()
        remove_mount_points()
        remove_tree(RUN)
    remove_tree(STATE)
    clean_fixed_paths()
