"""spec.podCIDRs on the real API server: what it writes into Node.spec.podCIDRs,
what it keeps, and what the API server itself refuses."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pykube

from controller.engine import Engine
from controller.kube import Api
from controller.login import load as load_login
from controller.metrics import Metrics
from netpool.views import network_view, node_view
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    KubeCluster,
    Network,
    apply_network,
    events,
    get_network,
    make_network,
    network_ready_with,
    node_subnets,
    operator_with_webhook,
    record_subnets,
    running_operator,
    wait_for,
    wait_network,
    wait_subnets,
)


def pod_cidrs(api: pykube.HTTPClient) -> dict[str, list[str]]:
    """node -> spec.podCIDRs, for every Node."""
    return {n.name: list(n.obj["spec"].get("podCIDRs") or []) for n in pykube.Node.objects(api)}


def pod_cidrs_when(api: pykube.HTTPClient, check: Any) -> Any:
    """A probe for wait_for: every Node's podCIDRs, once `check` holds for them."""
    return lambda: found if check(found := pod_cidrs(api)) else None


def condition(net: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in net.get("status", {}).get("conditions") or [] if c["type"] == kind), {})


def pod_cidrs_condition(status: str, reason: str) -> Any:
    def check(net: dict[str, Any]) -> bool:
        cond = condition(net, "PodCIDRs")
        current = net.get("status", {}).get("observedGeneration") == net["metadata"]["generation"]
        return current and (cond.get("status"), cond.get("reason")) == (status, reason)

    return check


