"""The API writes of a round, each laid over the caches at once: NodeSubnets
created or deleted go into the record store, Node annotations and podCIDRs
over the Node cache until the watch shows them (controller/feed.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from controller.feed import Feed
from controller.kube import Api
from controller.transport import CONCURRENCY
from netpool import annotation, records
from netpool import status as st
from netpool.desired import Choice, Desired
from netpool.names import LABEL_NETWORK, Key
from netpool.pool import IPNetwork
from netpool.records import Record
from netpool.views import NetworkView, node_view
from netpool.world import World

T = TypeVar("T")
# Calls of a round started at once: enough to keep every connection busy.
IN_FLIGHT = 2 * CONCURRENCY
EventSink = Callable[[Mapping[str, Any], str, str, str], None]  # (object, type, reason, message)
# A Node's PATCH: annotations (None removes one) and podCIDRs (empty: none).
Patch = tuple[dict[str, str | None], tuple[str, ...]]


@dataclasses.dataclass(frozen=True)
class Written:
    """What a round's Node writes leave to do, per Network."""

    failed: dict[Key, Exception]  # its writes failed
    # it must go round again: a Node refused (someone else set its podCIDRs
    # first), or podCIDRs the other family's writer chose otherwise this round
    again: set[Key]
    moved: dict[Key, list[Record]]  # old records of moved Nodes that now carry their new subnet: to delete


