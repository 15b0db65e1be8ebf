"""Several real nodes on flannel, as a cluster lives it: dual-stack (IPv4 and
IPv6) from the start, with kube-controller-manager giving the podCIDRs, moved
to the operator's two Networks while pods talk across nodes over both
families, then grown and shrunk by a node. Each node is its own
kubelet and containerd in its own network namespace (tests/e2e/cluster.py);
flannel is its upstream manifest (kube-flannel.yml of the pinned module) with
only the changes `flannel_manifest` (on_flannel.py) makes. The tests run in file order on
one cluster and build on each other.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netpool import records
from tests.e2e import cluster as harness
from tests.e2e.conftest import Tools
from tests.e2e.harness import kubectl_report
from tests.e2e.on_flannel import (
    CLUSTER_CIDR,
    CLUSTER_CIDR_V6,
    MOVE,
    STEADY_CLIENT,
    WITH_FLANNEL,
    World,
    flannel_images,
    flannel_manifest,
    flannel_routes,
    readme_commands,
    readme_json,
    readme_networks,
)
from tests.e2e.test_chart_on_a_node import CLIENT, IMAGE, SERVER, condition, python_pod, wait_for


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    path = os.environ.get("E2E_CLUSTER")
    if not path:
        pytest.fail(
            "these tests need the segment of tests/e2e/cluster.py (`make e2e`, as root): $E2E_CLUSTER is not set"
        )
    info = json.loads(Path(path).read_text())
    bin_dir, images = Path(info["bin"]), Path(info["images"])
    cluster = harness.control_plane(bin_dir, allocate_node_cidrs=f"{CLUSTER_CIDR},{CLUSTER_CIDR_V6}")
    tars = [images / f"{name}.tar" for name in ("pause", "operator", "flannel", "flannel-cni-plugin")]
    world = World(Tools(cluster.kubeconfig, bin_dir), cluster, bin_dir, tars)
    try:
        # One after the other, from this thread: a node's daemons die with
        # the thread that started them (PR_SET_PDEATHSIG), so no pool here.
        for index in (1, 2):
            world.add_node(index)
        yield world
    finally:
        if request.session.testsfailed:
            kubectl_report([str(bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"])
        for node in world.nodes.values():
            node.stop()
        cluster.stop(remove=False)


def ready_pod(world: World, namespace: str, name: str) -> dict[str, Any] | None:
    pod = world.tools.get("pod", "-n", namespace, name)
    return pod if condition(pod, "Ready") == "True" else None


def server_on(world: World, node: str, name: str) -> dict[str, Any]:
    doc = python_pod(name, SERVER, server=True)
    doc["spec"]["nodeName"] = node
    world.tools.kubectl("apply", "-f", "-", input=json.dumps(doc))
    return wait_for(f"{name} Ready on {node}", lambda: ready_pod(world, "default", name), timeout=120)


def flannel_ready_on(world: World, node: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pods = world.tools.get("pods", "-n", "kube-flannel", "--field-selector", f"spec.nodeName={node}")["items"]
        return pods[0] if len(pods) == 1 and condition(pods[0], "Ready") == "True" else None

    return wait_for(f"flannel Ready on {node}", check, timeout=180)


def steady_count(world: World, name: str) -> tuple[int, int, str]:
    logs = world.tools.kubectl("logs", "-n", "default", name).stdout
    counts = re.findall(r"^ok (\d+) failed (\d+)$", logs, re.M)
    ok, failed = map(int, counts[-1]) if counts else (0, 0)
    return ok, failed, logs


POOLS = {4: ipaddress.ip_network(CLUSTER_CIDR), 6: ipaddress.ip_network(CLUSTER_CIDR_V6)}


def pod_ips(pod: dict[str, Any]) -> dict[int, str]:
    """A pod's addresses (status.podIPs) by IP family."""
    return {ipaddress.ip_address(i["ip"]).version: i["ip"] for i in pod["status"]["podIPs"]}


def dual_stack_pod_cidrs(world: World, node: str) -> dict[int, str] | None:
    """The node's podCIDRs by family once it has both, IPv4 (its first
    InternalIP's family) first; None while it has none."""
    spec = world.node(node)["spec"]
    if not spec.get("podCIDRs"):
        return None
    cidrs = world.pod_cidrs(node)
    assert spec["podCIDRs"] == [cidrs.get(4), cidrs.get(6)], spec
    assert spec["podCIDR"] == cidrs[4], spec
    return cidrs


