"""The operator's paged LISTs when a page's continue token expires (410
Expired): start again from the first page, then read it unpaged; anything
else fails the list as before. The API is a script of pages: one call each."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from controller.kube import Api
from controller.login import Login
from controller.metrics import Metrics
from controller.transport import ApiException


def expired() -> ApiException:
    return ApiException(status=410, reason="Expired")


class Pages(Api):
    """Answers each GET from a script: a page of names, or an error to raise."""

    def __init__(self, script: list[list[str] | ApiException], page: int = 2) -> None:
        super().__init__(Login("https://127.0.0.1:1"), Metrics(), page=page)
        self.script = script
        self.queries: list[dict[str, Any]] = []

    async def _call(self, resource: str, write: bool, method: str, path: str, expected: int = 404, **kw: Any) -> Any:
        query = dict(kw.get("query") or [])
        self.queries.append(query)
        answer = self.script.pop(0)
        if isinstance(answer, ApiException):
            raise answer
        items = [{"name": n} for n in answer if n != MORE]
        return {"items": items, "metadata": {"continue": f"token-{len(self.queries)}" if MORE in answer else ""}}


MORE = "(more)"  # in a scripted page: not the last one


def page(*names: str, more: bool = True) -> list[str]:
    return [*names, MORE] if more else list(names)


def listed(api: Pages) -> list[str]:
    return asyncio.run(api.list_nodes(lambda item: item["name"]))


def test_pages_are_read_in_turn_with_the_token_of_the_last() -> None:
    api = Pages([page("a", "b"), page("c", more=False)])
    assert listed(api) == ["a", "b", "c"]
    assert api.queries == [{"limit": 2}, {"limit": 2, "continue": "token-1"}]


def test_an_expired_token_starts_the_list_again_from_the_first_page(caplog: pytest.LogCaptureFixture) -> None:
    api = Pages([page("a", "b"), expired(), page("a", "c"), page("d", more=False)])
    with caplog.at_level(logging.WARNING):
        assert listed(api) == ["a", "c", "d"]  # what the second list saw, nothing of the first
    assert api.queries[2] == {"limit": 2}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "410 Expired" in warnings[0]
    assert "listing again from the first page" in warnings[0]


def test_a_second_expiry_reads_the_list_unpaged(caplog: pytest.LogCaptureFixture) -> None:
    api = Pages([page("a", "b"), expired(), page("a", "b"), expired(), page("a", "b", "c", more=False)])
    with caplog.at_level(logging.WARNING):
        assert listed(api) == ["a", "b", "c"]
    assert api.queries[-1] == {}  # no limit, no token
    assert [r.getMessage().rsplit("again ", 1)[1] for r in caplog.records] == [
        "from the first page",
        "in one unpaged request",
    ]


@pytest.mark.parametrize("status", [410, 429, 500, 503, 504])
def test_errors_other_than_an_expired_token_fail_the_list(status: int) -> None:
    # 410 on the first page is not about a token (there is none): the caller retries.
    script: list[list[str] | ApiException] = [ApiException(status=status)]
    if status != 410:
        script = [page("a", "b"), ApiException(status=status)]
    with pytest.raises(ApiException) as failed:
        listed(Pages(script))
    assert failed.value.status == status
