"""NodeSubnets, the allocation records: a duplicate cannot exist whoever writes,
the Network stays small, a restart writes nothing, and an upgrade from
annotations and status.allocations moves no Node."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import ipaddress
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pykube
import pytest

from controller.engine import Engine
from controller.kube import Api
from controller.login import load as load_login
from controller.metrics import Metrics
from netpool import annotation, records
from netpool.names import Key
from netpool.views import network_view, node_view
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    OPERATOR,
    KubeCluster,
    NodeSubnet,
    audit_entries,
    chart_rules,
    create_nodes,
    get_network,
    make_network,
    network_ready_with,
    node_subnets,
    record_subnets,
    remove_networks_and_nodes,
    running_operator,
    service_account_kubeconfig,
    wait_for,
    wait_network,
)

KOPF = str(Path(sys.executable).parent / "kopf")
WRITES = ("create", "update", "patch", "delete")


def make_nodes(cluster: KubeCluster, names: list[str], threads: int = 8) -> None:
    """Create Nodes in the given order, several at a time, as a burst of joins."""

    def create(chunk: list[str]) -> None:
        client = pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))
        for name in chunk:
            pykube.Node(client, {"metadata": {"name": name}}).create()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, [names[i::threads] for i in range(threads)]))


def subnets_carried(node: Mapping[str, Any]) -> set[str]:
    """The subnets a Node's annotations of this operator carry."""
    values = (node.get("metadata") or {}).get("annotations") or {}
    return {s for k, v in values.items() if k.startswith(annotation.PREFIX) and (s := annotation.subnet_of(v))}


class Watch(threading.Thread):
    """One resource watched while the operators work, every change applied in
    order (after 410 Gone: a LIST, and each object as it is now)."""

    def __init__(self, cluster: KubeCluster, url: str, version: str) -> None:
        super().__init__(daemon=True)
        self.api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))
        self.url = url
        self.version = version
        self.stop = threading.Event()
        self.known: set[str] = set()

    def apply(self, name: str, obj: Mapping[str, Any] | None) -> None:
        """A change to `name`: the object now, or None if it is gone."""
        raise NotImplementedError

    def run(self) -> None:
        version = ""
        while not self.stop.is_set():
            if not version:  # at first, and after 410 Gone: every object as it is now
                listed = self.api.get(url=self.url, version=self.version)
                self.api.raise_for_status(listed)
                body = listed.json()
                items = {obj["metadata"]["name"]: obj for obj in body["items"]}
                for name in self.known - set(items):
                    self.apply(name, None)
                for name, obj in items.items():
                    self.apply(name, obj)
                self.known = set(items)
                version = body["metadata"]["resourceVersion"]
            version = self._watch(version)

    def _watch(self, version: str) -> str:
        """One watch from `version`, a second long so that `stop` is heard; where the next starts."""
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
        with self.api.get(url=self.url, version=self.version, params=params, stream=True, timeout=10) as response:
            self.api.raise_for_status(response)
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    return "" if obj.get("code") == 410 else version
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    name = obj["metadata"]["name"]
                    gone = event["type"] == "DELETED"
                    (self.known.discard if gone else self.known.add)(name)
                    self.apply(name, None if gone else obj)
        return version


class Duplicates(Watch):
    """Watches the Nodes and, after every change the API server makes to one,
    looks for a subnet on two Nodes: every state the Nodes went through, in
    order, not samples of them. Remembers when each Node's subnets last
    changed, as the watch delivered it (no earlier than the change)."""

    def __init__(self, cluster: KubeCluster) -> None:
        super().__init__(cluster, "nodes", "v1")
        self.events = 0  # changes looked at
        self.seen: list[dict[str, list[str]]] = []
        self.carried: dict[str, set[str]] = {}  # Node -> its subnets
        self.holders: dict[str, set[str]] = defaultdict(set)  # subnet -> the Nodes carrying it
        self.changed: dict[str, float] = {}  # Node -> monotonic time its subnets last changed

    def apply(self, name: str, obj: Mapping[str, Any] | None) -> None:
        self._apply(name, subnets_carried(obj) if obj is not None else set())

    def _apply(self, name: str, subnets: set[str]) -> None:
        self.events += 1
        before = self.carried.pop(name, set())
        if before != subnets:
            self.changed[name] = time.monotonic()
        for subnet in before - subnets:
            self.holders[subnet].discard(name)
        if subnets:
            self.carried[name] = subnets
        for subnet in subnets:
            self.holders[subnet].add(name)
            if len(self.holders[subnet]) > 1:
                self.seen.append({subnet: sorted(self.holders[subnet])})


