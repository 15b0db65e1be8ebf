"""Start and stop a real Kubernetes control plane on loopback.

    python3 controlplane/cluster.py up   DIR   # etcd + kube-apiserver + kube-controller-manager
    python3 controlplane/cluster.py down DIR   # stop them and remove DIR

`up` leaves the processes running in the background and writes an admin
kubeconfig to DIR/kubeconfig. The tests use the `Cluster` class directly; its
processes are tied to the test process (they die with it, even on SIGKILL).

Standard library only, so the Makefile can run it before any virtualenv exists.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE_RANGE = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first address of the range
SERVICE_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
# Every write, with who made it, and every request a ServiceAccount makes
# (with its response code): tests count writes and look for 403s in it.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def build() -> Path:
    """Build (or find in the cache) the binaries; returns their folder."""
    out = subprocess.run([str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the process that started us dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificates(where: Path, name: str, sans: str, days: int = 30) -> tuple[Path, Path, Path]:
    """A CA (ca.crt) and a serving certificate and key (<name>.crt, <name>.key)
    for `sans` (e.g. "IP:127.0.0.1,DNS:localhost") signed by it, in `where`."""
    ca, cert, key, csr = where / "ca.crt", where / f"{name}.crt", where / f"{name}.key", where / f"{name}.csr"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        str(days),
        "-keyout",
        str(where / "ca.key"),
        "-out",
        str(ca),
        "-subj",
        "/CN=test-ca",
    )
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    (where / f"{name}.ext").write_text(f"subjectAltName={sans}\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(where / "ca.key"),
        "-CAcreateserial",
        "-days",
        str(days),
        "-extfile",
        str(where / f"{name}.ext"),
        "-out",
        str(cert),
    )
    return ca, cert, key


def client_certificate(where: Path, name: str, subject: str, days: int = 30) -> tuple[Path, Path]:
    """A client certificate and key (<name>.crt, <name>.key) for `subject`
    (e.g. "/O=system:nodes/CN=system:node:n1"), signed by the CA in `where`."""
    cert, key, csr = where / f"{name}.crt", where / f"{name}.key", where / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject)
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(where / "ca.crt"),
        "-CAkey",
        str(where / "ca.key"),
        "-CAcreateserial",
        "-days",
        str(days),
        "-out",
        str(cert),
    )
    return cert, key


class Cluster:
    """The control plane. With `node_ip` it also serves a real node (make e2e):
    it must then run in a network namespace of its own, where it listens on
    every address at port 443 (pods reach it at the `kubernetes` Service's
    address), routes webhooks and `kubectl logs` to that node directly, and
    adds kube-scheduler and the node-lifecycle controller."""

    def __init__(
        self, root: Path, bin_dir: Path | None = None, detach: bool = False, node_ip: str | None = None
    ) -> None:
        self.root = root.resolve()
        self.bin = bin_dir or build()
        self.detach = detach
        self.node_ip = node_ip
        # With a CIDR, kube-controller-manager's node IPAM gives Nodes their
        # podCIDRs from it (--allocate-node-cidrs), as most clusters start;
        # "IPv4-CIDR,IPv6-CIDR" gives dual-stack Nodes one of each family.
        self.allocate_node_cidrs: str | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.token = ""
        self.port = 0
        self.etcd_port = 0

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # --- start --------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        if self.root.exists() and any(self.root.iterdir()):
            raise RuntimeError(f"{self.root} is not empty: is a control plane running there? Stop it first.")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._pki()
            etcd_port, peer_port = free_port(), free_port()
            self.port = 443 if self.node_ip else free_port()
            self.etcd_port = etcd_port
            self._spawn(
                "etcd",
                [
                    "--data-dir",
                    str(self.root / "etcd"),
                    "--listen-client-url",
                    f"http://127.0.0.1:{etcd_port}",
                    "--listen-peer-url",
                    f"http://127.0.0.1:{peer_port}",
                ],
            )
            self._wait_tcp(etcd_port, timeout)
            self._spawn("kube-apiserver", self._apiserver_args(etcd_port))
            self._write_kubeconfig()
            self._wait_ready(timeout)
            self._spawn("kube-controller-manager", self._controller_manager_args())
            if self.node_ip:
                self._spawn("kube-scheduler", self._scheduler_args())
        except BaseException:
            self.stop(remove=False)
            raise
        (self.root / "pids").write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))

    def _pki(self) -> None:
        pki = self.root / "pki"
        pki.mkdir()
        # Every name a client may use: loopback, the `kubernetes` Service's
        # address and DNS names (as pods see it), and the node's address.
        names = ["IP:127.0.0.1", "DNS:localhost", f"IP:{SERVICE_IP}"]
        names += [f"DNS:{n}" for n in SERVICE_NAMES] + ([f"IP:{self.node_ip}"] if self.node_ip else [])
        certificates(pki, "apiserver", ",".join(names))
        if self.node_ip:
            # How the API server authenticates to the kubelet (logs, exec).
            client_certificate(pki, "kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        self.token = secrets.token_hex(16)
        (pki / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        (self.root / "audit-policy.yaml").write_text(AUDIT_POLICY)

    def _apiserver_args(self, etcd_port: int) -> list[str]:
        pki = self.root / "pki"
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={'0.0.0.0' if self.node_ip else '127.0.0.1'}",
            f"--advertise-address={self.node_ip or '127.0.0.1'}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--api-audiences=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={self.root / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--profiling=false",
            # A namespace's or a test's deletecollection of thousands of objects,
            # several deletes at a time (default: one).
            "--delete-collection-workers=4",
            "--v=0",
            *self._apiserver_node_args(),
        ]

    def _apiserver_node_args(self) -> list[str]:
        if not self.node_ip:
            return []
        pki = self.root / "pki"
        return [
            # No kube-proxy: dial a webhook's endpoints, not its Service address.
            "--enable-aggregator-routing=true",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.root / "pki"
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            # Garbage collection, namespace deletion, default ServiceAccounts and
            # their tokens; node IPAM, which is what the operator does, only
            # when asked. The node-lifecycle controller (node Ready taints)
            # only with a node.
            "--controllers=*"
            + ("" if self.allocate_node_cidrs else ",-node-ipam-controller")
            + ("" if self.node_ip else ",-node-lifecycle-controller"),
            *self._node_ipam_args(),
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--profiling=false",
        ]

    def _node_ipam_args(self) -> list[str]:
        if not self.allocate_node_cidrs:
            return ["--allocate-node-cidrs=false"]
        cidrs = ["--allocate-node-cidrs=true", f"--cluster-cidr={self.allocate_node_cidrs}"]
        if "," in self.allocate_node_cidrs:
            # Dual-stack (IPv4,IPv6): a mask size per family; --node-cidr-mask-size is refused.
            return [*cidrs, "--node-cidr-mask-size-ipv4=24", "--node-cidr-mask-size-ipv6=64"]
        return [*cidrs, "--node-cidr-mask-size=24"]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _write_kubeconfig(self) -> None:
        ca = self.root / "pki" / "ca.crt"
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "local", "cluster": {"server": self.server, "certificate-authority": str(ca)}}
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
                    "current-context": "local",
                },
                indent=2,
            )
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child)
        self.procs[name] = subprocess.Popen(
            [str(self.bin / name), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=self.detach,
            preexec_fn=None if self.detach else _die_with_parent,
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_tcp(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")

    def get(self, path: str) -> tuple[int, str]:
        """GET from the apiserver as admin; (status, body)."""
        ctx = ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt"))
        req = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s; see {self.root}/kube-apiserver.log")

    # --- faults (tests) -----------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one process of the control plane (e.g. "kube-apiserver") and reap it."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=10)

    def start_apiserver(self, timeout: float = 60) -> None:
        """Start kube-apiserver again, on the same port and etcd, after `kill`.
        kube-controller-manager exits if the API server vanishes while it is
        still starting its controllers: then it is started again too."""
        self._spawn("kube-apiserver", self._apiserver_args(self.etcd_port))
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        for name in dead:
            del self.procs[name]
        self._wait_ready(timeout)
        if "kube-controller-manager" in dead:
            self.start_controller_manager()

    def start_controller_manager(self) -> None:
        self._spawn("kube-controller-manager", self._controller_manager_args())

    def etcd(self, method: str, body: dict[str, object]) -> dict[str, object]:
        """One call to etcd's JSON API (its gRPC gateway), e.g. ("kv/range", {...})."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.etcd_port}/v3/{method}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer: dict[str, object] = json.loads(resp.read())
            return answer

    def etcd_delete(self, key: str) -> int:
        """Delete one key in etcd behind the API server's back; how many were deleted."""
        answer = self.etcd("kv/deleterange", {"key": base64.b64encode(key.encode()).decode()})
        return int(str(answer.get("deleted", 0)))

    def compact(self) -> int:
        """Compact etcd's history up to its current revision, which it returns:
        a watch that resumes from an older resourceVersion gets 410 Gone."""
        header = self.etcd("kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})["header"]
        revision = int(str(header["revision"]))  # type: ignore[index]
        self.etcd("kv/compaction", {"revision": revision, "physical": True})
        return revision

    # --- stop ---------------------------------------------------------------

    def stop(self, remove: bool = True) -> None:
        pids = {n: p.pid for n, p in self.procs.items()}
        for proc in self.procs.values():
            proc.poll()
        stop_pids(list(reversed(pids.values())))
        for proc in self.procs.values():
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        self.procs.clear()
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


def stop_pids(pids: list[int], grace: float = 10) -> None:
    """Stop each in turn (clients before servers: the API server shuts down
    slowly once etcd is gone): SIGTERM, wait, SIGKILL if need be, wait."""
    for pid in pids:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not alive(pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent is gone still answers kill(0); /proc tells.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def up(root: Path) -> None:
    cluster = Cluster(root, detach=True)
    started = time.monotonic()
    cluster.start()
    print(f"control plane ready in {time.monotonic() - started:.1f}s at {cluster.server}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")


def down(root: Path) -> None:
    pids_file = root / "pids"
    if pids_file.exists():
        stop_pids(list(reversed(json.loads(pids_file.read_text()).values())))
    shutil.rmtree(root, ignore_errors=True)
    print(f"control plane in {root} stopped and removed")


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "up":
        up(Path(argv[2]))
    elif len(argv) == 3 and argv[1] == "down":
        down(Path(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