# --- on kube-controller-manager's podCIDRs ----------------------------------------------


def test_flannel_runs_on_dual_stack_podcidrs_of_kube_controller_manager(world: World) -> None:
    cidrs = {n: wait_for(f"{n}'s podCIDRs", lambda n=n: dual_stack_pod_cidrs(world, n)) for n in world.nodes}  # type: ignore[misc]
    for family, pool in POOLS.items():
        assert all(ipaddress.ip_network(c[family]).subnet_of(pool) for c in cidrs.values()), cidrs  # type: ignore[arg-type]
        assert len({c[family] for c in cidrs.values()}) == len(cidrs), cidrs
    docs = flannel_manifest(flannel_images(world.images[2:]), CLUSTER_CIDR, CLUSTER_CIDR_V6)
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert json.loads(config["data"]["net-conf.json"]) == readme_json(WITH_FLANNEL)
    world.tools.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    for name in world.nodes:
        flannel_ready_on(world, name)
        subnet_env = (world.nodes[name].state / "host" / "run" / "flannel" / "subnet.env").read_text()
        v4, v6 = (ipaddress.ip_network(cidrs[name][f]) for f in (4, 6))
        assert f"FLANNEL_SUBNET={v4[1]}/24" in subnet_env.splitlines(), subnet_env
        assert f"FLANNEL_IPV6_SUBNET={v6[1]}/64" in subnet_env.splitlines(), subnet_env


def test_pods_talk_across_nodes_over_both_families_before_the_move(world: World) -> None:
    server = server_on(world, "node-2", "server-2")
    addresses = pod_ips(server)
    cidrs = world.pod_cidrs("node-2")
    assert sorted(addresses) == [4, 6], server["status"]
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(cidrs[f]) for f, a in addresses.items()), addresses
    # One client, taking turns: IPv4, IPv6, IPv4, ...
    doc = python_pod("steady", STEADY_CLIENT, addresses[4], addresses[6])
    doc["spec"]["nodeName"] = "node-1"
    doc["spec"]["restartPolicy"] = "Always"
    world.tools.kubectl("apply", "-f", "-", input=json.dumps(doc))
    wait_for("the steady client's first 25 answers", lambda: steady_count(world, "steady")[0] >= 25, timeout=120)
    _, failed, logs = steady_count(world, "steady")
    assert failed == 0, logs[-2000:]
    world.shared["podcidrs"] = {n: world.pod_cidrs(n) for n in world.nodes}


# --- the move -------------------------------------------------------------------------


def run_readme_command(world: World, command: str) -> None:
    """One README command as a user types it, with the image built here."""
    argv = command.split()
    tool, args = argv[0], argv[1:]
    if tool == "helm" and args[0] == "install":
        args += IMAGE
    stdin = None
    if args[-2:] == ["-f", "-"]:
        stdin = "\n---\n".join(json.dumps(n) for n in readme_networks(MOVE))
    world.tools.run(tool, *args, input=stdin)


