"""Benchmark: the memory of Kopf's first look at every Node, by how it is made.

    .venv/bin/python bench/listing.py [NODES]

On one control plane with NODES kubelet-shaped Nodes (bench/kubelet.py,
default 5,000) and no Network, the operator starts three times, once per way
Kopf's watches can start, and the peak RSS of each run is printed once its
CPU use has settled:
  - streamed: the API server streams the initial events (watch-list), one
    object per event: what the operator uses;
  - unpaged: one LIST per resource, read whole: what it falls back to on an
    API server without watch-list;
  - paged: LISTs in pages of 500, one held at a time: what it used before,
    whose continue token can expire (410 Expired) and end Kopf's watcher.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import kubelet  # noqa: E402
from bench.support import cluster_with_crds, cpu_seconds, peak_rss_mib, start_operator, stop  # noqa: E402
from controlplane.cluster import build  # noqa: E402

MODES = ("streamed", "unpaged", "paged")
# Loaded beside operator.py: after its startup handler, sets how Kopf's watches start.
_MODE_FILE = """
import os
import kopf

@kopf.on.startup()
async def listing_mode(settings: kopf.OperatorSettings, **_: object) -> None:
    mode = os.environ["BENCH_LISTING"]
    settings.watching.initial_streaming = mode == "streamed"
    settings.watching.chunk_size = 500 if mode == "paged" else None
"""


def settled(pid: int, quiet: float = 3.0, timeout: float = 300.0) -> None:
    """Until the process has used next to no CPU for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last > 0.05:
            calm_since = time.monotonic()
        last = now
        if time.monotonic() - calm_since >= quiet:
            return
    raise TimeoutError(f"the operator still busy after {timeout} s")


def main(argv: list[str]) -> int:
    nodes = int(argv[1]) if len(argv) > 1 else 5000
    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        work = Path(tmp)
        cluster, _, token = cluster_with_crds(work / "cp", build())
        try:
            took = kubelet.create_nodes(cluster.kubeconfig, token, range(nodes))
            print(f"{nodes} kubelet-shaped Nodes made in {took:.0f} s")
            mode_file = work / "listing_mode.py"
            mode_file.write_text(_MODE_FILE)
            rows = []
            for mode in MODES:
                log = work / f"{mode}.log"
                proc = start_operator(cluster.kubeconfig, log, (mode_file,), BENCH_LISTING=mode)
                try:
                    time.sleep(2)
                    settled(proc.pid)
                    rows.append((mode, peak_rss_mib(proc.pid), cpu_seconds(proc.pid)))
                finally:
                    stop(proc)
        finally:
            cluster.stop()
    print(f"{'Kopf watches start from':<28} {'peak RSS MiB':>12} {'CPU s':>7}")
    for mode, rss, cpu in rows:
        print(f"{mode:<28} {rss:>12.0f} {cpu:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
