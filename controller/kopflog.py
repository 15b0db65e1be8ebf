"""What Kopf says only in its log.

Two of Kopf's states have no public getter: whether its peering has paused
this replica, and that it has begun to stop. Each is told by one line on
one of its loggers. A `Lines` filter on that logger sees every line; the
logger is set to INFO so that those lines are made even under `kopf run -q`,
and the filter lets through only what the level set before would have shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable


class Lines(logging.Filter):
    """Calls `seen` with each message of the logger `name`, once attached."""

    def __init__(self, name: str, seen: Callable[[str], None]) -> None:
        super().__init__()
        self.logger = logging.getLogger(name)
        self.seen = seen
        self._shown = logging.NOTSET  # the level records were shown from before attach()
        self._level = logging.NOTSET  # the logger's own level before attach()

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen(record.getMessage())
        return record.levelno >= self._shown

    def attach(self) -> None:
        self._shown = self.logger.getEffectiveLevel()
        self._level = self.logger.level
        self.logger.setLevel(min(self._shown, logging.INFO))
        self.logger.addFilter(self)

    def detach(self) -> None:
        self.logger.removeFilter(self)
        self.logger.setLevel(self._level)


def on_stopping(then: Callable[[], None]) -> Lines:
    """Kopf's line that it is stopping (a stop flag, as under KopfRunner, or a signal)."""

    def seen(message: str) -> None:
        if message.endswith("Operator is stopping."):
            then()

    return Lines("kopf._core.reactor.running", seen)
