"""Nodes: Kopf's watch events feed the engine's Node cache (the seed's informer callbacks).

Only `on.event` watches Nodes, so nothing is written to them: change
handlers, timers or daemons would put Kopf's finalizers and state
annotations on every Node. The cache is not a `@kopf.index`: see
netpool/cache.py for why. A filter keeps the events that change nothing the
operator keeps (a kubelet's status reports) away from the handler.
"""

from __future__ import annotations

from typing import Any

import kopf

from controller.engine import Engine
from handlers.networks import engine_of


def _concerns(type: str | None, body: kopf.Body, name: str, memo: kopf.Memo, **_: Any) -> bool:
    """Kopf skips the handler for events this says nothing about: a kubelet's
    status report changes nothing the operator keeps (controller/feed.py)."""
    engine: Engine | None = memo.get("engine")
    return engine is None or engine.feed.concerns(name, type, body)


@kopf.on.event("", "v1", "nodes", id="node-event", when=_concerns)
async def node_event(type: str | None, body: kopf.Body, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await engine_of(memo, kwargs).node_event(name, type, body)
