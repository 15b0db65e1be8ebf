"""The HTTP under the operator's API calls: raw JSON over aiohttp, logged in
as controller/login.py says.

aiohttp is Kopf's own HTTP stack, so the requests share Kopf's event loop and
need no worker threads. Writes are counted and failures counted by resource
and status (see controller/metrics.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp

from controller.login import Login
from controller.metrics import Metrics

# Requests in flight at once. Each waits on the API server most of its time;
# thousands of Node patches need many at once.
CONCURRENCY = 32
# Connections beyond CONCURRENCY for the Lease's own requests, which take no
# slot: a renewal queued behind a burst of writes came back after the renew
# deadline, so the holder kept the Lease renewed (no other replica could take
# it) while refusing every write of its own (controller/lease.py).
LEASE_CONNECTIONS = 2
# Connections beyond those for the operator's own watch (controller/subnetwatch.py),
# which holds one for minutes: it takes no slot either, so it never holds up
# a request, and none holds it up.
WATCH_CONNECTIONS = 1
# How long a reading of the login serves (tokens are rotated in hours and the
# old one stays valid for a while).
AUTH_SECONDS = 10.0
# No request waits forever on a silent connection; a LIST page of kubelet
# Nodes takes well under this.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)

# The annotation of the BOOKMARK that ends a watch's initial events.
_INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_log = logging.getLogger("network-operator")

Guard = Callable[[str, str], None]  # (method, path): raises if the request must not go out


class ApiException(Exception):
    """An answer of the API server other than 2xx."""

    def __init__(self, status: int = 0, reason: str | None = None, body: str = "") -> None:
        super().__init__(status, reason, body)
        self.status, self.reason, self.body = status, reason, body

    def __str__(self) -> str:
        return f"({self.status}) {self.reason}: {self.body}" if self.body else f"({self.status}) {self.reason}"


def _tls(login: Login) -> ssl.SSLContext:
    ca = base64.b64decode(login.ca_data).decode() if login.ca_data else None
    context = ssl.create_default_context(cafile=login.ca_path, cadata=ca)
    if login.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if login.cert_path:
        context.load_cert_chain(login.cert_path, login.key_path)
    elif login.cert_data and login.key_data:
        # ssl reads a certificate from files only: written for that moment, in a folder only we can read.
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "client.crt", Path(folder) / "client.key"
            cert.write_bytes(base64.b64decode(login.cert_data))
            key.write_bytes(base64.b64decode(login.key_data))
            context.load_cert_chain(cert, key)
    return context


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of a streamed answer, however long (aiohttp's own line
    reader refuses a line longer than its buffer)."""
    rest = b""
    async for chunk in content.iter_any():
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            if line:
                yield line
    if rest:
        yield rest


