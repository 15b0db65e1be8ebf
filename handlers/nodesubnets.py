"""NodeSubnets: Kopf's watch events feed the engine's record store.

Only `on.event`, so Kopf writes nothing to them (no finalizers, no state).
Events of the operator's own writes cost nothing; a NodeSubnet deleted or
made by anyone else reconciles its Network.
"""

from __future__ import annotations

from typing import Any

import kopf

from handlers.networks import engine_of
from netpool.names import GROUP, NODESUBNETS, VERSION


@kopf.on.event(GROUP, VERSION, NODESUBNETS, id="nodesubnet-event")
async def nodesubnet_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    await engine_of(memo, kwargs).record_event(type, body)
