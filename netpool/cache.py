"""The Node cache: the seed's informer store and Lister, fed by a LIST and then watch events.

Kopf 1.45's `@kopf.index` gates every handler on a per-object readiness toggle
whose wake-ups grow with the square of the number of indexed objects
(measured here: 1,000 Nodes ready in 5 s, 3,000 in 39 s, 10,000 in over five
minutes). Nodes are the one kind with thousands of objects, so they get this
cache instead: a LIST at startup (the informer's initial sync), then every
watch event from Kopf's `on.event` handler. Networks, few by nature, keep
their `@kopf.index`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from netpool.views import NodeView


class NodeCache:
    def __init__(self) -> None:
        self._views: dict[str, NodeView] = {}
        self._stamps: dict[str, int] = {}  # name -> clock at its last update or removal
        self._clock = 0

    def __len__(self) -> int:
        return len(self._views)

    def __iter__(self) -> Iterator[NodeView]:
        return iter(list(self._views.values()))

    def get(self, name: str) -> NodeView | None:
        return self._views.get(name)

    def names(self) -> list[str]:
        return sorted(self._views)

    def now(self) -> int:
        """A point in the update order; pass it to `relist` for a LIST started now."""
        return self._clock

    def put(self, view: NodeView) -> NodeView | None:
        """Store a Node seen by the watch; returns what was there before."""
        self._clock += 1
        self._stamps[view.name] = self._clock
        old = self._views.get(view.name)
        self._views[view.name] = view
        return old

    def remove(self, name: str) -> NodeView | None:
        """Forget a Node the watch saw deleted; its stamp stays as a tombstone
        until a later LIST, so an older LIST cannot bring it back."""
        self._clock += 1
        self._stamps[name] = self._clock
        return self._views.pop(name, None)

    def relist(self, views: Iterable[NodeView], started: int) -> list[str]:
        """Bring the cache in line with a LIST that started at clock `started`.

        Entries the watch updated after that point are newer than the LIST and
        stay. Others take the LIST's version, and those the LIST no longer has
        are dropped: ghosts of deletions the watch missed or has not yet
        delivered. Returns the ghosts.
        """
        listed = {v.name: v for v in views}
        stale = [n for n, s in self._stamps.items() if s <= started and n not in listed]
        ghosts = [n for n in stale if n in self._views]
        for name in stale:  # ghosts, and tombstones the LIST has caught up with
            self._views.pop(name, None)
            del self._stamps[name]
        for name, view in listed.items():
            if self._stamps.get(name, 0) <= started:
                self._views[name] = view
                self._stamps[name] = started
        return ghosts
