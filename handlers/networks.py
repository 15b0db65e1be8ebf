"""Networks: create/update/resume reconcile, delete releases, a timer resyncs."""

from __future__ import annotations

import os
from typing import Any

import kopf

from handlers.kube import GROUP, PLURAL, VERSION
from netpool.views import NetworkView, network_view

# Read at import: Kopf fixes a timer's interval when the handler is registered.
RESYNC_SECONDS = float(os.environ.get("NETWORK_RESYNC_SECONDS", "30"))


@kopf.index(GROUP, VERSION, PLURAL, id="networks")
async def networks_index(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[tuple[str, str], NetworkView]:
    return {(namespace, name): network_view(body)}


@kopf.on.resume(GROUP, VERSION, PLURAL, id="resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="create")
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="update")
async def reconcile(
    namespace: str, name: str, memo: kopf.Memo,
    nodes: kopf.Index[str, Any], networks: kopf.Index[tuple[str, str], NetworkView], **_: Any,
) -> None:
    engine = memo.engine
    engine.bind(nodes, networks)
    engine.log_node_list_once()
    await engine.request_all(first=(namespace, name))


@kopf.timer(GROUP, VERSION, PLURAL, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(
    namespace: str, name: str, memo: kopf.Memo,
    nodes: kopf.Index[str, Any], networks: kopf.Index[tuple[str, str], NetworkView], **_: Any,
) -> None:
    engine = memo.engine
    engine.bind(nodes, networks)
    await engine.request((namespace, name), verify=True)


@kopf.on.delete(GROUP, VERSION, PLURAL, id="delete")
async def delete(
    namespace: str, name: str, memo: kopf.Memo, logger: kopf.Logger,
    nodes: kopf.Index[str, Any], networks: kopf.Index[tuple[str, str], NetworkView], **_: Any,
) -> None:
    engine = memo.engine
    engine.bind(nodes, networks)
    released = await engine.release((namespace, name))
    logger.info("released %d node subnets", released)
    # A younger Network this one overlapped may now be served.
    await engine.request_all()
