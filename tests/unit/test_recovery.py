"""The workqueue's retries and the re-list after Kopf's listing, on a fake clock-free loop."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from controller import backoff, queue, relist
from controller.metrics import Metrics
from controller.queue import WorkQueue
from controller.relist import Relister
from netpool.names import Key

KEY: Key = ("ns", "net")


def test_backoff_starts_short_doubles_and_is_capped() -> None:
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]


def test_kopfs_retries_never_end_while_running_start_afresh_per_request_and_end_when_stopping() -> None:
    retries = backoff.Retries()
    first = iter(retries)
    assert [next(first) for _ in range(200)] == [1, 2, 4, 8] + [10] * 196
    assert list(itertools.islice(retries, 5)) == [1, 2, 4, 8, 10]  # a new request starts short again
    retries.stop()
    assert list(first) == []  # a request failing again now is not retried
    assert list(retries) == []


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after milliseconds, not seconds."""
    monkeypatch.setattr(backoff, "delay", lambda failures: 0.01 * failures)
    monkeypatch.setattr(relist, "SETTLE_SECONDS", 0.01)
    monkeypatch.setattr(queue, "GATHER_SECONDS", 0)


@pytest.mark.usefixtures("fast")
def test_a_failed_reconcile_is_retried_until_it_succeeds_and_requests_meanwhile_wait() -> None:
    calls: list[bool] = []

    async def reconcile(batch: dict[Key, bool]) -> dict[Key, bool | Exception]:
        calls.append(batch[KEY])
        if len(calls) <= 2:
            return {KEY: ConnectionError("the API server is down")}
        return {KEY: False}

    async def run() -> WorkQueue:
        q = WorkQueue(reconcile, lambda: [KEY], Metrics())
        await q.request(KEY, verify=True)  # fails; does not raise to the caller
        for _ in range(100):  # a burst of Node events during the backoff
            await q.request(KEY)
        await asyncio.sleep(0.2)
        return q

    q = asyncio.run(run())
    # One try, then one retry per backoff (not one per event), the resync kept; then success.
    assert calls == [True, True, True]
    assert q._failures == {}
    assert q._retries == {}


@pytest.mark.usefixtures("fast")
def test_forget_and_close_cancel_a_pending_retry() -> None:
    calls = 0

    async def reconcile(batch: dict[Key, bool]) -> dict[Key, bool | Exception]:
        nonlocal calls
        calls += len(batch)
        raise ConnectionError("down")

    async def run() -> None:
        q = WorkQueue(reconcile, lambda: [KEY], Metrics())
        await q.request(KEY)
        await asyncio.sleep(0.001)  # the round runs and fails
        q.forget(KEY)
        await q.request(("ns", "other"))
        await asyncio.sleep(0.001)
        q.close()
        await asyncio.sleep(0.1)

    asyncio.run(run())
    assert calls == 2


@pytest.mark.usefixtures("fast")
def test_requests_during_a_round_make_one_next_round_and_a_failure_retries_alone() -> None:
    rounds: list[dict[Key, bool]] = []
    other: Key = ("ns", "other")

    async def reconcile(batch: dict[Key, bool]) -> dict[Key, bool | Exception]:
        rounds.append(dict(batch))
        await asyncio.sleep(0.01)
        if len(rounds) == 2:
            return {KEY: ConnectionError("down"), other: True}  # other lost a race: at once again
        return dict.fromkeys(batch, False)

    async def run() -> None:
        q = WorkQueue(reconcile, lambda: [KEY, other], Metrics())
        await q.request(KEY)
        await asyncio.sleep(0.001)  # the first round has begun
        for _ in range(50):  # Node events meanwhile
            await q.request(KEY)
            await q.request(other)
        await q.request(other, verify=True)
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert rounds == [
        {KEY: False},
        {KEY: False, other: True},  # every request of the first round, coalesced
        {other: False},  # the loser at once, while KEY waits for its retry
        {KEY: False},  # the retry
    ]


@pytest.mark.usefixtures("fast")
def test_one_relist_per_listing_and_one_more_for_a_listing_during_it() -> None:
    lists = 0

    async def run() -> None:
        relister: Relister

        async def do_relist() -> None:
            nonlocal lists
            lists += 1
            if lists == 1:
                relister.listed()  # a newer listing began while ours ran
                await asyncio.sleep(0.01)
            if lists == 2:
                raise ConnectionError("down")  # retried

        relister = Relister(do_relist, logging.getLogger("test"))
        for _ in range(1000):  # one listing: an event of type None per Node
            relister.listed()
        await asyncio.sleep(0.3)

    asyncio.run(run())
    assert lists == 3
