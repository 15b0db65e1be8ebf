"""A round's Node writes (controller/writes.py): one PATCH per Node for every
Network of the round, and each outcome back to the Networks that wrote it.
The API is a fake that records its calls; what the API server does with them
is proven in tests/integration."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest

from controller import writes
from controller.feed import Feed
from controller.kube import Api
from controller.metrics import Metrics
from controller.writes import Writer
from netpool import annotation
from netpool.desired import Desired
from netpool.names import Key
from netpool.records import Record
from netpool.views import NodeView, node_view

N1, N2 = "node-1", "node-2"


class FakeApi:
    """Node PATCHes only: recorded; refused (someone else set the podCIDRs) or failing for the Nodes named."""

    def __init__(self, refuse: Sequence[str] = (), fail: Sequence[str] = ()) -> None:
        self.metrics = Metrics()
        self.refuse, self.fail = set(refuse), set(fail)
        self.patches: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []

    async def patch_node(
        self, node: str, annotations: Mapping[str, str | None], pod_cidrs: Sequence[str] = ()
    ) -> bool | None:
        self.patches.append((node, dict(annotations), tuple(pod_cidrs)))
        if node in self.fail:
            raise ConnectionError("the API server is down")
        return None if node in self.refuse else True

    async def get_node(self, node: str) -> dict[str, Any] | None:
        return None


def writer(api: FakeApi, requested: list[Key] | None = None, concerned: Sequence[Key] = ()) -> Writer:
    """A Writer on a Feed that records the Networks it requests; a podCIDR
    set on any Node concerns those in `concerned`."""

    async def request(key: Key) -> None:
        if requested is not None:
            requested.append(key)

    def affected(old: NodeView | None, new: NodeView | None) -> list[Key]:
        return list(concerned) if old and new and old.pod_cidrs != new.pod_cidrs else []

    log = logging.getLogger("test")
    feed = Feed(cast(Api, api), api.metrics, log, request, affected, relist_every=3600)
    return Writer(cast(Api, api), feed, lambda *_: None, log)


class Round:
    """One Network's part of a round, and what the writes leave it to do."""

    def __init__(self, name: str, writes: dict[str, str | None], cidrs: dict[str, tuple[str, ...]] | None) -> None:
        self.key: Key = ("ns", name)
        self.writes, self.cidrs = writes, cidrs or {}
        self.moved: dict[str, Record] = {}
        self.again = False
        self.released: list[Record] = []

    @property
    def desired(self) -> Desired:
        return Desired(lambda now: {}, self.writes, self.cidrs, moved=self.moved)


def network_round(name: str, writes: dict[str, str | None], cidrs: dict[str, tuple[str, ...]] | None = None) -> Round:
    return Round(name, writes, cidrs)


def write_round(writer: Writer, rounds: list[Round]) -> dict[Key, Exception]:
    written = asyncio.run(writer.write_round({r.key: r.desired for r in rounds}))
    for r in rounds:
        r.again = r.key in written.again
        r.released += written.moved[r.key]
    return written.failed


def key(name: str) -> str:
    return annotation.key_for("ns", name)


def test_every_network_of_a_round_shares_one_patch_per_node() -> None:
    api = FakeApi()
    w = writer(api)
    a = network_round("a", {N1: "a1", N2: None}, {N1: ("10.1.0.0/24",)})
    b = network_round("b", {N1: "b1"})
    failed = write_round(w, [a, b])
    assert failed == {}
    assert sorted(api.patches) == [
        (N1, {key("a"): "a1", key("b"): "b1"}, ("10.1.0.0/24",)),
        (N2, {key("a"): None}, ()),
    ]
    assert (a.again, b.again) == (False, False)
    # What was written is laid over the cache until the watch shows it.
    assert w.feed._pending == {key("a"): {N1: "a1", N2: None}, key("b"): {N1: "b1"}}
    assert w.feed._pending_cidrs == {N1: ("", ("10.1.0.0/24",))}


def test_podcidrs_two_writers_disagree_on_keep_the_first_and_send_the_other_round_again() -> None:
    api = FakeApi()
    a = network_round("a", {}, {N1: ("10.1.0.0/24", "fd00::/64")})
    b = network_round("b", {}, {N1: ("fd00::/64", "10.1.0.0/24")})
    write_round(writer(api), [a, b])
    assert api.patches == [(N1, {}, ("10.1.0.0/24", "fd00::/64"))]
    assert (a.again, b.again) == (False, True)