class RecordChanges(Watch):
    """Watches the NodeSubnets: when each Network's records last changed (one
    made, deleted or given another Node), as the watch delivered it."""

    def __init__(self, cluster: KubeCluster) -> None:
        super().__init__(cluster, "nodesubnets", NodeSubnet.version)
        self.held: dict[str, tuple[Key, str, str]] = {}  # record -> its Network, its Node, its subnet
        self.changed: dict[Key, float] = {}  # Network -> monotonic time

    def apply(self, name: str, obj: Mapping[str, Any] | None) -> None:
        before = self.held.pop(name, None)
        now = None
        if obj is not None:
            spec = obj["spec"]
            network = (spec["network"]["namespace"], spec["network"]["name"])
            now = self.held[name] = (network, spec["node"], spec["subnet"])
        if before != now:
            for held in (before, now):
                if held is not None:
                    self.changed[held[0]] = time.monotonic()


@contextlib.contextmanager
def writers(
    cluster: KubeCluster, namespace: str, where: Path, accounts: Sequence[str], env: Mapping[str, str] | None = None
) -> Iterator[list[Path]]:
    """Operators with no peering at all, each as the chart's ServiceAccount
    (made on first use); yields their log files."""
    procs = []
    logs = [where / f"{account}.log" for account in accounts]
    for account, log in zip(accounts, logs, strict=True):
        sa = where / f"{account}.kubeconfig"
        kubeconfig = (
            sa if sa.exists() else service_account_kubeconfig(cluster, namespace, account, chart_rules(cluster), where)
        )
        settings = {"KUBECONFIG": str(kubeconfig), "POD_NAME": account, "NETWORK_HTTP_PORT": "0", **(env or {})}
        cmd = [KOPF, "run", "-A", "--standalone", OPERATOR]
        with log.open("ab") as out:
            procs.append(subprocess.Popen(cmd, env={**os.environ, **settings}, stdout=out, stderr=subprocess.STDOUT))
    try:
        yield logs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        for log in logs:
            tail = log.read_text().splitlines()[-15:]
            print(f"--- {log.stem} (last lines)", *tail, sep="\n")


