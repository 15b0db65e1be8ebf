"""`make run`: the operator against $KUBECONFIG, or against a local control plane
started for it, with the seed's example Network and a few demo Nodes.

The local control plane (in .cluster/run) lives as long as this command: stop
with Ctrl-C and everything it started stops with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from controlplane.cluster import Cluster, build  # noqa: E402


def kubectl(bin_dir: Path, *args: str, check: bool = True) -> int:
    return subprocess.run([str(bin_dir / "kubectl"), *args], check=check).returncode


def wait_served(bin_dir: Path) -> None:
    """Established comes a moment before the new resource is served."""
    for _ in range(100):
        if kubectl(bin_dir, "get", "networks", "-A", "-o", "name", check=False) == 0:
            return
        time.sleep(0.2)
    raise TimeoutError("the Network resource is not served")


def main() -> int:
    bin_dir = build()
    local: Cluster | None = None
    if not os.environ.get("KUBECONFIG"):
        root = ROOT / ".cluster" / "run"
        shutil.rmtree(root, ignore_errors=True)  # state of an earlier run that was killed
        local = Cluster(root, bin_dir)
        local.start()
        os.environ["KUBECONFIG"] = str(local.kubeconfig)
        print(
            f"local control plane at {local.server}; to look around from another shell:\n"
            f"  export KUBECONFIG={local.kubeconfig} PATH={bin_dir}:$PATH\n"
            f"  kubectl get networks,nodes -A"
        )
    try:
        kubectl(bin_dir, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl(bin_dir, "wait", "--for=condition=Established", "crd/networks.samplecrd.k8s.io")
        wait_served(bin_dir)
        kubectl(bin_dir, "apply", "-f", str(ROOT / "deploy" / "demo" / "nodes.yaml"))
        kubectl(bin_dir, "apply", "-n", "default", "-f", str(ROOT / "deploy" / "examples" / "example-network.yaml"))
        kopf = Path(sys.executable).parent / "kopf"
        operator = subprocess.Popen([str(kopf), "run", "-A", "--standalone", str(ROOT / "operator.py")], cwd=ROOT)
        try:
            return operator.wait()
        except KeyboardInterrupt:  # Ctrl-C: the way to stop it
            operator.send_signal(signal.SIGINT)
            operator.wait()
            return 0
    finally:
        if local is not None:
            local.stop()


if __name__ == "__main__":
    sys.exit(main())
