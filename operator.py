"""The Network operator: `kopf run -A operator.py`.

Wiring only: settings, the API client and the engine at startup, cleanup at
exit, and the import that registers the handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

import handlers  # noqa: F401  (registers the handlers)
from handlers.engine import Engine
from handlers.kube import Api, load_config


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's state lives in annotations on Networks only; status.kopf would be
    # pruned by the structural schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="samplecrd.k8s.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="samplecrd.k8s.io")
    settings.persistence.finalizer = "samplecrd.k8s.io/network-operator"
    settings.posting.level = logging.INFO  # events: the seed's recorder
    # Node events are frequent and cheap; don't let them wait on batching.
    settings.queueing.idle_timeout = 0.5

    def post_event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        kopf.event(obj, type=type_, reason=reason, message=message)  # type: ignore[arg-type]

    client = load_config()
    memo.api_client = client
    memo.engine = Engine(Api(client), post_event, logging.getLogger("network-operator"))
    # Before any handler runs: nothing is handed out from a partial view of the Nodes.
    await memo.engine.sync_nodes()


class _QuietRoutine(logging.Filter):
    """Kopf logs every successful handler at INFO. For Node events (one per
    kubelet status update, thousands a minute in a big cluster) and resync
    ticks that is noise; failures are still logged."""

    ROUTINE = frozenset({"Handler 'node-event' succeeded.", "Timer 'resync' succeeded."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.ROUTINE


logging.getLogger("kopf.objects").addFilter(_QuietRoutine())


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf's own login, without a client library: the pod's ServiceAccount, else $KUBECONFIG."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    client = memo.get("api_client")
    if client is not None:
        client.close()
