"""The workqueue of the seed's controller, on asyncio.

Requests for a Network coalesce while it is being reconciled, so a thousand
Node events cause a couple of reconciles. One lock covers every Network's
reconcile: pools share one address space, so choose-and-write must not
interleave between them.

A reconcile that fails, whatever asked for it (a Node event, a Network
change, the resync timer), is tried again after a short capped backoff
(controller/backoff.py), like client-go's rate-limited workqueue. Requests
that arrive meanwhile wait for that retry instead of failing at once again:
during an outage the queue tries once per backoff, not once per event. A
success resets the backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from controller import backoff
from controller.metrics import Metrics

Key = tuple[str, str]  # (namespace, name) of a Network
# reconcile(key, full) -> whether it must run again at once (it lost a race for a subnet)
Reconcile = Callable[[Key, bool], Awaitable[bool]]


class WorkQueue:
    def __init__(
        self,
        reconcile: Reconcile,
        keys: Callable[[], list[Key]],
        metrics: Metrics,
        logger: logging.Logger | None = None,
    ) -> None:
        self._reconcile = reconcile
        self._keys = keys
        self.metrics = metrics
        self.logger = logger or logging.getLogger(__name__)
        self.lock = asyncio.Lock()
        self._dirty: dict[Key, bool] = {}  # queued keys -> whether a full resync was asked
        self._running: set[Key] = set()
        self._failures: dict[Key, int] = {}  # failed reconciles in a row
        self._retries: dict[Key, asyncio.TimerHandle] = {}  # keys waiting for their retry
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def request(self, key: Key, verify: bool = False) -> None:
        """Reconcile `key` now, or make the running reconcile (or the pending retry) go round once more."""
        self._dirty[key] = self._dirty.get(key, False) or verify
        if key in self._running or key in self._retries:
            return
        await self._run(key)

    async def _run(self, key: Key) -> None:
        if key in self._running:  # a request started it between the retry's timer and its task
            return
        self._running.add(key)
        try:
            while key in self._dirty:
                full = self._dirty.pop(key)
                async with self.lock:
                    started = time.monotonic()
                    try:
                        again = await self._reconcile(key, full)
                    except Exception as e:
                        self.metrics.reconciles.labels("error").inc()
                        self._dirty[key] = self._dirty.get(key, False) or full
                        self._retry_later(key, e)
                        return
                    self.metrics.reconciles.labels("ok").inc()
                    self.metrics.reconcile_seconds.observe(time.monotonic() - started)
                if self._failures.pop(key, None):
                    self.logger.info("%s/%s: reconciled again after failures", *key)
                if again:
                    self._dirty.setdefault(key, False)
        finally:
            self._running.discard(key)

    def _retry_later(self, key: Key, error: Exception) -> None:
        if self._closed:
            return
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        wait = backoff.delay(failures)
        # The whole traceback once; during an outage a line per retry is enough.
        self.logger.warning(
            "%s/%s: reconcile failed (%s: %s); retrying in %gs",
            *key,
            type(error).__name__,
            error,
            wait,
            exc_info=error if failures == 1 else None,
        )
        self._retries[key] = asyncio.get_running_loop().call_later(wait, self._retry, key)

    def _retry(self, key: Key) -> None:
        del self._retries[key]
        task = asyncio.get_running_loop().create_task(self._run(key), name=f"retry {key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request_all(self, first: Key | None = None) -> None:
        """Overlap makes Networks depend on each other: a change to one reconciles all."""
        keys = sorted(self._keys())
        if first is not None:
            keys = [first] + [k for k in keys if k != first]
        for key in keys:
            await self.request(key)

    def forget(self, key: Key) -> None:
        self._dirty.pop(key, None)
        self._failures.pop(key, None)
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()

    def close(self) -> None:
        """No more retries: the operator is stopping."""
        self._closed = True
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for task in self._tasks:
            task.cancel()
