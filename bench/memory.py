"""What the operator's memory is made of, and what a Node's heartbeat costs it.

    .venv/bin/python bench/memory.py 5000 1 [--traced DIR] [--profile DIR]

On a fresh control plane: N kubelet-shaped Nodes (bench/kubelet.py) and M
Networks (10.<i>.0.0/16 in /29s at M > 1, else 10.0.0.0/8 in /24s), then
the operator. Its resident memory (VmRSS, sampled every 0.1 s) and CPU are
reported for each phase:
  - startup: until the operator's own LIST of Nodes is done (its log's
    `nodelist` line);
  - burst: Kopf's watches start from their initial events (every Node and
    NodeSubnet once) and every allocation is made;
  - settle: the operator's own writes come back through the watch, until it
    is quiet;
  - heartbeats: every Node's status patched once in 5 minutes, as a
    kubelet at rest does (N/300 a second), for 90 s;
  - rest: 10 s of nothing.

--traced DIR runs the operator under bench/traced.py (tracemalloc, 4
frames) and then prints what the Python heap was made of near its peak and
at rest, by component (see COMPONENTS) and by line. tracemalloc slows the
operator and the RSS of such a run includes tracemalloc's own memory: take
the RSS from a run without it.
--profile DIR records each phase with py-spy (make bench-profile installs
it) as collapsed stacks for bench/profile.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.idle import Profiler  # noqa: E402
from bench.kubelet import REPORT_SECONDS, create_nodes, heartbeats  # noqa: E402
from bench.support import cluster_with_crds, cpu_seconds, create, peak_rss_mib, start_operator, stop  # noqa: E402
from controlplane.cluster import build  # noqa: E402

BEAT_SECONDS = 90.0
REST_SECONDS = 10.0
QUIET_SECONDS = 10.0

# What a traced allocation belongs to: the first rule (a fragment of a
# file's path) that one of its frames matches, tried in this order.
COMPONENTS: list[tuple[str, str]] = [
    ("<frozen importlib", "imports: modules, classes, code"),
    ("kopf/_cogs/clients/api.py", "Kopf's watch: events parsed (bodies in its queues and in handling)"),
    ("kopf/_cogs/clients/watching.py", "Kopf's watch: streams"),
    ("kopf/_core/reactor/inventory.py", "Kopf's per-object memory (ResourceMemory)"),
    ("kopf/_core/reactor/queueing.py", "Kopf's per-object workers, queues and tasks"),
    ("kopf/_cogs/aiokits/aiotasks.py", "Kopf's per-object workers, queues and tasks"),
    ("kopf/_core/reactor/processing.py", "Kopf's processing of an event (causes, kwargs, patches)"),
    ("kopf/_core/actions/", "Kopf's processing of an event (causes, kwargs, patches)"),
    ("kopf/_core/intents/", "Kopf's processing of an event (causes, kwargs, patches)"),
    ("kopf/_cogs/structs/", "Kopf's processing of an event (causes, kwargs, patches)"),
    ("netpool/views.py", "operator: Node cache (NodeView)"),
    ("netpool/cache.py", "operator: Node cache (NodeView)"),
    ("netpool/annotation.py", "operator: Node cache (NodeView)"),
    ("netpool/records.py", "operator: NodeSubnet records"),
    ("controller/kube.py", "operator: its own requests and LISTs"),
    ("controller/transport.py", "operator: its own requests and LISTs"),
    ("controller/", "operator: controller (planning, queue, writes)"),
    ("netpool/", "operator: netpool (planning)"),
    ("kopf/", "Kopf: other"),
    ("aiohttp/", "aiohttp and TLS"),
    ("ssl.py", "aiohttp and TLS"),
    ("asyncio/", "asyncio"),
    ("logging/", "logging"),
]


def component(files: list[str]) -> str:
    for fragment, name in COMPONENTS:
        if any(fragment in filename for filename in files):
            return name
    return "other"


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu: float = 0.0
    rss_peak: float = 0.0
    rss_end: float = 0.0


@dataclass
class Result:
    nodes: int
    networks: int
    phases: list[Phase] = field(default_factory=list)
    peak: float = 0.0
    beats_per_second: float = 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    """VmRSS of a process every 0.1 s, the largest per phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.phase = Phase("startup")
        self.last = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.last = rss_mib(self.pid)
            except OSError:
                return
            self.phase.rss_peak = max(self.phase.rss_peak, self.last)
            time.sleep(0.1)


def allocated(api: pykube.HTTPClient) -> int:
    resp = api.get(url="namespaces/default/networks", version="samplecrd.k8s.io/v1")
    return sum(int((n.get("status") or {}).get("allocated") or 0) for n in resp.json()["items"]) if resp.ok else 0


