"""The engine: the seed's controller, assembled.

- `Feed` (controller/feed.py): the informers, Nodes and NodeSubnets;
- `WorkQueue` (controller/queue.py): coalescing requests, one lock;
- `Syncer` (controller/sync.py): the idempotent sync of the Networks of one round.

The Network index is Kopf's (`@kopf.index`); handlers bind it on each call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from controller import backoff
from controller.feed import Feed
from controller.kube import Api
from controller.queue import Key, WorkQueue
from controller.relist import Relister
from controller.sync import EventSink, Syncer
from netpool import annotation, podcidr
from netpool.cache import NodeCache
from netpool.interest import concerns
from netpool.overlap import Claim
from netpool.pool import IPNetwork
from netpool.selector import Selector
from netpool.spec import SpecError, parse_spec
from netpool.views import NetworkView, NodeView

__all__ = ["Engine", "EventSink", "Index", "Key"]


class Index(Protocol):
    """What the engine uses of a `kopf.Index`: key -> a store of values."""

    def __iter__(self) -> Iterator[Any]: ...
    def __getitem__(self, key: Any) -> Iterable[Any]: ...
    def __contains__(self, key: object) -> bool: ...


_Parsed = tuple[int, Selector | None, str, IPNetwork | None, bool]


class Engine:
    def __init__(self, api: Api, post_event: EventSink, logger: logging.Logger, relist_every: float = 15) -> None:
        self.api = api
        self.metrics = api.metrics
        self.logger = logger
        self.networks: Index | None = None
        self.queue = WorkQueue(self._reconcile, self.network_keys, self.metrics, logger)
        self.feed = Feed(api, logger, self.queue.request, self.affected, relist_every)
        self._parsed: dict[Key, _Parsed] = {}
        self.syncer = Syncer(api, self.feed, self.network, self.claims, self.pod_cidr_writers, post_event, logger)
        self.relister = Relister(self._relist, logger)

    def bind(self, networks: Index) -> None:
        """Kopf hands its indexes to handlers only; handlers pass them on."""
        self.networks = networks

    @property
    def nodes(self) -> NodeCache:
        return self.feed.nodes

    async def start(self) -> None:
        """Before any handler runs: nothing is handed out from a partial view.
        Tried until it succeeds, as an informer waits for its first sync: an
        API server that is away or overloaded at startup is waited for."""
        failures = 0
        while True:
            try:
                return await self.feed.sync()
            except Exception as e:
                failures += 1
                wait = backoff.delay(failures)
                self.logger.warning("initial sync failed (%s: %s); retrying in %gs", type(e).__name__, e, wait)
                await asyncio.sleep(wait)

    async def request(self, key: Key, verify: bool = False) -> None:
        await self.queue.request(key, verify)

    async def request_all(self, first: Key | None = None) -> None:
        await self.queue.request_all(first)

    async def node_event(self, name: str, kind: str | None, body: Mapping[str, Any]) -> None:
        if kind is None:  # Kopf is listing Nodes: what it no longer lists, it will never report
            self.relister.listed()
        await self.feed.node_event(name, kind, body)

    async def record_event(self, kind: str | None, body: Mapping[str, Any]) -> None:
        if kind is None:
            self.relister.listed()
        await self.feed.record_event(kind, body)

    async def _relist(self) -> None:
        """After Kopf's listing: Nodes deleted in a watch gap are released now, not at the next resync."""
        async with self.queue.lock:
            ghosts = await self.feed.relist()
        if ghosts or self.feed.gone:
            await self.queue.request_all()

    def close(self) -> None:
        """The operator is stopping: no more writes, retries or re-lists."""
        self.api.fence()
        self.queue.close()
        self.relister.close()

    async def _reconcile(self, batch: dict[Key, bool]) -> dict[Key, bool | Exception]:
        return await self.syncer.reconcile(batch)

    async def release(self, key: Key) -> int:
        """The Network is being deleted: free every subnet it holds."""
        async with self.queue.lock:
            self.queue.forget(key)
            released = await self.syncer.release(key)
        self.metrics.forget(*key)
        self._parsed.pop(key, None)
        return released

    # --- the Network index -----------------------------------------------------------

    def network_keys(self) -> list[Key]:
        return list(self.networks) if self.networks is not None else []

    def network(self, key: Key) -> NetworkView | None:
        if self.networks is None or key not in self.networks:
            return None
        return next(iter(self.networks[key]), None)

    def affected(self, old: NodeView | None, new: NodeView | None) -> list[Key]:
        """The Networks a Node's change from `old` to `new` concerns."""
        return [key for key in self.network_keys() if (p := self._parse(key)) and concerns(old, new, p[1], p[2])]

    def claims(self, exclude: Key | None = None) -> list[Claim]:
        """Every valid Network's claim on its cidr but `exclude`'s."""
        claims = []
        for key in self.network_keys():
            other = self.network(key)
            parsed = self._parse(key)
            if key == exclude or other is None or other.deleting or parsed is None or parsed[3] is None:
                continue
            claims.append(Claim(other.created, other.ref, parsed[3], parsed[4]))
        return claims

    def pod_cidr_writers(self) -> dict[int, tuple[Key, Selector]]:
        """Per IP family, the Network that writes Node.spec.podCIDRs, and its selector."""
        found = {}
        for version, claim in podcidr.writers(self.claims()).items():
            parsed = self._parse(claim.key)
            if parsed is not None and parsed[1] is not None:
                found[version] = (claim.key, parsed[1])
        return found

    def pod_cidrs_given(self, key: Key) -> dict[str, IPNetwork]:
        """The podCIDRs this Network gave: Node -> its subnet, where the Node's podCIDRs hold it."""
        given = {}
        for record in self.feed.records.of(key):
            node = self.nodes.get(record.node)
            if node is not None and record.subnet in podcidr.parse(node.pod_cidrs).values():
                given[record.node] = record.subnet
        return given

    def _parse(self, key: Key) -> _Parsed | None:
        """A Network's spec, parsed once per generation: (generation, selector or
        None if invalid, annotation key, pool network or None if invalid,
        whether it asks to write podCIDRs)."""
        view = self.network(key)
        if view is None:
            return None
        cached = self._parsed.get(key)
        if cached is None or cached[0] != view.generation:
            try:
                parsed = parse_spec(view.spec)
                cached = (
                    view.generation,
                    parsed.selector,
                    annotation.key_for(*key),
                    parsed.pool.network,
                    parsed.pod_cidrs,
                )
            except SpecError:
                cached = (view.generation, None, annotation.key_for(*key), None, False)
            self._parsed[key] = cached
        return cached