def test_move_off_kube_controller_manager_renumbers_nothing_and_drops_nothing(world: World) -> None:
    before = world.shared["podcidrs"]
    # Step 1 of the README: kube-controller-manager without its node IPAM.
    world.cluster.kill("kube-controller-manager")
    world.cluster.allocate_node_cidrs = None
    world.cluster.start_controller_manager()
    commands = readme_commands(MOVE)
    assert [c.split()[0] for c in commands] == ["helm", "kubectl"], commands
    for command in commands:
        run_readme_command(world, command)
    # The README's Networks: one per family of the dual-stack cluster, over
    # kube-controller-manager's --cluster-cidr.
    networks = {ipaddress.ip_network(n["spec"]["cidr"]).version: n for n in readme_networks(MOVE)}
    assert {f: n["spec"]["cidr"] for f, n in networks.items()} == {4: CLUSTER_CIDR, 6: CLUSTER_CIDR_V6}
    world.shared["networks"] = {}
    for family, network in networks.items():
        namespace, name = network["metadata"]["namespace"], network["metadata"]["name"]

        def recorded(namespace: str = namespace, name: str = name) -> dict[str, str] | None:
            items = world.tools.get("nodesubnets")["items"]
            mine = [
                i["spec"]
                for i in items
                if (i["spec"]["network"]["namespace"], i["spec"]["network"]["name"]) == (namespace, name)
            ]
            found = {spec["node"]: spec["subnet"] for spec in mine}
            return found if len(found) == len(before) else None

        found = wait_for(f"a NodeSubnet of {name} for each node", recorded, timeout=120)
        assert found == {n: cidrs[family] for n, cidrs in before.items()}
        net = world.tools.get("network", "-n", namespace, name)
        assert net["status"]["podCIDRConflicts"] == 0, net["status"]
        world.shared["networks"][family] = (namespace, name)
    assert {n: world.pod_cidrs(n) for n in before} == before
    ok, failed, logs = steady_count(world, "steady")
    assert failed == 0, logs[-2000:]
    print(f"\nsteady client through the move: {ok} answers, {failed} failures")


# --- on the operator's podCIDRs ---------------------------------------------------------


def test_a_node_joining_after_the_move_gets_its_podcidrs_from_the_operator(world: World) -> None:
    node = world.add_node(3)
    cidrs = wait_for("node-3's podCIDRs", lambda: dual_stack_pod_cidrs(world, node.name), timeout=60)
    entries = world.tools.get("node", node.name, "--show-managed-fields")["metadata"]["managedFields"]
    writers = [e["manager"] for e in entries if "f:podCIDRs" in (e.get("fieldsV1") or {}).get("f:spec", {})]
    assert writers, entries
    assert "kube-controller-manager" not in writers, writers
    for cidr in cidrs.values():
        record = world.tools.get("nodesubnet", records.name_for(ipaddress.ip_network(cidr)))
        assert (record["spec"]["node"], record["spec"]["subnet"]) == (node.name, cidr)
    flannel_ready_on(world, node.name)
    server = server_on(world, node.name, "server-3")
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(cidrs[f]) for f, a in pod_ips(server).items())
    to = pod_ips(world.tools.get("pod", "-n", "default", "server-2"))
    said = ping(world, "node-3", [to[4], to[6]], "ping-3-to-2")
    client = world.shared["clients"]["ping-3-to-2"]
    assert said == [f"pong from {to[f]} to {client[f]}" for f in (4, 6)]


def ping(world: World, node: str, addresses: list[str], name: str) -> list[str]:
    """A client pod on `node` pings each of `addresses`; what it heard back, a line each."""
    doc = python_pod(name, CLIENT, *addresses)
    doc["spec"]["nodeName"] = node
    world.tools.kubectl("apply", "-f", "-", input=json.dumps(doc))

    def finished() -> dict[str, Any] | None:
        pod = world.tools.get("pod", "-n", "default", name)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = wait_for(f"{name} to finish", finished, timeout=120)
    said = world.tools.kubectl("logs", "-n", "default", name).stdout.strip()
    assert pod["status"]["phase"] == "Succeeded", said
    world.shared.setdefault("clients", {})[name] = pod_ips(pod)
    return said.splitlines()


def test_each_nodes_podcidrs_are_its_nodesubnets_one_per_family_inside_the_networks_and_distinct(
    world: World,
) -> None:
    for family, (namespace, name) in world.shared["networks"].items():
        cidrs = {}
        for node in world.nodes:
            subnet = ipaddress.ip_network(dual_stack_pod_cidrs(world, node)[family])  # type: ignore[index]
            assert subnet.subnet_of(POOLS[family]), (node, subnet)  # type: ignore[arg-type]
            record = world.tools.get("nodesubnet", records.name_for(subnet))
            network = record["spec"]["network"]
            assert (record["spec"]["node"], network["namespace"], network["name"]) == (node, namespace, name)
            cidrs[node] = subnet
        assert len(set(cidrs.values())) == len(cidrs) == 3, cidrs


