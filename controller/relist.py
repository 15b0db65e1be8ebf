"""Compare the caches with the API at once when Kopf re-lists Nodes.

Kopf's watch starts with a LIST whose objects reach `on.event` handlers as
events of type None: at startup, after a 410 Gone (the resourceVersion it
would resume from is compacted away, so the events in between are lost),
and when a peering pause ends. No DELETED event ever comes for an object
deleted in such a gap, so the Node cache would keep it, and its subnet,
until the next resync. (NodeSubnets are watched outside Kopf, by a watch
that LISTs them again itself: controller/subnetwatch.py.)

Kopf does not tell handlers when a re-list starts or ends (its end-of-listing
bookmark stays inside its watcher, and the 410 is only logged at debug
level), but a type-None event is part of its handler contract. So the first
one starts a LIST of our own: it begins after Kopf's listing has begun, so
it sees every deletion of the gap; every type-None event of that listing
coalesces into it; one that arrives while our LIST runs may belong to a newer
re-list, so it asks for one more round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from controller import backoff

# Let the rest of a listing's events arrive first: they coalesce into one LIST.
SETTLE_SECONDS = 0.2


class Relister:
    def __init__(self, relist: Callable[[], Awaitable[None]], logger: logging.Logger) -> None:
        self._relist = relist
        self.logger = logger
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def listed(self) -> None:
        """Kopf's listing showed an object (an event of type None)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="relist after Kopf's listing")
        else:
            self._again = True

    async def _run(self) -> None:
        failures = 0
        self._again = True
        while self._again:
            await asyncio.sleep(SETTLE_SECONDS)
            self._again = False
            try:
                await self._relist()
            except Exception as e:
                failures += 1
                self._again = True
                wait = backoff.delay(failures)
                self.logger.warning("re-list failed (%s: %s); retrying in %gs", type(e).__name__, e, wait)
                await asyncio.sleep(wait)
            else:
                failures = 0

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
