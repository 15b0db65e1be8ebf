"""The watch of NodeSubnets: the operator's own, outside Kopf.

NodeSubnets are the operator's own records, and most of their events are its
own creates coming back: 50,000 in a burst at 5,000 Nodes x 10 Networks.
Through Kopf each cost a worker, cause detection and a handler call, and Kopf
kept state for every object; here each costs a JSON decoding and a lookup in
the record store (controller/feed.py, `Feed.record_event`).

As client-go's reflector: LIST, then WATCH from the LIST's resourceVersion
with bookmarks, each event's resourceVersion remembered. Where it ends:
- the server closed it (its `timeoutSeconds`): watch again from there;
- 410 Gone (the resourceVersion was compacted away), as an HTTP status or
  an ERROR event: LIST again (the events in between are lost), then watch;
- another ERROR event: the same, after a backoff;
- 429, 5xx, 403, a dropped connection, a silent one: watch again from the
  last resourceVersion after a backoff (controller/backoff.py);
- Kopf's peering paused this replica: the stream is closed and nothing is
  applied until it resumes, then LIST and watch, as Kopf's own watches do.
The first watch starts from the startup LIST (`Feed.sync`), so nothing
between the two is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from controller import backoff
from controller.kube import SUBNETS
from controller.transport import ApiException

# How long the API server keeps one watch open: 5 to 10 minutes, spread as
# client-go's reflector spreads them, so replicas do not reconnect together.
WATCH_SECONDS = (300, 600)
# A watch with nothing to say still gets a BOOKMARK about every minute; this
# long without a byte, the connection is taken for dead.
SILENT_SECONDS = 90.0

Stream = Callable[
    [str, str, list[tuple[str, str]], float], contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]
]
Apply = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class Pause(Protocol):
    """Kopf's peering pause (controller/writer.py)."""

    @property
    def paused(self) -> bool: ...

    async def until(self, paused: bool) -> None:
        """Return once `paused` is this."""


class _Gone(Exception):
    """410 Gone: the watch's resourceVersion is older than etcd keeps."""


class _Failed(Exception):
    """An ERROR event other than 410: the watch's state is unknown, so LIST again."""


class _Paused(Exception):
    """Kopf's peering paused this replica."""


class SubnetWatch:
    def __init__(
        self,
        stream: Stream,
        apply: Apply,
        relist: Callable[[], Awaitable[str]],
        pause: Pause,
        logger: logging.Logger,
    ) -> None:
        self._stream = stream  # controller/transport.py: Transport.stream
        self._apply = apply  # Feed.record_event
        self._relist = relist  # LIST into the record store; its resourceVersion
        self._pause = pause
        self.logger = logger
        self.version = ""  # the last resourceVersion seen: where to watch from
        self._answered = False  # the last watch was answered (200)
        self._task: asyncio.Task[None] | None = None

    def start(self, version: str) -> None:
        """Watch from `version` (the startup LIST's) until closed."""
        self.version = version
        self._task = asyncio.get_running_loop().create_task(self.run(), name="watch NodeSubnets")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> None:
        failures = 0
        listed = bool(self.version)
        while True:
            if self._pause.paused:
                await self._pause.until(False)
                listed = False  # what happened meanwhile was not watched
            if not listed:
                try:
                    self.version = await self._relist()
                except Exception as e:
                    failures += 1
                    await self._back_off("listing NodeSubnets failed", e, failures)
                    continue
                listed = True
            try:
                await self._watch_unless_paused()
            except _Paused:
                continue
            except _Gone:
                # As client-go: LIST again at once; nothing else would bring the lost events.
                self.logger.info("the NodeSubnet watch's resourceVersion is gone (410); listing them again")
                listed, failures = False, 0
                continue
            except Exception as e:  # an error status, a dropped or silent connection, a garbled line
                # A watch that was answered and then failed starts the backoff afresh.
                failures = 1 if self._answered else failures + 1
                listed = listed and not isinstance(e, _Failed)
                await self._back_off("the NodeSubnet watch failed", e, failures)
                continue
            failures = 0  # closed by the API server after its timeoutSeconds: watch on

    async def _back_off(self, what: str, error: Exception, failures: int) -> None:
        wait = backoff.delay(failures)
        why = f"{error.status} {error.reason}" if isinstance(error, ApiException) else str(error)
        self.logger.warning("%s (%s: %s); trying again in %gs", what, type(error).__name__, why, wait)
        await asyncio.sleep(wait)

    async def _watch_unless_paused(self) -> None:
        """One watch, ended early (_Paused) once Kopf's peering pauses this replica."""
        watching = asyncio.ensure_future(self._watch())
        pausing = asyncio.ensure_future(self._pause.until(True))
        try:
            await asyncio.wait((watching, pausing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, pausing):
                task.cancel()
            await asyncio.gather(watching, pausing, return_exceptions=True)
        if not watching.cancelled():
            watching.result()  # raises how it ended, if not by the server's timeout
            return
        raise _Paused

    async def _watch(self) -> None:
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self.version),
            ("timeoutSeconds", str(random.randint(*WATCH_SECONDS))),
        ]
        self._answered = False
        try:
            async with self._stream("nodesubnets", SUBNETS, query, SILENT_SECONDS) as lines:
                self._answered = True
                async for line in lines:
                    await self._event(json.loads(line))
        except ApiException as e:
            if e.status == 410:
                raise _Gone from e
            raise

    async def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise _Failed(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            if self._pause.paused:  # paused between two reads: nothing more is applied
                raise _Paused
            try:
                await self._apply(kind, obj)
            except Exception:
                # Not the watch's fault: the event is skipped, not read again and again.
                self.logger.exception("a NodeSubnet %s event could not be applied", kind)
        if version:  # BOOKMARKs only move it on
            self.version = version
