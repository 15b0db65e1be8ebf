"""Pools against each other and against their limits: overlap, exhaustion, spec changes, IPv6."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pykube
import pytest

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    QUICK_RESYNC,
    QUICK_RESYNC_ENV,
    KubeCluster,
    Network,
    events,
    get_network,
    make_network,
    network_ready_with,
    node_subnets,
    ready,
    record_subnets,
    running_operator,
    wait_for,
    wait_network,
    wait_subnets,
    within,
)


@pytest.fixture
def other_namespace(api: pykube.HTTPClient, namespace: str) -> Iterator[str]:
    name = f"{namespace[:55]}-other"
    pykube.Namespace(api, {"metadata": {"name": name}}).create()
    yield name
    pykube.Namespace.objects(api).get(name=name).delete()


def test_younger_overlapping_network_waits_for_the_older(
    api: pykube.HTTPClient, namespace: str, other_namespace: str, make_node: NodeFactory
) -> None:
    make_node("n1")
    make_node("n2")
    make_network(api, namespace, "older", {"cidr": "10.70.0.0/16"})
    time.sleep(1.1)  # creationTimestamp has a one-second resolution
    make_network(api, other_namespace, "younger", {"cidr": "10.70.128.0/17"})
    with running_operator():
        wait_for("older ready", network_ready_with(api, namespace, "older", "True", "Allocated"))
        net = wait_for("younger to overlap", network_ready_with(api, other_namespace, "younger", "False", "Overlaps"))
        assert ready(net)["message"] == (
            f"cidr 10.70.128.0/17 overlaps cidr 10.70.0.0/16 of the older Network {namespace}/older; "
            "choose a cidr that does not overlap it (this Network allocates nothing until then)"
        )
        assert node_subnets(api, other_namespace, "younger") == {}
        assert net["status"]["allocated"] == 0
        warnings = [e for e in events(api, other_namespace, "younger") if e["type"] == "Warning"]
        assert [e["reason"] for e in warnings] == ["Overlaps"]

        Network.objects(api, namespace=namespace).get(name="older").delete()
        wait_for("younger ready", network_ready_with(api, other_namespace, "younger", "True", "Allocated"), timeout=30)
        subnets = wait_subnets(api, other_namespace, "younger", "both nodes", lambda s: len(s) == 2)
        assert all(within(s, "10.70.128.0/17") for s in subnets.values())


def test_exhaustion_is_counted_warned_once_and_served_when_space_frees(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(5):
        make_node(f"n{i}")
    # 10.80.0.0/22 in /24s: four subnets, one holding the gateway: room for 3.
    make_network(api, namespace, "small", {"cidr": "10.80.0.0/22"})
    with running_operator(env=QUICK_RESYNC_ENV):
        net = wait_for("exhaustion", network_ready_with(api, namespace, "small", "False", "PoolExhausted"))
        assert (net["status"]["allocated"], net["status"]["waiting"], net["status"]["free"]) == (3, 2, "0")
        assert ready(net)["message"] == (
            "2 of 5 matching nodes wait for a subnet: all 3 usable /24 subnets of 10.80.0.0/22 are allocated; "
            "grow cidr or remove nodes"
        )
        held = node_subnets(api, namespace, "small")
        assert len(held) == 3
        time.sleep(2 * QUICK_RESYNC + 1)  # at least two resyncs
        warnings = [e for e in events(api, namespace, "small") if e["reason"] == "PoolExhausted"]
        assert len(warnings) == 1
        assert warnings[0]["type"] == "Warning"
        assert warnings[0].get("count", 1) == 1

        victim = sorted(held)[0]
        pykube.Node.objects(api).get(name=victim).delete()
        served = wait_subnets(
            api, namespace, "small", "a waiting node served", lambda s: len(s) == 3 and victim not in s
        )
        assert held[victim] in served.values()
        net = wait_network(api, namespace, "small", "one still waiting", lambda n: n["status"]["waiting"] == 1)
        assert ready(net)["reason"] == "PoolExhausted"
        assert len([e for e in events(api, namespace, "small") if e["reason"] == "PoolExhausted"]) == 1


def test_growing_cidr_keeps_allocations_and_subnet_prefix_is_immutable(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    for i in range(3):
        make_node(f"n{i}")
    make_network(api, namespace, "grow", {"cidr": "10.90.0.0/24", "nodeSubnetPrefix": 26})
    with running_operator():
        wait_for("full", network_ready_with(api, namespace, "grow", "True", "Allocated"))
        before = node_subnets(api, namespace, "grow")
        assert len(before) == 3
        cluster.kubectl(
            "patch", "network", "grow", "-n", namespace, "--type=merge", "-p", '{"spec":{"cidr":"10.90.0.0/23"}}'
        )
        net = wait_network(api, namespace, "grow", "grown", lambda n: n.get("status", {}).get("capacity") == "7")
        assert node_subnets(api, namespace, "grow") == before
        assert record_subnets(api, namespace, "grow") == before

        for i in range(3, 6):
            make_node(f"n{i}")
        wider = wait_subnets(api, namespace, "grow", "six nodes", lambda s: len(s) == 6)
        assert {k: wider[k] for k in before} == before

        # Shrinking keeps what still fits and moves or queues the rest.
        cluster.kubectl(
            "patch", "network", "grow", "-n", namespace, "--type=merge", "-p", '{"spec":{"cidr":"10.90.0.0/24"}}'
        )
        net = wait_for("shrunk", network_ready_with(api, namespace, "grow", "False", "PoolExhausted"))
        after = node_subnets(api, namespace, "grow")
        inside = {n: s for n, s in wider.items() if within(s, "10.90.0.0/24")}
        assert {n: after[n] for n in inside} == inside
        assert len(after) == 3
        assert net["status"]["waiting"] == 3

    rejected = cluster.kubectl(
        "patch",
        "network",
        "grow",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"nodeSubnetPrefix":27}}',
        check=False,
    )
    assert rejected.returncode != 0
    assert "nodeSubnetPrefix is immutable: create a new Network to change the subnet size" in rejected.stderr
    assert get_network(api, namespace, "grow")["spec"]["nodeSubnetPrefix"] == 26

    make_network(api, namespace, "unset", {"cidr": "10.91.0.0/16"})
    added = cluster.kubectl(
        "patch",
        "network",
        "unset",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"nodeSubnetPrefix":20}}',
        check=False,
    )
    assert "nodeSubnetPrefix is immutable" in added.stderr


def test_ipv6_pool_gives_each_node_a_64(api: pykube.HTTPClient, namespace: str, make_node: NodeFactory) -> None:
    for i in range(4):
        make_node(f"v6-{i}")
    make_network(api, namespace, "v6", {"cidr": "2001:db8::/32"})
    with running_operator():
        net = wait_for("v6 ready", network_ready_with(api, namespace, "v6", "True", "Allocated"))
        subnets = wait_subnets(api, namespace, "v6", "four /64s", lambda s: len(s) == 4)
    nets = {ipaddress.ip_network(s) for s in subnets.values()}
    assert len(nets) == 4
    assert all(n.prefixlen == 64 and n.subnet_of(ipaddress.ip_network("2001:db8::/32")) for n in nets)  # type: ignore[arg-type]
    assert all(ipaddress.ip_address("2001:db8::1") not in n for n in nets)
    assert net["status"]["gateway"] == "2001:db8::1"
    assert net["status"]["nodeSubnetPrefix"] == 64
    assert net["status"]["capacity"] == str(2**32 - 1)
    assert net["status"]["free"] == str(2**32 - 5)
