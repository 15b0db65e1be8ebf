"""What the operator knows of Nodes and NodeSubnets, and how it is kept current.

The seed's informers. Nodes: a LIST at startup (the initial sync, before any
handler runs), then Kopf's watch events, and a LIST again once per resync
period to catch what the watch missed. NodeSubnets: the same LIST at
startup, then a watch of the operator's own (controller/subnetwatch.py),
which LISTs them again itself whenever it may have missed something. The
operator's own writes are applied at once: NodeSubnets it created or deleted
go straight into the record store, and the Node annotations and podCIDRs it
wrote are laid over the Node cache until the watch shows them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from controller.kube import Api
from controller.metrics import Metrics
from netpool import records
from netpool.cache import NodeCache
from netpool.names import Key
from netpool.records import RecordStore
from netpool.views import NodeView, node_view

_LOGGED_NODES = 50


class Feed:
    def __init__(
        self,
        api: Api,
        metrics: Metrics,
        logger: logging.Logger,
        request: Callable[[Key], Awaitable[None]],
        affected: Callable[[NodeView | None, NodeView | None], list[Key]],
        relist_every: float,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self.logger = logger
        self._request = request
        self._affected = affected
        # A counter per Network, moved by every change that concerns it (not
        # by our own writes coming back): equal counters, nothing to do.
        self.epochs: dict[Key, int] = {}
        self._clock = 0
        self.nodes = NodeCache()
        self.records = RecordStore()
        # Nodes known to be gone from the API whose NodeSubnets may remain:
        # deleted in the watch, or absent from a LIST.
        self.gone: set[str] = set()
        self.relist_every = relist_every  # seconds between LISTs on resync
        self._listed_at = -math.inf
        self._pending: dict[str, dict[str, str | None]] = {}  # annotation key -> node -> value written, unseen
        # node -> (its uid then, podCIDRs written), unseen: a Node made again under its name has none
        self._pending_cidrs: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.records_version = ""  # the resourceVersion of the last LIST of NodeSubnets
        self.creating: set[str] = set()  # NodeSubnets whose create is on its way: their answer decides

    # --- LISTs -------------------------------------------------------------------

    async def sync(self) -> None:
        """The informers' initial sync, then the seed's `nodeLister.List()` log line."""
        await self.relist(whole=True)
        names = self.nodes.names()
        more = f" ... and {len(names) - _LOGGED_NODES} more" if len(names) > _LOGGED_NODES else ""
        self.logger.info("nodelist (%d): %s%s", len(names), ", ".join(names[:_LOGGED_NODES]), more)

    async def relist(self, whole: bool = False) -> list[str]:
        """Take the API's truth; returns the Nodes dropped as gone (ghosts).
        Called under the workqueue's lock, so no write of ours is in flight.

        At startup (`whole`) the Nodes are read whole: their podCIDRs are in
        spec. Later LISTs read metadata only (a kubelet's Node is about 12 KB,
        its metadata a tenth of that) and keep the podCIDRs the cache has for
        the same Node: podCIDRs never change once set, and the watch shows
        them being set. One set while the watch was away is learned when the
        API server refuses to set others.

        NodeSubnets are listed only at startup: after that their watch
        (controller/subnetwatch.py) keeps the record store, resuming from
        where it stopped after an error and LISTing again itself after a 410
        or a peering pause. A LIST here as well would only race it (its
        snapshot, older than events the watch already applied, would replace
        them) and cost a parse of every record each period."""
        self._listed_at = time.monotonic()
        started = self.nodes.now()
        # NodeSubnets first: a Node listed after them and missing is really gone.
        if whole:
            self.touch(await self._list_records())
        found = list(self.records)
        if whole:
            listed = await self.api.list_nodes(node_view)
        else:
            listed = await self.api.list_node_metadata(lambda meta: self._with_spec(node_view(meta)))
        before_nodes = {v.name: v for v in self.nodes}
        ghosts = self.nodes.relist(listed, started)
        # What the LISTs show that the watch did not: the Networks concerned must look again.
        for name in before_nodes.keys() | {v.name for v in listed}:
            old, new = before_nodes.get(name), self.nodes.get(name)
            if old != new:
                self.touch(self._affected(old, new))
        self.gone = {r.node for r in found} - {v.name for v in listed}
        self._pending.clear()  # the LISTs came after every write we made
        if whole:  # a metadata LIST shows no podCIDRs: ours stay laid over until the watch shows them
            self._pending_cidrs.clear()
        self.metrics.nodes.set(len(self.nodes))
        if ghosts:
            # Missed by the watch (a gap), or not yet through it: after a mass
            # delete, Kopf's watch may still hold the deletions in its queues.
            self.logger.warning(
                "dropped %d Nodes the LIST no longer has and the watch has not shown deleted (missed, or not yet"
                " through): %s",
                len(ghosts),
                ghosts[:10],
            )
        return ghosts

    async def relist_records(self) -> str:
        """The NodeSubnet watch lost track (410 Gone, a peering pause): LIST
        them into the record store, reconcile the Networks whose records
        changed, and return where the next watch starts. Called under the
        workqueue's lock, so no create or delete of ours is in flight."""
        await self._request_each(sorted(await self._list_records()))
        return self.records_version

    async def _list_records(self) -> set[Key]:
        """LIST every NodeSubnet into the record store; the Networks whose records changed."""
        found = await self.api.list_nodesubnets(records.parse)
        before = {r.name: r for r in self.records}
        self.records.replace_all(r for r in found if r is not None)
        self.records_version = found.version
        after = {r.name: r for r in self.records}
        changed: set[Key] = set()
        for name in before.keys() | after.keys():
            old, new = before.get(name), after.get(name)
            if old != new:
                changed.update(r.network for r in (old, new) if r is not None)
        return changed

    def _with_spec(self, view: NodeView) -> NodeView:
        known = self.nodes.get(view.name)
        if known is None or known.uid != view.uid:
            return view
        return dataclasses.replace(view, pod_cidrs=known.pod_cidrs, primary=known.primary)

    async def relist_if_due(self) -> None:
        """One pair of LISTs serves every Network's resync in the same period."""
        if time.monotonic() - self._listed_at >= self.relist_every:
            await self.relist()

    # --- watch events --------------------------------------------------------------

    def concerns(self, name: str, kind: str | None, body: Mapping[str, Any]) -> bool:
        """Whether a watch event about a Node can change anything `node_event`
        keeps or does. Only a MODIFIED event whose Node looks, in what the
        cache keeps (labels, our annotations, podCIDRs, uid...), as the cache
        already has it does not: a kubelet's status report. Kopf asks this
        before its handler machinery runs (the handler's `when=` filter)."""
        if kind != "MODIFIED" or name in self.gone:
            return True
        return self.nodes.get(name) != node_view(body)

    async def node_event(self, name: str, kind: str | None, body: Mapping[str, Any]) -> None:
        """A watch event about a Node (kind None: seen in the watch's initial listing).

        Reconciles only when labels or our annotations changed, and not for
        our own writes coming back through the watch: kubelets update their
        Node every few seconds, and that must cost next to nothing.
        """
        if kind == "DELETED":
            for values in self._pending.values():
                values.pop(name, None)
            self._pending_cidrs.pop(name, None)
            self.gone.add(name)
            if (removed := self.nodes.remove(name)) is not None:
                self.metrics.nodes.set(len(self.nodes))
                await self._request_each(self._affected(removed, None))
            return
        if kind in (None, "ADDED"):
            self.logger.info("add a node: %s", name)
        view = node_view(body)
        self.gone.discard(name)
        old = self.nodes.put(view)
        if old is None:
            self.metrics.nodes.set(len(self.nodes))
        if old is not None and old.labels == view.labels and self._seen(name, old, view):
            return
        await self._request_each(self._affected(old, view))

    async def record_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A watch event about a NodeSubnet: our own writes coming back cost
        a lookup; anyone else's (a second writer, a hand edit, the garbage
        collector) reconciles the Network it names."""
        meta = obj.get("metadata") or {}
        name, uid = meta.get("name") or "", meta.get("uid") or ""
        known = self.records.get(name)
        if kind == "DELETED":
            self.records.confirm_deleted(uid)
            if known is not None and (removed := self.records.remove(name, uid)) is not None:
                await self._request_each([removed.network])
            return
        # The same object as the store's: its spec is immutable, and of the
        # rest the store keeps only its owner's uid.
        if known is not None and known.uid == uid and known.node_uid == records.owner_uid(meta, known.node):
            return
        record = records.parse(obj)
        if record is None:
            return
        if known is None and name in self.creating:
            # Our own create, seen before its answer: the answer decides
            # (the record is ours, or the name was taken and it chooses again).
            self.records.put(record)
            return
        if self.records.put(record) != record:
            await self._request_each([record.network])

    def touch(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self._clock += 1
            self.epochs[key] = self._clock

    async def _request_each(self, keys: list[Key]) -> None:
        self.touch(keys)
        for key in keys:
            await self._request(key)

    def _seen(self, node: str, old: NodeView, new: NodeView) -> bool:
        """Whether every annotation and podCIDR that changed is one of our
        writes coming back: the round that made it took it into account, and
        whom else it concerns was asked then (`cidrs_written`)."""
        ours = self._pending_cidrs.get(node) == (new.uid, new.pod_cidrs)
        if old.pod_cidrs != new.pod_cidrs and (old.pod_cidrs or not ours):
            return False
        changed = {k for k in old.subnets.keys() | new.subnets.keys() if old.subnets.get(k) != new.subnets.get(k)}
        return all(node in self._pending.get(k, {}) and self._pending[k][node] == new.subnets.get(k) for k in changed)

    # --- our own annotation writes ---------------------------------------------------

    def wrote(self, ann_key: str, node: str, value: str | None) -> None:
        self._pending.setdefault(ann_key, {})[node] = value

    def wrote_pod_cidrs(self, node: str, cidrs: tuple[str, ...]) -> None:
        known = self.nodes.get(node)
        self._pending_cidrs[node] = (known.uid if known is not None else "", cidrs)

    async def cidrs_written(self, written: Mapping[str, tuple[tuple[str, ...], Collection[Key]]]) -> None:
        """podCIDRs we set (Node -> them, and the Networks that wrote them)
        pin a subnet for every Network that selects the Node: those that
        wrote them counted them already, the others are asked now, once,
        instead of when the watch shows the write. The Node had none before
        (podCIDRs are set once): the watch may have shown the write already,
        so the cache's view may carry them."""
        concerned: set[Key] = set()
        for node, (cidrs, by) in written.items():
            now = self.nodes.get(node)
            if now is not None:
                old, new = dataclasses.replace(now, pod_cidrs=()), dataclasses.replace(now, pod_cidrs=cidrs)
                concerned.update(k for k in self._affected(old, new) if k not in by)
        await self._request_each(sorted(concerned))

    def pod_cidrs(self, nodes: list[NodeView]) -> dict[str, tuple[str, ...]]:
        """Each Node's podCIDRs, with ours the watch has not shown yet laid over."""
        found = {n.name: n.pod_cidrs for n in nodes}
        uids = {n.name: n.uid for n in nodes} if self._pending_cidrs else {}
        for node, (uid, cidrs) in list(self._pending_cidrs.items()):
            # shown by the watch (or set by someone else), or the Node is gone or made again
            if found.get(node) or uids.get(node) != uid:
                del self._pending_cidrs[node]
            else:
                found[node] = cidrs
        return found

    def carried(self, nodes: list[NodeView]) -> dict[str, Mapping[str, str]]:
        """What each Node carries now, with our writes the watch has not shown yet laid over.
        The cache's own mappings, but for the Nodes written to: a round reads this of every Node."""
        by_name = {n.name: n for n in nodes}
        carried: dict[str, Mapping[str, str]] = {n.name: n.subnets for n in nodes}
        for key, written in self._pending.items():
            for node, value in list(written.items()):
                seen = by_name.get(node)
                if seen is None or seen.subnets.get(key) == value:
                    del written[node]  # shown by the watch, or the Node is gone
                    continue
                laid = dict(carried[node])
                if value is None:
                    laid.pop(key, None)
                else:
                    laid[key] = value
                carried[node] = laid
        return carried
