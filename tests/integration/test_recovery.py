"""Recovery on the fast path: after an API server restart and after a watch
gap (410 Gone), every Node is served and every deleted Node released within
a minute, while the resync (600 s here) is far away."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pykube
import pytest

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    KubeCluster,
    converged,
    make_network,
    running_operator,
    wait_for,
    wait_subnets,
)

# Only the fast path can pass within the waits below.
SLOW_RESYNC = {"NETWORK_RESYNC_SECONDS": "600"}
RECOVERY_TIMEOUT = 60


@contextlib.contextmanager
def watch_restarts() -> Iterator[list[str]]:
    """Kopf's own debug lines about its watch streams restarting after 410 Gone."""
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Restarting the watch-stream"):
                seen.append(record.getMessage())

    logger = logging.getLogger("kopf._cogs.clients.watching")
    handler, level = Catch(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def retry(client: pykube.HTTPClient, verb: str, node: str) -> None:
    """Create or delete a Node, trying until the API server answers (it may be down)."""
    while True:
        try:
            obj = pykube.Node(client, {"metadata": {"name": node}})
            if verb == "create":
                obj.create()
            else:
                obj.delete()
            return
        except pykube.exceptions.HTTPError as e:
            if e.code in (404, 409):  # done already: the answer to an earlier attempt was lost
                return
        except Exception:  # connection refused while it restarts
            pass
        time.sleep(0.2)


def test_an_api_server_restart_while_nodes_join_and_leave(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    local = cluster.local
    if local is None:
        pytest.fail("restarts the API server of the control plane built here: run without $KUBECONFIG")
    old = [f"old-{i}" for i in range(6)]
    for name in old:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.201.0.0/16"})
    leaving, joining = old[:3], [f"new-{i}" for i in range(6)]
    live = set(old[3:]) | set(joining)
    with running_operator(env=SLOW_RESYNC):
        before = wait_subnets(api, namespace, "net", "the old Nodes served", lambda s: len(s) == len(old))

        def churn() -> None:
            client = pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))
            for add, remove in zip(joining, leaving + [None] * len(joining), strict=False):
                retry(client, "create", add)
                if remove is not None:
                    retry(client, "delete", remove)
                time.sleep(0.3)

        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        time.sleep(0.5)
        local.kill("kube-apiserver")
        time.sleep(3)
        local.start_apiserver()
        worker.join(timeout=120)
        assert not worker.is_alive()
        after = wait_for(
            "every Node served, every deleted Node released",
            converged(api, namespace, "net", live),
            timeout=RECOVERY_TIMEOUT,
        )
    # No Node that stayed changed subnet.
    assert {n: s for n, s in after.items() if n in before} == {n: s for n, s in before.items() if n in live}


def test_nodes_deleted_in_a_watch_gap_are_released(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """The operator's watch misses the deletions: the API server is down while
    they happen (in etcd) and etcd compacts them away, so the watch resumes
    into 410 Gone and Kopf re-lists, with no DELETED event for them."""
    local = cluster.local
    if local is None:
        pytest.fail("edits etcd of the control plane built here: run without $KUBECONFIG")
    nodes = [f"gap-{i}" for i in range(8)]
    for name in nodes:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.202.0.0/16"})
    gone, kept = nodes[:4], set(nodes[4:])
    with watch_restarts() as restarts, running_operator(env=SLOW_RESYNC):
        before = wait_subnets(api, namespace, "net", "every Node served", lambda s: len(s) == len(nodes))
        # kube-controller-manager's garbage collector would delete the gone
        # Nodes' NodeSubnets (the Node owns them): here only the operator may.
        local.kill("kube-controller-manager")
        try:
            local.kill("kube-apiserver")
            for name in gone:
                assert local.etcd_delete(f"/registry/minions/{name}") == 1
            local.compact()
            local.start_apiserver()
            wait_for("the gone Nodes released", converged(api, namespace, "net", kept), timeout=RECOVERY_TIMEOUT)
            # Their subnets are free again: a new Node gets the lowest of them.
            make_node("gap-new")
            freed = sorted((before[n] for n in gone), key=lambda s: tuple(int(p) for p in s.split("/")[0].split(".")))
            after = wait_for(
                "the new Node served", converged(api, namespace, "net", kept | {"gap-new"}), timeout=RECOVERY_TIMEOUT
            )
        finally:
            local.start_controller_manager()
    assert after["gap-new"] == freed[0]
    assert {n: after[n] for n in kept} == {n: before[n] for n in kept}
    # The watch really lost its place: Kopf restarted the Node watch after 410 Gone.
    assert any("for nodes" in line for line in restarts), restarts
