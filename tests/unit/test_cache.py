"""The Node cache: a LIST, then watch events; a later LIST drops ghosts but never
undoes what the watch saw after that LIST began."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netpool.cache import NodeCache
from netpool.views import NodeView


def view(name: str, zone: str = "a") -> NodeView:
    return NodeView(name=name, labels={"zone": zone}, subnets={})


def test_initial_list_fills_the_cache() -> None:
    cache = NodeCache()
    assert cache.relist([view("b"), view("a")], cache.now()) == []
    assert cache.names() == ["a", "b"]
    assert len(cache) == 2


def test_put_returns_the_previous_view_and_remove_forgets() -> None:
    cache = NodeCache()
    assert cache.put(view("a")) is None
    assert cache.put(view("a", "b")) == view("a")
    assert cache.get("a") == view("a", "b")
    assert cache.remove("a") == view("a", "b")
    assert cache.get("a") is None
    assert cache.remove("a") is None


def test_relist_drops_ghosts_the_watch_missed() -> None:
    cache = NodeCache()
    cache.put(view("a"))
    cache.put(view("gone"))
    started = cache.now()
    assert cache.relist([view("a")], started) == ["gone"]
    assert cache.names() == ["a"]


def test_relist_keeps_what_the_watch_saw_after_the_list_began() -> None:
    cache = NodeCache()
    cache.put(view("a"))
    started = cache.now()
    cache.put(view("new"))  # added while the LIST was in flight: not in it
    cache.put(view("a", "z"))  # changed while the LIST was in flight
    assert cache.relist([view("a")], started) == []
    assert cache.get("new") == view("new")
    assert cache.get("a") == view("a", "z")


def test_an_older_list_cannot_bring_back_a_node_the_watch_saw_deleted() -> None:
    cache = NodeCache()
    cache.put(view("a"))
    started = cache.now()
    cache.remove("a")  # deleted while the LIST was in flight, which still has it
    cache.relist([view("a")], started)
    assert cache.get("a") is None
    # A later LIST that still shows it (recreated) brings it back.
    cache.relist([view("a", "again")], cache.now())
    assert cache.get("a") == view("a", "again")


def test_tombstones_are_dropped_once_a_list_has_caught_up() -> None:
    cache = NodeCache()
    cache.put(view("a"))
    cache.remove("a")
    cache.relist([], cache.now())
    assert cache._stamps == {}


events = st.lists(st.tuples(st.sampled_from(["put", "remove"]), st.sampled_from("abcd"), st.sampled_from("xyz")))


@given(before=events, during=events, listed=st.sets(st.sampled_from("abcd")))
def test_relist_equals_the_list_overlaid_with_later_events(
    before: list[tuple[str, str, str]], during: list[tuple[str, str, str]], listed: set[str]
) -> None:
    cache = NodeCache()
    for op, name, zone in before:
        cache.put(view(name, zone)) if op == "put" else cache.remove(name)
    started = cache.now()
    for op, name, zone in during:
        cache.put(view(name, zone)) if op == "put" else cache.remove(name)
    cache.relist([view(n, "listed") for n in listed], started)

    expected = {n: view(n, "listed") for n in listed}
    for op, name, zone in during:  # what the watch saw after the LIST began wins
        if op == "put":
            expected[name] = view(name, zone)
        else:
            expected.pop(name, None)
    assert {v.name: v for v in cache} == expected
