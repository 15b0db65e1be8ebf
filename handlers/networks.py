"""Networks: create/update/resume reconcile, delete releases, a timer resyncs."""

from __future__ import annotations

from typing import Any

import kopf

from controller import backoff
from controller.config import Config
from controller.engine import Engine
from netpool.names import GROUP, NETWORKS, VERSION, Key
from netpool.views import NetworkView, network_view

# Read at import: Kopf fixes a timer's interval when the handler is registered.
RESYNC_SECONDS = Config.from_env().resync_seconds


def engine_of(memo: kopf.Memo, kwargs: dict[str, Any]) -> Engine:
    """Kopf hands its indexes (by id) to handlers only; each passes them on."""
    engine: Engine = memo.engine
    engine.bind(kwargs["networks"])
    return engine


@kopf.index(GROUP, VERSION, NETWORKS, id="networks")
async def networks_index(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Key, NetworkView]:
    return {(namespace or "", name): network_view(body)}


@kopf.on.resume(GROUP, VERSION, NETWORKS, id="resume")
async def resume(namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    # At startup every Network resumes: each reconciles itself.
    await engine_of(memo, kwargs).request((namespace or "", name))


@kopf.on.create(GROUP, VERSION, NETWORKS, id="create")
@kopf.on.update(GROUP, VERSION, NETWORKS, field="spec", id="update")
async def reconcile(namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    # A new or changed cidr can start or end an overlap with any other Network.
    await engine_of(memo, kwargs).request_all(first=(namespace or "", name))


# A failed reconcile is retried by the engine's workqueue on its short
# backoff, whatever asked for it; `backoff` only covers a failure before that.
@kopf.timer(
    GROUP,
    VERSION,
    NETWORKS,
    id="resync",
    interval=RESYNC_SECONDS,
    initial_delay=RESYNC_SECONDS,
    backoff=backoff.START,
)
async def resync(namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    await engine_of(memo, kwargs).request((namespace or "", name), verify=True)


@kopf.on.delete(GROUP, VERSION, NETWORKS, id="delete")
async def delete(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    retry: int,
    **kwargs: Any,
) -> None:
    engine = engine_of(memo, kwargs)
    try:
        released = await engine.release((namespace or "", name))
    except Exception as e:
        # Kopf's default would wait 60 s; the finalizer holds the Network meanwhile.
        raise kopf.TemporaryError(f"release failed: {e}", delay=backoff.delay(retry + 1)) from e
    logger.info("released %d node subnets", released)
    # A younger Network this one overlapped may now be served.
    await engine.request_all()