class Writer:
    def __init__(self, api: Api, feed: Feed, post_event: EventSink, logger: logging.Logger) -> None:
        self.api = api
        self.feed = feed
        self.records = feed.records
        self.post_event = post_event
        self.logger = logger

    async def create(self, view: NetworkView, choice: Choice, world: World) -> tuple[dict[str, Record], set[str]]:
        """Create the NodeSubnets the plan adds. Returns each Node's record
        after (ours, made by us now or by another replica before) and the
        Nodes that lost theirs: the API server refuses a second object of a
        name, so a subnet taken by anyone is never handed out twice."""
        key = (view.namespace, view.name)
        gateway = str(choice.spec.pool.gateway)
        own = dict(choice.own)
        lost: set[str] = set()

        async def one(node: str, subnet: IPNetwork) -> None:
            obj = records.body(subnet, gateway, node, world.uids[node], key, view.uid)
            name = obj["metadata"]["name"]
            # Its echo in the watch may come before the answer: the answer decides.
            self.feed.creating.add(name)
            try:
                made = await self.api.create_nodesubnet(obj)
            finally:
                self.feed.creating.discard(name)
            if made is None:  # AlreadyExists: whose is it?
                made = await self.api.get_nodesubnet(name)
            record = records.parse(made) if made is not None else None
            if record is not None:
                self.records.put(record)
            if record is not None and record.node == node and record.network == key:
                own[node] = record
            else:
                lost.add(node)

        errors = [e for e in await each(one(n, s) for n, s in choice.new()) if isinstance(e, Exception)]
        if errors:
            raise errors[0]
        if lost:
            self.logger.info("%s: %d subnets were taken meanwhile; choosing again", view.ref, len(lost))
        return own, lost

    async def write_round(self, rounds: Mapping[Key, Desired]) -> Written:
        """Every Node write of the round, one PATCH per Node, and what follows
        from each Node's outcome for the Networks that wrote to it."""
        patches: dict[str, Patch] = {}
        writers: dict[str, list[Key]] = {}
        cidr_writers: dict[str, list[Key]] = {}
        again: set[Key] = set()
        for key, d in rounds.items():
            ann_key = annotation.key_for(*key)
            for node, value in d.writes.items():
                patches.setdefault(node, ({}, ()))[0][ann_key] = value
                writers.setdefault(node, []).append(key)
            for node, cidrs in d.cidrs.items():
                annotations, given = patches.setdefault(node, ({}, ()))
                if given and given != cidrs:
                    again.add(key)
                    continue
                patches[node] = (annotations, cidrs)
                writers.setdefault(node, []).append(key)
                cidr_writers.setdefault(node, []).append(key)
        outcomes = await self.write_nodes(patches)
        await self.feed.cidrs_written({n: (patches[n][1], k) for n, k in cidr_writers.items() if outcomes[n] is True})
        failed: dict[Key, Exception] = {}
        for node, outcome in outcomes.items():
            for key in writers[node]:
                if isinstance(outcome, Exception):
                    failed.setdefault(key, outcome)
                elif outcome is None:
                    again.add(key)
        # A moved Node's old record goes once the Node carries its new subnet
        # (written now, or already); while it still carries the old one, the
        # old record stays, and being the older of the two it keeps the Node.
        moved = {k: [old for n, old in d.moved.items() if outcomes.get(n, True) is True] for k, d in rounds.items()}
        return Written(failed, again, moved)

    async def write_nodes(self, patches: Mapping[str, Patch]) -> dict[str, bool | Exception | None]:
        """One PATCH per Node: its annotations (None removes one) and podCIDRs.
        Each Node's outcome: True if written, False if the Node is gone, None
        if someone else set its podCIDRs first (the API server refuses ours,
        and the cache learns theirs), or the error."""

        async def one(node: str, annotations: dict[str, str | None], cidrs: tuple[str, ...]) -> bool | None:
            done = await self.api.patch_node(node, annotations, cidrs)
            if done is None:
                fresh = await self.api.get_node(node)
                if fresh is not None:
                    await self.feed.node_event(node, "MODIFIED", fresh)
                return None
            if done:
                for ann_key, value in annotations.items():
                    self.feed.wrote(ann_key, node, value)
                if cidrs:
                    self.feed.wrote_pod_cidrs(node, cidrs)
            return done

        names = list(patches)
        outcomes = dict(zip(names, await each(one(n, *patches[n]) for n in names), strict=True))
        refused = sum(1 for o in outcomes.values() if o is None)
        if refused:
            self.logger.info("%d Nodes got podCIDRs from elsewhere meanwhile; they keep them", refused)
        return outcomes

    async def delete(self, released: Mapping[Key, Sequence[Record]]) -> dict[Key, Exception]:
        """Delete each Network's released NodeSubnets; the Networks whose deletes failed."""
        keys = list(released)
        done = await each(self._delete(released[k]) for k in keys)
        return {k: e for k, e in zip(keys, done, strict=True) if isinstance(e, Exception)}

    async def _delete(self, released: Sequence[Record]) -> None:
        for record in released:
            self.records.bury(record)
        done = await each(self.api.delete_nodesubnet(r.name, r.uid) for r in released)
        errors = [e for e in done if isinstance(e, Exception)]
        # A record whose delete failed is still there, and no watch event will
        # say so: back into the store, to be released again.
        for record, outcome in zip(released, done, strict=True):
            if isinstance(outcome, Exception):
                self.records.unbury(record)
        if errors:
            raise errors[0]

    async def report(self, view: NetworkView, previous: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Write a Network's status, and post the events of its transitions."""
        await self.api.patch_network_status(view.namespace, view.name, status)
        for event in (st.event_for(previous, status), st.pod_cidrs_event(previous, status)):
            if event is not None:
                # Transitions only, so the log carries what the events carry, once.
                level = logging.WARNING if event[0] == "Warning" else logging.INFO
                self.logger.log(level, "%s: %s: %s", view.ref, event[1], event[2])
                self.post_event(view.object_ref(), *event)

    async def release(self, key: Key) -> int:
        """Remove this Network's annotation from every Node, then its NodeSubnets;
        returns how many Nodes had one. Reads the API's truth, not the caches:
        nothing may be left behind."""
        ann_key = annotation.key_for(*key)
        holders = [v.name for v in await self.api.list_node_metadata(node_view) if ann_key in v.subnets]
        outcomes = await self.write_nodes({n: ({ann_key: None}, ()) for n in holders})
        errors = [o for o in outcomes.values() if isinstance(o, Exception)]
        if errors:
            raise errors[0]
        label = LABEL_NETWORK + "=" + ann_key.removeprefix(annotation.PREFIX)
        found = [r for r in await self.api.list_nodesubnets(records.parse, label) if r and r.network == key]
        await self._delete(found)
        return len(holders)


async def each(calls: Iterable[Awaitable[T]]) -> list[T | Exception]:
    """Run them, IN_FLIGHT at a time; each result, or the error that failed
    it, in its place. Cancellation (the operator is stopping) is not an error:
    it goes on. `calls` is consumed as the calls start: a round of 5,000
    Nodes made 5,000 tasks at once, each with its request body built, all
    waiting for one of the client's CONCURRENCY connections."""
    results: dict[int, T | Exception] = {}
    pending = enumerate(calls)

    async def run() -> None:
        for i, call in pending:  # shared by the runners: each takes the next
            try:
                results[i] = await call
            except Exception as e:
                results[i] = e

    await asyncio.gather(*(run() for _ in range(IN_FLIGHT)))
    return [results[i] for i in range(len(results))]
