"""The Network operator: `kopf run -A operator.py`.

Wiring only: settings, the API client, the engine and the HTTP server at
startup, cleanup at exit, and the import that registers the handlers.
Settings come from environment variables: see controller/config.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

import handlers  # registers the Node and Network handlers
from controller import backoff, kopflog, ready, web
from controller.config import Config
from controller.engine import Engine
from controller.kube import Api
from controller.lease import Lease
from controller.login import load as load_login
from controller.metrics import Metrics
from controller.writer import Writer
from netpool import names

if Config.from_env().webhook_port:
    # Kopf refuses to start with validation handlers and no webhook server:
    # register them only when there is one.
    import handlers.admission  # noqa: F401


class NetworkDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's diff base, built for Networks only. Kopf 1.45 builds one for every
    event of every watched resource: a deep copy of the whole object. Nodes
    have only an `on.event` handler, which never reads it, and a kubelet's
    Node weighs about 12 KB: the copy was a fifth of the operator's CPU under
    Node status heartbeats and in a burst (bench/profile.py)."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None) -> kopf.BodyEssence:
        if body.get("kind") == "Node":
            return cast(kopf.BodyEssence, {})
        return super().build(body=body, extra_fields=extra_fields)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    config = Config.from_env()
    memo.retries = retries = _kopf_settings(settings, config, logger)
    # Stopping, Kopf waits for its peering keep-alive's last write; should it
    # fail for good (a 403, an API server that is gone), retries without end
    # would hold the exit. A signal stops them (_stop_writing_first); in a
    # thread (KopfRunner, an embedding program) only Kopf's log tells.
    memo.stopping = kopflog.on_stopping(retries.stop)
    memo.stopping.attach()

    def post_event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        kopf.event(obj, type=type_, reason=reason, message=message)  # type: ignore[arg-type]

    metrics = Metrics()
    memo.api = api = Api(load_login(), metrics, page=config.list_page)
    log = logging.getLogger("network-operator")
    if config.lease:
        identity = f"{config.pod_name}_{uuid.uuid4().hex[:8]}"
        api.lease = Lease(api.transport.lease_request, config.lease_namespace, config.lease, identity, log)
        api.lease.start()
    # Kopf's peering starts only after the startup handlers: the filter sees its first word.
    memo.writer = metrics.writer = Writer(paused=bool(config.peering), lease=api.lease)
    memo.writer.attach()
    memo.engine = engine = Engine(api, metrics, post_event, log, relist_every=config.relist_seconds)
    # Before any handler runs: nothing is handed out from a partial view. The
    # NodeSubnet watch then follows the peering pause, as Kopf's watches do.
    await engine.start(memo.writer)
    _list_without_pages(settings, await api.streams_lists(), logger)
    _stop_writing_first(engine, retries, memo.writer, logger)
    if config.http_port:
        checks = [ready.api_answers(api)]
        if config.webhook_port:
            checks.append(ready.webhook_answers(config.webhook_address, config.webhook_port))
        memo.http = await web.serve(engine, config.http_address, config.http_port, checks)


def _kopf_settings(settings: kopf.OperatorSettings, config: Config, logger: kopf.Logger) -> backoff.Retries:
    """Kopf's settings; returns the retries of Kopf's own requests, to stop when the operator stops."""
    # Kopf's state lives in annotations on Networks only; status.kopf would be
    # pruned by the structural schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.KOPF_PREFIX)
    settings.persistence.diffbase_storage = NetworkDiffBase(prefix=names.KOPF_PREFIX)
    settings.persistence.finalizer = names.FINALIZER
    # Node events are frequent and cheap; don't let them wait on batching.
    settings.queueing.idle_timeout = 0.5
    # Kopf's own requests (its watches among them) retry on the operator's
    # short capped backoff (its default waits up to 21 s between attempts,
    # so a watch could reconnect that long after the API server is back),
    # and never give up while the operator runs: see backoff.Retries.
    settings.networking.error_backoffs = retries = backoff.Retries()
    # The CRDs are installed before the operator starts (the chart creates
    # them ahead of its Deployment, or they are applied from crds/), so
    # there is no need to watch CRDs, nor the permission to.
    settings.scanning.disabled = True
    if config.peering:
        # One writer: every replica joins the peering; the highest priority works.
        settings.peering.name = config.peering
        settings.peering.clusterwide = True
        settings.peering.mandatory = True
        settings.peering.standalone = False
        settings.peering.priority = config.peering_priority
        # Kopf's default is 60 s, for which a killed active replica blocks the
        # others; a live one refreshes its record every 1-5 s (lifetime less 5-10 s).
        settings.peering.lifetime = config.peering_lifetime
        logger.info("peering %r with priority %d", config.peering, config.peering_priority)
    if config.webhook_port:
        settings.admission.server = kopf.WebhookServer(
            addr=config.webhook_address,
            port=config.webhook_port,
            host=config.webhook_host,
            certfile=config.webhook_cert,
            pkeyfile=config.webhook_key,
            cafile=config.webhook_ca,
        )
        if config.webhook_managed:
            settings.admission.managed = config.webhook_managed
    return retries


def _list_without_pages(settings: kopf.OperatorSettings, streams: bool, logger: kopf.Logger) -> None:
    """How Kopf's watches start: never with a paged LIST.

    Kopf lists a watched resource before it watches it, and its listing
    does not survive a page's `continue` token expiring (410 Expired, once
    a list outlives a compaction of etcd): the watcher fails and takes the
    operator with it. A server that streams a watch's initial state
    (Kubernetes' watch-list) needs no LIST at all, and sends the objects one
    event at a time, so no page of thousands of Nodes is ever held either.
    Any other server is listed in one unpaged request, which has no token
    to expire, at the cost of holding the whole list once while it is read.
    """
    settings.watching.initial_streaming = streams
    settings.watching.chunk_size = None
    logger.info("watches start %s", "from streamed initial events" if streams else "from one unpaged LIST each")


def _stop_writing_first(engine: Engine, retries: backoff.Retries, writer: Writer, logger: kopf.Logger) -> None:
    """On SIGTERM or SIGINT, stop the engine's writes before Kopf's own shutdown.

    Kopf's shutdown removes this replica from the peering at once, while its
    handlers may still be in the middle of a reconcile: a standby would start
    writing alongside. Fenced first, the reconcile fails fast (its queued
    writes are refused without a request), so the process also exits in
    seconds in the middle of a burst. asyncio has no public getter for a
    signal's handler, so Kopf's is read from the loop; without one (Kopf not
    in the main thread, e.g. under KopfRunner) nothing changes.
    """
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()
    installed: dict[int, asyncio.Handle] = getattr(loop, "_signal_handlers", {})
    for sig in (signal.SIGTERM, signal.SIGINT):
        kopf_handler = installed.get(sig)
        if kopf_handler is None:
            continue

        def stop(sig: signal.Signals = sig, then: asyncio.Handle = kopf_handler) -> None:
            logger.info("%s: writes stopped; stopping", sig.name)
            engine.close()
            retries.stop()
            writer.stopped = True
            if engine.api.lease is not None:
                stopping.add(loop.create_task(engine.api.lease.stop(), name="give the Lease back"))
            then._run()

        loop.add_signal_handler(sig, stop)


class _QuietRoutine(logging.Filter):
    """Kopf logs every successful handler at INFO. For Node events (one per
    kubelet status update, thousands a minute in a big cluster) and resync
    ticks that is noise; failures are still logged."""

    ROUTINE = frozenset({"Handler 'node-event' succeeded.", "Timer 'resync' succeeded."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.ROUTINE


logging.getLogger("kopf.objects").addFilter(_QuietRoutine())


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """The operator's own client's login (controller/login.py): the pod's
    ServiceAccount at $KUBERNETES_SERVICE_HOST, else the kubeconfig."""
    found = load_login()
    token = found.token()
    return kopf.ConnectionInfo(
        server=found.server,
        ca_path=found.ca_path,
        ca_data=found.ca_data,
        insecure=found.insecure,
        certificate_path=found.cert_path,
        certificate_data=found.cert_data,
        private_key_path=found.key_path,
        private_key_data=found.key_data,
        scheme="Bearer" if token else None,
        token=token,
        username=found.username,
        password=found.password,
        default_namespace=found.namespace,
    )


@kopf.on.probe(id="nodes")
def nodes_cached(memo: kopf.Memo, **_: Any) -> int:
    """Reported by the liveness endpoint (`kopf run --liveness=...`)."""
    engine: Engine | None = memo.get("engine")
    return len(engine.nodes) if engine is not None else 0


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    writer: Writer | None = memo.get("writer")
    if writer is not None:
        writer.stopped = True
        writer.detach()
    retries: backoff.Retries | None = memo.get("retries")
    if retries is not None:
        retries.stop()
        memo.stopping.detach()
    engine: Engine | None = memo.get("engine")
    if engine is not None:
        engine.close()
        if engine.api.lease is not None:
            await engine.api.lease.stop()
    http = memo.get("http")
    if http is not None:
        await http.cleanup()
    api = memo.get("api")
    if api is not None:
        await api.close()
    # Kopf 1.45 does not close the watch stream of the Node watcher when it
    # stops it in the middle of a burst; it leaves a task that waits for a
    # pause, and holds the exit for Kopf's 5 s timeout on hung tasks. Closing the stream would cancel it; do that here.
    for task in asyncio.all_tasks():
        if task.get_name().startswith("pause-waiter for "):
            task.cancel()
