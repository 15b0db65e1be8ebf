"""Summarise py-spy's collapsed stacks (make bench-profile): where the CPU goes.

    .venv/bin/python bench/profile.py .cluster/profile/*.txt

py-spy records with --gil: a sample is taken only while a thread holds
the GIL, so the samples are the operator's Python CPU time; what runs
without the GIL (TLS, socket I/O) is in the process's CPU from /proc but not
here. For each file: the share of samples by the package of the innermost
frame (self), then the functions with the largest inclusive share (a sample
counts once per function on its stack; the frames every sample has, click,
threads and the event loop's own, left out), line numbers dropped.
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")
PACKAGES = [
    ("controller/", "operator: controller/"),
    ("netpool/", "operator: netpool/"),
    ("handlers/", "operator: handlers/"),
    ("operator.py", "operator: operator.py"),
    ("kopf/", "kopf"),
    ("kubernetes/", "kubernetes client"),
    ("urllib3/", "urllib3"),
    ("aiohttp/", "aiohttp"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("logging/", "logging"),
    ("copy.py", "copy (deepcopy)"),
    ("ipaddress.py", "ipaddress"),
]


# Frames every sample of a thread or of the event loop has: not informative.
PLUMBING: tuple[str, ...] = ("click/", "threading.py", "concurrent/")
PLUMBING += ("asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py")
PLUMBING_FUNCS = {"run (kopf/cli.py)", "run (kopf/_core/reactor/running.py)", "<module> (kopf)"}


def package(file: str) -> str:
    for prefix, name in PACKAGES:
        if file.startswith(prefix) or f"/{prefix}" in file:
            return name
    return "other: " + file.split("/")[0]


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = FRAME.match(raw)
        if m:
            out.append((m["func"], m["file"]))
    return out


def summary(path: Path, top: int = 40) -> str:
    total = 0
    by_package: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        stack_frames = frames(stack)
        if not stack_frames:
            continue
        total += n
        by_package[package(stack_frames[-1][1])] += n
        for name in {f"{func} ({file})" for func, file in stack_frames if not file.startswith(PLUMBING)}:
            if name not in PLUMBING_FUNCS and "click/" not in name:
                inclusive[name] += n
    if not total:
        return f"{path.stem}: no samples"
    lines = [f"{path.stem}: {total} samples (at 200 a second: {total / 200:.1f} s of Python CPU)"]
    lines.append("  self, by package:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in by_package.most_common(12)]
    lines.append("  inclusive, by function:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    for arg in argv[1:]:
        print(summary(Path(arg)), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
