"""Whether this replica is the active writer, for the metrics
(`network_operator_active_writer`, and the per-Network gauges only it reports).

Kopf's peering pauses a replica while a peer of higher (or equal) priority is
alive. Its pause toggle is internal; it says so only in its log, one line
per change ("Pausing operations in favour of ...", "Pausing all operators,
including self", "Resuming operations after the pause"). A filter on that
logger follows those lines. With mandatory peering Kopf starts paused until
its first look at the peers, and so does this. The logger is set to INFO so
that those lines reach the filter even under `kopf run -q`; the filter lets
through only what the level set before would have shown. The Lease adds
what peering cannot know: while another replica holds it, this one writes
nothing (controller/lease.py).
"""

from __future__ import annotations

import logging

from controller.lease import Lease

PEERING_LOGGER = "kopf._core.engines.peering"


class Writer(logging.Filter):
    def __init__(self, paused: bool, lease: Lease | None) -> None:
        super().__init__()
        self.paused = paused
        self.lease = lease
        self.stopped = False
        self._shown = logging.NOTSET  # the level records were shown from before attach()
        self._level = logging.NOTSET  # the logger's own level before attach()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Pausing "):
            self.paused = True
        elif message.startswith("Resuming operations"):
            self.paused = False
        return record.levelno >= self._shown

    def __call__(self) -> bool:
        if self.stopped or self.paused:
            return False
        return self.lease is None or not self.lease.held_elsewhere()

    def attach(self) -> None:
        logger = logging.getLogger(PEERING_LOGGER)
        self._shown = logger.getEffectiveLevel()
        self._level = logger.level
        logger.setLevel(min(self._shown, logging.INFO))
        logger.addFilter(self)

    def detach(self) -> None:
        logger = logging.getLogger(PEERING_LOGGER)
        logger.removeFilter(self)
        logger.setLevel(self._level)
