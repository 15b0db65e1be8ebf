"""The reconcile engine: the seed's workqueue and sync function, on asyncio.

- `request(key)` is the workqueue: requests for a Network coalesce while it is
  being reconciled, so a thousand Node events cause a couple of reconciles.
- `_reconcile` is the idempotent sync: desired state from the indexes (or, on
  a resync, from a fresh LIST), compared with what is there; only the
  difference is written.
- One lock covers choose-and-write for every Network: pools share one address
  space. The indexes lag our own writes, so writes not yet seen back through
  the watch are kept in `_pending` and laid over the index.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from controller.kube import Api
from netpool import allocator, annotation
from netpool import status as st
from netpool.cache import NodeCache
from netpool.overlap import Claim, older_overlap
from netpool.spec import NetworkSpec, SpecError, parse_spec
from netpool.views import NetworkView, NodeView, network_view, node_view

Key = tuple[str, str]  # (namespace, name) of a Network
_LOGGED_NODES = 50


class Index(Protocol):
    """What the engine uses of a `kopf.Index`: key -> a store of values."""

    def __iter__(self) -> Iterator[Any]: ...
    def __getitem__(self, key: Any) -> Iterable[Any]: ...
    def __contains__(self, key: object) -> bool: ...


EventSink = Callable[[Mapping[str, Any], str, str, str], None]  # (object, type, reason, message)


def _utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first(store: Iterable[Any]) -> Any:
    return next(iter(store), None)


class Engine:
    def __init__(self, api: Api, post_event: EventSink, logger: logging.Logger, relist_every: float = 15) -> None:
        self.api = api
        self.metrics = api.metrics
        self.post_event = post_event
        self.logger = logger
        self.nodes = NodeCache()
        self.relist_every = relist_every  # seconds between LISTs of all Nodes on resync
        self._listed_at = -math.inf
        self.networks: Index | None = None
        self.lock = asyncio.Lock()
        self._dirty: dict[Key, bool] = {}  # queued keys -> whether a full resync was asked
        self._running: set[Key] = set()
        self._pending: dict[str, dict[str, str | None]] = {}  # annotation key -> node -> value written, unseen
        self._written: dict[Key, dict[str, Any]] = {}  # status written, until the index shows it

    def bind(self, networks: Index) -> None:
        """Kopf hands its indexes to handlers only; handlers pass them on."""
        self.networks = networks

    # --- the workqueue -------------------------------------------------------

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
                        await self._reconcile(key, full)
                    except Exception:
                        self.metrics.reconciles.labels("error").inc()
                        raise
                    self.metrics.reconciles.labels("ok").inc()
                    self.metrics.reconcile_seconds.observe(time.monotonic() - started)
        finally:
            self._running.discard(key)

    async def request_all(self, first: Key | None = None) -> None:
        """Overlap makes Networks depend on each other: a change to one reconciles all."""
        keys = sorted(self.network_keys())
        if first is not None:
            keys = [first] + [k for k in keys if k != first]
        for key in keys:
            await self.request(key)

    # --- nodes -----------------------------------------------------------------

    async def sync_nodes(self) -> None:
        """The informer's initial sync: fill the Node cache from a LIST, then log it
        like the seed's `nodeLister.List()` after WaitForCacheSync."""
        await self._relist()
        names = self.nodes.names()
        more = f" ... and {len(names) - _LOGGED_NODES} more" if len(names) > _LOGGED_NODES else ""
        self.logger.info("nodelist (%d): %s%s", len(names), ", ".join(names[:_LOGGED_NODES]), more)

    async def _relist(self) -> None:
        self._listed_at = time.monotonic()
        started = self.nodes.now()
        listed = [node_view(m) for m in await self.api.list_node_metadata()]
        ghosts = self.nodes.relist(listed, started)
        self.metrics.nodes.set(len(self.nodes))
        if ghosts:
            self.logger.warning("dropped %d Nodes whose deletion the watch missed: %s", len(ghosts), ghosts[:10])

    async def node_event(self, name: str, kind: str | None, body: Mapping[str, Any]) -> None:
        """A watch event about a Node (kind None: seen in the watch's initial listing).

        Reconciles only when labels or our annotations changed, and not for
        our own writes coming back through the watch: kubelets update their
        Node every few seconds, and that must cost next to nothing.
        """
        if kind == "DELETED":
            for values in self._pending.values():
                values.pop(name, None)
            if self.nodes.remove(name) is not None:
                self.metrics.nodes.set(len(self.nodes))
                await self.request_all()
            return
        if kind in (None, "ADDED"):
            self.logger.info("add a node: %s", name)
        view = node_view(body)
        old = self.nodes.put(view)
        if old is None:
            self.metrics.nodes.set(len(self.nodes))
        unchanged = old is not None and old.labels == view.labels and old.subnets == view.subnets
        if unchanged or (old is not None and old.labels == view.labels and self._own_writes(name, old, view)):
            return
        await self.request_all()

    def _own_writes(self, node: str, old: NodeView, new: NodeView) -> bool:
        """Whether every annotation that changed is one of our writes coming back."""
        changed = {k for k in old.subnets.keys() | new.subnets.keys() if old.subnets.get(k) != new.subnets.get(k)}
        return all(node in self._pending.get(k, {}) and self._pending[k][node] == new.subnets.get(k) for k in changed)

    # --- the sync function -----------------------------------------------------

    def network_keys(self) -> list[Key]:
        return list(self.networks) if self.networks is not None else []

    def network(self, key: Key) -> NetworkView | None:
        return _first(self.networks[key]) if self.networks is not None and key in self.networks else None

    def claims(self, exclude: Key) -> list[Claim]:
        claims = []
        for key in self.network_keys():
            other = self.network(key)
            if key == exclude or other is None or other.deleting:
                continue
            try:
                pool = parse_spec(other.spec).pool
            except SpecError:
                continue
            claims.append(Claim(other.created, other.ref, pool.network))
        return claims

    async def _reconcile(self, key: Key, full: bool) -> None:
        view = self.network(key)
        if view is None or view.deleting:
            return
        ann_key = annotation.key_for(*key)
        if full:
            # A resync checks the API's truth: a watch can miss a deletion
            # (a relist after 410 Gone), and nothing else would notice.
            body = await self.api.get_network(*key)
            if body is None:
                return
            view = network_view(body)
            self._written.pop(key, None)
            # One LIST serves every Network's resync in the same period.
            if time.monotonic() - self._listed_at >= self.relist_every:
                await self._relist()
                self._pending.clear()  # the LIST came after every write we made
        nodes = list(self.nodes)

        # What each node carries now, with our unseen writes laid over.
        carried: dict[str, dict[str, str]] = {}
        for node in nodes:
            values = dict(node.subnets)
            for k, written in self._pending.items():
                if node.name in written:
                    if written[node.name] is None:
                        values.pop(k, None)
                    else:
                        values[k] = written[node.name]  # type: ignore[assignment]
            carried[node.name] = values
        self._forget_seen_writes(nodes)

        previous: Mapping[str, Any] | None = self._written.get(key)
        if previous is None or st.same(previous, view.status):
            self._written.pop(key, None)
            previous = view.status

        try:
            parsed: NetworkSpec | None = parse_spec(view.spec)
        except SpecError as e:
            parsed = None
            outcome = st.invalid(str(e))
        if parsed is not None:
            rival = older_overlap(Claim(view.created, view.ref, parsed.pool.network), self.claims(key))
            if rival is not None:
                outcome = st.overlaps(str(parsed.pool.network), rival.ref, str(rival.network))
                parsed = None

        if parsed is None:
            # Invalid or overlapping: allocate nothing and release nothing, so a
            # typo in a spec never takes a subnet away from a running node.
            held = {n: s for n, v in carried.items() if (s := annotation.subnet_of(v.get(ann_key)))}
            status = st.build(
                generation=view.generation,
                outcome=outcome,
                pool=None,
                allocations=held,
                waiting=0,
                previous=previous,
                now=_utcnow(),
            )
        else:
            status = await self._allocate(view, parsed, nodes, carried, ann_key, previous)

        self.metrics.observe(view.namespace, view.name, status)
        if not st.same(status, previous):
            await self.api.patch_network_status(view.namespace, view.name, status)
            self._written[key] = status
            event = st.event_for(previous, status)
            if event is not None:
                # Transitions only, so the log carries what the events carry, once.
                level = logging.WARNING if event[0] == "Warning" else logging.INFO
                self.logger.log(level, "%s: %s: %s", view.ref, event[1], event[2])
                self.post_event(view.object_ref(), *event)

    async def _allocate(
        self,
        view: NetworkView,
        parsed: NetworkSpec,
        nodes: list[NodeView],
        carried: Mapping[str, Mapping[str, str]],
        ann_key: str,
        previous: Mapping[str, Any],
    ) -> dict[str, Any]:
        pool = parsed.pool
        matching = [n.name for n in nodes if parsed.selector.matches(n.labels)]
        held = {n: allocator.parse_subnet(annotation.subnet_of(v.get(ann_key))) for n, v in carried.items()}
        remembered = {
            a.get("node", ""): allocator.parse_subnet(a.get("subnet"))
            for a in previous.get("allocations") or []
            if isinstance(a, Mapping)
        }
        taken = [
            s
            for v in carried.values()
            for k, value in v.items()
            if k != ann_key
            if (s := allocator.parse_subnet(annotation.subnet_of(value))) is not None
        ]
        plan = allocator.plan(pool, matching, held, remembered, taken)

        desired = {
            node: annotation.render(view.namespace, view.name, str(subnet), str(pool.gateway))
            for node, subnet in plan.allocations.items()
        }
        writes: dict[str, str | None] = {n: v for n, v in desired.items() if carried[n].get(ann_key) != v}
        writes.update({n: None for n, v in carried.items() if ann_key in v and n not in desired})
        await self._write_annotations(ann_key, writes)

        return st.build(
            generation=view.generation,
            outcome=st.served(pool, len(matching), len(plan.allocations), len(plan.waiting)),
            pool=pool,
            allocations={n: str(s) for n, s in plan.allocations.items()},
            waiting=len(plan.waiting),
            previous=previous,
            now=_utcnow(),
        )

    async def _write_annotations(self, ann_key: str, writes: Mapping[str, str | None]) -> None:
        async def one(node: str, value: str | None) -> None:
            if await self.api.annotate_node(node, ann_key, value):
                self._pending.setdefault(ann_key, {})[node] = value

        await asyncio.gather(*(one(n, v) for n, v in writes.items()))

    def _forget_seen_writes(self, nodes: list[NodeView]) -> None:
        """Drop pending writes the given node views already show, and those of vanished nodes."""
        by_name = {n.name: n for n in nodes}
        for k, written in self._pending.items():
            for node, value in list(written.items()):
                seen = by_name.get(node)
                if seen is None or seen.subnets.get(k) == value:
                    del written[node]

    # --- deletion ----------------------------------------------------------------

    async def release(self, key: Key) -> int:
        """Remove this Network's annotation from every Node; returns how many.
        Reads the API's truth, not the index: nothing may be left behind."""
        ann_key = annotation.key_for(*key)
        async with self.lock:
            self._dirty.pop(key, None)
            nodes = [node_view(m) for m in await self.api.list_node_metadata()]
            writes: dict[str, str | None] = {n.name: None for n in nodes if ann_key in n.subnets}
            await self._write_annotations(ann_key, writes)
            self._written.pop(key, None)
        self.metrics.forget(*key)
        return len(writes)
