"""A proxy in front of the real API server that gives chosen requests the
answers an API server gives under stress: a status (429, 5xx), a wait, or a
connection dropped in the middle of the answer. Every other request, watches
included, goes through to the API server unchanged and streamed.

It listens on loopback with the API server's own certificate (valid for
127.0.0.1), so a copy of the kubeconfig with only the server's port changed
logs in through it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from tests.integration.support import KubeCluster

# What the proxy must not pass on: hop-by-hop headers, and those it sets itself.
_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade", "accept-encoding"}


@dataclasses.dataclass(frozen=True)
class Seen:
    """A request, as the proxy saw it."""

    method: str
    path: str
    query: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("true", "1")


@dataclasses.dataclass
class Fault:
    """What to do to the next `times` requests that `match`:
    - `status`: answer it with this status (a Kubernetes Status body);
    - `hold`: forward it only once this event is set;
    - `cut_after`: forward it, pass on this many bytes of the answer, drop the connection."""

    match: Callable[[Seen], bool]
    times: int = 1
    status: int | None = None
    hold: threading.Event | None = None
    cut_after: int | None = None
    hits: list[Seen] = dataclasses.field(default_factory=list)


class FaultProxy:
    def __init__(self, cluster: KubeCluster, where: Path) -> None:
        local = cluster.local
        assert local is not None, "needs the control plane built here (its certificate and CA)"
        self.upstream = local.server
        pki = local.root / "pki"
        self._client_tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
        self._source = cluster.kubeconfig
        self.kubeconfig = where / "kubeconfig-through-proxy"
        self._faults: list[Fault] = []
        self.requests: list[Seen] = []  # every request, in the order they came
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fault proxy")
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take(self, seen: Seen) -> Fault | None:
        with self._lock:
            self.requests.append(seen)
            for fault in self._faults:
                if fault.times > 0 and fault.match(seen):
                    fault.times -= 1
                    fault.hits.append(seen)
                    return fault
        return None

    # --- lifecycle ------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        config = yaml.safe_load(self._source.read_text())
        for entry in config["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.hold is not None:
                    fault.hold.set()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> int:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._client_tls), timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_tls)
        await site.start()
        server = site._server  # the bound port: TCPSite has no public getter for port 0
        assert isinstance(server, asyncio.base_events.Server)
        return int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        # Watches still relayed: their clients are gone.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    # --- requests -------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, dict(request.query))
        fault = self._take(seen)
        if fault is not None and fault.status is not None:
            return _status(fault.status)
        if fault is not None and fault.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, fault.hold.wait)
        return await self._forward(request, fault.cut_after if fault is not None else None)

    async def _forward(self, request: web.Request, cut_after: int | None) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read() if request.can_read_body else None
        try:
            return await self._relay(request, headers, body, cut_after)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            # The API server is away, or went away in the middle of its
            # answer: so does the proxy, as its client sees it.
            if request.transport is not None:
                request.transport.abort()
            return web.StreamResponse()

    async def _relay(
        self, request: web.Request, headers: dict[str, str], body: bytes | None, cut_after: int | None
    ) -> web.StreamResponse:
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body, auto_decompress=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.update({k: v for k, v in upstream.headers.items() if k.lower() not in _HOP})
            await response.prepare(request)
            sent = 0
            try:
                async for chunk in upstream.content.iter_any():
                    if cut_after is not None and sent + len(chunk) >= cut_after:
                        await response.write(chunk[: max(0, cut_after - sent)])
                        if request.transport is not None:
                            request.transport.abort()  # the connection drops in the middle of the answer
                        return response
                    await response.write(chunk)
                    sent += len(chunk)
            except (ConnectionError, asyncio.CancelledError):
                return response  # the client went away (a watch it closed)
            await response.write_eof()
            return response


def _status(code: int) -> web.Response:
    reasons = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 410: "Expired"}
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reasons.get(code, "Unknown"),
        "message": f"{code} from the fault proxy",
        "details": {"retryAfterSeconds": 1} if code == 429 else {},
    }
    headers = {"Retry-After": "1"} if code == 429 else {}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json", headers=headers)


def nodes(kind: str) -> Callable[[Seen], bool]:
    """Requests for the collection of Nodes: `watch` (Kopf's watch, its streamed
    initial events included), `kopf-list` (Kopf's unpaged LIST, on an API server
    that does not stream initial events), `list` (the operator's own LIST, any
    page) and `page` (a later page of it: it carries a continue token)."""

    def match(seen: Seen) -> bool:
        if seen.method != "GET" or seen.path != "/api/v1/nodes":
            return False
        paged = "limit" in seen.query
        return {
            "watch": seen.watch,
            "kopf-list": not seen.watch and not paged,
            "list": not seen.watch and paged,
            "page": not seen.watch and "continue" in seen.query,
        }[kind]

    return match


def nodesubnets(kind: str) -> Callable[[Seen], bool]:
    """Requests for the collection of NodeSubnets: `watch` (the operator's
    own watch, controller/subnetwatch.py) and `list` (its LISTs)."""

    def match(seen: Seen) -> bool:
        if seen.method != "GET" or seen.path != "/apis/samplecrd.k8s.io/v1/nodesubnets":
            return False
        return seen.watch if kind == "watch" else not seen.watch

    return match