@pytest.mark.parametrize(
    ("refuse", "fail", "failed", "again"),
    [
        ([N1], [], set(), {"a", "b"}),  # refused: both wrote to N1 and look again
        ([], [N2], {"b"}, set()),  # failed: only b wrote to N2; a's writes are made
        ([N2], [N1], {"a", "b"}, {"b"}),
    ],
)
def test_each_nodes_outcome_goes_to_the_networks_that_wrote_to_it(
    refuse: list[str], fail: list[str], failed: set[str], again: set[str]
) -> None:
    api = FakeApi(refuse, fail)
    a = network_round("a", {N1: "a1"})
    b = network_round("b", {N1: "b1", N2: "b2"}, {N2: ("10.2.0.0/24",)})
    errors = write_round(writer(api), [a, b])
    assert {k[1] for k in errors} == failed
    assert all(isinstance(e, ConnectionError) for e in errors.values())
    assert {r.key[1] for r in (a, b) if r.again} == again


@pytest.mark.parametrize(
    ("refuse", "fail", "released"),
    [
        ([], [], {N1, N2}),  # N1 written, N2 already carried its new subnet
        ([N1], [], {N2}),  # refused: N1 still carries its old subnet, whose record stays
        ([], [N1], {N2}),  # failed: the same
    ],
)
def test_a_moved_nodes_old_record_goes_only_once_the_node_carries_its_new_subnet(
    refuse: list[str], fail: list[str], released: set[str]
) -> None:
    old = {
        n: Record(f"10.0.{i}.0-24", ipaddress.ip_network(f"10.0.{i}.0/24"), n, ("ns", "a"))
        for i, n in enumerate((N1, N2))
    }
    a = network_round("a", {N1: "a1"})
    a.moved = old
    write_round(writer(FakeApi(refuse, fail)), [a])
    assert {r.node for r in a.released} == released


def test_a_record_whose_delete_failed_goes_back_into_the_store() -> None:
    """No watch event will say it is still there: back in the store, it is released again next time."""

    class Deletes(FakeApi):
        async def delete_nodesubnet(self, name: str, uid: str) -> None:
            if name == "10.0.1.0-24":
                raise ConnectionError("the API server is down")

    w = writer(Deletes())
    failed = Record("10.0.1.0-24", ipaddress.ip_network("10.0.1.0/24"), N1, ("ns", "a"), "uid-1")
    done = Record("10.0.2.0-24", ipaddress.ip_network("10.0.2.0/24"), N2, ("ns", "a"), "uid-2")
    for record in (failed, done):
        w.records.put(record)
    errors = asyncio.run(w.delete({("ns", "a"): [failed, done]}))
    assert isinstance(errors[("ns", "a")], ConnectionError)
    assert w.records.get(failed.name) == failed
    assert w.records.get(done.name) is None


def test_podcidrs_written_stay_laid_over_the_cache_through_a_metadata_relist() -> None:
    """A resync's LIST reads Node metadata only, so it cannot show podCIDRs:
    those written before it stay laid over the cache until the watch shows
    them. Dropped there, the next round saw the Node without podCIDRs and
    wrote them again."""

    class Lists(FakeApi):
        async def list_node_metadata(self, view: Any) -> list[Any]:
            return [view({"metadata": {"name": N1, "uid": "u1", "annotations": {key("a"): "a1"}}})]

    w = writer(Lists())
    feed = w.feed
    feed.nodes.put(feed_node(N1))  # as the watch showed it before our write
    write_round(w, [network_round("a", {N1: "a1"}, {N1: ("10.1.0.0/24",)})])
    asyncio.run(feed.relist())
    nodes = list(feed.nodes)
    assert feed.carried(nodes)[N1] == {key("a"): "a1"}  # the LIST shows the annotation
    assert feed.pod_cidrs(nodes) == {N1: ("10.1.0.0/24",)}
    # The watch shows them: nothing left laid over.
    feed.nodes.put(feed_node(N1, {key("a"): "a1"}, ["10.1.0.0/24"]))
    assert feed.pod_cidrs(list(feed.nodes)) == {N1: ("10.1.0.0/24",)}
    assert feed._pending_cidrs == {}


def test_podcidrs_written_are_not_laid_over_a_node_made_again_under_the_same_name() -> None:
    w = writer(FakeApi())
    feed = w.feed
    feed.nodes.put(feed_node(N1))
    write_round(w, [network_round("a", {}, {N1: ("10.1.0.0/24",)})])
    assert feed.pod_cidrs(list(feed.nodes)) == {N1: ("10.1.0.0/24",)}
    # Deleted and made again while the watch was away: the new Node has none.
    feed.nodes.put(feed_node(N1, uid="u2"))
    assert feed.pod_cidrs(list(feed.nodes)) == {N1: ()}
    assert feed._pending_cidrs == {}


A, B = ("ns", "a"), ("ns", "b")


