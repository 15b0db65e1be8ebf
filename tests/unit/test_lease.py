"""The Lease: taken when free, taken over only after seen unchanged for its
duration, given back when idle, and no write allowed without it."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import pytest
from aiohttp import web

from controller import lease as lease_module
from controller import transport
from controller.kube import Api
from controller.lease import Lease
from controller.login import Login
from controller.metrics import Metrics

PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/op"


class FakeApi:
    """One Lease object with resourceVersions, as the API server keeps it."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0

    def hold(self, holder: str) -> None:
        self.version += 1
        spec = {"holderIdentity": holder, "leaseDurationSeconds": lease_module.DURATION}
        self.obj = {"metadata": {"name": "op", "resourceVersion": str(self.version)}, "spec": spec}

    async def request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any] | str | None:
        if method == "GET":
            return copy.deepcopy(self.obj)
        assert body is not None
        if method == "POST":
            if self.obj is not None:
                return "conflict"
        elif self.obj is None or body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            return "conflict"
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_module, "DURATION", 0.3)
    monkeypatch.setattr(lease_module, "RENEW_DEADLINE", 0.2)
    monkeypatch.setattr(lease_module, "RETRY", 0.02)
    monkeypatch.setattr(lease_module, "IDLE", 0.1)


def make(api: FakeApi, identity: str) -> Lease:
    return Lease(api.request, "ns", "op", identity, logging.getLogger("test"))


def test_a_free_lease_is_taken_renewed_while_writing_and_given_back_when_idle() -> None:
    api = FakeApi()

    async def run() -> None:
        me = make(api, "me")
        assert not me.valid()
        async with me.writing():
            assert me.valid()
            assert api.obj is not None
            assert api.obj["spec"]["holderIdentity"] == "me"
            await asyncio.sleep(0.08)  # a long write: renewed meanwhile
            assert me.valid()
        await asyncio.sleep(0.3)
        assert not me.valid()
        assert api.obj["spec"]["holderIdentity"] is None  # given back

    asyncio.run(run())


def test_another_holder_is_taken_over_only_after_its_lease_stood_still_for_its_duration() -> None:
    api = FakeApi()
    api.hold("other")

    async def run() -> float:
        me = make(api, "me")
        me.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        renewing = True

        async def other_renews() -> None:
            while renewing:
                api.hold("other")
                await asyncio.sleep(0.05)

        renewals = loop.create_task(other_renews())
        await asyncio.sleep(0.5)  # longer than the duration, but the holder renews
        assert not me.valid()
        renewing = False
        await renewals
        stopped = loop.time()
        async with me.writing():
            took = loop.time() - stopped
        assert api.obj is not None
        assert api.obj["spec"]["holderIdentity"] == "me"
        assert loop.time() - started > 0.5
        await me.stop()
        return took

    took = asyncio.run(run())
    # Its duration from the last renewal seen (at most one renewal period, 0.05 s, before it stopped).
    assert 0.25 <= took < 0.6


def test_stop_refuses_writes_and_gives_the_lease_back() -> None:
    api = FakeApi()

    async def run() -> None:
        me = make(api, "me")
        async with me.writing():
            pass
        await me.stop()
        assert not me.valid()
        assert api.obj is not None
        assert api.obj["spec"]["holderIdentity"] is None
        with pytest.raises(RuntimeError):
            async with me.writing():
                pass

    asyncio.run(run())


def test_a_lease_changed_behind_our_back_is_still_given_back() -> None:
    """A renewal cut short by the stop may have reached the API server: the
    release then meets a newer resourceVersion, reads it again and retries."""
    api = FakeApi()

    async def run() -> None:
        me = make(api, "me")
        async with me.writing():
            pass
        api.hold("me")  # a newer version, still ours
        await me.stop()
        assert api.obj is not None
        assert api.obj["spec"]["holderIdentity"] is None

    asyncio.run(run())


def test_the_leases_requests_never_queue_behind_the_writes_it_guards() -> None:
    """Every request slot is taken by Node PATCHes the API server is slow to
    answer: a renewal still goes out at once. Queued behind them, it came back
    after the renew deadline, and the holder refused its own writes while
    keeping the Lease from every other replica."""

    async def run() -> None:
        answer = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await answer.wait()
            return web.json_response({})

        async def lease(request: web.Request) -> web.Response:
            return web.json_response({"metadata": {"name": "op", "resourceVersion": "1"}})

        app = web.Application()
        app.router.add_route("PATCH", "/api/v1/nodes/{name}", slow)
        app.router.add_route("*", PATH, lease)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        api = Api(Login(f"http://127.0.0.1:{port}"), Metrics())
        writes = [asyncio.create_task(api.patch_node(f"n{i}", {"k": "v"})) for i in range(2 * transport.CONCURRENCY)]
        try:
            await asyncio.sleep(0.2)
            assert not any(w.done() for w in writes)
            renewed = await asyncio.wait_for(api.transport.lease_request("PUT", PATH, {"metadata": {}}), 5)
            assert isinstance(renewed, dict)
            assert renewed["metadata"]["resourceVersion"] == "1"
            assert not any(w.done() for w in writes)  # still held up: the renewal did not wait for them
            answer.set()
            assert await asyncio.gather(*writes) == [True] * len(writes)
        finally:
            await api.close()
            await runner.cleanup()

    asyncio.run(run())
