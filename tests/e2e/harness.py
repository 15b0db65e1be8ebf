"""How tests/e2e/node.py and tests/e2e/cluster.py run a command against what
they start: in a network namespace of their own, under a lock (one run per
machine), with everything removed before and after (tests/e2e/host.py), and
the logs kept in .cluster/e2e-logs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from controlplane.cluster import alive, stop_pids
from tests.e2e.daemons import log
from tests.e2e.host import NAME, STATE, check_cgroups, clean, libc

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".cluster" / "e2e-logs"
LOCK = Path("/run") / f"{NAME}.lock"


class Setup(Protocol):
    def start(self) -> dict[str, str]:
        """Start; the environment the command gets."""

    def report(self) -> None:
        """Print what to look at after a failure."""

    def stop(self) -> None: ...


class Stopped(Exception):
    pass


def _stop_on_signal(signum: int, _: Any) -> None:
    raise Stopped(f"signal {signum}")


def lock() -> IO[str]:
    f = LOCK.open("w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"node: another end-to-end run holds {LOCK}; wait for it to finish") from None
    return f


def keep_pod_logs(stop: threading.Event) -> None:
    """Copy the containers' logs to LOGS as they grow: the kubelet deletes
    a pod's logs with the pod, and a failure is often about a pod gone."""
    while not stop.wait(1):
        try:
            # A node's own (the single node's is STATE itself); not "**": that
            # walks containerd's snapshots too, which vanish while it walks.
            found = [*STATE.glob("pod-logs/*/*/*.log"), *STATE.glob("*/pod-logs/*/*/*.log")]
        except OSError:
            continue  # a pod's folder went away meanwhile: look again in a second
        for path in found:
            with contextlib.suppress(OSError):
                target = LOGS / path.relative_to(STATE)
                if not target.exists() or target.stat().st_size != path.stat().st_size:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)


def keep_logs() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    for path in [*STATE.glob("**/*.log")]:
        if "containerd" in path.relative_to(STATE).parts[:-1]:
            continue  # containers' own files, not logs of ours
        with contextlib.suppress(OSError):
            target = LOGS / path.relative_to(STATE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def kubectl_report(kubectl: list[str]) -> None:
    for args in (["get", "nodes,pods", "-A", "-o", "wide"], ["get", "events", "-A", "--sort-by=.lastTimestamp"]):
        done = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=30, check=False)
        print(f"\n--- kubectl {' '.join(args)}\n{done.stdout[-6000:]}{done.stderr[-2000:]}", file=sys.stderr)


def in_own_network_namespace() -> None:
    """Re-execute this process (same PID: exec) in a fresh network namespace."""
    if os.environ.get("E2E_NETNS") != str(os.getpid()):
        os.environ["E2E_NETNS"] = str(os.getpid())
        os.execvp("unshare", ["unshare", "--net", "--", sys.executable, "-P", *sys.argv])


def run(setup: Setup, command: list[str], timeout: float) -> int:
    """Start `setup`, run `command` against it, stop and clean up whatever happens."""
    in_own_network_namespace()
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: make (or whoever started us) is gone: clean up
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    held = lock()
    code = 1
    copying = threading.Event()
    try:
        clean()
        shutil.rmtree(LOGS, ignore_errors=True)
        env = {**os.environ, **setup.start()}
        child = subprocess.Popen(command, env=env, preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
        copier = threading.Thread(target=keep_pod_logs, args=(copying,), daemon=True)
        copier.start()
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{' '.join(command)} still running after {timeout:.0f}s: stopping it")
            stop_pids([child.pid])
            code = 124
        finally:
            if alive(child.pid):
                stop_pids([child.pid])
        copying.set()
        keep_logs()
        if code != 0:
            setup.report()
    except Stopped as e:
        log(f"stopped by {e}")
        code = 130
    except Exception as e:
        log(f"failed: {type(e).__name__}: {e}")
        with contextlib.suppress(Exception):
            keep_logs()
            setup.report()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        copying.set()
        with contextlib.suppress(Exception):
            keep_logs()
        setup.stop()
        clean()
        held.close()
        LOCK.unlink(missing_ok=True)
        log(f"stopped and cleaned up; logs in {LOGS}")
    return code


def main(argv: list[str], setup: Callable[[Path, Path], Setup], usage: str) -> int:
    """`run BIN IMAGES -- COMMAND...` or `clean`, as root."""
    if os.geteuid() != 0:
        print("e2e: real nodes need root (containerd, the kubelet, mounts, cgroups).", file=sys.stderr)
        return 1
    check_cgroups()
    if len(argv) >= 5 and argv[1] == "run" and argv[4] == "--":
        timeout = float(os.environ.get("E2E_TIMEOUT", "1500"))
        return run(setup(Path(argv[2]).resolve(), Path(argv[3]).resolve()), argv[5:], timeout)
    if len(argv) == 2 and argv[1] == "clean":
        return clean_locked()
    print(usage, file=sys.stderr)
    return 2


def clean_locked() -> int:
    held = lock()
    try:
        clean()
    finally:
        held.close()
        LOCK.unlink(missing_ok=True)
    return 0