def test_podcidrs_written_ask_the_other_networks_they_concern_now_and_their_echo_asks_none() -> None:
    """Our podCIDRs pin a subnet for every Network that selects the Node. The
    one that wrote them counted them; the others are asked once, when the
    write is made. The watch showing the write then asks nobody: before, it
    sent every such Network round again, each over every Node."""
    requested: list[Key] = []
    w = writer(FakeApi(), requested, concerned=[A, B])
    feed = w.feed
    feed.nodes.put(feed_node(N1))
    write_round(w, [network_round("a", {N1: "a1"}, {N1: ("10.1.0.0/24",)})])
    assert requested == [B]
    requested.clear()
    meta = {"name": N1, "uid": "u1", "annotations": {key("a"): "a1"}}
    asyncio.run(feed.node_event(N1, "MODIFIED", {"metadata": meta, "spec": {"podCIDRs": ["10.1.0.0/24"]}}))
    assert requested == []
    assert feed.nodes.get(N1) == feed_node(N1, {key("a"): "a1"}, ["10.1.0.0/24"])


def test_podcidrs_written_ask_the_other_networks_even_when_the_watch_showed_them_first() -> None:
    """The watch can show one Node's PATCH while the round still waits for
    another's answer: that echo is ours and asks nobody, and the cache
    already carries its podCIDRs when the round's outcomes are looked at.
    The other Networks are asked all the same: left out, a dual-stack
    partner kept counting no podCIDRs on that Node."""

    class Echoing(FakeApi):
        async def patch_node(self, node: str, annotations: Any, pod_cidrs: Sequence[str] = ()) -> bool | None:
            for earlier, written, cidrs in self.patches:  # their answers are handled: their echoes come now
                meta = {"name": earlier, "uid": "u1", "annotations": {k: v for k, v in written.items() if v}}
                await w.feed.node_event(earlier, "MODIFIED", {"metadata": meta, "spec": {"podCIDRs": list(cidrs)}})
            return await super().patch_node(node, annotations, pod_cidrs)

    requested: list[Key] = []
    w = writer(Echoing(), requested, concerned=[A, B])
    for node in (N1, N2):
        w.feed.nodes.put(feed_node(node))
    cidrs = ("10.1.0.0/24", "fd00::/64")
    write_round(w, [network_round("a", {N1: "a1", N2: "a2"}, {N1: cidrs})])  # N2: its annotation only
    assert w.feed.nodes.get(N1) == feed_node(N1, {key("a"): "a1"}, list(cidrs))  # the echo came first
    assert requested == [B]


@pytest.mark.parametrize(
    ("cidrs", "uid"),
    [(["10.9.0.0/24"], "u1"), (["10.1.0.0/24"], "u2")],
    ids=["other-podcidrs", "node-made-again"],
)
def test_podcidrs_someone_else_set_ask_every_network_they_concern(cidrs: list[str], uid: str) -> None:
    """Not our write coming back: another value than ours, or ours on a Node
    made again under the name (the write went to the one before)."""
    requested: list[Key] = []
    feed = writer(FakeApi(), requested, concerned=[A, B]).feed
    feed.nodes.put(feed_node(N1))
    feed.wrote_pod_cidrs(N1, ("10.1.0.0/24",))
    feed.nodes.put(feed_node(N1, uid=uid))
    asyncio.run(feed.node_event(N1, "MODIFIED", {"metadata": {"name": N1, "uid": uid}, "spec": {"podCIDRs": cidrs}}))
    assert requested == [A, B]


def feed_node(
    name: str, annotations: dict[str, str] | None = None, cidrs: list[str] | None = None, uid: str = "u1"
) -> NodeView:
    meta = {"name": name, "uid": uid, "annotations": annotations or {}}
    return node_view({"metadata": meta, "spec": {"podCIDRs": cidrs or []}})


@pytest.mark.parametrize("calls", [0, 1, writes.IN_FLIGHT, 5 * writes.IN_FLIGHT + 3])
def test_a_rounds_calls_run_in_flight_a_few_at_a_time_each_outcome_in_its_place(calls: int) -> None:
    """A round of thousands of Nodes makes each call as one starts, at most
    IN_FLIGHT at once, not all of them ahead; each result or error comes
    back where its call was."""
    running = most = made = started = 0

    async def call(i: int) -> int:
        nonlocal running, most, started
        started += 1
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        running -= 1
        if i % 7 == 3:
            raise ValueError(i)
        return i

    def each() -> Any:
        nonlocal made
        for i in range(calls):
            assert made == started  # the one before has started: none made ahead
            made += 1
            yield call(i)

    outcomes = asyncio.run(writes.each(each()))
    assert [-int(str(o)) if isinstance(o, ValueError) else o for o in outcomes] == [
        -i if i % 7 == 3 else i for i in range(calls)
    ]
    assert most == min(calls, writes.IN_FLIGHT)
