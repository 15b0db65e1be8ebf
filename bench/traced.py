"""`kopf run` with tracemalloc on: snapshots of the operator's Python heap.

    BENCH_TRACEMALLOC=DIR .venv/bin/python -P bench/traced.py run -A --standalone operator.py

Writes into DIR `peak.snap` (taken each time the traced heap passes the
last such snapshot by a tenth, so the last one is within a tenth of the
peak) and `rest.snap` on SIGUSR1 (bench/memory.py sends it once the
operator is quiet), with `traced.txt`: the traced size at each snapshot
and the largest since the previous one. Frames per traceback from
BENCH_TRACEMALLOC_FRAMES (4). tracemalloc slows the operator and adds
its own memory: the RSS of a run with it is not the operator's.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path

POLL_SECONDS = 0.5
STEP = 1.10  # a new peak snapshot once the heap is a tenth above the last one
FLOOR = 20 * 1024 * 1024  # not before the heap holds 20 MiB


def main() -> None:
    out = Path(os.environ["BENCH_TRACEMALLOC"])
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "4")))
    lock = threading.Lock()

    def dump(name: str) -> None:
        with lock:
            # The largest heap since the last snapshot, which may have come
            # and gone between two polls (a snapshot's own objects are traced:
            # the peak is reset after each).
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.take_snapshot().dump(str(out / f"{name}.snap"))
            tracemalloc.reset_peak()
            with (out / "traced.txt").open("a") as f:
                f.write(f"{name} {current} {peak}\n")

    def watch() -> None:
        last = FLOOR
        while True:
            time.sleep(POLL_SECONDS)
            current, _ = tracemalloc.get_traced_memory()
            if current > last * STEP:
                dump("peak")
                last = current

    threading.Thread(target=watch, name="tracemalloc peaks", daemon=True).start()
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=dump, args=("rest",)).start())

    from kopf.cli import main as kopf_main

    sys.argv = ["kopf", *sys.argv[1:]]
    kopf_main()


if __name__ == "__main__":
    main()