def test_a_pod_on_each_node_gets_an_address_of_each_family_of_its_nodes_podcidrs(world: World) -> None:
    server_on(world, "node-1", "server-1")
    for node in world.nodes:
        pod = world.tools.get("pod", "-n", "default", f"server-{node[-1]}")
        assert pod["spec"]["nodeName"] == node
        addresses, cidrs = pod_ips(pod), world.pod_cidrs(node)
        assert len(pod["status"]["podIPs"]) == 2, pod["status"]
        assert sorted(addresses) == [4, 6], pod["status"]
        for family, address in addresses.items():
            assert ipaddress.ip_address(address) in ipaddress.ip_network(cidrs[family]), (node, address)


def test_pods_on_two_nodes_reach_each_other_both_ways_over_both_families_without_nat(world: World) -> None:
    server = {n: pod_ips(world.tools.get("pod", "-n", "default", f"server-{n[-1]}")) for n in world.nodes}
    for src, dst, name in (("node-1", "node-2", "ping-1-to-2"), ("node-2", "node-1", "ping-2-to-1")):
        said = ping(world, src, [server[dst][4], server[dst][6]], name)
        client = world.shared["clients"][name]
        cidrs = world.pod_cidrs(src)
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(cidrs[f]) for f, a in client.items()), client
        assert said == [f"pong from {server[dst][f]} to {client[f]}" for f in (4, 6)]
        heard = world.tools.kubectl("logs", "-n", "default", f"server-{dst[-1]}").stdout.splitlines()
        for family in (4, 6):
            assert f"ping from {client[family]}" in heard, heard[-20:]


def test_a_deleted_node_loses_its_nodesubnets_and_flannel_lease_and_the_others_keep_talking(world: World) -> None:
    cidrs = world.pod_cidrs("node-3")
    annotations = world.node("node-3")["metadata"]["annotations"]
    assert {"flannel.alpha.coreos.com/public-ip", "flannel.alpha.coreos.com/public-ipv6"} <= set(annotations)
    for family, cidr in cidrs.items():
        assert cidr in flannel_routes(world, "node-1", family), (family, cidr)
    world.nodes.pop("node-3").stop()
    world.tools.kubectl("delete", "node", "node-3")

    def gone(cidr: str) -> bool:
        done = world.tools.kubectl("get", "nodesubnet", records.name_for(ipaddress.ip_network(cidr)), check=False)
        return done.returncode != 0 and "NotFound" in done.stderr

    for family, cidr in cidrs.items():
        wait_for(f"node-3's IPv{family} NodeSubnet to go", lambda cidr=cidr: gone(cidr), timeout=60)  # type: ignore[misc]
        for node in ("node-1", "node-2"):

            def unrouted(node: str = node, family: int = family, cidr: str = cidr) -> bool:
                return cidr not in flannel_routes(world, node, family)

            wait_for(f"{node}'s flannel route to node-3's IPv{family} subnet to go", unrouted)
    ok_before = steady_count(world, "steady")[0]
    wait_for("25 more answers", lambda: steady_count(world, "steady")[0] >= ok_before + 25, timeout=60)
    ok, failed, logs = steady_count(world, "steady")
    assert failed == 0, logs[-2000:]
    print(f"\nsteady client from before the move to the end: {ok} answers, {failed} failures")


# A connection to outside addresses, of each family: what it fails with.
CONNECT_OUT = """
import socket
for family, address in ((socket.AF_INET, ("192.0.2.1", 80)), (socket.AF_INET6, ("2001:db8::1", 80))):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(address)
            print("connected", address)
        except OSError as e:
            print(e.strerror)
"""


def test_no_route_out_of_any_namespace_of_the_cluster(world: World) -> None:
    """The control plane's namespace (this one), the segment's and each
    node's: no default route, and connections to outside addresses fail."""
    namespaces = [None, harness.SEGMENT, *(node.netns for node in world.nodes.values())]
    for netns in namespaces:
        enter = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
        routes = json.loads(
            subprocess.run(
                [*enter, "ip", "-j", "route", "show", "table", "all"], capture_output=True, check=True
            ).stdout
        )
        assert not [r for r in routes if r.get("dst") in ("default", "0.0.0.0/0", "::/0")], (netns, routes)
        said = subprocess.run(
            [*enter, sys.executable, "-P", "-c", CONNECT_OUT], capture_output=True, text=True, check=True
        ).stdout
        assert said.splitlines() == ["Network is unreachable"] * 2, (netns, said)
