"""`make bench`: every scenario in one run, one table, each row next to its target.

    .venv/bin/python bench/run.py [--pool 1000,5000] [--joins 20x120] [--burst 1000]
                                  [--grid 5000x10] [--resync 10] [--big 50000x1]

Rows (an empty value leaves its rows out):
  - single pool at each size of --pool: seconds until every Node has its
    subnet, the operator against kube-controller-manager's node IPAM
    (bench/nodeipam.py), and each one's CPU, split into its start-up and
    the rest per 1,000 allocations; where the operator can write
    Node.spec.podCIDRs, that is the row, and the annotation-only mode gets a
    row of its own;
  - join latency (bench/joins.py), the operator against the same peer, from
    no Nodes: Nodes joining at a steady --joins rate x seconds, and --burst
    Nodes joining at once;
  - at --grid N x M (bench/idle.py): the burst (every Node joining at once),
    idle with the kubelets' status reports (every Node once per 5 min) and
    with no Node change at all, and status heartbeats at a kubelet's pace and
    under stress (every Node every 10 s); its peak RSS;
  - at --big N x 1 (bench/scale.py): the operator's peak RSS serving N Nodes
    in one Network.
Every Node is shaped like a kubelet's (bench/kubelet.py). The table is
Markdown, for the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import idle, joins, nodeipam, scale  # noqa: E402
from controlplane.cluster import build  # noqa: E402

MB = 1e6 / 2**20  # in MiB
RSS_TARGETS = {(5000, 10): 150, (50000, 1): 400}  # MB, at Nodes × Networks
TIME_RATIO = 1.5  # single pool: the operator's seconds against kcm's, at most
CPU_RATIO = 2.0  # and its CPU seconds
P99_TARGET = 1.0  # join latency at a steady pace: p99 at most this, in seconds
P99_RATIO = 2.0  # and at most this many times kcm's


@dataclass
class Row:
    scenario: str
    operator: str
    kcm: str = "–"
    ratio: str = "–"
    cpu: str = "–"
    rss: str = "–"
    writes: str = "–"
    target: str = ""
    verdict: str = ""


def over(value: float, limit: float, unit: str) -> str:
    """'met' or by how much `value` misses the upper bound `limit`."""
    if value <= limit:
        return "met"
    excess = value - limit
    return f"missed: {excess:,.{0 if excess >= 10 else 1}f}{unit} over ({value / limit:.1f}×)"


def rate(per_second: float) -> str:
    return f"{per_second:.0f}" if per_second >= 10 else f"{per_second:.1f}"


def times(ratio: float, limit: float) -> str:
    """'met' or by how much `ratio` (the operator's to kcm's) misses at most `limit`."""
    if ratio <= limit:
        return f"met ({ratio:.2f}×)"
    return f"missed: {ratio:.2f}× kcm's, {ratio / limit:.2f}× the {limit:g}× allowed"


def split_cpu(r: nodeipam.Run, total: int) -> str:
    """CPU seconds: in all, then start-up + per 1,000 allocations."""
    return f"{r.cpu:.1f} = {r.startup_cpu:.2f} start-up + {r.per_thousand(total):.2f} per 1,000"


def pool_rows(total: int, runs: dict[str, nodeipam.Run]) -> list[Row]:
    kcm = runs["kcm"]
    rows = []
    for who, mode in (("operator podCIDRs", "podCIDRs"), ("operator", "annotations only")):
        if who not in runs:
            continue
        r = runs[who]
        ratio = r.seconds / kcm.seconds
        cpu_ratio = r.cpu / kcm.cpu
        rows.append(
            Row(
                f"single pool, {total:,} Nodes, {mode}",
                f"{r.seconds:.1f} s",
                f"{kcm.seconds:.1f} s",
                f"{ratio:.2f}",
                f"{split_cpu(r, total)} (kcm {split_cpu(kcm, total)}; CPU ratio {cpu_ratio:.2f}; "
                f"API server + etcd {r.control:.1f}, with kcm {kcm.control:.1f})",
                f"{r.rss:.0f} (kcm {kcm.rss:.0f})",
                f"{r.writes:,} (kcm {kcm.writes:,})",
                f"time ≤ {TIME_RATIO:g} × kcm's; CPU ≤ {CPU_RATIO:g} × kcm's",
                f"time {times(ratio, TIME_RATIO)}; CPU {times(cpu_ratio, CPU_RATIO)}",
            )
        )
    return rows


def join_rows(results: list[joins.Joins]) -> list[Row]:
    by = {(r.scenario, r.allocator): r for r in results}
    rows = []
    for scenario in ("steady", "burst"):
        if (scenario, "operator") not in by or (scenario, "kcm") not in by:
            continue
        op, kcm = by[scenario, "operator"], by[scenario, "kcm"]

        def cell(r: joins.Joins) -> str:
            lat = r.latency
            text = f"p50 {lat.p50 * 1000:,.0f} ms, p99 {lat.p99 * 1000:,.0f} ms, max {lat.max * 1000:,.0f} ms"
            return text + (f" ({lat.missing} never served)" if lat.missing else "")

        ratio = op.latency.p99 / kcm.latency.p99
        if scenario == "steady":
            name = f"join latency, {op.rate:g} Nodes/s for {op.nodes / op.rate:.0f} s ({op.nodes:,} Nodes)"
            target = f"p99 ≤ {P99_TARGET:g} s and ≤ {P99_RATIO:g} × kcm's"
            verdict = f"p99 {over(op.latency.p99, P99_TARGET, ' s')}; against kcm {times(ratio, P99_RATIO)}"
            late = max(op.late, kcm.late)
            if late > 1:  # the machine could not keep the pace
                verdict += f"; Nodes joined up to {late:.1f} s behind their turn"
        else:
            name = f"join latency, burst of {op.nodes:,} Nodes at once"
            target = "(no target)"
            verdict = f"p99 {ratio:.2f}× kcm's"
        rows.append(
            Row(
                name,
                cell(op),
                cell(kcm),
                f"{ratio:.2f} (p99)",
                f"{op.cpu:.1f}, {op.startup_cpu:.2f} of it start-up (kcm {kcm.cpu:.1f}, {kcm.startup_cpu:.2f}; "
                f"API server + etcd {op.control:.1f}, with kcm {kcm.control:.1f})",
                f"{op.rss:.0f} (kcm {kcm.rss:.0f})",
                target=target,
                verdict=verdict,
            )
        )
    return rows


def memory_row(nodes: int, networks: int, rss: float, cpu: str = "–", writes: str = "–", note: str = "") -> Row:
    limit = RSS_TARGETS.get((nodes, networks))
    return Row(
        f"peak RSS, {nodes:,} Nodes × {networks} Network{'s' if networks > 1 else ''}{note}",
        f"{rss:.0f} MiB",
        cpu=cpu,
        rss=f"{rss:.0f}",
        writes=writes,
        target=f"≤ {limit} MB ({limit * MB:.0f} MiB)" if limit else "(no target at this size)",
        verdict=over(rss, limit * MB, " MiB") if limit else "",
    )


def big_row(r: scale.Result) -> Row:
    mode = "podCIDRs" if r.pod_cidrs else "annotations only"
    return memory_row(
        r.nodes,
        1,
        r.rss,
        cpu=f"{r.cpu:.1f}, {r.startup_cpu:.1f} of it start-up",
        writes=f"{r.writes:,}",
        note=f", {mode}, all there at the start: served in {r.seconds:.0f} s (Nodes created in {r.created:.0f} s)",
    )


def grid_rows(r: idle.Result) -> list[Row]:
    assert r.burst is not None
    assert r.idle is not None
    size = f"{r.nodes:,} × {r.networks}"
    rss = f"{r.rss:.0f}"
    rows = [
        Row(
            f"burst {size}, every Node joining at once",
            f"{r.burst.seconds:.0f} s",
            cpu=f"{r.burst.cpu:.1f} (API server + etcd {r.burst.control:.1f})",
            rss=rss,
            writes=f"{r.burst.writes:,}",
            target="≤ 60 s",
            verdict=over(r.burst.seconds, 60, " s"),
        )
    ]
    rows.append(memory_row(r.nodes, r.networks, r.rss, note=", over the burst, idle and heartbeats"))

    def per_period(w: idle.Window) -> float:
        return w.cpu / w.seconds * r.resync * 1000

    windows = [("idle " + size + ", no Node changes", r.idle)]
    if "kubelet" in r.beats:
        w = r.beats["kubelet"]
        assert w.beats is not None
        windows.insert(0, (f"idle {size}, kubelets' status reports ({rate(w.beats.rate)}/s)", w))
    for name, w in windows:
        ms = per_period(w)
        verdict = over(ms, 100, " ms")
        if w.writes:
            verdict += f"; {w.writes} writes"
        rows.append(
            Row(
                name,
                f"{ms:.0f} ms per {r.resync:.0f} s resync",
                cpu=f"{w.cpu:.1f} in {w.seconds:.0f} s",
                rss=rss,
                writes=f"{w.writes}",
                target="≤ 100 ms per resync, 0 writes",
                verdict=verdict,
            )
        )
    paces = (("kubelet", "kubelet's pace: each Node every 5 min"), ("stress", "stress: each Node every 10 s"))
    for pace, label in paces:
        if pace not in r.beats:
            continue
        w = r.beats[pace]
        assert w.beats is not None
        share = w.core_share * 100
        rows.append(
            Row(
                f"heartbeats {r.nodes:,} Nodes, {label} ({rate(w.beats.rate)}/s)",
                f"{share:.1f} % of a core",
                cpu=f"{w.cpu:.1f} in {w.seconds:.0f} s",
                rss=rss,
                writes=f"{w.writes}",
                target="≤ 2 % of a core" if pace == "kubelet" else "(stress case; 2 % is for the kubelet's pace)",
                verdict=over(share, 2, " %") if pace == "kubelet" else f"{w.cpu / w.beats.sent * 1000:.2f} ms a patch",
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    head = ["scenario", "operator", "kcm", "ratio", "operator CPU s", "peak RSS MiB", "writes", "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        cells = [r.scenario, r.operator, r.kcm, r.ratio, r.cpu, r.rss, r.writes, r.target, r.verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default="1000,5000", help="Node counts of the single-pool rows")
    parser.add_argument("--joins", default="20x120", help="Nodes a second x seconds of the steady join latency row")
    parser.add_argument("--burst", default="1000", help="Nodes joining at once in the burst join latency row")
    parser.add_argument("--grid", default="5000x10", help="Nodes x Networks of the burst, idle and heartbeat rows")
    parser.add_argument("--resync", type=float, default=idle.RESYNC, help="the operator's resync period there")
    parser.add_argument("--big", default="50000x1", help="Nodes x 1 Network of the large memory row")
    args = parser.parse_args(argv[1:])
    sizes = [int(n) for n in args.pool.replace(",", " ").split()]
    rate, seconds = (float(n) for n in args.joins.split("x")) if args.joins.strip() else (0.0, 0.0)
    burst = int(args.burst) if args.burst.strip() else 0
    bin_dir = build()
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for total in sizes:
            rows += pool_rows(total, nodeipam.run(total, bin_dir, Path(tmp)))
            print(f"single pool, {total} Nodes: done at {time.monotonic() - started:.0f} s", file=sys.stderr)
        if rate or burst:
            (Path(tmp) / "joins").mkdir()
            latency = joins.run(bin_dir, Path(tmp) / "joins", rate, seconds, burst)
            rows += join_rows(latency)
            print(joins.report(latency), file=sys.stderr)
            print(f"join latency: done at {time.monotonic() - started:.0f} s", file=sys.stderr)
        if args.grid.strip():
            nodes, networks = (int(n) for n in args.grid.split("x"))
            (Path(tmp) / "grid").mkdir()
            grid = idle.run(nodes, networks, bin_dir, Path(tmp) / "grid", args.resync)
            rows += grid_rows(grid)
            print(idle.report(grid), file=sys.stderr)
            print(f"grid: done at {time.monotonic() - started:.0f} s", file=sys.stderr)
        if args.big.strip():
            nodes, networks = (int(n) for n in (args.big + "x1").split("x")[:2])
            if networks != 1:
                parser.error("--big takes Nodes x 1: one Network")
            (Path(tmp) / "big").mkdir()
            big = scale.run(nodes, bin_dir, Path(tmp) / "big")
            rows.append(big_row(big))
            print(scale.report(big), file=sys.stderr)
    print(f"\nmake bench: {time.monotonic() - started:.0f} s\n", file=sys.stderr)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