@pytest.fixture
def two_writers(cluster: KubeCluster, namespace: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two operators with no peering at all, each as the chart's ServiceAccount."""
    accounts = ["writer-a", "writer-b"]
    with writers(cluster, namespace, tmp_path, accounts):
        yield accounts


@pytest.mark.slow
def test_two_writers_never_hand_out_a_subnet_twice(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, two_writers: list[str]
) -> None:
    if cluster.local is None:
        pytest.skip("reads the audit log of the control plane built here")
    since = time.time()
    make_network(api, namespace, "shared", {"cidr": "10.0.0.0/8"})
    total = 1000

    def agreed() -> dict[str, str] | None:
        on_records = record_subnets(api, namespace, "shared")
        return on_records if on_records == node_subnets(api, namespace, "shared") else None

    duplicates = Duplicates(cluster)
    duplicates.start()
    try:
        for round_ in range(3):
            names = [f"r{round_}-{i:04d}" for i in range(total)]
            random.Random(round_).shuffle(names)
            create_nodes(names)
            wait_for(
                f"round {round_}: every Node served",
                lambda: len(s := node_subnets(api, namespace, "shared")) == total and s,
                timeout=180,
                interval=1,
            )

            # Once both writers are done: every Node has one record, equal to its annotation.
            served = wait_for(f"round {round_}: records and annotations to agree", agreed, timeout=60, interval=1)
            assert len(served) == total
            assert len(set(served.values())) == total
            api.raise_for_status(api.delete(url="nodes", version="v1", timeout=300))
            wait_for("the round's NodeSubnets gone", lambda: not list(NodeSubnet.objects(api)), timeout=120, interval=1)
    finally:
        duplicates.stop.set()
        duplicates.join()
    print(f"\n{duplicates.events} Node changes looked at, duplicates seen: {duplicates.seen[:3]}")
    assert duplicates.events >= 2 * 3 * total  # each Node made, then annotated
    assert duplicates.seen == []
    # Both really wrote, and the chart's role was enough for both (the lost races read a NodeSubnet).
    for account in two_writers:
        entries = audit_entries(cluster, f"system:serviceaccount:{namespace}:{account}", since)
        assert [e for e in entries if e["verb"] == "create" and "/nodesubnets" in e["requestURI"]], account
        assert [e["requestURI"] for e in entries if e.get("responseStatus", {}).get("code") == 403] == []


# The bound: every Node of a burst served this long after the last join.
SERVED_WITHIN = 5.0


def lost_races(logs: Sequence[Path]) -> int:
    """Creates the writers lost to each other so far (their Nodes had to choose again)."""
    lost = re.compile(r": (\d+) subnets were taken meanwhile; choosing again")
    return sum(int(m[1]) for log in logs for m in lost.finditer(log.read_text()))


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.parametrize("lease", [False, True], ids=["no-lease", "shared-lease"])
def test_two_writers_serve_a_burst_of_joins_within_seconds(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, tmp_path: Path, lease: bool
) -> None:
    """Two replicas without peering (two installs, or a rollout with peering
    off), with no Lease or sharing one: 1,000 Nodes join a fresh Network in
    random order, three rounds with fresh replicas each. Every Node is served
    (its annotation, and the NodeSubnets agree) within SERVED_WITHIN of the
    last join, and no subnet is ever on two Nodes.

    When the last Node was served is read off watches of the Nodes and the
    NodeSubnets (the moment each took its final state, as the watch delivered
    it), not off the LISTs that confirm it: polling 2,000 objects would load
    the API server while it serves, and add its own period to the time."""
    total = 1000
    accounts = ["writer-a", "writer-b"]
    env = {"NETWORK_LEASE": "network-operator", "NETWORK_LEASE_NAMESPACE": namespace} if lease else {}
    duplicates, changes = Duplicates(cluster), RecordChanges(cluster)
    duplicates.start()
    changes.start()
    waited: list[float] = []
    try:
        for round_ in range(3):
            name = f"burst-{round_}"

            def listed(subnets: dict[str, str], name: str = name) -> bool:
                return node_subnets(api, namespace, name) == subnets == record_subnets(api, namespace, name)

            def watched(names: list[str], name: str = name) -> tuple[float, dict[str, str]] | None:
                # Every Node with one subnet, and the Network's records the same:
                # when the last piece of that state arrived, and the state.
                on_nodes = {n: duplicates.carried.get(n, set()) for n in names}
                on_records: dict[str, set[str]] = defaultdict(set)
                for of, node, subnet in list(changes.held.values()):
                    if of == (namespace, name):
                        on_records[node].add(subnet)
                if any(len(v) != 1 for v in on_nodes.values()) or on_records != on_nodes:
                    return None
                at = max(*(duplicates.changed[n] for n in names), changes.changed[namespace, name])
                return at, {n: s for n, (s,) in on_nodes.items()}

            def handled(logs: list[Path], name: str = name) -> bool:
                # Created by the first to see it, resumed by the other if it started watching after.
                lines = [f"[{namespace}/{name}] {what} is processed" for what in ("Creation", "Resuming")]
                return all(any(line in log.read_text() for line in lines) for log in logs)

            with writers(cluster, namespace, tmp_path, accounts, env) as logs:
                before = lost_races(logs)  # the log files of earlier rounds' writers
                make_network(api, namespace, name, {"cidr": "10.0.0.0/8"})
                wait_for("both writers to handle the new Network", lambda: handled(logs), timeout=90, interval=0.5)
                names = [f"b{round_}-{i:04d}" for i in range(total)]
                random.Random(round_).shuffle(names)
                first = time.monotonic()
                make_nodes(cluster, names)
                last = time.monotonic()
                at, subnets = wait_for(
                    f"round {round_}: every Node served", functools.partial(watched, names), timeout=180
                )
                waited.append(at - last)
                wait_for("LISTs to show the same", functools.partial(listed, subnets), timeout=30)
                took = f"{total} joins in {last - first:.1f} s"
                print(f"\nround {round_}: {took}; every Node served {waited[-1]:.1f} s after the last;", end=" ")
                print(f"{lost_races(logs) - before} creates lost to the other writer")
                assert len(set(subnets.values())) == total
            # The round's Nodes, records and Network removed once the writers
            # have stopped: a cleanup, about 12 s a round faster than beside them.
            remove_networks_and_nodes(api)
    finally:
        for watch in (duplicates, changes):
            watch.stop.set()
            watch.join()
    print(f"\nserved after the last join: {', '.join(f'{w:.1f} s' for w in waited)}; load {os.getloadavg()}")
    print(f"{duplicates.events} Node changes looked at, duplicates seen: {duplicates.seen[:3]}")
    assert duplicates.events >= 2 * 3 * total  # each Node made, then annotated
    assert duplicates.seen == []
    assert max(waited) <= SERVED_WITHIN, waited


class Spy(Api):
    """The real API client, remembering every annotation it writes."""

    def __init__(self) -> None:
        super().__init__(load_login(), Metrics())
        self.annotated: list[tuple[str, str | None]] = []

    async def patch_node(
        self, node: str, annotations: Mapping[str, str | None], pod_cidrs: Sequence[str] = ()
    ) -> bool | None:
        self.annotated += [(node, annotation.subnet_of(value)) for value in annotations.values()]
        return await super().patch_node(node, annotations, pod_cidrs)


def test_the_loser_of_a_create_race_takes_another_subnet(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """Two allocators that each know only their own Node choose the same subnet
    at the same moment: one NodeSubnet is created, the other allocator gets
    AlreadyExists, picks the next subnet, and never writes the taken one."""
    nodes = {name: make_node(name).obj for name in ("left", "right")}
    net = make_network(api, namespace, "race", {"cidr": "10.77.0.0/16"}).obj
    key = (namespace, "race")
    spies = {name: Spy() for name in nodes}

    async def race() -> None:
        engines = {}
        for name, spy in spies.items():
            engine = Engine(spy, Metrics(), lambda *_: None, logging.getLogger("race"), relist_every=3600)
            engine.nodes.put(node_view(nodes[name]))  # each knows only its own Node
            engine.bind({key: [network_view(net)]})
            engines[name] = engine
        try:
            await asyncio.gather(*(e.request(key) for e in engines.values()))
            await asyncio.gather(*(e.queue.drained() for e in engines.values()))
        finally:
            for spy in spies.values():
                await spy.close()

    asyncio.run(race())
    records = record_subnets(api, namespace, "race")
    assert sorted(records.values()) == ["10.77.1.0/24", "10.77.2.0/24"]
    assert node_subnets(api, namespace, "race") == records
    winner = next(n for n, s in records.items() if s == "10.77.1.0/24")
    loser = next(n for n in nodes if n != winner)
    assert spies[loser].annotated == [(loser, "10.77.2.0/24")]  # the taken subnet never reached a Node


def test_a_second_writers_duplicate_is_deleted_and_its_subnet_rests_but_a_record_keeps_it(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """Node x has two records, as two writers can leave it: the younger one is
    deleted, and its subnet is not handed to the next Node (the other writer's
    PATCH may still be on its way). Once a record holds that subnet again (a
    writer that never saw the duplicate), its Node keeps it."""
    nodes = {name: make_node(name).obj for name in ("x", "y", "z")}
    net = make_network(api, namespace, "dup", {"cidr": "10.78.0.0/16"}).obj
    key = (namespace, "dup")

    def record(subnet: str, node: str) -> dict[str, Any]:
        body = records.body(
            ipaddress.ip_network(subnet), "10.78.0.1", node, nodes[node]["metadata"]["uid"], key, net["metadata"]["uid"]
        )
        made = NodeSubnet(api, body)
        made.create()
        obj: dict[str, Any] = made.obj
        return obj

    older = record("10.78.1.0/24", "x")
    time.sleep(1.1)  # creationTimestamp has a one-second resolution
    younger = record("10.78.2.0/24", "x")
    spy = Spy()

    async def run() -> None:
        engine = Engine(spy, Metrics(), lambda *_: None, logging.getLogger("dup"), relist_every=3600)
        engine.bind({key: [network_view(net)]})
        for made in (older, younger):
            await engine.feed.record_event("ADDED", made)
        engine.nodes.put(node_view(nodes["x"]))
        try:
            await engine.request(key)
            await engine.queue.drained()
            assert record_subnets(api, namespace, "dup") == {"x": "10.78.1.0/24"}
            await engine.feed.node_event("y", "ADDED", nodes["y"])  # a new Node: not the resting subnet
            await engine.queue.drained()
            assert record_subnets(api, namespace, "dup")["y"] == "10.78.3.0/24"
            # Another writer, which never saw the duplicate, gives it to z.
            await engine.feed.record_event("ADDED", record("10.78.2.0/24", "z"))
            await engine.feed.node_event("z", "ADDED", nodes["z"])
            for _ in range(3):
                await engine.request(key)
                await engine.queue.drained()
        finally:
            await spy.close()

    asyncio.run(run())
    expected = {"x": "10.78.1.0/24", "y": "10.78.3.0/24", "z": "10.78.2.0/24"}
    assert record_subnets(api, namespace, "dup") == expected
    assert node_subnets(api, namespace, "dup") == expected
    assert ("z", "10.78.2.0/24") in spy.annotated
    assert [subnet for node, subnet in spy.annotated if node == "z"] == ["10.78.2.0/24"]  # never another


def _comparable(network: dict[str, Any]) -> str:
    """The Network's fields, with every number and timestamp the same width
    (managedFields aside: their order follows who wrote last)."""
    meta = {k: v for k, v in network["metadata"].items() if k != "managedFields"}
    return re.sub(r"\d+", "0", json.dumps({**network, "metadata": meta}, sort_keys=True))


@pytest.mark.slow
def test_five_thousand_nodes_keep_the_network_small_and_a_restart_writes_nothing(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str
) -> None:
    if cluster.local is None:
        pytest.skip("counts writes in the audit log of the control plane built here")
    total = 5000
    create_nodes([f"s-{i:04d}" for i in range(5)])
    make_network(api, namespace, "big", {"cidr": "10.0.0.0/8"})
    with running_operator():
        # Kopf records the handled spec after the handler that wrote the status returns.
        small = wait_network(
            api,
            namespace,
            "big",
            "5 allocated, and the create handled",
            lambda n: (
                n.get("status", {}).get("allocated") == 5
                and "samplecrd.k8s.io/last-handled-configuration" in n["metadata"].get("annotations", {})
            ),
        )
        create_nodes([f"s-{i:04d}" for i in range(5, total)])
        large = wait_network(
            api,
            namespace,
            "big",
            f"{total} allocated",
            lambda n: n.get("status", {}).get("allocated") == total,
            timeout=240,
        )
    assert len(record_subnets(api, namespace, "big")) == total
    small_size, large_size = len(json.dumps(small)), len(json.dumps(large))
    print(f"\nNetwork object: {small_size} bytes at 5 Nodes, {large_size} bytes at {total}")
    assert _comparable(small) == _comparable(large)  # the same fields, only counts differ
    assert large_size - small_size < 20

    since = time.time()
    with running_operator():
        wait_for("resumed", network_ready_with(api, namespace, "big", "True", "Allocated"))
        time.sleep(8)  # startup, the resume reconcile and two resyncs
    writes = [f"{e['verb']} {e['requestURI']}" for e in audit_entries(cluster, "admin", since) if e["verb"] in WRITES]
    # Kopf's own bookkeeping on the Network (its finalizer is already there) is no write either.
    assert writes == []


def test_an_upgrade_turns_annotations_and_status_into_nodesubnets_moving_no_node(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """What an older version left: subnets in Node annotations and in
    status.allocations (one Node lost its annotation), no NodeSubnet."""
    key = annotation.key_for(namespace, "old")
    old = {"n1": "10.88.5.0/24", "n2": "10.88.9.0/24"}
    for node, subnet in old.items():
        make_node(node, annotations={key: annotation.render(namespace, "old", subnet, "10.88.0.1")})
    make_node("n3")  # its annotation was lost; status.allocations still has it
    make_node("n4")  # new
    net = make_network(api, namespace, "old", {"cidr": "10.88.0.0/16"})
    remembered = [{"node": n, "subnet": s} for n, s in [*old.items(), ("n3", "10.88.7.0/24")]]
    net.patch({"status": {"allocations": remembered}}, subresource="status")
    assert get_network(api, namespace, "old")["status"]["allocations"] == remembered
    since = time.time()
    with running_operator():
        wait_for("ready", network_ready_with(api, namespace, "old", "True", "Allocated"))
        expected = {**old, "n3": "10.88.7.0/24", "n4": "10.88.1.0/24"}
        wait_for("NodeSubnets for all", lambda: record_subnets(api, namespace, "old") == expected)
        assert node_subnets(api, namespace, "old") == expected
        after = wait_network(api, namespace, "old", "the old list gone", lambda n: "allocations" not in n["status"])
    assert after["status"]["allocated"] == 4
    patched = {e["objectRef"]["name"] for e in audit_entries(cluster, "admin", since) if e["verb"] == "patch"}
    assert not patched & set(old), "a Node whose annotation was right was written"
