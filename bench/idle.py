"""Burst and idle cost at N Nodes x M Networks (every Node in every pool).

    .venv/bin/python bench/idle.py 5000 10

On a fresh control plane: N Nodes, M Networks (10.<i>.0.0/16 in /29s, so
each holds every Node), then the operator (resync every 10 s). Prints the time
until every allocation is made (burst), then, once everything is allocated,
the operator's CPU seconds per resync period and its writes over several
periods (idle; the LIST of everything that comes every 5 minutes is kept out
of that window), and its peak resident memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.nodeipam import cluster_with_crds, create_nodes, peak_rss_mib, start_operator, writes_by  # noqa: E402
from controlplane.cluster import build  # noqa: E402

RESYNC = 10.0
PERIODS = 3


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def allocated(api: pykube.HTTPClient, networks: int) -> int:
    resp = api.get(url="namespaces/default/networks", version="samplecrd.k8s.io/v1")
    return sum(int((n.get("status") or {}).get("allocated") or 0) for n in resp.json()["items"]) if resp.ok else 0


def main(argv: list[str]) -> int:
    nodes = int(argv[1]) if len(argv) > 1 else 5000
    networks = int(argv[2]) if len(argv) > 2 else 10
    bin_dir = build()
    with tempfile.TemporaryDirectory(prefix="idle-") as tmp:
        cluster, kubectl = cluster_with_crds(Path(tmp) / "cp", bin_dir)
        try:
            kubeconfig = cluster.kubeconfig
            create_nodes(kubeconfig, nodes)
            for i in range(networks):
                doc = {
                    "apiVersion": "samplecrd.k8s.io/v1",
                    "kind": "Network",
                    "metadata": {"name": f"pool-{i}", "namespace": "default"},
                    "spec": {"cidr": f"10.{i}.0.0/16", "nodeSubnetPrefix": 29},
                }
                while subprocess.run([*kubectl, "create", "-f", "-"], input=json.dumps(doc), text=True).returncode:
                    time.sleep(0.2)
            api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
            log = Path(tmp) / "operator.log"
            since = time.time()
            started = time.monotonic()
            # The LIST that catches what the watch missed comes every 5 minutes by
            # default: kept out of the idle window, so that it shows a resync alone.
            proc = start_operator(kubeconfig, log, NETWORK_RESYNC_SECONDS=str(RESYNC), NETWORK_RELIST_SECONDS="3600")
            try:
                while allocated(api, networks) < nodes * networks:
                    if proc.poll() is not None:
                        print(log.read_text()[-3000:])
                        raise RuntimeError("the operator exited early")
                    time.sleep(1)
                burst = time.monotonic() - started
                burst_writes = writes_by(cluster.audit_log, "admin", since, time.time())
                # The watch still brings back every write: wait until the operator is
                # quiet (under a fifth of a core over a resync period), at most 10 minutes.
                quiet = time.monotonic()
                while time.monotonic() - quiet < 600:
                    cpu = cpu_seconds(proc.pid)
                    time.sleep(RESYNC)
                    if cpu_seconds(proc.pid) - cpu < RESYNC / 5:
                        break
                settle = time.monotonic() - quiet
                idle_since, cpu0 = time.time(), cpu_seconds(proc.pid)
                time.sleep(PERIODS * RESYNC)
                idle_cpu = (cpu_seconds(proc.pid) - cpu0) / PERIODS
                idle_writes = writes_by(cluster.audit_log, "admin", idle_since, time.time())
                rss = peak_rss_mib(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            print(f"\n{nodes} Nodes x {networks} Networks ({nodes * networks} allocations)")
            print(f"  burst: until every allocation is made  {burst:8.1f} s, {burst_writes} writes")
            print(f"  then until the operator is quiet       {settle:8.1f} s")
            print(f"  idle: operator CPU per {RESYNC:.0f} s resync      {idle_cpu * 1000:8.0f} ms")
            print(f"  idle: writes in {PERIODS} resync periods       {idle_writes:8d}")
            print(f"  operator peak RSS                      {rss:8.0f} MiB")
            if os.environ.get("BENCH_LOG"):  # keep the operator's log
                Path(os.environ["BENCH_LOG"]).write_text(log.read_text())
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
