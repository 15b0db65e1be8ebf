"""The workqueue of the seed's controller, on asyncio.

Requests for a Network coalesce while it is being reconciled, so a thousand
Node events cause a couple of reconciles. One lock covers every Network's
reconcile: pools share one address space, so choose-and-write must not
interleave between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from controller.metrics import Metrics

Key = tuple[str, str]  # (namespace, name) of a Network
# reconcile(key, full) -> whether it must run again at once (it lost a race for a subnet)
Reconcile = Callable[[Key, bool], Awaitable[bool]]


class WorkQueue:
    def __init__(self, reconcile: Reconcile, keys: Callable[[], list[Key]], metrics: Metrics) -> None:
        self._reconcile = reconcile
        self._keys = keys
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self._dirty: dict[Key, bool] = {}  # queued keys -> whether a full resync was asked
        self._running: set[Key] = set()

    async def request(self, key: Key, verify: bool = False) -> None:
        """Reconcile `key` now, or make the running reconcile go round once more."""
        self._dirty[key] = self._dirty.get(key, False) or verify
        if key in self._running:
            return
        self._running.add(key)
        try:
            while key in self._dirty:
                full = self._dirty.pop(key)
                async with self.lock:
                    started = time.monotonic()
                    try:
                        again = await self._reconcile(key, full)
                    except Exception:
                        self.metrics.reconciles.labels("error").inc()
                        raise
                    self.metrics.reconciles.labels("ok").inc()
                    self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                if again:
                    self._dirty.setdefault(key, False)
        finally:
            self._running.discard(key)

    async def request_all(self, first: Key | None = None) -> None:
        """Overlap makes Networks depend on each other: a change to one reconciles all."""
        keys = sorted(self._keys())
        if first is not None:
            keys = [first] + [k for k in keys if k != first]
        for key in keys:
            await self.request(key)

    def forget(self, key: Key) -> None:
        self._dirty.pop(key, None)
