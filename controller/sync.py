"""The sync function of the seed's controller: idempotent, for the Networks
of one round of the workqueue.

Desired state comes from each Network, the Node cache and the NodeSubnet
records; only the difference is written, in an order that never lets two
Nodes carry one subnet:

1. each Network in turn plans and creates the NodeSubnets of its new
   allocations: the API server refuses a second object of the same name, so
   a subnet taken by anyone (a second replica, a rolling update) is never
   handed out twice; on AlreadyExists that Network picks again next round;
2. one PATCH per Node carries every Network's annotation for it (and its
   podCIDRs), only for subnets whose NodeSubnet is ours: a Node joining ten
   pools is written once, not ten times, and its echo is read once;
3. removed annotations are gone before their NodeSubnets are deleted, so a
   subnet is free in the records only once no Node has it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from controller.feed import Feed
from controller.kube import Api
from controller.queue import Key
from netpool import allocator, annotation, podcidr, records
from netpool import status as st
from netpool.allocator import Plan
from netpool.overlap import Claim, older_overlap
from netpool.pool import IPNetwork, Pool
from netpool.records import Record
from netpool.selector import Selector
from netpool.spec import NetworkSpec, SpecError, parse_spec
from netpool.views import NetworkView, NodeView, network_view, node_view

# How long the subnet of a second writer's duplicate record stays unused after
# its deletion: longer than that writer's PATCH of the Node can be on the way
# (controller/kube.py: 10 s to connect, 60 s to read the answer).
QUARANTINE_SECONDS = 75.0

T = TypeVar("T")
EventSink = Callable[[Mapping[str, Any], str, str, str], None]  # (object, type, reason, message)


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class _Round:
    """One Network's part of a round: planned, its NodeSubnets created, its Node writes still to make."""

    view: NetworkView
    inputs: Any  # what the plan depended on (see Syncer._settled)
    previous: Mapping[str, Any]  # the status it starts from
    finish: Callable[[], dict[str, Any]]  # the status to report once the writes are made
    writes: dict[str, str | None] = dataclasses.field(default_factory=dict)  # Node -> annotation (None: remove)
    cidrs: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # Node -> podCIDRs to set
    released: list[Record] = dataclasses.field(default_factory=list)  # NodeSubnets to delete after the writes
    again: bool = False  # lost a race, or freed subnets that waiting Nodes can have: go round again
    moved: dict[str, Record] = dataclasses.field(default_factory=dict)  # Node -> the record its new subnet replaces

    @property
    def key(self) -> Key:
        return (self.view.namespace, self.view.name)

    @property
    def ann_key(self) -> str:
        return annotation.key_for(*self.key)


# A Node's PATCH: annotations (None removes one) and podCIDRs (empty: none).
_Patch = tuple[dict[str, str | None], tuple[str, ...]]


