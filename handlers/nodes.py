"""Nodes: Kopf's watch events feed the engine's Node cache (the seed's informer callbacks).

Only `on.event` watches Nodes, so nothing is written to them: change
handlers, timers or daemons would put Kopf's finalizers and state
annotations on every Node. The cache is not a `@kopf.index`: see
netpool/cache.py for why.
"""

from __future__ import annotations

from typing import Any

import kopf

from handlers.networks import engine_of


@kopf.on.event("", "v1", "nodes", id="node-event")
async def node_event(type: str | None, body: kopf.Body, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await engine_of(memo, kwargs).node_event(name, type, body)
