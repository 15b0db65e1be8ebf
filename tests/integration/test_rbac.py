"""Least privilege, proven: the chart's ClusterRole is enough for the operator's
whole lifecycle without a single 403, and every one of its rules is needed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pykube
import pytest

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    KubeCluster,
    Network,
    audit_entries,
    audit_log_end,
    chart_rules,
    events,
    make_network,
    network_ready_with,
    node_subnets,
    running_operator,
    service_account_kubeconfig,
    wait_for,
)

T = TypeVar("T")


class Refused(Exception):
    """The API server has already answered the operator with a 403."""


def lifecycle(
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    kubeconfig: Path,
    peering: str,
    refused: Callable[[], bool] = lambda: False,
) -> None:
    """The main lifecycle, with the operator authenticated by `kubeconfig`:
    allocation, a joining node, status, the Synced event, deletion. Raises
    Refused as soon as `refused()` says so while it waits for an outcome."""

    def until(check: Callable[[], T | None]) -> Callable[[], T | None]:
        def probe() -> T | None:
            if refused():
                raise Refused
            return check()

        return probe

    make_node("n0")
    make_node("n1")
    make_network(api, namespace, "life", {"cidr": "10.150.0.0/16"})
    env = {
        "KUBECONFIG": str(kubeconfig),
        "NETWORK_PEERING": peering,
        "NETWORK_LEASE": "rbac-test",
        "NETWORK_LEASE_NAMESPACE": namespace,
        "POD_NAME": "rbac-test",
    }
    with running_operator(env=env):
        wait_for("ready", until(network_ready_with(api, namespace, "life", "True", "Allocated")), timeout=15)
        make_node("n2")
        wait_for("three nodes", until(lambda: len(s := node_subnets(api, namespace, "life")) == 3 and s), timeout=15)
        wait_for(
            "a Synced event",
            until(lambda: [e for e in events(api, namespace, "life") if e["reason"] == "Synced"]),
            timeout=10,
        )
        Network.objects(api, namespace=namespace).get(name="life").delete()
        wait_for("the Network gone", until(lambda: not list(Network.objects(api, namespace=namespace))), timeout=15)
        assert node_subnets(api, namespace, "life") == {}


def forbidden(cluster: KubeCluster, namespace: str, account: str, since: float, offset: int = 0) -> list[str]:
    return [
        f"{e['verb']} {e['requestURI']}"
        for e in audit_entries(cluster, f"system:serviceaccount:{namespace}:{account}", since, offset)
        if e.get("responseStatus", {}).get("code") == 403
    ]


def test_the_chart_role_runs_the_lifecycle_without_a_403(
    cluster: KubeCluster,
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    peering: str,
    tmp_path: Path,
) -> None:
    if cluster.local is None:
        pytest.skip("reads the audit log of the control plane built here")
    since = time.time()
    kubeconfig = service_account_kubeconfig(cluster, namespace, "operator", chart_rules(cluster), tmp_path)
    lifecycle(api, namespace, make_node, kubeconfig, peering)
    time.sleep(1)
    requests = audit_entries(cluster, f"system:serviceaccount:{namespace}:operator", since)
    assert len(requests) > 10  # it really ran as the ServiceAccount
    assert forbidden(cluster, namespace, "operator", since) == []


@pytest.mark.parametrize(
    "dropped", range(7), ids=["nodes", "networks", "networks-status", "nodesubnets", "events", "peerings", "leases"]
)
def test_every_rule_of_the_chart_role_is_needed(
    cluster: KubeCluster,
    api: pykube.HTTPClient,
    namespace: str,
    make_node: NodeFactory,
    peering: str,
    tmp_path: Path,
    dropped: int,
) -> None:
    if cluster.local is None:
        pytest.skip("reads the audit log of the control plane built here")
    who = (cluster, namespace, "operator")
    rules = chart_rules(cluster)
    assert len(rules) == 7
    del rules[dropped]
    since, offset = time.time(), audit_log_end(cluster)
    kubeconfig = service_account_kubeconfig(cluster, namespace, "operator", rules, tmp_path)
    failed: BaseException | None = None
    try:
        # A 403 already decides the assertion below: no need to wait out the lifecycle's timeouts.
        lifecycle(api, namespace, make_node, kubeconfig, peering, lambda: bool(forbidden(*who, since, offset)))
    except AssertionError as e:
        failed = e
    except Refused:
        pass
    denied = forbidden(*who, since, offset)
    # The lifecycle test fails: either an outcome never came, or the API said 403.
    assert failed is not None or denied, "the lifecycle passed without a 403: this rule is not needed"
