"""Whether this replica is the active writer, for the metrics
(`network_operator_active_writer`, and the per-Network gauges only it reports),
and for the NodeSubnet watch (controller/subnetwatch.py), which stops while
this replica stands by, as Kopf's own watches do.

Kopf's peering pauses a replica while a peer of higher (or equal) priority is
alive. Its pause toggle is internal; it says so only in its log, one line
per change ("Pausing operations in favour of ...", "Pausing all operators,
including self", "Resuming operations after the pause"), which this follows
(controller/kopflog.py). With mandatory peering Kopf starts paused until its
first look at the peers, and so does this. The Lease adds what peering
cannot know: while another replica holds it, this one writes nothing
(controller/lease.py).
"""

from __future__ import annotations

import asyncio
import contextlib

from controller.kopflog import Lines
from controller.lease import Lease

PEERING_LOGGER = "kopf._core.engines.peering"


class Writer(Lines):
    def __init__(self, paused: bool, lease: Lease | None) -> None:
        super().__init__(PEERING_LOGGER, self._peering)
        self.paused = paused
        self.lease = lease
        self.stopped = False
        self._changed: asyncio.Event | None = None  # set when `paused` changes, on the loop of `until`
        self._loop: asyncio.AbstractEventLoop | None = None

    def _peering(self, message: str) -> None:
        was = self.paused
        if message.startswith("Pausing "):
            self.paused = True
        elif message.startswith("Resuming operations"):
            self.paused = False
        if self.paused != was:
            self._wake()

    def _wake(self) -> None:
        """Wake `until`. Kopf's peering logs from the operator's loop, but a
        logging filter runs in whichever thread logs: hand the wake-up to the
        loop that waits."""
        if self._loop is None or self._changed is None:
            return
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._changed.set)

    async def until(self, paused: bool) -> None:
        """Return once Kopf's peering has paused (True) or resumed (False) this replica."""
        if self._changed is None or self._loop is not asyncio.get_running_loop():
            self._loop, self._changed = asyncio.get_running_loop(), asyncio.Event()
        while self.paused != paused:
            self._changed.clear()
            await self._changed.wait()

    def __call__(self) -> bool:
        if self.stopped or self.paused:
            return False
        return self.lease is None or not self.lease.held_elsewhere()
