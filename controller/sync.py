"""A round of reconciles: the Networks the workqueue hands over together,
brought in line in an order that never lets two Nodes carry one subnet, and
what the rounds remember.

1. each Network in turn is judged, planned (netpool/desired.py) and creates
   the NodeSubnets of its new allocations: the API server refuses a second
   object of the same name, so a subnet taken by anyone (a second replica, a
   rolling update) is never handed out twice; on AlreadyExists that Network
   picks again next round;
2. one PATCH per Node carries every Network's annotation for it (and its
   podCIDRs), only for subnets whose NodeSubnet is ours: a Node joining ten
   pools is written once, not ten times, and its echo is read once;
3. removed annotations are gone before their NodeSubnets are deleted, so a
   subnet is free in the records only once no Node has it;
4. each Network's status, and the events of its transitions; held back
   while more work for that Network waits (`StatusPace`).

The writes themselves are controller/writes.py's.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from controller.feed import Feed
from controller.index import Networks
from controller.kube import Api
from controller.metrics import Metrics
from controller.writes import Writer
from netpool import desired
from netpool import status as st
from netpool.desired import Desired
from netpool.names import Key
from netpool.pool import IPNetwork
from netpool.verdict import refusal
from netpool.views import NetworkView, network_view
from netpool.world import World

# How long the subnet of a second writer's duplicate record stays unused after
# its deletion: longer than that writer's PATCH of the Node can be on the way
# (controller/transport.py: 10 s to connect, 60 s to read the answer).
QUARANTINE_SECONDS = 75.0

# The longest a Network's status is held back while rounds for it keep coming.
STATUS_HOLD_SECONDS = 1.0


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class _Round:
    """One Network's part of a round: planned, its NodeSubnets created, its other writes still to make."""

    view: NetworkView
    inputs: Any  # what the plan depended on (see Syncer._settled)
    previous: Mapping[str, Any]  # the status it starts from
    desired: Desired

    @property
    def key(self) -> Key:
        return (self.view.namespace, self.view.name)


class StatusPace:
    """Whether a round writes a Network's status now. While Nodes join one
    after another, a Network's rounds come back to back, each serving the
    Nodes that joined during the one before; a status PATCH in each made
    every round, and so every join, wait for one more request. A round that
    leaves more work queued for its Network holds the status back, for at
    most STATUS_HOLD_SECONDS since the first it held: the last round writes
    it, and the events of its transitions (those of a status never written
    are never posted: they were never seen)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[Key, float] = {}  # Network -> when its status was first held back

    def hold(self, key: Key, more_queued: bool) -> bool:
        if not more_queued:
            return False
        since = self._held.setdefault(key, self.clock())
        return self.clock() - since < STATUS_HOLD_SECONDS

    def done(self, key: Key) -> None:
        """Its status is written (or needed no write)."""
        self._held.pop(key, None)


class Syncer:
    def __init__(
        self,
        api: Api,
        feed: Feed,
        networks: Networks,
        writer: Writer,
        metrics: Metrics,
        logger: logging.Logger,
        queued: Callable[[Key], bool] = lambda key: False,
    ) -> None:
        self.api = api
        self.feed = feed
        self.networks = networks
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        self.queued = queued  # whether a round for the Network is queued already
        self.pace = StatusPace()
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
        written = await self.writer.write_round({r.key: r.desired for r in rounds})
        failed = written.failed
        rounds = [r for r in rounds if r.key not in failed]
        failed |= await self.writer.delete({r.key: [*r.desired.released, *written.moved[r.key]] for r in rounds})
        for r in rounds:
            if r.key in failed:
                continue
            if r.desired.again or r.key in written.again:
                results[r.key] = True
                continue
            if self.pace.hold(r.key, self.queued(r.key)):
                results[r.key] = False  # the queued round writes it
                continue
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
        view = self.networks.get(key)
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
        rivals = self.networks.claims(key)
        rivalry = [(c.created, c.ref, c.network, c.pod_cidrs) for c in rivals]
        inputs = (self.feed.epochs.get(key, 0), view.generation, rivalry)
        settled = self._settled.pop(key, None)
        if settled is not None and settled[0] == inputs and st.same(settled[1], self._written.get(key, view.status)):
            self._settled[key] = settled
            # Its gauges again: they were cleared if this replica stood by meanwhile, and labels may have changed.
            self.metrics.observe(view.namespace, view.name, settled[1], view.labels)
            return None
        previous: Mapping[str, Any] | None = self._written.get(key)
        if previous is None or st.same(previous, view.status):
            self._written.pop(key, None)
            previous = view.status

        verdict = self.networks.verdict(view)
        nodes = list(self.feed.nodes)
        now = time.monotonic()
        self._quarantine = {s: t for s, t in self._quarantine.items() if t > now}
        resting = frozenset(self._quarantine)
        world = World(key, nodes, self.feed.carried(nodes), self.feed.records, rivals, self.feed.gone, resting)
        outcome = refusal(verdict, view.created, view.ref, rivals)
        if outcome is not None:
            return _Round(view, inputs, previous, desired.unserved(world, outcome, view.generation, previous))
        spec = verdict.spec
        assert spec is not None  # judged valid: refusal() says why otherwise
        if spec.pod_cidrs:
            writers = self.networks.pod_cidr_writers()
            cidrs = self.feed.pod_cidrs(nodes) if desired.writes_pod_cidrs(key, spec, writers) else {}
            world = dataclasses.replace(world, writers=writers, pod_cidrs=cidrs)
        choice = desired.choose(world, spec, previous)
        own, lost = await self.writer.create(view, choice, world)
        planned = desired.settle(world, choice, own, lost, view.generation, previous)
        self._quarantine.update((r.subnet, now + QUARANTINE_SECONDS) for r in planned.duplicates)
        return _Round(view, inputs, previous, planned)

    async def _report(self, r: _Round) -> None:
        """The status of a Network whose writes are made."""
        status = r.desired.status(utcnow())
        self.pace.done(r.key)
        self._settled[r.key] = (r.inputs, status)
        self.metrics.observe(r.view.namespace, r.view.name, status, r.view.labels)
        if st.same(status, r.previous):
            return
        await self.writer.report(r.view, r.previous, status)
        self._written[r.key] = status

    async def release(self, key: Key) -> int:
        """The Network is being deleted: free every subnet it holds, and forget it."""
        released = await self.writer.release(key)
        self.pace.done(key)
        self._written.pop(key, None)
        self._settled.pop(key, None)
        return released