def set_addresses(cluster: KubeCluster, node: str, *addresses: str) -> None:
    """Give a Node InternalIPs, as its kubelet would (status is a subresource)."""
    status = {"status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]}}
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def test_subnets_become_pod_cidrs_with_their_annotation(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for name in ("a", "b", "c"):
        make_node(name)
    make_network(api, namespace, "pods", {"cidr": "10.20.0.0/16", "podCIDRs": True})
    with running_operator():
        net = wait_network(api, namespace, "pods", "all podCIDRs written", pod_cidrs_condition("True", "Written"))
        on_nodes = node_subnets(api, namespace, "pods")
        written = pod_cidrs(api)
    assert len(set(on_nodes.values())) == 3
    assert written == {n: [s] for n, s in on_nodes.items()}
    assert record_subnets(api, namespace, "pods") == on_nodes
    # spec.podCIDR, the old single field, is the first podCIDR.
    assert {n.name: n.obj["spec"]["podCIDR"] for n in pykube.Node.objects(api)} == on_nodes
    assert (net["status"]["podCIDRs"], net["status"]["podCIDRConflicts"]) == (3, 0)
    assert condition(net, "PodCIDRs")["message"] == "3 of 3 nodes with a subnet have it as their IPv4 podCIDR"


def test_a_node_keeps_the_pod_cidr_it_has(api: pykube.HTTPClient, namespace: str, make_node: NodeFactory) -> None:
    """Replacing kube-controller-manager: a podCIDR inside the pool is adopted as
    the Node's subnet; one outside is reported and left alone."""
    make_node("inside").patch({"spec": {"podCIDR": "10.21.5.0/24", "podCIDRs": ["10.21.5.0/24"]}})
    make_node("outside").patch({"spec": {"podCIDRs": ["10.99.0.0/24"]}})
    make_node("fresh")
    make_network(api, namespace, "pods", {"cidr": "10.21.0.0/16", "podCIDRs": True})
    with running_operator():
        net = wait_network(api, namespace, "pods", "the conflict reported", pod_cidrs_condition("False", "Conflicts"))
        on_nodes = wait_subnets(api, namespace, "pods", "two subnets", lambda s: len(s) == 2)
        written = wait_for("fresh's podCIDR", pod_cidrs_when(api, lambda p: p["fresh"]))
    assert on_nodes["inside"] == "10.21.5.0/24"
    assert "outside" not in on_nodes
    assert "outside" not in record_subnets(api, namespace, "pods")
    assert written == {"inside": ["10.21.5.0/24"], "outside": ["10.99.0.0/24"], "fresh": [on_nodes["fresh"]]}
    assert on_nodes["fresh"] != "10.21.5.0/24"
    assert (net["status"]["podCIDRs"], net["status"]["podCIDRConflicts"], net["status"]["allocated"]) == (2, 1, 2)
    message = (
        "1 matching nodes have podCIDRs this Network cannot write and get no subnet from it (a podCIDR never "
        "changes once set): node outside has podCIDR 10.99.0.0/24, outside 10.21.0.0/16"
    )
    assert condition(net, "PodCIDRs")["message"] == message
    warnings = [(e["reason"], e["message"]) for e in events(api, namespace, "pods") if e["type"] == "Warning"]
    assert warnings == [("Conflicts", message)]


def test_only_the_oldest_network_of_a_family_writes_and_pod_cidrs_outlive_it(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    make_node("a")
    make_node("b")
    make_network(api, namespace, "first", {"cidr": "10.22.0.0/16", "podCIDRs": True})
    with running_operator():
        wait_network(api, namespace, "first", "first writes", pod_cidrs_condition("True", "Written"))
        make_network(api, namespace, "second", {"cidr": "10.23.0.0/16", "podCIDRs": True})
        second = wait_network(api, namespace, "second", "second refused", pod_cidrs_condition("False", "OlderNetwork"))
        first_subnets = node_subnets(api, namespace, "first")
        assert condition(second, "PodCIDRs")["message"] == (
            f"the older Network {namespace}/first writes the IPv4 podCIDRs and only one Network per IP family "
            f"may; this Network writes none"
        )
        # It still allocates, as a Network without podCIDRs does.
        assert len(wait_for("second's subnets", lambda: node_subnets(api, namespace, "second")))
        assert pod_cidrs(api) == {n: [s] for n, s in first_subnets.items()}

        Network.objects(api, namespace=namespace).get(name="first").delete()
        wait_for("first released", lambda: not node_subnets(api, namespace, "first"))
        # Kubernetes cannot unset a podCIDR: it stays, and the younger Network,
        # now the writer, cannot give these Nodes its own.
        second = wait_network(api, namespace, "second", "conflicts", pod_cidrs_condition("False", "Conflicts"))
        assert pod_cidrs(api) == {n: [s] for n, s in first_subnets.items()}
        assert second["status"]["podCIDRConflicts"] == 2
        wait_for("second's subnets taken back", lambda: not node_subnets(api, namespace, "second"))


def test_dual_stack_nodes_get_both_families_in_one_write(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    make_node("v4-first")
    set_addresses(cluster, "v4-first", "192.0.2.10", "2001:db8:ffff::10")
    make_node("v6-first")
    set_addresses(cluster, "v6-first", "2001:db8:ffff::11", "192.0.2.11")
    # Set to one family before the operator came: the API server will never add the other.
    make_node("v4-only").patch({"spec": {"podCIDRs": ["10.24.7.0/24"]}})
    make_network(api, namespace, "v4", {"cidr": "10.24.0.0/16", "podCIDRs": True})
    make_network(api, namespace, "v6", {"cidr": "2001:db8:24::/48", "podCIDRs": True})
    with running_operator():
        v6 = wait_network(api, namespace, "v6", "v6's conflict", pod_cidrs_condition("False", "Conflicts"))
        # v4 may report 1 first: a round of its own before v6 chose its subnets
        # writes none of the dual-stack Nodes' (v6's round then writes both).
        written_v4 = pod_cidrs_condition("True", "Written")
        v4 = wait_network(api, namespace, "v4", "v4 written", lambda n: written_v4(n) and n["status"]["podCIDRs"] == 3)
        written = wait_for("both families", pod_cidrs_when(api, lambda p: len(p["v6-first"]) == 2))
        v4_subnets, v6_subnets = node_subnets(api, namespace, "v4"), node_subnets(api, namespace, "v6")
    assert written["v4-first"] == [v4_subnets["v4-first"], v6_subnets["v4-first"]]
    assert written["v6-first"] == [v6_subnets["v6-first"], v4_subnets["v6-first"]]
    assert written["v4-only"] == ["10.24.7.0/24"]
    assert v4_subnets["v4-only"] == "10.24.7.0/24"
    assert "v4-only" not in v6_subnets
    assert condition(v6, "PodCIDRs")["message"].endswith(
        "node v4-only has podCIDRs 10.24.7.0/24 and no IPv6 one; Kubernetes sets podCIDRs only once, "
        "so it can never gain one"
    )
    assert (v4["status"]["podCIDRs"], v6["status"]["podCIDRs"]) == (3, 2)


def test_webhook_refuses_a_spec_that_would_move_a_pod_cidr(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory, tmp_path: Path
) -> None:
    make_node("a")
    make_node("b")
    spec = {"cidr": "10.25.0.0/16", "podCIDRs": True, "reserved": ["10.25.0.0/24"]}
    make_network(api, namespace, "pods", spec)
    with operator_with_webhook(cluster, tmp_path):
        wait_network(api, namespace, "pods", "written", pod_cidrs_condition("True", "Written"))
        held = pod_cidrs(api)
        assert sorted(held.values()) == [["10.25.1.0/24"], ["10.25.2.0/24"]]
        holder = next(n for n, c in held.items() if c == ["10.25.2.0/24"])

        shrink = apply_network(cluster, namespace, "pods", {**spec, "cidr": "10.25.0.0/23"})
        assert shrink.returncode != 0
        assert shrink.stderr.strip().endswith(
            "denied the request: this change would leave podCIDRs this Network gave outside its subnets, and a "
            f"Node's podCIDRs never change once set: node {holder} has podCIDR 10.25.2.0/24, outside 10.25.0.0/23; "
            "keep them in the pool, or delete those Nodes first"
        )
        reserve = apply_network(cluster, namespace, "pods", {**spec, "reserved": ["10.25.0.0/24", "10.25.2.7"]})
        assert f"node {holder} has podCIDR 10.25.2.0/24, which holds the gateway or a reserved range" in reserve.stderr
        grow = apply_network(cluster, namespace, "pods", {**spec, "cidr": "10.24.0.0/15"})
        assert grow.returncode == 0, grow.stderr
        wait_for("ready after growing", network_ready_with(api, namespace, "pods", "True", "Allocated"))
    assert pod_cidrs(api) == held


class FirstComesElsewhere(Api):
    """The real API client; just before its first podCIDR write, another
    writer sets that Node's podCIDRs, as kube-controller-manager could."""

    def __init__(self, api: pykube.HTTPClient, theirs: str) -> None:
        super().__init__(load_login(), Metrics())
        self.kube, self.theirs, self.refused = api, theirs, 0

    async def patch_node(
        self, node: str, annotations: Mapping[str, str | None], pod_cidrs: Sequence[str] = ()
    ) -> bool | None:
        if pod_cidrs and not self.refused:
            pykube.Node.objects(self.kube).get(name=node).patch({"spec": {"podCIDRs": [self.theirs]}})
        done = await super().patch_node(node, annotations, pod_cidrs)
        self.refused += done is None
        return done


def test_a_pod_cidr_set_elsewhere_first_wins_and_is_reported(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    node = make_node("racy").obj
    net = make_network(api, namespace, "pods", {"cidr": "10.26.0.0/16", "podCIDRs": True}).obj
    key = (namespace, "pods")
    racer = FirstComesElsewhere(api, "10.98.0.0/24")

    async def run() -> None:
        engine = Engine(racer, Metrics(), lambda *_: None, logging.getLogger("race"), relist_every=3600)
        engine.nodes.put(node_view(node))
        engine.bind({key: [network_view(net)]})
        try:
            await engine.request(key)
            await engine.queue.drained()
        finally:
            await racer.close()

    asyncio.run(run())
    assert racer.refused == 1  # the API server refused the second writer: podCIDRs are set once
    assert pod_cidrs(api) == {"racy": ["10.98.0.0/24"]}
    # The operator learned the Node's podCIDRs, gave its subnet back, and says why.
    assert node_subnets(api, namespace, "pods") == {}
    assert record_subnets(api, namespace, "pods") == {}
    status = get_network(api, namespace, "pods")["status"]
    assert (status["podCIDRConflicts"], status["allocated"]) == (1, 0)
    assert condition(get_network(api, namespace, "pods"), "PodCIDRs")["message"].endswith(
        "node racy has podCIDR 10.98.0.0/24, outside 10.26.0.0/16"
    )
