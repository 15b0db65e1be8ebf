"""One writer at a time: a `coordination.k8s.io` Lease, held while writing.

Kopf's peering decides which replica handles events, but it is no lock. A
replica that sees a peer of higher priority arrive stops taking new events
and finishes the reconcile it is in, while the other starts its own; a
replica that stops leaves the peering before its handlers end. The Lease
closes those gaps the way kube-controller-manager's leader election does,
with shorter times so that a killed holder is replaced within 15 s:

- before its first write a replica takes the Lease, and renews it every
  RETRY seconds while it writes;
- it gives the Lease back once it has had no write in flight for IDLE
  seconds (so the replica Kopf made active can take it), and when stopping;
- another replica's Lease is taken over only once it has been seen unchanged
  for its `leaseDurationSeconds`, timed on the local monotonic clock, so no
  two machines' clocks are ever compared;
- a holder that could not renew for RENEW_DEADLINE seconds writes nothing
  more (a queued write is refused once a connection is free for it, before
  its request goes out: controller/kube.py) until it holds the Lease again;
  DURATION - RENEW_DEADLINE leaves the writes already on the wire time to
  land before anyone may take over.

A replica with nothing to write never writes the Lease, so a resync with
nothing to do still writes nothing. It reads it every RETRY seconds, though,
so that the expiry of a killed holder is timed from when it stopped renewing,
not from the moment another replica first needs to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

DURATION = 10  # leaseDurationSeconds (kube-controller-manager: 15)
RENEW_DEADLINE = 7.0  # (kube-controller-manager: 10)
RETRY = 1.0  # seconds between renewals, and between attempts to take it (kube-controller-manager: 2)
IDLE = 2.0  # seconds without a write before the Lease is given back

# (method, path, body) -> the answer, None for 404; raises on anything but 2xx, 404 and 409 (-> "conflict")
Request = Callable[[str, str, dict[str, Any] | None], Awaitable[dict[str, Any] | str | None]]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Lease:
    def __init__(self, request: Request, namespace: str, name: str, identity: str, logger: logging.Logger) -> None:
        self._request = request
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.logger = logger
        self._renewed: float | None = None  # monotonic time of the last renewal sent, while held
        self._object: dict[str, Any] | None = None  # the Lease as we last wrote it
        self._seen: tuple[str, float] | None = None  # another holder's resourceVersion, and since when
        self._holder = ""  # the holder last read, while not ours
        self._inflight = 0
        self._idle = asyncio.Event()  # set when no write is in flight
        self._last_write = 0.0
        self._taking = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopped = False
        self._stopping: asyncio.Future[None] | None = None  # the first stop(), which a second one waits for

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name=f"Lease {self.name} observer")

    async def _watch(self) -> None:
        while not self._stopped:
            if self._renewed is None:
                with contextlib.suppress(Exception):  # the API server may be away: try again
                    lease = await self._request("GET", self.path, None)
                    if isinstance(lease, dict):
                        self._observe(lease, time.monotonic())
            await asyncio.sleep(RETRY)

    def _observe(self, lease: dict[str, Any], at: float) -> None:
        """Time another holder's renewals: its Lease expires DURATION after the last change we saw."""
        version = lease["metadata"]["resourceVersion"]
        self._holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, at)

    def held_elsewhere(self) -> bool:
        """Whether another replica holds the Lease: it was renewed within its
        duration, as last read. Such a replica writes; this one does not."""
        seen = self._seen
        if self._renewed is not None or seen is None or self._holder in ("", self.identity):
            return False
        return time.monotonic() - seen[1] < DURATION

    def valid(self) -> bool:
        """Whether writes may go out now: held, and renewed within RENEW_DEADLINE."""
        renewed = self._renewed
        return not self._stopped and renewed is not None and time.monotonic() - renewed < RENEW_DEADLINE

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Around each write: wait until the Lease is ours."""
        self._inflight += 1
        self._idle.clear()
        try:
            if not self.valid():
                async with self._taking:
                    while not self.valid():
                        if self._stopped:
                            raise RuntimeError("the operator is stopping")
                        if not await self._take():
                            await asyncio.sleep(RETRY)
            yield
        finally:
            self._inflight -= 1
            self._last_write = time.monotonic()
            if not self._inflight:
                self._idle.set()

    async def _take(self) -> bool:
        sent = time.monotonic()
        lease = await self._request("GET", self.path, None)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name}}
            body["spec"] = self._spec({})
            made = await self._request("POST", self.collection, body)
            return isinstance(made, dict) and self._took(made, sent)
        assert isinstance(lease, dict)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            self._observe(lease, sent)  # renewed since we last looked: a full duration again
            assert self._seen is not None
            if sent - self._seen[1] < float(spec.get("leaseDurationSeconds") or DURATION):
                return False
        lease["spec"] = self._spec(spec)
        made = await self._request("PUT", self.path, lease)  # the resourceVersion makes it a compare-and-swap
        return isinstance(made, dict) and self._took(made, sent)

    def _spec(self, old: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        ours = old.get("holderIdentity") == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": DURATION,
            "acquireTime": old.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if ours else 1),
        }

    def _took(self, lease: dict[str, Any], sent: float) -> bool:
        self._object, self._renewed, self._seen = lease, sent, None
        self.logger.info("holding Lease %s", self.name)
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep(), name=f"Lease {self.name}")
        return True

    async def _keep(self) -> None:
        """Renew while writing; give back once idle; stop writing if renewals fail too long."""
        while self._renewed is not None and not self._stopped:
            await asyncio.sleep(RETRY)
            if self._inflight == 0 and time.monotonic() - self._last_write > IDLE:
                await self.release()
                return
            sent = time.monotonic()
            try:
                assert self._object is not None
                self._object["spec"] = self._spec(self._object["spec"])
                made = await self._request("PUT", self.path, self._object)
            except Exception as e:  # the API server is unreachable: keep trying until the deadline
                made = None
                self.logger.warning("renewing Lease %s failed: %s", self.name, e)
            if isinstance(made, dict):
                self._object, self._renewed = made, sent
            elif made == "conflict" or not self.valid():
                self._renewed = None  # taken over, or too late: writes wait to take it again
                self.logger.warning("lost Lease %s: writes wait until it is ours again", self.name)

    async def release(self) -> None:
        """Give the Lease back (the others may take it at once); nothing if not held."""
        if self._renewed is None or self._object is None:
            return
        self._renewed = None
        lease: dict[str, Any] | str | None = self._object
        self._object = None
        for _ in range(3):  # a renewal cut short may have changed it meanwhile: read it again
            if not isinstance(lease, dict) or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _now()}
            try:
                if await self._request("PUT", self.path, lease) != "conflict":
                    self.logger.info("released Lease %s", self.name)
                    return
                lease = await self._request("GET", self.path, None)
            except Exception as e:  # then it expires by itself
                self.logger.warning("releasing Lease %s failed: %s", self.name, e)
                return

    async def stop(self, wait: float = 2.0) -> None:
        """The operator is stopping: no more writes; once those in flight are done, give the Lease back.
        A second call (SIGTERM's, then the cleanup's) waits for the first to
        finish: the cleanup closes the connections next, and a release still
        on its way would fail (the Lease then expires by itself, and the
        next replica waits for it)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(wait))
        await asyncio.shield(self._stopping)

    async def _stop(self, wait: float) -> None:
        self._stopped = True
        if self._inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), wait)
        for task in (self._keeper, self._watcher):
            if task is not None:
                task.cancel()
        await self.release()
