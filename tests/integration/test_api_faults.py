"""The API server's routine bad answers do not stop the operator: a paged LIST
whose continue token expired (410 Expired), 429, 500, 503, 504, and a
connection dropped in the middle of an answer, to Kopf's watches, to the
operator's own LISTs and to its own NodeSubnet watch. After each, the operator
still runs, serves a Node that joins and releases a Node that leaves, and
(for the NodeSubnet watch) makes again a NodeSubnet deleted by hand.

The real API server gives the 410s; a proxy (tests/integration/faults.py)
gives the other answers to the requests chosen, and passes the rest on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pykube
import pytest

from controller.kube import Api
from tests.integration.conftest import NodeFactory
from tests.integration.faults import Fault, FaultProxy, nodes, nodesubnets
from tests.integration.support import (
    KubeCluster,
    NodeSubnet,
    a_hand_deleted_nodesubnet_is_made_again,
    converged,
    make_network,
    running_operator,
    wait_for,
)

# Only the fast path may pass: no resync comes to the rescue within the waits.
SLOW_RESYNC = {"NETWORK_RESYNC_SECONDS": "600", "NETWORK_RELIST_SECONDS": "600"}
# "served within 5 s of the resume" (the bound), on a loaded 2-core machine a little more.
RESUMED_WITHIN = 5


@pytest.fixture
def proxy(cluster: KubeCluster, tmp_path: Path) -> Iterator[FaultProxy]:
    if cluster.local is None:
        pytest.fail("puts a proxy in front of the control plane built here: run without $KUBECONFIG")
    with FaultProxy(cluster, tmp_path) as running:
        yield running


@contextlib.contextmanager
def operator_logs(level: int = logging.WARNING) -> Iterator[list[str]]:
    """What the operator and Kopf log at `level` and above."""
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.name}: {record.getMessage()}")

    handler = Catch(level)
    loggers = [logging.getLogger("network-operator"), logging.getLogger("kopf")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield seen
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def still_serving(api: pykube.HTTPClient, namespace: str, live: set[str], make_node: NodeFactory) -> None:
    """A Node that joins is served, one that leaves is released."""
    make_node("joins-later")
    leaving = sorted(live)[0]
    pykube.Node(api, {"metadata": {"name": leaving}}).delete()
    live = (live - {leaving}) | {"joins-later"}
    wait_for("a joining Node served, a leaving one released", converged(api, namespace, "net", live), timeout=30)


@pytest.mark.alone
def test_a_list_that_outlives_a_compaction_starts_again_and_the_operator_goes_on(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory, proxy: FaultProxy
) -> None:
    """The case seen in a cluster: the operator's LIST of Nodes (pages of 5)
    stops between its pages (here: its next page is held, as if the process
    were paused), and meanwhile Nodes leave and join, etcd is compacted and
    the API server restarts. The next page's continue token is from before
    the compaction, and the restarted API server has no copy of that list
    (a running one may still serve it from its cache), so it answers 410
    Expired; the LIST starts again from its first page, and the operator
    goes on serving."""
    local = cluster.local
    assert local is not None
    names = [f"n-{i:02d}" for i in range(30)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.210.0.0/16"})
    env = {**SLOW_RESYNC, "NETWORK_LIST_PAGE": "5", "KUBECONFIG": str(proxy.kubeconfig)}
    with running_operator(env=env):
        before = wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
    held = threading.Event()
    fault = proxy.add(Fault(nodes("page"), hold=held))
    # kube-controller-manager's garbage collector would delete the gone
    # Nodes' NodeSubnets (the Node owns them): here only the operator may.
    local.kill("kube-controller-manager")
    try:
        with operator_logs() as logs, running_operator(env=env) as runner:
            wait_for("the operator's first LIST held after its first page", lambda: fault.hits, timeout=60)
            leaving, joining = names[:5], [f"new-{i}" for i in range(5)]
            for name in leaving:
                pykube.Node(api, {"metadata": {"name": name}}).delete()
            for name in joining:
                make_node(name)
            local.compact()
            local.kill("kube-apiserver")
            local.start_apiserver()
            resumed = time.monotonic()
            held.set()
            live = set(names[5:]) | set(joining)
            after = wait_for("served again", converged(api, namespace, "net", live), timeout=60, interval=0.1)
            took = time.monotonic() - resumed
            print(f"\nconverged {took:.1f} s after the held LIST went on")
            assert took <= RESUMED_WITHIN
            assert not runner.future.done()  # the operator still runs
    finally:
        local.start_controller_manager()
    expired = [line for line in logs if "410 Expired" in line]
    assert len(expired) == 1, logs
    assert "listing again from the first page" in expired[0]
    # Nothing moved: every Node that stayed kept its subnet.
    assert {n: after[n] for n in names[5:]} == {n: before[n] for n in names[5:]}


# (which requests, answer, how many in a row): each a routine answer of an API
# server under stress, to the first requests the operator makes.
ANSWERS = [
    ("watch", 429, 3),
    ("watch", 500, 3),
    ("watch", 503, 3),
    ("watch", 504, 3),
    ("watch", "cut", 1),  # in the middle of the streamed initial events
    ("list", 503, 3),
    ("list", "cut", 1),  # in the middle of a page
    ("page", 500, 3),
]


@pytest.mark.parametrize(("requests", "answer", "times"), ANSWERS, ids=[f"{r}-{a}" for r, a, _ in ANSWERS])
def test_a_routine_bad_answer_leaves_the_operator_serving(
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    proxy: FaultProxy,
    requests: str,
    answer: int | str,
    times: int,
) -> None:
    names = [f"n-{i:02d}" for i in range(12)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.211.0.0/16"})
    fault = Fault(nodes(requests), times=times)
    if answer == "cut":
        fault.cut_after = 3000  # a Node or two into the answer
    else:
        assert isinstance(answer, int)
        fault.status = answer
    proxy.add(fault)
    env = {**SLOW_RESYNC, "NETWORK_LIST_PAGE": "5", "KUBECONFIG": str(proxy.kubeconfig)}
    with running_operator(env=env) as runner:
        wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
        # The operator really got those answers (a watch retries on a backoff: 1, 2, 4 s).
        wait_for(f"{times} answers given", lambda: len(fault.hits) == times, timeout=30)
        still_serving(api, namespace, set(names), make_node)
        assert not runner.future.done()  # the operator still runs


@pytest.mark.slow
def test_a_5xx_outage_longer_than_any_retry_schedule_only_delays_kopfs_watch(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory, proxy: FaultProxy
) -> None:
    """Eight 503s in a row to Kopf's Node watch: about 45 s of retries, longer
    than a finite retry schedule of 35 s, at whose end Kopf's watcher would
    fail and stop the operator."""
    names = [f"n-{i:02d}" for i in range(6)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.212.0.0/16"})
    fault = proxy.add(Fault(nodes("watch"), times=8, status=503))
    with running_operator(env={**SLOW_RESYNC, "KUBECONFIG": str(proxy.kubeconfig)}) as runner:
        wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
        wait_for("eight 503s given", lambda: len(fault.hits) == 8, timeout=90, interval=1)
        still_serving(api, namespace, set(names), make_node)
        assert not runner.future.done()  # the operator still runs


@pytest.mark.parametrize("answer", [503, "cut"])
def test_without_streamed_initial_events_kopf_lists_unpaged_and_survives_bad_answers(
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    answer: int | str,
) -> None:
    """An API server that does not stream a watch's initial events: Kopf lists
    each resource in one unpaged request, which has no token to expire."""

    async def no_streaming(self: Api, within: float = 5) -> bool:
        return False

    monkeypatch.setattr(Api, "streams_lists", no_streaming)
    names = [f"n-{i:02d}" for i in range(12)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.213.0.0/16"})
    fault = Fault(nodes("kopf-list"), times=3 if answer == 503 else 1)
    fault.status, fault.cut_after = (answer, None) if isinstance(answer, int) else (None, 3000)
    proxy.add(fault)
    with running_operator(env={**SLOW_RESYNC, "KUBECONFIG": str(proxy.kubeconfig)}) as runner:
        wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
        assert fault.hits
        assert all("limit" not in seen.query for seen in fault.hits)  # unpaged
        still_serving(api, namespace, set(names), make_node)
        assert not runner.future.done()  # the operator still runs


# --- the operator's own NodeSubnet watch (controller/subnetwatch.py) ---------------


# (answer, how many in a row) to the operator's NodeSubnet watch, from its first one on.
WATCH_ANSWERS = [(410, 1), (429, 3), (500, 3), (503, 3), ("cut", 1)]


@pytest.mark.parametrize(("answer", "times"), WATCH_ANSWERS, ids=[f"nodesubnet-watch-{a}" for a, _ in WATCH_ANSWERS])
def test_a_bad_answer_to_the_nodesubnet_watch_leaves_it_watching(
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    proxy: FaultProxy,
    answer: int | str,
    times: int,
) -> None:
    """410 Gone: it lists the NodeSubnets again, then watches from that LIST.
    The others (and a connection dropped in the middle of the operator's own
    creates coming back): it watches again from the last resourceVersion it
    saw, after a backoff, with no LIST."""
    names = [f"n-{i:02d}" for i in range(12)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.214.0.0/16"})
    fault = Fault(nodesubnets("watch"), times=times)
    if answer == "cut":
        fault.cut_after = 3000  # the first of the operator's creates coming back
    else:
        assert isinstance(answer, int)
        fault.status = answer
    proxy.add(fault)
    with operator_logs() as logs, running_operator(env={**SLOW_RESYNC, "KUBECONFIG": str(proxy.kubeconfig)}) as runner:
        wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
        wait_for(f"{times} answers given", lambda: len(fault.hits) == times, timeout=30)
        if answer == "cut":
            wait_for("the cut seen", lambda: any("NodeSubnet watch failed" in line for line in logs), timeout=30)
        a_hand_deleted_nodesubnet_is_made_again(api, names[0])
        still_serving(api, namespace, set(names), make_node)
        assert not runner.future.done()  # the operator still runs
    lists = [seen for seen in proxy.requests if nodesubnets("list")(seen)]
    assert len(lists) == (2 if answer == 410 else 1)  # the startup sync's, and after 410 one more
    watches = [seen for seen in proxy.requests if nodesubnets("watch")(seen)]
    assert all(w.query["allowWatchBookmarks"] == "true" and w.query["resourceVersion"] for w in watches)


def test_a_nodesubnet_deleted_in_a_watch_gap_past_a_compaction_is_made_again(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """The API server's own 410 Gone: a NodeSubnet is deleted in etcd while
    the API server is down, and etcd compacts the deletion away. The watch
    resumes from a resourceVersion etcd no longer keeps, gets 410 Gone, lists
    again, and the record is made again."""
    local = cluster.local
    if local is None:
        pytest.fail("edits etcd of the control plane built here: run without $KUBECONFIG")
    names = [f"gap-{i}" for i in range(4)]
    for name in names:
        make_node(name)
    make_network(api, namespace, "net", {"cidr": "10.215.0.0/16"})
    with operator_logs(logging.INFO) as logs, running_operator(env=SLOW_RESYNC) as runner:
        before = wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=60)
        lost = next(s for s in NodeSubnet.objects(api) if s.obj["spec"]["node"] == names[0])
        local.kill("kube-apiserver")
        assert local.etcd_delete(f"/registry/samplecrd.k8s.io/nodesubnets/{lost.name}") == 1
        local.compact()
        local.start_apiserver()

        def made_again() -> bool:
            again = NodeSubnet.objects(api).get_or_none(name=lost.name)
            return again is not None and again.obj["metadata"]["uid"] != lost.obj["metadata"]["uid"]

        wait_for("the lost NodeSubnet made again", made_again, timeout=60)
        after = wait_for("every Node served", converged(api, namespace, "net", set(names)), timeout=30)
        assert not runner.future.done()
    assert after == before  # nobody moved
    assert any("NodeSubnet watch's resourceVersion is gone (410)" in line for line in logs), logs
