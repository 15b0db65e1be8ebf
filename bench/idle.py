"""Burst, idle and heartbeat cost at N Nodes x M Networks (every Node in every pool).

    .venv/bin/python bench/idle.py 5000 10 [RESYNC_SECONDS]

On a fresh control plane: N kubelet-shaped Nodes (bench/kubelet.py), M
Networks (10.<i>.0.0/16 in /29s, so each holds every Node), then the
operator (resync every RESYNC_SECONDS, 10 by default). In turn:
  - burst: every Node joins at once (all are there when the operator starts):
    seconds until every allocation is made (the Networks' status.allocated);
  - the operator's own writes come back through its watch: until it is quiet;
  - idle: no Node changes; operator CPU per resync period and its writes
    (the LIST of everything that comes every 5 minutes is kept out: it is
    set to an hour);
  - heartbeats at a kubelet's pace: every Node's status patched once per
    nodeStatusReportFrequency (5 min), the report of a Node whose status did
    not change, evenly spread (N/300 patches a second);
  - heartbeats under stress: every Node's status patched every 10 s
    (nodeStatusUpdateFrequency), as if every Node's status changed at each
    update (N/10 patches a second);
  for each: operator CPU as a share of one core and per resync period, writes.
Peak resident memory is taken at the end.

BENCH_PROFILE=DIR records each phase with py-spy (when installed in the
virtualenv: make bench-profile) into DIR as collapsed stacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pykube

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.kubelet import REPORT_SECONDS, UPDATE_SECONDS, Beats, create_nodes, heartbeats  # noqa: E402
from bench.support import (  # noqa: E402
    ADMIN,
    cluster_with_crds,
    control_plane_cpu,
    cpu_seconds,
    create,
    peak_rss_mib,
    start_operator,
    stop,
    writes_by,
)
from controlplane.cluster import build  # noqa: E402

RESYNC = 10.0
IDLE_PERIODS = 3
# How long each heartbeat pace is measured: whole resync periods.
BEAT_PERIODS = {"kubelet": 9, "stress": 6}
PACES = {"kubelet": REPORT_SECONDS, "stress": UPDATE_SECONDS}


@dataclass
class Window:
    """The operator over one stretch of time."""

    seconds: float
    cpu: float
    writes: int
    beats: Beats | None = None
    control: float = 0.0  # CPU seconds of the API server and etcd

    @property
    def core_share(self) -> float:
        return self.cpu / self.seconds


@dataclass
class Result:
    nodes: int
    networks: int
    resync: float
    created: float = 0.0
    burst: Window | None = None
    settle: float = 0.0
    idle: Window | None = None
    beats: dict[str, Window] = field(default_factory=dict)
    rss: float = 0.0


def allocated(api: pykube.HTTPClient) -> int:
    resp = api.get(url="namespaces/default/networks", version="samplecrd.k8s.io/v1")
    return sum(int((n.get("status") or {}).get("allocated") or 0) for n in resp.json()["items"]) if resp.ok else 0


class Profiler:
    """py-spy recording the operator, phase by phase, when BENCH_PROFILE names a folder."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        where = os.environ.get("BENCH_PROFILE")
        self.dir = Path(where) if where else None
        self.spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.proc: subprocess.Popen[bytes] | None = None
        if self.dir is not None:
            if self.spy is None:
                raise RuntimeError("BENCH_PROFILE is set but py-spy is not installed: make bench-profile")
            self.dir.mkdir(parents=True, exist_ok=True)

    def start(self, phase: str) -> None:
        self.stop()
        if self.dir is None or self.spy is None:
            return
        out = self.dir / f"{phase}.txt"
        # --gil: samples only while Python code runs (the CPU it spends);
        # --nonblocking: the operator is not paused for a sample (which would
        # cost it CPU of its own and slow it down).
        cmd = [self.spy, "record", "--pid", str(self.pid), "--rate", "200", "--gil", "--nonblocking"]
        cmd += ["--format", "raw", "--output", str(out)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes what it has
            self.proc.wait(timeout=60)
            self.proc = None


def measure(pid: int, audit_log: Path, seconds: float) -> Window:
    since, cpu = time.time(), cpu_seconds(pid)
    time.sleep(seconds)
    return Window(seconds, cpu_seconds(pid) - cpu, writes_by(audit_log, ADMIN, since, time.time()))


def run(nodes: int, networks: int, bin_dir: Path, work: Path, resync: float = RESYNC) -> Result:
    result = Result(nodes, networks, resync)
    cluster, kubectl, token = cluster_with_crds(work / "cp", bin_dir)
    try:
        kubeconfig = cluster.kubeconfig
        result.created = create_nodes(kubeconfig, token, range(nodes))
        for i in range(networks):
            doc = {
                "apiVersion": "samplecrd.k8s.io/v1",
                "kind": "Network",
                "metadata": {"name": f"pool-{i}", "namespace": "default"},
                "spec": {"cidr": f"10.{i}.0.0/16", "nodeSubnetPrefix": 29},
            }
            create(kubectl, doc)
        api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(kubeconfig)))
        log = work / "operator.log"
        since = time.time()
        started = time.monotonic()
        control = control_plane_cpu(cluster)
        # The LIST that catches what the watch missed comes every 5 minutes by
        # default: kept out of the windows, so that they show a resync alone.
        proc = start_operator(kubeconfig, log, NETWORK_RESYNC_SECONDS=str(resync), NETWORK_RELIST_SECONDS="3600")
        profiler = Profiler(proc.pid)
        try:
            profiler.start("burst")
            while allocated(api) < nodes * networks:
                if proc.poll() is not None:
                    raise RuntimeError(f"the operator exited early:\n{log.read_text()[-3000:]}")
                time.sleep(1)
            took = time.monotonic() - started
            writes = writes_by(cluster.audit_log, ADMIN, since, time.time())
            result.burst = Window(took, cpu_seconds(proc.pid), writes, control=control_plane_cpu(cluster) - control)
            # The watch still brings back every write: wait until the operator is
            # quiet (under a fifth of a core over a resync period), at most 10 minutes.
            profiler.start("settle")
            quiet = time.monotonic()
            while time.monotonic() - quiet < 600:
                cpu = cpu_seconds(proc.pid)
                time.sleep(resync)
                if cpu_seconds(proc.pid) - cpu < resync / 5:
                    break
            result.settle = time.monotonic() - quiet
            profiler.start("idle")
            result.idle = measure(proc.pid, cluster.audit_log, IDLE_PERIODS * resync)
            for pace, periods in BEAT_PERIODS.items():
                profiler.start(f"heartbeats-{pace}")
                since, cpu = time.time(), cpu_seconds(proc.pid)
                beats = heartbeats(kubeconfig, token, range(nodes), PACES[pace], periods * resync)
                result.beats[pace] = Window(
                    beats.seconds,
                    cpu_seconds(proc.pid) - cpu,
                    writes_by(cluster.audit_log, ADMIN, since, time.time()),
                    beats,
                )
            profiler.stop()
            result.rss = peak_rss_mib(proc.pid)
        finally:
            profiler.stop()
            stop(proc)
        if os.environ.get("BENCH_LOG"):  # keep the operator's log
            Path(os.environ["BENCH_LOG"]).write_text(log.read_text())
    finally:
        cluster.stop()
    return result


