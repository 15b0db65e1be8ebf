"""Whether this replica is the active writer, for the metrics
(`network_operator_active_writer`, and the per-Network gauges only it reports).

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

from controller.kopflog import Lines
from controller.lease import Lease

PEERING_LOGGER = "kopf._core.engines.peering"


class Writer(Lines):
    def __init__(self, paused: bool, lease: Lease | None) -> None:
        super().__init__(PEERING_LOGGER, self._peering)
        self.paused = paused
        self.lease = lease
        self.stopped = False

    def _peering(self, message: str) -> None:
        if message.startswith("Pausing "):
            self.paused = True
        elif message.startswith("Resuming operations"):
            self.paused = False

    def __call__(self) -> bool:
        if self.stopped or self.paused:
            return False
        return self.lease is None or not self.lease.held_elsewhere()
