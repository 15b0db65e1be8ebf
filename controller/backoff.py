"""How long to wait before trying again after a failure: short at first, so an
API server that is back after a restart is used within about a second, and
capped, so an outage costs a request every few seconds and never a hot loop.

One policy for the whole operator: failed reconciles (controller/queue.py),
the re-list after a watch restart (controller/relist.py), Kopf's own API
requests and handler retries (operator.py, handlers/networks.py).
"""

from __future__ import annotations

START = 1.0  # seconds before the first retry
CAP = 10.0  # seconds between retries at most
FACTOR = 2.0


def delay(failures: int) -> float:
    """Seconds to wait after `failures` failures in a row (1, 2, 4, 8, 10, 10, ...)."""
    return min(CAP, START * FACTOR ** max(0, failures - 1))


def schedule(total: float = 60.0) -> tuple[float, ...]:
    """The delays of successive retries, until they add up to `total` seconds."""
    delays: list[float] = []
    while sum(delays) < total:
        delays.append(delay(len(delays) + 1))
    return tuple(delays)
