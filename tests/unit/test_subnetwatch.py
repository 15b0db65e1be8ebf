"""The NodeSubnet watch (controller/subnetwatch.py) on a scripted API: each
watch it opens gets the next answer of the script (an error status, or
events and then the end, a cut or nothing more). What the API server does
with a real watch is proven in tests/integration/test_api_faults.py."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import aiohttp
import pytest

from controller import backoff, transport
from controller.feed import Feed
from controller.kube import Api, Listing
from controller.metrics import Metrics
from controller.subnetwatch import SubnetWatch
from controller.transport import ApiException
from controller.writer import Writer
from netpool import records
from netpool.names import Key

NET: Key = ("ns", "net")


def subnet(n: int, uid: str = "", node_uid: str = "node-uid", version: str = "1") -> dict[str, Any]:
    body = records.body(ipaddress.ip_network(f"10.0.{n}.0/24"), "10.0.0.1", f"node-{n}", node_uid, NET, "net-uid")
    body["metadata"].update(uid=uid or f"uid-{n}", resourceVersion=version, creationTimestamp="2026-01-01T00:00:00Z")
    return body


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(version: str) -> dict[str, Any]:
    return event("BOOKMARK", {"kind": "NodeSubnet", "metadata": {"resourceVersion": version}})


def error(code: int) -> dict[str, Any]:
    return event("ERROR", {"kind": "Status", "code": code, "reason": "Expired", "message": "too old"})


class Cut(aiohttp.ClientPayloadError):
    """The connection dropped in the middle of the answer."""


# One watch's answer: an error status at once, or its lines (events, or raw
# bytes) until the end or an error raised in the middle.
Answer = ApiException | list[dict[str, Any] | bytes | Exception]


class Paused:
    def __init__(self, paused: bool = False) -> None:
        self.paused = paused
        self._changed = asyncio.Event()

    def set(self, paused: bool) -> None:
        self.paused = paused
        self._changed.set()

    async def until(self, paused: bool) -> None:
        while self.paused != paused:
            self._changed.clear()
            await self._changed.wait()


class Api_:
    """The watch's API: scripted watches, LISTs that answer a version each, applied events recorded."""

    def __init__(self, script: list[Answer], lists: list[str | Exception] | None = None) -> None:
        self.script = script
        self.lists = lists or []
        self.queries: list[dict[str, str]] = []
        self.applied: list[tuple[str, str]] = []  # (type, name)
        self.listed = 0
        self.waiting = asyncio.Event()  # every answer given: the next watch waits for ever
        self.streams_open = 0
        self.on_event: Callable[[str], None] = lambda name: None

    @contextlib.asynccontextmanager
    async def stream(
        self, resource: str, path: str, query: list[tuple[str, str]], read_within: float
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        assert (resource, path) == ("nodesubnets", "/apis/samplecrd.k8s.io/v1/nodesubnets")
        self.queries.append(dict(query))
        if not self.script:
            self.waiting.set()
            await asyncio.Future()
        answer = self.script.pop(0)
        if isinstance(answer, ApiException):
            raise answer
        self.streams_open += 1
        try:
            yield self._lines(answer)
        finally:
            self.streams_open -= 1

    async def _lines(self, answer: list[dict[str, Any] | bytes | Exception]) -> AsyncIterator[bytes]:
        for item in answer:
            if isinstance(item, Exception):
                raise item
            yield item if isinstance(item, bytes) else json.dumps(item).encode()
            await asyncio.sleep(0)

    async def apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.applied.append((kind, obj["metadata"]["name"]))
        self.on_event(obj["metadata"]["name"])

    async def relist(self) -> str:
        self.listed += 1
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """No waiting between attempts; the failure counts the backoff was asked for."""
    asked: list[int] = []

    def delay(failures: int) -> float:
        asked.append(failures)
        return 0

    monkeypatch.setattr(backoff, "delay", delay)
    return asked


def watch(api: Api_, version: str = "10") -> None:
    """Run the watch from `version` until every answer is given, then close it."""

    async def run() -> None:
        w = SubnetWatch(api.stream, api.apply, api.relist, Paused(), logging.getLogger("test"))
        w.start(version)
        await asyncio.wait_for(api.waiting.wait(), 5)
        w.close()
        assert w._task is not None
        with contextlib.suppress(asyncio.CancelledError):
            await w._task

    asyncio.run(run())


def versions(api: Api_) -> list[str]:
    return [q["resourceVersion"] for q in api.queries]


def test_the_watch_starts_from_the_startup_list_with_bookmarks_and_applies_each_event(delays: list[int]) -> None:
    a, b = subnet(1, version="11"), subnet(2, version="12")
    api = Api_(
        [
            [
                event("ADDED", a),
                event("MODIFIED", b),
                bookmark("15"),
                event("DELETED", {**a, "metadata": {**a["metadata"], "resourceVersion": "16"}}),
            ],
            [bookmark("20")],
        ]
    )
    watch(api)
    assert api.applied == [("ADDED", "10.0.1.0-24"), ("MODIFIED", "10.0.2.0-24"), ("DELETED", "10.0.1.0-24")]
    # Closed by the server: the next watch goes on from the last resourceVersion, bookmarks included.
    assert versions(api) == ["10", "16", "20"]
    first = api.queries[0]
    assert first["watch"] == "true"
    assert first["allowWatchBookmarks"] == "true"
    assert 300 <= int(first["timeoutSeconds"]) <= 600
    assert api.listed == 0  # the startup LIST serves
    assert delays == []


@pytest.mark.parametrize("gone", ["status", "event"])
def test_410_gone_lists_again_and_watches_from_that_list(delays: list[int], gone: str) -> None:
    answer: Answer = ApiException(status=410) if gone == "status" else [bookmark("12"), error(410)]
    api = Api_([answer, [event("ADDED", subnet(1, version="31"))]], lists=["30"])
    watch(api)
    assert api.listed == 1
    assert versions(api) == ["10", "30", "31"]
    assert delays == []  # at once


@pytest.mark.parametrize("status", [429, 500, 503, 504, 403])
def test_an_error_status_backs_off_and_resumes_from_the_last_version(delays: list[int], status: int) -> None:
    api = Api_([[bookmark("12")], ApiException(status=status), ApiException(status=status), [bookmark("13")]])
    watch(api)
    assert versions(api) == ["10", "12", "12", "12", "13"]
    assert delays == [1, 2]  # the backoff grows while the watch is refused
    assert api.listed == 0


@pytest.mark.parametrize(
    "cut", [Cut("dropped"), TimeoutError(), b'{"type": "ADDED", "obj'], ids=["dropped", "silent", "garbled"]
)
def test_a_connection_lost_in_the_middle_resumes_after_the_last_event(
    delays: list[int], cut: Exception | bytes
) -> None:
    first = [event("ADDED", subnet(1, version="11")), cut, event("ADDED", subnet(2, version="12"))]
    api = Api_([first, [event("ADDED", subnet(2, version="12"))]])
    watch(api)
    assert versions(api) == ["10", "11", "12"]
    assert api.applied == [("ADDED", "10.0.1.0-24"), ("ADDED", "10.0.2.0-24")]
    assert delays == [1]
    assert api.listed == 0


def test_an_error_event_other_than_410_lists_again_after_the_backoff(delays: list[int]) -> None:
    api = Api_([[error(500)], [bookmark("40")]], lists=["40"])
    watch(api)
    assert api.listed == 1
    assert versions(api) == ["10", "40", "40"]
    assert delays == [1]


def test_a_failed_list_is_tried_again_after_the_backoff(delays: list[int]) -> None:
    api = Api_([ApiException(status=410), [bookmark("51")]], lists=[ApiException(status=503), "50"])
    watch(api)
    assert api.listed == 2
    assert versions(api) == ["10", "50", "51"]
    assert delays == [1]


def test_an_event_that_cannot_be_applied_is_skipped_not_read_again(delays: list[int]) -> None:
    api = Api_([[event("ADDED", subnet(1, version="11")), event("ADDED", subnet(2, version="12"))]])

    def fail(name: str) -> None:
        if name == "10.0.1.0-24":
            raise RuntimeError("bug")

    api.on_event = fail
    watch(api)
    assert [name for _, name in api.applied] == ["10.0.1.0-24", "10.0.2.0-24"]
    assert versions(api) == ["10", "12"]


def test_while_paused_no_watch_is_open_and_on_resume_it_lists_first(delays: list[int]) -> None:
    """As Kopf's watches under its peering: a standby watches nothing; once
    active, it LISTs (what happened meanwhile was not watched), then watches."""
    pause = Paused(paused=True)
    api = Api_([[event("ADDED", subnet(1, version="61"))]], lists=["60"])

    async def run() -> None:
        w = SubnetWatch(api.stream, api.apply, api.relist, pause, logging.getLogger("test"))
        w.start("10")
        await asyncio.sleep(0.05)
        assert api.queries == []
        assert api.listed == 0
        pause.set(False)
        await asyncio.wait_for(api.waiting.wait(), 5)
        w.close()

    asyncio.run(run())
    assert api.listed == 1
    assert versions(api) == ["60", "61"]


def test_a_pause_closes_the_open_watch_and_applies_nothing_after_it(delays: list[int]) -> None:
    pause = Paused()
    events: list[dict[str, Any] | bytes | Exception] = [
        event("ADDED", subnet(n, version=str(10 + n))) for n in range(1, 6)
    ]
    api = Api_([events, [bookmark("70")]], lists=["70"])

    def paused_at(name: str) -> None:
        if name == "10.0.2.0-24":
            pause.set(True)  # the peering log line comes while the watch reads

    api.on_event = paused_at

    async def run() -> None:
        w = SubnetWatch(api.stream, api.apply, api.relist, pause, logging.getLogger("test"))
        w.start("10")
        await asyncio.wait_for(pause.until(True), 5)
        await asyncio.sleep(0.05)
        assert api.streams_open == 0
        assert [name for _, name in api.applied] == ["10.0.1.0-24", "10.0.2.0-24"]
        assert api.listed == 0
        pause.set(False)
        await asyncio.wait_for(api.waiting.wait(), 5)
        w.close()

    asyncio.run(run())
    assert api.listed == 1
    assert versions(api) == ["10", "70", "70"]
    assert delays == []


def test_a_pause_while_the_watch_waits_for_events_closes_it(delays: list[int]) -> None:
    pause = Paused()
    api = Api_([])

    async def run() -> None:
        w = SubnetWatch(api.stream, api.apply, api.relist, pause, logging.getLogger("test"))
        w.start("10")
        await asyncio.wait_for(api.waiting.wait(), 5)  # the watch is open, and quiet
        pause.set(True)
        await asyncio.sleep(0.05)
        assert w._task is not None
        assert not w._task.done()
        assert len(api.queries) == 1  # closed, and no other opened while paused
        w.close()

    asyncio.run(run())


# --- the events, applied to the record store (controller/feed.py) ------------


class FeedApi:
    metrics = Metrics()

    def __init__(self, listed: list[dict[str, Any]] | None = None, version: str = "1") -> None:
        self.listed, self.version = listed or [], version

    async def list_nodesubnets(self, view: Callable[[dict[str, Any]], Any], selector: str | None = None) -> Any:
        found: Listing[Any] = Listing(view(o) for o in self.listed)
        found.version = self.version
        return found


def feed(api: FeedApi | None = None) -> tuple[Feed, list[Key]]:
    requested: list[Key] = []

    async def request(key: Key) -> None:
        requested.append(key)

    api = api or FeedApi()
    return Feed(cast(Api, api), api.metrics, logging.getLogger("test"), request, lambda o, n: [], 3600), requested


def test_our_own_create_coming_back_costs_a_lookup_and_requests_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    f, requested = feed()
    made = subnet(1)
    f.records.put(records.parse(made))  # type: ignore[arg-type]  # the create's answer

    def no_parse(obj: Mapping[str, Any]) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(records, "parse", no_parse)
    asyncio.run(f.record_event("ADDED", made))
    later = subnet(1, version="7")
    later["metadata"]["labels"]["someone"] = "else"  # nothing the store keeps
    asyncio.run(f.record_event("MODIFIED", later))
    assert requested == []


def test_an_echo_before_the_answer_is_stored_and_requests_nothing() -> None:
    f, requested = feed()
    f.creating.add("10.0.1.0-24")
    asyncio.run(f.record_event("ADDED", subnet(1)))
    assert f.records.get("10.0.1.0-24") is not None
    assert requested == []


def test_someone_elses_changes_request_the_network() -> None:
    f, requested = feed()
    asyncio.run(f.record_event("ADDED", subnet(1)))  # a second writer's
    assert requested == [NET]
    asyncio.run(f.record_event("MODIFIED", subnet(1, node_uid="another")))  # a new owner
    record = f.records.get("10.0.1.0-24")
    assert record is not None
    assert record.node_uid == "another"
    asyncio.run(f.record_event("ADDED", subnet(1, uid="new-incarnation")))
    asyncio.run(f.record_event("DELETED", subnet(1, uid="old")))  # an older incarnation: nothing
    assert requested == [NET, NET, NET]
    asyncio.run(f.record_event("DELETED", subnet(1, uid="new-incarnation")))  # by hand
    assert f.records.get("10.0.1.0-24") is None
    assert requested == [NET, NET, NET, NET]


def test_our_own_delete_coming_back_requests_nothing() -> None:
    f, requested = feed()
    record = records.parse(subnet(1))
    assert record is not None
    f.records.put(record)
    f.records.bury(record)
    asyncio.run(f.record_event("DELETED", subnet(1)))
    assert f.records.get("10.0.1.0-24") is None
    assert requested == []


def test_a_relist_replaces_the_store_and_requests_the_networks_that_changed() -> None:
    other: Key = ("ns", "other")
    kept, gone = records.parse(subnet(1)), records.parse(subnet(2))
    assert kept is not None
    assert gone is not None
    f, requested = feed(FeedApi([subnet(1)], version="99"))
    f.records.put(kept)
    f.records.put(records.Record(gone.name, gone.subnet, gone.node, other, gone.uid))
    assert asyncio.run(f.relist_records()) == "99"
    assert [r.name for r in f.records] == ["10.0.1.0-24"]
    assert requested == [other]


# --- what carries the watch -------------------------------------------------------


def test_lines_are_split_across_chunks_whatever_their_length() -> None:
    class Content:
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        async def iter_any(self) -> AsyncIterator[bytes]:
            for chunk in self.chunks:
                yield chunk

    big = b"x" * 300_000

    async def read(chunks: list[bytes]) -> list[bytes]:
        return [line async for line in transport._lines(cast(aiohttp.StreamReader, Content(chunks)))]

    assert asyncio.run(read([b'{"a"', b":1}\n{", b'"b":2}\n', big[:100_000], big[100_000:] + b"\n"])) == [
        b'{"a":1}',
        b'{"b":2}',
        big,
    ]
    assert asyncio.run(read([b"one\ntwo"])) == [b"one", b"two"]


def test_the_peering_log_wakes_a_waiter_from_another_thread() -> None:
    """Kopf logs from its own loop, but a logging filter runs in any thread that logs."""
    writer = Writer(paused=True, lease=None)

    async def run() -> None:
        waiting = asyncio.ensure_future(writer.until(False))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        thread = threading.Thread(target=writer._peering, args=("Resuming operations after the pause. ...",))
        thread.start()
        thread.join()
        await asyncio.wait_for(waiting, 2)
        assert not writer.paused
        pausing = asyncio.ensure_future(writer.until(True))
        await asyncio.sleep(0.01)
        writer._peering("Pausing operations in favour of [...]")
        await asyncio.wait_for(pausing, 2)

    asyncio.run(run())