class Transport:
    def __init__(self, login: Login, metrics: Metrics) -> None:
        self.login = login
        self.metrics = metrics
        self._tls = _tls(login)
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._auth = ""
        self._auth_at = -math.inf

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _authorization(self) -> str:
        """The login's credentials as a header, read again every
        AUTH_SECONDS (a pod's token file is rotated, and a read per request
        would cost a file read each)."""
        now = time.monotonic()
        if now - self._auth_at >= AUTH_SECONDS:
            token = self.login.token()
            if token:
                self._auth = f"Bearer {token}"
            elif self.login.username is not None:
                basic = f"{self.login.username}:{self.login.password or ''}".encode()
                self._auth = f"Basic {base64.b64encode(basic).decode()}"
            else:
                self._auth = ""
            self._auth_at = now
        return self._auth

    def _connection(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        """The session of the running loop (made on first use: a session
        belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            connector = aiohttp.TCPConnector(limit=CONCURRENCY + LEASE_CONNECTIONS + WATCH_CONNECTIONS, ssl=self._tls)
            self._session = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT)
            self._slots = asyncio.Semaphore(CONCURRENCY)
        assert self._slots is not None
        return self._session, self._slots

    async def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        guard: Guard | None = None,
        answer: bool = True,
        slotted: bool = True,
    ) -> Any:
        """The parsed answer; with `answer=False` only True (the answer to a
        Node PATCH is the whole Node, some 12 KB, and parsing it cost a tenth
        of the operator's CPU in a burst). `slotted=False` is the Lease's own
        requests: never queued behind other requests."""
        session, slots = self._connection()
        async with slots if slotted else contextlib.nullcontext():
            # Checked once a connection is free, just before the request: a write
            # queued behind others must not go out once the operator stopped or
            # lost the Lease.
            if guard is not None:
                guard(method, path)
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"
            authorization = self._authorization()
            if authorization:
                headers["Authorization"] = authorization
            async with session.request(
                method,
                self.login.server + path,
                params=[(k, str(v)) for k, v in query or []],
                data=json.dumps(body) if body is not None else None,
                headers=headers,
            ) as resp:
                data = await resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(resp.status, resp.reason, data.decode(errors="replace"))
        if not answer:
            return True
        return json.loads(data) if data else None

    @contextlib.asynccontextmanager
    async def stream(
        self, resource: str, path: str, query: list[tuple[str, str]], read_within: float
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A watch: a GET whose answer is read line by line for as long as it
        lasts. It takes no request slot (a watch lasts minutes: it would hold
        one for all that time), and its connection is one of
        WATCH_CONNECTIONS. A status other than 200 raises ApiException, as
        `request` does; `read_within` seconds without a byte end it
        (TimeoutError)."""
        session, _ = self._connection()
        headers = {"Accept": "application/json"}
        if authorization := self._authorization():
            headers["Authorization"] = authorization
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=_TIMEOUT.sock_connect, sock_read=read_within)
        async with session.get(self.login.server + path, params=query, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                body = (await resp.read()).decode(errors="replace")
                self.metrics.api_errors.labels(resource, str(resp.status)).inc()
                raise ApiException(resp.status, resp.reason, body)
            yield _lines(resp.content)

    async def streams_initial_events(self, path: str, within: float) -> bool:
        """Whether the API server streams a watch's initial state in place of
        a LIST (`sendInitialEvents`, Kubernetes' watch-list): a watch of the
        collection at `path` that matches nothing must end its (empty)
        initial events with a BOOKMARK that says so. A server without it
        refuses the parameter, or ignores it and sends no such BOOKMARK."""
        session, _ = self._connection()
        query = {
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "fieldSelector": "metadata.name=.",  # no object has this name
            "timeoutSeconds": str(math.ceil(within)),
        }
        headers = {"Accept": "application/json"}
        if authorization := self._authorization():
            headers["Authorization"] = authorization
        try:
            async with (
                asyncio.timeout(within + 5),
                session.get(self.login.server + path, params=query, headers=headers) as resp,
            ):
                if resp.status != 200:
                    return False
                async for line in resp.content:
                    event = json.loads(line)
                    annotations = (event.get("object") or {}).get("metadata", {}).get("annotations") or {}
                    if event.get("type") == "BOOKMARK" and annotations.get(_INITIAL_EVENTS_END) == "true":
                        return True
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            _log.warning("could not tell whether the API server streams initial events (%s: %s)", type(e).__name__, e)
        return False

    async def counted(self, resource: str, write: bool, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        """One request, counted; None if it fails with the `expected` status."""
        if write:
            self.metrics.api_writes.labels(resource).inc()
        try:
            return await self.request(method, path, **kwargs)
        except ApiException as e:
            if e.status == expected:
                return None
            self.metrics.api_errors.labels(resource, str(e.status)).inc()
            raise

    async def lease_request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any] | str | None:
        """The Lease's own calls (controller/lease.py): never guarded; None for 404, "conflict" for 409."""
        try:
            answer = await self.counted("leases", method != "GET", method, path, 404, body=body, slotted=False)
        except ApiException as e:
            if e.status == 409:
                return "conflict"
            raise
        return cast(dict[str, Any] | None, answer)
