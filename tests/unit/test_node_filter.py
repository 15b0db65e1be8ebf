"""The filter in front of the Node handler (`Feed.concerns`, Kopf's `when=`):
an event it turns away is one the handler would have done nothing with."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from controller.feed import Feed
from controller.kube import Api
from controller.metrics import Metrics
from netpool import annotation
from netpool.names import Key
from netpool.views import node_view

KEY = annotation.key_for("default", "pool")
NET: Key = ("default", "pool")
SUBNET = '{"network":"default/pool","subnet":"10.0.1.0/24"}'


def node(
    name: str = "n1",
    labels: dict[str, str] | None = None,
    ours: str | None = None,
    cidrs: tuple[str, ...] = (),
    heartbeat: str = "t0",
    uid: str = "u1",
) -> dict[str, Any]:
    annotations = {"node.alpha.kubernetes.io/ttl": "0"} | ({KEY: ours} if ours else {})
    return {
        "metadata": {"name": name, "uid": uid, "labels": labels or {}, "annotations": annotations},
        "spec": {"podCIDRs": list(cidrs)},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}],
            "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}],
        },
    }


def feed() -> tuple[Feed, list[Key]]:
    requested: list[Key] = []

    async def request(key: Key) -> None:
        requested.append(key)

    metrics = Metrics()
    f = Feed(cast(Api, None), metrics, logging.getLogger("test"), request, lambda old, new: [NET], relist_every=3600)
    return f, requested


def test_a_kubelets_status_report_is_turned_away() -> None:
    f, _ = feed()
    f.nodes.put(node_view(node(labels={"pool": "a"}, ours=SUBNET)))
    assert not f.concerns("n1", "MODIFIED", node(labels={"pool": "a"}, ours=SUBNET, heartbeat="t1"))


def test_what_the_cache_keeps_changing_goes_through() -> None:
    f, _ = feed()
    f.nodes.put(node_view(node(labels={"pool": "a"}, ours=SUBNET)))
    assert f.concerns("n1", "MODIFIED", node(labels={"pool": "b"}, ours=SUBNET))
    assert f.concerns("n1", "MODIFIED", node(labels={"pool": "a"}))
    assert f.concerns("n1", "MODIFIED", node(labels={"pool": "a"}, ours=SUBNET, cidrs=("10.0.1.0/24",)))
    assert f.concerns("n1", "MODIFIED", node(labels={"pool": "a"}, ours=SUBNET, uid="u2"))


def test_listing_added_deleted_unknown_and_gone_nodes_go_through() -> None:
    f, _ = feed()
    body = node()
    f.nodes.put(node_view(body))
    # Kopf's listing (type None) drives the re-list; ADDED logs; DELETED releases.
    assert all(f.concerns("n1", kind, body) for kind in (None, "ADDED", "DELETED"))
    assert f.concerns("n2", "MODIFIED", node(name="n2"))  # not in the cache
    f.gone.add("n1")
    assert f.concerns("n1", "MODIFIED", body)


BODIES = st.builds(
    node,
    labels=st.sampled_from([None, {"pool": "a"}, {"pool": "b"}]),
    ours=st.sampled_from([None, SUBNET]),
    cidrs=st.sampled_from([(), ("10.0.1.0/24",)]),
    heartbeat=st.sampled_from(["t0", "t1"]),
    uid=st.sampled_from(["u1", "u2"]),
)


@given(
    known=st.one_of(st.none(), BODIES),
    event=BODIES,
    kind=st.sampled_from([None, "ADDED", "MODIFIED", "DELETED"]),
    gone=st.booleans(),
)
def test_an_event_turned_away_would_change_nothing_and_request_nothing(
    known: dict[str, Any] | None, event: dict[str, Any], kind: str | None, gone: bool
) -> None:
    f, requested = feed()
    if known is not None:
        f.nodes.put(node_view(known))
    if gone:
        f.gone.add("n1")
    if f.concerns("n1", kind, event):
        return
    before, gone_before = f.nodes.get("n1"), set(f.gone)
    asyncio.run(f.node_event("n1", kind, event))
    assert requested == []
    assert f.nodes.get("n1") == before
    assert f.gone == gone_before
