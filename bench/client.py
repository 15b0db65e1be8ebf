"""Benchmark: what one Node PATCH costs the operator, against the official client.

    .venv/bin/python bench/client.py 2000

On a freshly built control plane with N kubelet-shaped Nodes, each side sets one annotation
on every Node, 32 requests in flight, twice in turn:
  - the operator's client (controller/kube.py: raw JSON on aiohttp);
  - the official `kubernetes` client's CoreV1Api.patch_node on 32 threads,
    as the operator did before.
It prints wall seconds and this process's CPU per request (threads included).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import create_nodes, node_name  # noqa: E402
from bench.support import cluster_with_crds  # noqa: E402
from controller.kube import Api, load_config  # noqa: E402
from controller.metrics import Metrics  # noqa: E402
from controller.transport import CONCURRENCY  # noqa: E402
from controlplane.cluster import build  # noqa: E402


def operator_client(names: list[str]) -> Callable[[str], None]:
    def run(value: str) -> None:
        async def patch_all() -> None:
            api = Api(load_config(), Metrics())
            try:
                await asyncio.gather(*(api.patch_node(n, {"bench/value": value}) for n in names))
            finally:
                await api.close()

        asyncio.run(patch_all())

    return run


def official_client(names: list[str]) -> Callable[[str], None]:
    config = load_config()
    config.connection_pool_maxsize = CONCURRENCY
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))

    def run(value: str) -> None:
        body = {"metadata": {"annotations": {"bench/value": value}}}
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda n: core.patch_node(n, body), names))

    return run


def main(argv: list[str]) -> int:
    total = int(argv[1]) if len(argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as work:
        cluster, _, token = cluster_with_crds(Path(work) / "cp", build())
        try:
            os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
            create_nodes(cluster.kubeconfig, token, range(total))
            names = [node_name(i) for i in range(total)]
            sides = {"operator (aiohttp)": operator_client(names), "official client (threads)": official_client(names)}
            print(f"{'client':<28}{'round':>6}{'wall s':>9}{'CPU ms/request':>16}")
            for round_ in (1, 2):
                for name, run in sides.items():
                    cpu, wall = time.process_time(), time.monotonic()
                    run(f"{name}-{round_}")
                    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
                    print(f"{name:<28}{round_:>6}{wall:>9.2f}{1000 * cpu / total:>16.2f}", flush=True)
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
