"""Benchmark: Node-join latency, this operator against kube-controller-manager's
node IPAM controller (the peer), in one run.

    .venv/bin/python bench/joins.py [--steady 20x120] [--burst 1000]

Two scenarios, each for both allocators, each allocator on a fresh control
plane of its own (four in all):
  - steady: kubelet-shaped Nodes (bench/kubelet.py) join at 20 a second for
    120 s (2,400 Nodes), as an autoscaler's scale-up brings them: Node k
    starts to register at t0 + k/20, whatever the ones before it are doing;
  - burst: 1,000 Nodes join at once, registered as many at a time as
    bench/kubelet.py does (32).
The allocator starts with no Nodes and is ready before the first joins: the
operator (one Network 10.0.0.0/8 in /24s with `podCIDRs: true`, as in
bench/nodeipam.py) once the Network has its status; the peer
(--allocate-node-cidrs, same flags as bench/nodeipam.py) once its CIDR
allocator has started and its caches synced, and a second more.

A Node's join latency is the time from its ADDED event to the first event
that shows spec.podCIDRs set, both read from one watch of Nodes opened before
the first Node is created, in a process of its own (so that registering
Nodes never delays its reading), on one clock. creationTimestamp has whole
seconds only: of no use here.

Printed for each allocator and scenario: p50, p99 and max, the Nodes
counted, and the ratio of the operator's p99 to the peer's; the allocator's
CPU seconds (at the end of its start-up, and in all) and its peak resident
memory (VmHWM) over the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import create_nodes, join_at_rate  # noqa: E402
from bench.latency import Latency, latencies  # noqa: E402
from bench.nodeipam import STARTED, network, peer  # noqa: E402
from bench.support import (  # noqa: E402
    StartupCPU,
    cluster_with_crds,
    control_plane_cpu,
    cpu_seconds,
    create,
    peak_rss_mib,
    start_operator,
    stop,
)
from controlplane.cluster import Cluster, build  # noqa: E402

RATE = 20.0  # Nodes a second, steady
SECONDS = 120.0
BURST = 1000
ALLOCATORS = ("operator", "kcm")
READY_TIMEOUT = 120.0
# After the last Node has joined: how long its podCIDR may take, at most.
SETTLE_TIMEOUT = 300.0


@dataclass
class Joins:
    """One allocator in one scenario."""

    allocator: str
    scenario: str
    nodes: int
    rate: float  # Nodes a second (steady); 0: all at once
    latency: Latency
    joining: float  # seconds from the first Node's registration to the last's answer
    late: float  # the most a registration started after its turn (steady), seconds
    startup_cpu: float  # CPU seconds when its start-up was done (before any Node)
    cpu: float  # CPU seconds over the whole run, start-up included
    rss: float  # peak resident memory, MiB
    control: float  # CPU seconds of the API server and etcd while Nodes joined
    cuts: int  # times the API server closed the watch (see `watch`)
    gap: float  # seconds, in all, from those closings to the watch's reopening


# --- the watch, in a process of its own ------------------------------------------


def watch(kubeconfig: Path, total: int, out: Path, timeout: float) -> None:
    """Record, on time.monotonic(), when each Node's ADDED event and its first
    event with spec.podCIDRs arrive; write them to `out` (JSON) once `total`
    Nodes have podCIDRs, after `timeout` seconds, or on SIGTERM. Prints
    `watching` once the stream is open: Nodes may then be created.

    The API server closes a watch that falls behind (its watch cache gives
    each watcher a buffer of about a second of events, ten on a fresh
    control plane), as it does to any informer. The watch is then opened
    again at once from the last version it saw: the events it missed come
    then, as late as the reopening took (`gap`, in all)."""
    import pykube
    import requests

    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
    added: dict[str, float] = {}
    cidr: dict[str, float] = {}
    cuts = 0
    gap = 0.0
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + timeout
    try:
        listed = api.get(url="nodes", version="v1")
        listed.raise_for_status()
        version = listed.json()["metadata"]["resourceVersion"]
        cut: float | None = None
        while len(cidr) < total and time.monotonic() < deadline:
            params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": str(int(timeout) + 60)}
            try:
                with api.get(url="nodes", version="v1", params=params, stream=True, timeout=None) as resp:
                    resp.raise_for_status()
                    if cut is None:
                        print("watching", flush=True)
                    else:
                        gap += time.monotonic() - cut
                    # chunk_size=None: each event as soon as it arrives, not in pieces of 512 bytes
                    for line in resp.iter_lines(chunk_size=None):
                        now = time.monotonic()
                        event: dict[str, Any] = json.loads(line)
                        if event["type"] == "ERROR":
                            raise RuntimeError(f"the watch failed: {event['object']}")
                        node = event["object"]
                        version = node["metadata"]["resourceVersion"]
                        name = node["metadata"]["name"]
                        if event["type"] == "ADDED":
                            added.setdefault(name, now)
                        if name not in cidr and (node.get("spec") or {}).get("podCIDRs"):
                            cidr[name] = now
                            if len(cidr) >= total:
                                break
            except (OSError, requests.RequestException):
                pass
            if len(cidr) < total:
                cuts += 1
                cut = time.monotonic()
    except KeyboardInterrupt:
        if not stopping:
            raise
    finally:
        out.write_text(json.dumps({"added": added, "cidr": cidr, "cuts": cuts, "gap": gap}))


def _watch_main(argv: list[str]) -> int:
    kubeconfig, total, out, timeout = argv
    watch(Path(kubeconfig), int(total), Path(out), float(timeout))
    return 0


class Watch:
    """The watch process, from the bench's side."""

    def __init__(self, kubeconfig: Path, total: int, out: Path, timeout: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + timeout
        cmd = [sys.executable, "-P", __file__, "watch", str(kubeconfig), str(total), str(out), str(timeout)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "watching":
            self.proc.wait()
            raise RuntimeError("the watch of Nodes did not start")

    def result(self, allocator: subprocess.Popen[bytes], log: Path) -> tuple[Latency, int, float]:
        """Once every Node has podCIDRs (or the watch's time is up)."""
        while self.proc.poll() is None:
            if time.monotonic() > self.deadline + 10:
                self.proc.terminate()  # it writes what it has
                self.proc.wait()
            elif allocator.poll() is not None:
                self.proc.terminate()
                self.proc.wait()
                raise RuntimeError(f"{log.stem} exited early:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        seen = json.loads(self.out.read_text())
        return latencies(seen["added"], seen["cidr"]), int(seen["cuts"]), float(seen["gap"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


# --- one allocator, one scenario --------------------------------------------------


def _start(who: str, cluster: Cluster, kubectl: list[str], bin_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    if who == "operator":
        create(kubectl, network(pod_cidrs=True))
        return start_operator(cluster.kubeconfig, log)
    with log.open("wb") as out:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        return subprocess.Popen(peer(bin_dir, cluster.kubeconfig), env=env, stdout=out, stderr=subprocess.STDOUT)


def _ready(who: str, kubectl: list[str], proc: subprocess.Popen[bytes], startup: StartupCPU) -> None:
    """The operator: the Network has its status; the peer: its allocator has
    started and synced its caches (its log says so), and a second more."""
    startup.wait_for(READY_TIMEOUT)
    if who != "operator":
        time.sleep(1)
        return
    deadline = time.monotonic() + READY_TIMEOUT
    get = [*kubectl, "get", "network", "bench", "-n", "default", "-o", "jsonpath={.status.observedGeneration}"]
    while not subprocess.run(get, capture_output=True, text=True).stdout.strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the operator did not give the Network a status")
        time.sleep(0.1)


def run_one(who: str, scenario: str, nodes: int, rate: float, bin_dir: Path, work: Path) -> Joins:
    """`who` on a fresh control plane, from no Nodes: `nodes` join at `rate`
    a second (steady) or all at once (rate 0)."""
    name = f"{who}-{scenario}"
    cluster, kubectl, token = cluster_with_crds(work / f"cp-{name}", bin_dir)
    try:
        log = work / f"{name}.log"
        proc = _start(who, cluster, kubectl, bin_dir, log)
        startup = StartupCPU(proc, log, STARTED[who])
        startup.start()
        seen: Watch | None = None
        try:
            _ready(who, kubectl, proc, startup)
            assert startup.cpu is not None
            budget = (nodes / rate if rate else 0) + SETTLE_TIMEOUT
            seen = Watch(cluster.kubeconfig, nodes, work / f"{name}.json", budget)
            control = control_plane_cpu(cluster)
            started = time.monotonic()
            late = 0.0
            if rate:
                late = join_at_rate(cluster.kubeconfig, token, range(nodes), rate)
            else:
                create_nodes(cluster.kubeconfig, token, range(nodes))
            joining = time.monotonic() - started
            latency, cuts, gap = seen.result(proc, log)
            control = control_plane_cpu(cluster) - control
            cpu, rss = cpu_seconds(proc.pid), peak_rss_mib(proc.pid)
        finally:
            if seen is not None:
                seen.close()
            stop(proc)
        return Joins(who, scenario, nodes, rate, latency, joining, late, startup.cpu, cpu, rss, control, cuts, gap)
    finally:
        cluster.stop()


def run(bin_dir: Path, work: Path, rate: float = RATE, seconds: float = SECONDS, burst: int = BURST) -> list[Joins]:
    """Steady, then burst; in each the operator, then the peer."""
    results = []
    scenarios = [("steady", round(rate * seconds), rate)] if rate and seconds else []
    scenarios += [("burst", burst, 0.0)] if burst else []
    for scenario, nodes, pace in scenarios:
        for who in ALLOCATORS:
            results.append(run_one(who, scenario, nodes, pace, bin_dir, work))
            print(f"joins: {who}, {scenario}: done", file=sys.stderr, flush=True)
    return results


def report(results: list[Joins]) -> str:
    ms = 1000
    head = (
        f"{'scenario':<8} {'allocator':<9} {'Nodes':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missing':>7} "
        f"{'joining s':>9} {'late s':>6} {'CPU s start':>11} {'CPU s':>6} {'RSS MiB':>7} {'API+etcd CPU s':>14}"
    )
    lines = [head]
    for r in results:
        lat = r.latency
        lines.append(
            f"{r.scenario:<8} {r.allocator:<9} {lat.count:>6} {lat.p50 * ms:>7.0f} {lat.p99 * ms:>7.0f} "
            f"{lat.max * ms:>7.0f} {lat.missing:>7} {r.joining:>9.1f} {r.late:>6.2f} {r.startup_cpu:>11.2f} "
            f"{r.cpu:>6.1f} {r.rss:>7.0f} {r.control:>14.1f}"
            + (f"  (watch closed {r.cuts}×, reopened within {r.gap:.2f} s in all)" if r.cuts else "")
        )
    by = {(r.scenario, r.allocator): r for r in results}
    for scenario in ("steady", "burst"):
        if (scenario, "operator") in by and (scenario, "kcm") in by:
            ratio = by[scenario, "operator"].latency.p99 / by[scenario, "kcm"].latency.p99
            lines.append(f"{scenario}: operator's p99 / kcm's p99 = {ratio:.2f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["watch"]:
        return _watch_main(argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steady", default=f"{RATE:g}x{SECONDS:g}", help="Nodes a second x seconds (0x0: none)")
    parser.add_argument("--burst", type=int, default=BURST, help="Nodes joining at once (0: none)")
    args = parser.parse_args(argv[1:])
    rate, seconds = (float(n) for n in args.steady.split("x"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="joins-") as tmp:
        results = run(build(), Path(tmp), rate, seconds, args.burst)
    print(report(results))
    print(f"joins: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
