"""The engine: the controller, assembled from its parts.

- `Networks` (controller/index.py): the Network index and each spec's verdict;
- `Feed` (controller/feed.py): the informers, Nodes and NodeSubnets;
- `SubnetWatch` (controller/subnetwatch.py): the NodeSubnet watch;
- `WorkQueue` (controller/queue.py): coalescing requests, one lock;
- `Syncer` (controller/sync.py): a round of reconciles, and its memory;
- `Writer` (controller/writes.py): a round's API writes;
- `Relister` (controller/relist.py): a LIST of our own when Kopf re-lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from controller import backoff
from controller.feed import Feed
from controller.index import Index, Networks
from controller.kube import Api
from controller.metrics import Metrics
from controller.queue import WorkQueue
from controller.relist import Relister
from controller.subnetwatch import Pause, SubnetWatch
from controller.sync import Syncer
from controller.writes import EventSink, Writer
from netpool import podcidr
from netpool.cache import NodeCache
from netpool.names import Key
from netpool.pool import IPNetwork

__all__ = ["Engine", "EventSink", "Index", "Key"]


class Engine:
    def __init__(
        self,
        api: Api,
        metrics: Metrics,
        post_event: EventSink,
        logger: logging.Logger,
        relist_every: float = 15,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.logger = logger
        self.networks = Networks()
        self.queue = WorkQueue(self._reconcile, self.networks.keys, metrics, logger)
        self.feed = Feed(api, metrics, logger, self.queue.request, self.networks.affected, relist_every)
        writer = Writer(api, self.feed, post_event, logger)
        self.syncer = Syncer(api, self.feed, self.networks, writer, metrics, logger, self.queue.queued)
        self.relister = Relister(self._relist, logger)
        self.watch: SubnetWatch | None = None

    def bind(self, networks: Index) -> None:
        """Kopf hands its indexes to handlers only; handlers pass them on."""
        self.networks.bind(networks)

    @property
    def nodes(self) -> NodeCache:
        return self.feed.nodes

    async def start(self, pause: Pause) -> None:
        """Before any handler runs: nothing is handed out from a partial view.
        Tried until it succeeds, as an informer waits for its first sync: an
        API server that is away or overloaded at startup is waited for. Then
        NodeSubnets are watched from that sync's LIST on, except while Kopf's
        peering pauses this replica (`pause`)."""
        failures = 0
        while True:
            try:
                await self.feed.sync()
                break
            except Exception as e:
                failures += 1
                wait = backoff.delay(failures)
                self.logger.warning("initial sync failed (%s: %s); retrying in %gs", type(e).__name__, e, wait)
                await asyncio.sleep(wait)
        self.watch = SubnetWatch(
            self.api.transport.stream, self.feed.record_event, self._relist_records, pause, self.logger
        )
        self.watch.start(self.feed.records_version)

    async def request(self, key: Key, verify: bool = False) -> None:
        await self.queue.request(key, verify)

    async def request_all(self, first: Key | None = None) -> None:
        await self.queue.request_all(first)

    async def node_event(self, name: str, kind: str | None, body: Mapping[str, Any]) -> None:
        if kind is None:  # Kopf is listing Nodes: what it no longer lists, it will never report
            self.relister.listed()
        await self.feed.node_event(name, kind, body)

    async def _relist(self) -> None:
        """After Kopf's listing: Nodes deleted in a watch gap are released now, not at the next resync."""
        async with self.queue.lock:
            ghosts = await self.feed.relist()
        if ghosts or self.feed.gone:
            await self.queue.request_all()

    async def _relist_records(self) -> str:
        """The NodeSubnet watch lost track: a LIST of them, where the next watch starts."""
        async with self.queue.lock:
            return await self.feed.relist_records()

    def close(self) -> None:
        """The operator is stopping: no more writes, retries, re-lists or watching."""
        self.api.fence()
        self.queue.close()
        self.relister.close()
        if self.watch is not None:
            self.watch.close()

    async def _reconcile(self, batch: dict[Key, bool]) -> dict[Key, bool | Exception]:
        return await self.syncer.reconcile(batch)

    async def release(self, key: Key) -> int:
        """The Network is being deleted: free every subnet it holds."""
        async with self.queue.lock:
            self.queue.forget(key)
            released = await self.syncer.release(key)
        self.metrics.forget(*key)
        self.networks.forget(key)
        return released

    def pod_cidrs_given(self, key: Key) -> dict[str, IPNetwork]:
        """The podCIDRs this Network gave: Node -> its subnet, where the Node's podCIDRs hold it."""
        given = {}
        for record in self.feed.records.of(key):
            node = self.nodes.get(record.node)
            if node is not None and record.subnet in podcidr.parse(node.pod_cidrs).values():
                given[record.node] = record.subnet
        return given