def report(r: Result) -> str:
    assert r.burst is not None
    assert r.idle is not None
    lines = [
        f"{r.nodes} Nodes x {r.networks} Networks ({r.nodes * r.networks} allocations), resync every {r.resync:.0f} s",
        f"  Nodes created (register, then first status)  {r.created:8.1f} s",
        f"  burst: until every allocation is made         {r.burst.seconds:8.1f} s, "
        f"{r.burst.cpu:.1f} CPU s (API server and etcd {r.burst.control:.1f}), {r.burst.writes} writes",
        f"  then until the operator is quiet              {r.settle:8.1f} s",
        f"  idle: operator CPU per resync period          {r.idle.cpu / r.idle.seconds * r.resync * 1000:8.0f} ms, "
        f"{r.idle.writes} writes in {r.idle.seconds:.0f} s",
    ]
    for pace, w in r.beats.items():
        assert w.beats is not None
        lines.append(
            f"  heartbeats ({pace}, {w.beats.rate:.0f}/s, {w.beats.failed} failed)"
            f"{'':<{max(0, 16 - len(pace) - len(f'{w.beats.rate:.0f}'))}}"
            f"{w.core_share:8.2%} of a core, {w.cpu / w.seconds * r.resync * 1000:.0f} ms per resync, "
            f"{w.writes} writes"
        )
    lines.append(f"  operator peak RSS                             {r.rss:8.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    nodes = int(argv[1]) if len(argv) > 1 else 5000
    networks = int(argv[2]) if len(argv) > 2 else 10
    resync = float(argv[3]) if len(argv) > 3 else RESYNC
    with tempfile.TemporaryDirectory(prefix="idle-") as tmp:
        print(report(run(nodes, networks, build(), Path(tmp), resync)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
