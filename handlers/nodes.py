"""Nodes: an index (the seed's Node Lister) and an event handler (its informer callbacks).

Only `on.event` and an index watch Nodes: they write nothing to Nodes. Change
handlers, timers or daemons would put Kopf's finalizers and state annotations
on every Node.
"""

from __future__ import annotations

from typing import Any

import kopf

from handlers.networks import engine_of
from netpool.views import NodeView, node_view


@kopf.index("", "v1", "nodes", id="nodes")
async def nodes_index(body: kopf.Body, name: str, **_: Any) -> dict[str, NodeView]:
    return {name: node_view(body)}


@kopf.on.event("", "v1", "nodes", id="node-event")
async def node_event(
    type: str,
    body: kopf.Body,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    engine = engine_of(memo, kwargs)
    engine.log_node_list_once()
    await engine.node_event(name, deleted=type == "DELETED", body=body)
