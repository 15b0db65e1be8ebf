"""Hand edits of Node annotations among many served Nodes: the NodeSubnets are
the truth, so every edited Node gets its own subnet back, and a Node whose
annotation agrees with its record is never written because another Node's
annotation claims its subnet, neither at once nor after a restart."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import threading
import time
from collections import Counter
from typing import Any

import pykube
import pytest

from netpool import annotation, records
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    QUICK_RESYNC,
    QUICK_RESYNC_ENV,
    KubeCluster,
    Network,
    NodeSubnet,
    audit_entries,
    make_network,
    network_ready_with,
    node_subnets,
    record_subnets,
    running_operator,
    wait_for,
    wait_subnets,
)
from tests.integration.test_records import make_nodes

# Enough Nodes that the owner, the copier and the others sit among many served
# ones (every round plans all of them), few enough that serving them, the
# edits and two operator starts stay well under a minute on a loaded 2-core
# machine (17-21 s per case measured there).
TOTAL = 200
RESYNC = float(os.environ["NETWORK_RESYNC_SECONDS"])  # 3 s, set in conftest.py
POOL = "10.30.0.0/16"  # 255 subnets of /24 beside the gateway's: room for all
WRITES = ("create", "update", "patch", "delete")


class Watch(threading.Thread):
    """Every 100 ms: the owner's annotation value and its NodeSubnets, and
    every Node holding more than one NodeSubnet."""

    def __init__(self, cluster: KubeCluster, owner: str, ann_key: str) -> None:
        super().__init__(daemon=True)
        self.api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))
        self.owner, self.ann_key = owner, ann_key
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.samples = 0
        self.owner_seen: list[tuple[str | None, list[str]]] = []  # (annotation, NodeSubnet names), each change
        self.doubles: list[dict[str, int]] = []

    def run(self) -> None:
        self.started = time.monotonic()
        while not self.stop.wait(0.1):
            # Plain requests: pykube's objects cost more CPU than the requests on a loaded machine.
            node = self.api.get(url=f"nodes/{self.owner}", version="v1")
            listed = self.api.get(url="nodesubnets", version=NodeSubnet.version)
            node.raise_for_status()
            listed.raise_for_status()
            value = (node.json()["metadata"].get("annotations") or {}).get(self.ann_key)
            every = listed.json()["items"]
            held = Counter(o["spec"]["node"] for o in every)
            mine = sorted(o["metadata"]["name"] for o in every if o["spec"]["node"] == self.owner)
            self.samples += 1
            if not self.owner_seen or self.owner_seen[-1] != (value, mine):
                self.owner_seen.append((value, mine))
            if doubles := {n: c for n, c in held.items() if c > 1}:
                self.doubles.append(doubles)


@pytest.mark.parametrize("pod_cidrs", [False, True], ids=["annotations", "podCIDRs"])
def test_a_copied_annotation_is_repaired_on_the_copier_and_never_touches_the_owner(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, pod_cidrs: bool
) -> None:
    """Without podCIDRs the owner's record alone keeps its subnet; with them
    its podCIDR pins the subnet too, and the record must keep it all the same."""
    if cluster.local is None:
        pytest.skip("reads the audit log of the control plane built here")
    names = [f"c-{i:04d}" for i in range(TOTAL)]
    copier, owner, deleted, garbled = names[4], names[152], names[77], names[121]
    key = annotation.key_for(namespace, "pool")
    make_nodes(cluster, names)
    make_network(api, namespace, "pool", {"cidr": POOL, "podCIDRs": pod_cidrs})

    def served() -> dict[str, str] | None:
        on_records = record_subnets(api, namespace, "pool")
        return on_records if len(on_records) == TOTAL and node_subnets(api, namespace, "pool") == on_records else None

    watch = Watch(cluster, owner, key)
    with running_operator():
        before = wait_for("every Node served and recorded", served, timeout=60, interval=0.5)
        wait_for("ready", network_ready_with(api, namespace, "pool", "True", "Allocated"))
        owner_node = pykube.Node.objects(api).get(name=owner).obj
        owner_value = owner_node["metadata"]["annotations"][key]
        assert owner_node["spec"].get("podCIDRs", []) == ([before[owner]] if pod_cidrs else [])
        owner_record = records.name_for(ipaddress.ip_network(before[owner]))
        # From here on nobody may write to the owner: its first write (being served) is behind us.
        since = time.time()
        watch.start()

        edits: dict[str, Any] = {
            copier: owner_value,  # now two Nodes claim the owner's subnet
            deleted: None,
            garbled: "{garbage",
        }

        def edit(node: str) -> None:
            pykube.Node.objects(api).get(name=node).patch({"metadata": {"annotations": {key: edits[node]}}})

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(edits)) as pool:
            list(pool.map(edit, edits))

        def repaired() -> bool:
            now = node_subnets(api, namespace, "pool")
            return all(now.get(n) == before[n] for n in edits)

        wait_for("every edited Node to carry its own subnet again", repaired, timeout=2 * RESYNC, interval=0.1)
        repair = time.monotonic() - started
        time.sleep(2 * RESYNC)  # two resyncs more: nothing may move afterwards either
        assert node_subnets(api, namespace, "pool") == before
        assert record_subnets(api, namespace, "pool") == before

    with running_operator():
        wait_for("ready again", network_ready_with(api, namespace, "pool", "True", "Allocated"))
        time.sleep(2 * RESYNC)  # the restart's reconcile and two resyncs, each with a LIST
    watch.stop.set()
    watch.join()

    assert node_subnets(api, namespace, "pool") == before
    assert record_subnets(api, namespace, "pool") == before
    elapsed = time.monotonic() - watch.started
    print(f"\nrepaired {repair:.1f} s after the edits; {watch.samples} samples in {elapsed:.1f} s")
    assert watch.samples > 50
    assert watch.owner_seen == [(owner_value, [owner_record])]
    assert watch.doubles == []
    writes = [
        f"{e['verb']} {e['requestURI']}"
        for e in audit_entries(cluster, "admin", since)
        if e["verb"] in WRITES and e.get("objectRef", {}).get("resource") == "nodes"
    ]
    assert [w for w in writes if f"/nodes/{owner}" in w] == []
    assert len(writes) >= len(edits)  # the log does show Node writes: the edits, and their repairs


def test_a_node_moved_off_a_newly_reserved_subnet_keeps_one_nodesubnet_and_stays_after_a_restart(
    api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    """A Node with a record moves only when its subnet stops being usable
    (here: reserved). Its old NodeSubnet goes once the Node carries the new
    one; left behind, the Node would hold two, and the restarted operator
    would keep the older and move the Node again."""
    for name in ("m1", "m2", "m3"):
        make_node(name)
    spec: dict[str, Any] = {"cidr": "10.31.0.0/16"}
    make_network(api, namespace, "pool", spec)
    with running_operator(env=QUICK_RESYNC_ENV):

        def served() -> dict[str, str] | None:
            on_records = record_subnets(api, namespace, "pool")
            return on_records if len(on_records) == 3 and node_subnets(api, namespace, "pool") == on_records else None

        before = wait_for("served", served)
        Network.objects(api, namespace=namespace).get(name="pool").patch({"spec": {"reserved": [before["m2"]]}})
        moved = wait_subnets(api, namespace, "pool", "m2 moved", lambda s: s.get("m2") not in (None, before["m2"]))
        wait_for("its old NodeSubnet gone", lambda: record_subnets(api, namespace, "pool") == moved)
        assert moved == {**before, "m2": moved["m2"]}
    with running_operator(env=QUICK_RESYNC_ENV):
        wait_for("ready again", network_ready_with(api, namespace, "pool", "True", "Allocated"))
        time.sleep(2 * QUICK_RESYNC + 1)  # the restart's reconcile and two resyncs
        assert record_subnets(api, namespace, "pool") == moved
        assert node_subnets(api, namespace, "pool") == moved
