"""`make bench`: every scenario in one run, one table, each row next to its target.

    .venv/bin/python bench/run.py [--pool 1000,5000] [--grid 5000x10] [--resync 10]

Rows:
  - single pool at each size of --pool: seconds until every Node has its
    subnet, the operator against kube-controller-manager's node IPAM
    (bench/nodeipam.py); where the operator can write Node.spec.podCIDRs, that
    is the row, and the annotation-only mode gets a row of its own;
  - at --grid N x M (bench/idle.py): the burst (every Node joining at once),
    idle with the kubelets' status reports (every Node once per 5 min) and
    with no Node change at all, and status heartbeats at a kubelet's pace and
    under stress (every Node every 10 s).
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
from bench import idle, nodeipam  # noqa: E402
from controlplane.cluster import build  # noqa: E402

RSS_TARGET_MIB = 150e6 / 2**20  # 150 MB


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


def pool_rows(total: int, runs: dict[str, nodeipam.Run]) -> list[Row]:
    kcm = runs["kcm"]
    rows = []
    for who, mode in (("operator podCIDRs", "podCIDRs"), ("operator", "annotations only")):
        if who not in runs:
            continue
        r = runs[who]
        ratio = r.seconds / kcm.seconds
        rows.append(
            Row(
                f"single pool, {total:,} Nodes, {mode}",
                f"{r.seconds:.1f} s",
                f"{kcm.seconds:.1f} s",
                f"{ratio:.2f}",
                f"{r.cpu:.1f} (kcm {kcm.cpu:.1f}; API server + etcd {r.control:.1f}, with kcm {kcm.control:.1f})",
                f"{r.rss:.0f} (kcm {kcm.rss:.0f})",
                f"{r.writes:,} (kcm {kcm.writes:,})",
                "ratio ≤ 1.0",
                "met" if ratio <= 1.0 else f"missed: {ratio:.1f}× kcm's time",
            )
        )
    return rows


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
            target="≤ 60 s; RSS ≤ 150 MB (143 MiB)",
            verdict=f"time {over(r.burst.seconds, 60, ' s')}; RSS {over(r.rss, RSS_TARGET_MIB, ' MiB')}",
        )
    ]

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
    parser.add_argument("--grid", default="5000x10", help="Nodes x Networks of the burst, idle and heartbeat rows")
    parser.add_argument("--resync", type=float, default=idle.RESYNC, help="the operator's resync period there")
    args = parser.parse_args(argv[1:])
    sizes = [int(n) for n in args.pool.replace(",", " ").split()]
    nodes, networks = (int(n) for n in args.grid.split("x"))
    bin_dir = build()
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for total in sizes:
            rows += pool_rows(total, nodeipam.run(total, bin_dir, Path(tmp)))
            print(f"single pool, {total} Nodes: done at {time.monotonic() - started:.0f} s", file=sys.stderr)
        (Path(tmp) / "grid").mkdir()
        grid = idle.run(nodes, networks, bin_dir, Path(tmp) / "grid", args.resync)
        rows += grid_rows(grid)
        print(idle.report(grid), file=sys.stderr)
    print(f"\nmake bench: {time.monotonic() - started:.0f} s\n", file=sys.stderr)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