class Syncer:
    def __init__(
        self,
        api: Api,
        feed: Feed,
        network: Callable[[Key], NetworkView | None],
        claims: Callable[[Key], list[Claim]],
        pod_cidr_writers: Callable[[], Mapping[int, tuple[Key, Selector]]],
        post_event: EventSink,
        logger: logging.Logger,
    ) -> None:
        self.api = api
        self.metrics = api.metrics
        self.feed = feed
        self.records = feed.records
        self.network = network
        self.claims = claims
        self.pod_cidr_writers = pod_cidr_writers
        self.post_event = post_event
        self.logger = logger
        self._written: dict[Key, dict[str, Any]] = {}  # status written, until the index shows it
        # Subnets of a second writer's duplicate records, deleted here: that
        # writer may still have its PATCH of the Node on the way, so they stay
        # out of use for a while (subnet -> monotonic deadline).
        self._quarantine: dict[IPNetwork, float] = {}
        # After a reconcile: what it depended on, and the status it left. The
        # same inputs again (a resync with nothing changed) need no work at all.
        self._settled: dict[Key, tuple[Any, Mapping[str, Any]]] = {}

    async def reconcile(self, batch: Mapping[Key, bool]) -> dict[Key, bool | Exception]:
        """Bring the Networks of one round in line (key -> whether it is a full
        resync). For each: True if it must go again at once (it lost a race for
        a subnet or a podCIDR, or freed subnets that waiting Nodes can have),
        False if done, or the error that failed it; one Network's failure does
        not stop the others."""
        results: dict[Key, bool | Exception] = {}
        rounds: list[_Round] = []
        for key, full in batch.items():
            try:
                prepared = await self._prepare(key, full)
            except Exception as e:
                results[key] = e
                continue
            if prepared is None:
                results[key] = False
            else:
                rounds.append(prepared)
        failed = await self._write_round(rounds)
        rounds = [r for r in rounds if r.key not in failed]
        deleted = await _each(self._delete(r.released) for r in rounds)
        for r, error in zip(rounds, deleted, strict=True):
            if isinstance(error, Exception):
                failed[r.key] = error
            elif r.again:
                results[r.key] = True
            else:
                try:
                    await self._report(r)
                except Exception as e:
                    failed[r.key] = e
                else:
                    results[r.key] = False
        results.update(failed)
        return results

    async def _prepare(self, key: Key, full: bool) -> _Round | None:
        """Plan one Network and create its new NodeSubnets; None if it has nothing to do."""
        view = self.network(key)
        if view is None or view.deleting:
            return None
        if full:
            # A resync checks the API's truth: a watch can miss a deletion
            # (a relist after 410 Gone), and nothing else would notice.
            body = await self.api.get_network(*key)
            if body is None:
                return None
            view = network_view(body)
            self._written.pop(key, None)
            await self.feed.relist_if_due()
        rivals = self.claims(key)
        rivalry = [(c.created, c.ref, c.network, c.pod_cidrs) for c in rivals]
        inputs = (self.feed.epochs.get(key, 0), view.generation, rivalry)
        settled = self._settled.pop(key, None)
        if settled is not None and settled[0] == inputs and st.same(settled[1], self._written.get(key, view.status)):
            self._settled[key] = settled
            # Its gauges again: they were cleared if this replica stood by meanwhile, and labels may have changed.
            self.metrics.observe(view.namespace, view.name, settled[1], view.labels)
            return None
        nodes = list(self.feed.nodes)
        carried = self.feed.carried(nodes)

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
            rival = older_overlap(Claim(view.created, view.ref, parsed.pool.network), rivals)
            if rival is not None:
                outcome = st.overlaps(str(parsed.pool.network), rival.ref, str(rival.network))
                parsed = None
        if parsed is not None:
            return await self._allocate(view, inputs, parsed, nodes, carried, previous, rivals)

        # Invalid or overlapping: allocate nothing and release nothing, so a
        # typo in a spec never takes a subnet away from a running node.
        ann_key = annotation.key_for(*key)
        holders = {r.node for r in self.records.of(key)}
        holders |= {n for n, v in carried.items() if annotation.subnet_of(v.get(ann_key))}
        status = st.build(
            generation=view.generation,
            outcome=outcome,
            pool=None,
            allocated=len(holders & carried.keys()),
            waiting=0,
            previous=previous,
            now=utcnow(),
        )
        return _Round(view, inputs, previous, lambda: status)

    async def _report(self, r: _Round) -> None:
        """The status of a Network whose writes are made, and the events of its transitions."""
        status = r.finish()
        view = r.view
        self._settled[r.key] = (r.inputs, status)
        self.metrics.observe(view.namespace, view.name, status, view.labels)
        if st.same(status, r.previous):
            return
        await self.api.patch_network_status(view.namespace, view.name, status)
        self._written[r.key] = status
        for event in (st.event_for(r.previous, status), st.pod_cidrs_event(r.previous, status)):
            if event is not None:
                # Transitions only, so the log carries what the events carry, once.
                level = logging.WARNING if event[0] == "Warning" else logging.INFO
                self.logger.log(level, "%s: %s: %s", view.ref, event[1], event[2])
                self.post_event(view.object_ref(), *event)

    async def _write_round(self, rounds: list[_Round]) -> dict[Key, Exception]:
        """Every Node write of the round, one PATCH per Node; returns the
        Networks whose writes failed. A Node refused (someone else set its
        podCIDRs first) sends the Networks that wrote to it round again."""
        patches: dict[str, _Patch] = {}
        writers: dict[str, list[_Round]] = {}
        for r in rounds:
            for node, value in r.writes.items():
                patches.setdefault(node, ({}, ()))[0][r.ann_key] = value
                writers.setdefault(node, []).append(r)
            for node, cidrs in r.cidrs.items():
                annotations, given = patches.setdefault(node, ({}, ()))
                if given and given != cidrs:
                    r.again = True  # the other family's writer chose otherwise this round: look again
                    continue
                patches[node] = (annotations, cidrs)
                writers.setdefault(node, []).append(r)
        outcomes = await self._write_nodes(patches)
        failed: dict[Key, Exception] = {}
        for node, outcome in outcomes.items():
            for r in writers[node]:
                if isinstance(outcome, Exception):
                    failed.setdefault(r.key, outcome)
                elif outcome is None:
                    r.again = True
        for r in rounds:
            # A moved Node's old record goes once the Node carries its new subnet
            # (written now, or already); while it still carries the old one, the
            # old record stays, and being the older of the two it keeps the Node.
            r.released += [old for node, old in r.moved.items() if outcomes.get(node, True) is True]
        return failed

    async def _allocate(
        self,
        view: NetworkView,
        inputs: Any,
        parsed: NetworkSpec,
        nodes: list[NodeView],
        carried: Mapping[str, Mapping[str, str]],
        previous: Mapping[str, Any],
        rivals: list[Claim],
    ) -> _Round:
        """Plan, and create the NodeSubnets of new allocations; the writes that remain."""
        key = (view.namespace, view.name)
        ann_key = annotation.key_for(*key)
        pool = parsed.pool
        matching = [n.name for n in nodes if parsed.selector.matches(n.labels)]
        own, extra = _own_records(self.records.of(key))
        writers = self.pod_cidr_writers() if parsed.pod_cidrs else {}
        writer = writers.get(pool.network.version)
        writes_cidrs = writer is not None and writer[0] == key
        pod_cidrs = self.feed.pod_cidrs(nodes) if writes_cidrs else {}
        # A podCIDR never changes: inside the pool it is its Node's allocation,
        # whoever else claims it; anywhere else the Node gets nothing here.
        fit = podcidr.fit(pool, matching, pod_cidrs)
        wanted = [n for n in matching if n not in fit.conflicts]

        # The records are the truth; an annotation with no record is adopted
        # if its subnet is free; what an older version's status remembered
        # gives a Node back its subnet when both are missing (upgrade).
        # Each Node's subnet as its annotation says (None: garbage), parsed once.
        annotated = {
            n: allocator.parse_subnet(annotation.subnet_of(v[ann_key])) for n, v in carried.items() if ann_key in v
        }
        held: dict[str, IPNetwork | None] = {n: r.subnet for n, r in own.items()}
        for node, subnet in annotated.items():
            held.setdefault(node, subnet)
        remembered: dict[str, IPNetwork | None] = {
            a.get("node", ""): allocator.parse_subnet(a.get("subnet"))
            for a in previous.get("allocations") or []
            if isinstance(a, Mapping)
        }
        remembered.update((n, r.subnet) for n, r in own.items())
        pinned = set(fit.pinned.values())
        for source in (held, remembered):
            for node, subnet in source.items():
                if subnet in pinned and fit.pinned.get(node) != subnet:
                    source[node] = None
            source.update(fit.pinned)

        # What other Networks hold, but not of those whose cidr shares no address
        # with this pool: that is most of the cluster's allocations, and reading
        # them all made every reconcile O(allocations). Should one of them still
        # hold a subnet here (its cidr just moved), the NodeSubnet's name is
        # taken and the create below picks again.
        apart = {c.key for c in rivals if not c.network.overlaps(pool.network)}
        apart_keys = {annotation.key_for(*k) for k in apart} | {ann_key}
        taken = [r.subnet for k in self.records.networks() if k != key and k not in apart for r in self.records.of(k)]
        # Not free in this round: subnets about to be released, and what Nodes
        # carry without a record (other Networks' annotations, values that are
        # not their Node's record), unless one of this Network's records holds it.
        taken += [r.subnet for r in extra] + [r.subnet for n, r in own.items() if n not in wanted]
        recorded = {r.subnet for r in own.values()}
        unrecorded = _annotated(v for values in carried.values() for k, v in values.items() if k not in apart_keys)
        unrecorded += [s for n, s in annotated.items() if s is not None and held.get(n) != s]
        taken += allocator.not_free(unrecorded, recorded)
        now = time.monotonic()
        self._quarantine = {s: t for s, t in self._quarantine.items() if t > now}
        # Not a subnet a record holds again: the record is the truth, and its
        # Node must keep it (taken, it would get a new one each round).
        taken += [s for s in self._quarantine if s not in recorded]
        taken = [s for s in taken if s not in pinned] + fit.taken
        # Newcomers in join order: every writer's watch shows the same one (see allocator.plan).
        plan = allocator.plan(pool, wanted, held, remembered, taken, {n.name: n.created for n in nodes})

        by_name = {n.name: n for n in nodes}
        uid_of = {n.name: n.uid for n in nodes}
        recorded_before = dict(own)
        lost = await self._create(view, pool, plan, own, uid_of)
        # A Node moved off a subnet it can no longer have (reserved now, outside
        # a smaller cidr) leaves its old record, released once the Node carries
        # the new one (_write_round); kept, the Node would hold two, and the
        # older would win when next reconciled and move the Node again.
        moved = {n: r for n, r in recorded_before.items() if own[n] is not r}
        served = {n: r for n, r in own.items() if plan.allocations.get(n) == r.subnet}
        desired = {n: annotation.render(*key, str(r.subnet), str(pool.gateway)) for n, r in served.items()}
        writes: dict[str, str | None] = {n: v for n, v in desired.items() if carried[n].get(ann_key) != v}
        writes.update({n: None for n, v in carried.items() if ann_key in v and n not in desired and n not in lost})
        cidrs = {}
        if writes_cidrs:
            cidrs = self._pod_cidrs_to_write(pool.network.version, writers, served, pod_cidrs, by_name)
        # A record whose Node is not in the cache stays (taken) unless the Node
        # is known to be gone: it may be a new Node the watch has not shown yet.
        stale = [r for n, r in own.items() if n not in served and (n in carried or n in self.feed.gone)]
        stale += [r for n, r in own.items() if r.node_uid and uid_of.get(n, r.node_uid) != r.node_uid]
        released = list({r.name: r for r in stale + extra}.values())
        self._quarantine.update((r.subnet, now + QUARANTINE_SECONDS) for r in extra)

        def finish() -> dict[str, Any]:
            pod_outcome: st.PodCidrs | None = None
            if parsed.pod_cidrs and writer is not None:
                version = pool.network.version
                if not writes_cidrs:
                    pod_outcome = st.pod_cidrs_older(version, "/".join(writer[0]))
                else:
                    now = {n: podcidr.parse(cidrs.get(n) or pod_cidrs.get(n) or ()).get(version) for n in served}
                    written = sum(1 for n, r in served.items() if now[n] == r.subnet)
                    if fit.conflicts:
                        conflicts = podcidr.summary(fit.conflicts)
                        pod_outcome = st.pod_cidrs_conflicts(written, len(fit.conflicts), conflicts)
                    else:
                        pod_outcome = st.pod_cidrs_written(version, written, len(served))
            return st.build(
                generation=view.generation,
                outcome=st.served(pool, len(wanted), len(served), len(plan.waiting)),
                pool=pool,
                allocated=len(served),
                waiting=len(plan.waiting),
                previous=previous,
                now=utcnow(),
                pod_cidrs=pod_outcome,
            )

        # Lost a race for a subnet, or freeing subnets that waiting Nodes can have.
        again = bool(lost) or bool(released and plan.waiting)
        return _Round(view, inputs, previous, finish, writes, cidrs, released, again, moved)

    def _pod_cidrs_to_write(
        self,
        version: int,
        writers: Mapping[int, tuple[Key, Selector]],
        served: Mapping[str, Record],
        pod_cidrs: Mapping[str, tuple[str, ...]],
        nodes: Mapping[str, NodeView],
    ) -> dict[str, tuple[str, ...]]:
        """podCIDRs for the served Nodes that have none. The API server takes
        them once, so a Node the other family's writer selects gets both
        families in one write; until that Network has chosen the Node's subnet,
        this one waits, and that one writes both when it has."""
        partner = next((w for v, w in writers.items() if v != version), None)
        theirs = _own_records(self.records.of(partner[0]))[0] if partner is not None else {}
        found: dict[str, tuple[str, ...]] = {}
        for name, record in served.items():
            if pod_cidrs.get(name):
                continue
            cidrs = {version: record.subnet}
            if partner is not None and partner[1].matches(nodes[name].labels):
                other = theirs.get(name)
                if other is None:
                    continue
                cidrs[other.subnet.version] = other.subnet
            found[name] = tuple(podcidr.ordered(cidrs, nodes[name].primary))
        return found

    async def _create(
        self,
        view: NetworkView,
        pool: Pool,
        plan: Plan,
        own: dict[str, Record],
        node_uids: Mapping[str, str],
    ) -> set[str]:
        """Create the NodeSubnets the plan adds, into `own`; returns the Nodes that lost theirs."""
        key = (view.namespace, view.name)
        lost: set[str] = set()

        async def one(node: str, subnet: IPNetwork) -> None:
            obj = records.body(subnet, str(pool.gateway), node, node_uids[node], key, view.uid)
            made = await self.api.create_nodesubnet(obj)
            if made is None:  # AlreadyExists: whose is it?
                made = await self.api.get_nodesubnet(records.name_for(subnet))
            record = records.parse(made) if made is not None else None
            if record is not None:
                self.records.put(record)
            if record is not None and record.node == node and record.network == key:
                own[node] = record  # ours, made by us now or by another replica before
            else:
                lost.add(node)

        new = [(n, s) for n, s in plan.allocations.items() if n not in own or own[n].subnet != s]
        await asyncio.gather(*(one(n, s) for n, s in new))
        if lost:
            self.logger.info("%s: %d subnets were taken meanwhile; choosing again", view.ref, len(lost))
        return lost

    async def _write_nodes(self, patches: Mapping[str, _Patch]) -> dict[str, bool | Exception | None]:
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
        outcomes = dict(zip(names, await _each(one(n, *patches[n]) for n in names), strict=True))
        refused = sum(1 for o in outcomes.values() if o is None)
        if refused:
            self.logger.info("%d Nodes got podCIDRs from elsewhere meanwhile; they keep them", refused)
        return outcomes

    async def _delete(self, released: list[Record]) -> None:
        for record in released:
            self.records.bury(record)
        await asyncio.gather(*(self.api.delete_nodesubnet(r.name, r.uid) for r in released))

    async def release(self, key: Key) -> int:
        """Remove this Network's annotation from every Node, then its NodeSubnets;
        returns how many Nodes had one. Reads the API's truth, not the caches:
        nothing may be left behind."""
        ann_key = annotation.key_for(*key)
        holders = [v.name for v in await self.api.list_node_metadata(node_view) if ann_key in v.subnets]
        outcomes = await self._write_nodes({n: ({ann_key: None}, ()) for n in holders})
        errors = [o for o in outcomes.values() if isinstance(o, Exception)]
        if errors:
            raise errors[0]
        label = records.LABEL_NETWORK + "=" + ann_key.removeprefix(annotation.PREFIX)
        found = [r for r in await self.api.list_nodesubnets(records.parse, label) if r and r.network == key]
        await self._delete(found)
        self._written.pop(key, None)
        self._settled.pop(key, None)
        return len(holders)


def _own_records(mine: Iterable[Record]) -> tuple[dict[str, Record], list[Record]]:
    """Each Node's record of one Network, and the extras: two writers can give a
    Node two; every replica keeps the same one, the older."""
    own: dict[str, Record] = {}
    extra: list[Record] = []
    for record in sorted(mine, key=lambda r: r.age):
        if record.node in own:
            extra.append(record)
        else:
            own[record.node] = record
    return own, extra


def _annotated(values: Iterable[str]) -> list[IPNetwork]:
    return [s for v in values if (s := allocator.parse_subnet(annotation.subnet_of(v))) is not None]


async def _each(calls: Iterable[Awaitable[T]]) -> list[T | Exception]:
    """Run them all at once; each result, or the error that failed it, in its
    place. Cancellation (the operator is stopping) is not an error: it goes on."""
    done = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return cast(list[T | Exception], done)