def run(nodes: int, networks: int, work: Path, traced: Path | None, profile: Path | None) -> Result:
    result = Result(nodes, networks)
    cluster, kubectl, token = cluster_with_crds(work / "cp", build())
    try:
        kubeconfig = cluster.kubeconfig
        create_nodes(kubeconfig, token, range(nodes))
        for i in range(networks):
            cidr, prefix = (f"10.{i}.0.0/16", 29) if networks > 1 else ("10.0.0.0/8", 24)
            doc = {
                "apiVersion": "samplecrd.k8s.io/v1",
                "kind": "Network",
                "metadata": {"name": f"pool-{i}", "namespace": "default"},
                "spec": {"cidr": cidr, "nodeSubnetPrefix": prefix},
            }
            create(kubectl, doc)
        api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        log = work / "operator.log"
        kopf: tuple[str, ...] = ()
        if traced is not None:
            kopf = (sys.executable, "-P", str(ROOT / "bench" / "traced.py"))
            os.environ["BENCH_TRACEMALLOC"] = str(traced)
        if profile is not None:
            os.environ["BENCH_PROFILE"] = str(profile)
        proc = start_operator(kubeconfig, log, kopf=kopf, NETWORK_RESYNC_SECONDS="30", NETWORK_RELIST_SECONDS="3600")
        sampler = Sampler(proc.pid)
        sampler.start()
        profiler = Profiler(proc.pid)
        started = time.monotonic()
        cpu = 0.0

        def next_phase(name: str) -> None:
            nonlocal started, cpu
            now, used = time.monotonic(), cpu_seconds(proc.pid)
            done = sampler.phase
            done.seconds, done.cpu, done.rss_end = now - started, used - cpu, rss_mib(proc.pid)
            result.phases.append(done)
            sampler.phase = Phase(name, rss_peak=done.rss_end)
            started, cpu = now, used
            profiler.start(name)

        try:
            profiler.start("startup")
            while "nodelist (" not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    raise RuntimeError(f"the operator exited early:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            next_phase("burst")
            while allocated(api) < nodes * networks:
                if proc.poll() is not None:
                    raise RuntimeError(f"the operator exited early:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            next_phase("settle")
            while True:
                before = cpu_seconds(proc.pid)
                time.sleep(QUIET_SECONDS)
                if cpu_seconds(proc.pid) - before < QUIET_SECONDS / 10:
                    break
            next_phase("heartbeats")
            beats = heartbeats(kubeconfig, token, range(nodes), REPORT_SECONDS, BEAT_SECONDS)
            result.beats_per_second = beats.rate
            next_phase("rest")
            time.sleep(REST_SECONDS)
            next_phase("end")
            profiler.stop()
            result.peak = peak_rss_mib(proc.pid)
            if traced is not None:
                proc.send_signal(signal.SIGUSR1)
                while "rest " not in _read(traced / "traced.txt"):
                    time.sleep(0.5)
        finally:
            profiler.stop()
            sampler.running = False
            stop(proc)
    finally:
        cluster.stop()
    return result


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def report(r: Result) -> str:
    lines = [f"{r.nodes} Nodes x {r.networks} Networks: operator peak RSS {r.peak:.0f} MiB"]
    lines.append(f"  {'phase':<12} {'seconds':>8} {'CPU s':>7} {'RSS peak':>9} {'RSS end':>8}")
    for p in r.phases:
        lines.append(f"  {p.name:<12} {p.seconds:8.1f} {p.cpu:7.2f} {p.rss_peak:9.0f} {p.rss_end:8.0f}")
    beat = next((p for p in r.phases if p.name == "heartbeats"), None)
    if beat is not None and beat.seconds:
        lines.append(
            f"  heartbeats at {r.beats_per_second:.1f}/s: {beat.cpu / beat.seconds:.2%} of a core, "
            f"{beat.cpu / max(1.0, r.beats_per_second * beat.seconds) * 1000:.2f} ms CPU per heartbeat"
        )
    return "\n".join(lines)


def breakdown(path: Path, top: int = 25) -> str:
    """A tracemalloc snapshot by component and by line."""
    snapshot = tracemalloc.Snapshot.load(str(path))
    by_component: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    total = 0
    for stat in snapshot.statistics("traceback"):
        name = component([f.filename for f in stat.traceback])
        by_component[name] += stat.size
        counts[name] += stat.count
        total += stat.size
    lines = [f"{path.stem}: {total / 2**20:.1f} MiB traced"]
    for name, size in by_component.most_common():
        lines.append(f"  {size / 2**20:7.1f} MiB {size / total:6.1%}  {counts[name]:>9} blocks  {name}")
    lines.append("  by line:")
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(f"  {stat.size / 2**20:7.1f} MiB {stat.count:>9} blocks  {_short(frame.filename)}:{frame.lineno}")
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nodes", type=int, nargs="?", default=5000)
    parser.add_argument("networks", type=int, nargs="?", default=1)
    parser.add_argument("--traced", type=Path)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv[1:])
    # Stopped with SIGTERM, still stop the operator and the control plane.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        print(report(run(args.nodes, args.networks, Path(tmp), args.traced, args.profile)), flush=True)
    if args.traced is not None:
        print((args.traced / "traced.txt").read_text())
        for name in ("peak", "rest"):
            if (args.traced / f"{name}.snap").exists():
                print(breakdown(args.traced / f"{name}.snap"), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
