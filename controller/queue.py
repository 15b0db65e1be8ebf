"""The workqueue of the seed's controller, on asyncio.

Requests only mark a Network dirty; one worker task reconciles, in rounds.
Requests that arrive during a round coalesce, so a thousand Node events cause
a couple of rounds, and a round takes every dirty Network at once: a Node
that joins concerns every Network that selects it, and one round writes it
once for all of them. The round holds a lock (the re-list and the release of
a deleted Network take it too): pools share one address space, so
choose-and-write must not interleave.

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
from netpool.names import Key

# reconcile({key: full}) -> for each key, whether it must run again at once (it
# lost a race for a subnet) or the error that failed it
Reconcile = Callable[[dict[Key, bool]], Awaitable[dict[Key, bool | Exception]]]

# An idle worker, woken, waits this long for the requests that come together
# (every Network resuming at startup, a Node event that concerns them all)
# so that they share its first round.
GATHER_SECONDS = 0.05


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
        self._failures: dict[Key, int] = {}  # failed reconciles in a row
        self._retries: dict[Key, asyncio.TimerHandle] = {}  # keys waiting for their retry
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def request(self, key: Key, verify: bool = False) -> None:
        """Reconcile `key` in the worker's next round (or after its pending retry)."""
        self._dirty[key] = self._dirty.get(key, False) or verify
        if key not in self._retries:
            self._wake()

    def queued(self, key: Key) -> bool:
        """Whether `key` is to be reconciled in the next round."""
        return key in self._dirty and key not in self._retries

    async def drained(self) -> None:
        """Until the worker has nothing left to do (retries aside)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    def _wake(self) -> None:
        if self._closed or (self._worker is not None and not self._worker.done()):
            return
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="reconcile Networks")

    async def _work(self) -> None:
        """Rounds until nothing is queued: each takes every queued key that is
        not waiting for a retry, so Networks changed together are reconciled
        together (and each Node written once for all of them)."""
        await asyncio.sleep(GATHER_SECONDS)
        while batch := {k: self._dirty.pop(k) for k in list(self._dirty) if k not in self._retries}:
            async with self.lock:
                started = time.monotonic()
                try:
                    results = await self._reconcile(batch)
                except Exception as e:  # not one Network's failure: all of them go again
                    results = dict.fromkeys(batch, e)
                self.metrics.reconcile_seconds.observe(time.monotonic() - started)
            for key, result in results.items():
                if isinstance(result, Exception):
                    self.metrics.reconciles.labels("error").inc()
                    self._dirty[key] = self._dirty.get(key, False) or batch[key]
                    self._retry_later(key, result)
                    continue
                self.metrics.reconciles.labels("ok").inc()
                if self._failures.pop(key, None):
                    self.logger.info("%s/%s: reconciled again after failures", *key)
                if result:
                    self._dirty.setdefault(key, False)

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
        self._wake()

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
        if self._worker is not None:
            self._worker.cancel()
