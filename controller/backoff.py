"""How long to wait before trying again after a failure: short at first, so an
API server that is back after a restart is used within about a second, and
capped, so an outage costs a request every few seconds and never a hot loop.

One policy for the whole operator: failed reconciles (controller/queue.py),
the re-list after a watch restart (controller/relist.py), Kopf's own API
requests and handler retries (operator.py, handlers/networks.py).
"""

from __future__ import annotations

from collections.abc import Iterator

START = 1.0  # seconds before the first retry
CAP = 10.0  # seconds between retries at most
FACTOR = 2.0


def delay(failures: int) -> float:
    """Seconds to wait after `failures` failures in a row (1, 2, 4, 8, 10, 10, ...)."""
    return min(CAP, START * FACTOR ** max(0, failures - 1))


class Retries:
    """The delays between retries of one failing request, for as long as the
    operator runs: `delay(1)`, `delay(2)`, ..., then CAP for ever; none once
    `stop()` is called.

    Kopf's API requests retry on this (settings.networking.error_backoffs,
    which takes any iterable and iterates it afresh per request). With a
    finite schedule a request that still fails at its end raises, and
    Kopf's watch of a resource ends the whole operator on a 5xx or 403 that
    outlasted it (a 429 or a dropped connection it retries anyway): an etcd
    outage of a minute would become a crash loop. Without an end, a watch
    waits for the API server as client-go's reflectors do. When stopping,
    a request that fails is not tried again, so the last peering keep-alive
    of a stopping operator does not hold up its exit while the API server
    is away."""

    def __init__(self) -> None:
        self.stopped = False

    def __iter__(self) -> Iterator[float]:
        failures = 0
        while not self.stopped:
            failures += 1
            yield delay(failures)

    def stop(self) -> None:
        self.stopped = True
