"""The Network index: Kopf's `@kopf.index` of Network views, which handlers
bind on each call (Kopf hands its indexes to handlers only), and each spec's
verdict, judged once per generation."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from netpool import annotation, podcidr
from netpool.interest import concerns
from netpool.names import Key
from netpool.overlap import Claim
from netpool.selector import Selector
from netpool.verdict import Verdict, judge
from netpool.views import NetworkView, NodeView


class Index(Protocol):
    """What is used of a `kopf.Index`: key -> a store of values."""

    def __iter__(self) -> Iterator[Any]: ...
    def __getitem__(self, key: Any) -> Iterable[Any]: ...
    def __contains__(self, key: object) -> bool: ...


class Networks:
    def __init__(self) -> None:
        self._index: Index | None = None
        self._verdicts: dict[Key, Verdict] = {}
        self._ann_keys: dict[Key, str] = {}

    def bind(self, index: Index) -> None:
        self._index = index

    def keys(self) -> list[Key]:
        return list(self._index) if self._index is not None else []

    def get(self, key: Key) -> NetworkView | None:
        if self._index is None or key not in self._index:
            return None
        return next(iter(self._index[key]), None)

    def verdict(self, view: NetworkView) -> Verdict:
        """The verdict on the view's spec, judged once per generation."""
        key = (view.namespace, view.name)
        known = self._verdicts.get(key)
        if known is None or known.generation != view.generation:
            known = self._verdicts[key] = judge(view.spec, view.generation)
        return known

    def forget(self, key: Key) -> None:
        self._verdicts.pop(key, None)
        self._ann_keys.pop(key, None)

    def affected(self, old: NodeView | None, new: NodeView | None) -> list[Key]:
        """The Networks a Node's change from `old` to `new` concerns."""
        found = []
        for key in self.keys():
            view = self.get(key)
            if view is None:
                continue
            spec = self.verdict(view).spec
            if concerns(old, new, spec.selector if spec else None, self._ann_key(key)):
                found.append(key)
        return found

    def claims(self, exclude: Key | None = None) -> list[Claim]:
        """Every valid Network's claim on its cidr but `exclude`'s."""
        claims = []
        for key in self.keys():
            view = self.get(key)
            if key == exclude or view is None or view.deleting:
                continue
            claim = self.verdict(view).claim(view.created, view.ref)
            if claim is not None:
                claims.append(claim)
        return claims

    def pod_cidr_writers(self) -> dict[int, tuple[Key, Selector]]:
        """Per IP family, the Network that writes Node.spec.podCIDRs, and its selector."""
        found = {}
        for version, claim in podcidr.writers(self.claims()).items():
            view = self.get(claim.key)
            spec = self.verdict(view).spec if view is not None else None
            if spec is not None:
                found[version] = (claim.key, spec.selector)
        return found

    def _ann_key(self, key: Key) -> str:
        found = self._ann_keys.get(key)
        if found is None:
            found = self._ann_keys[key] = annotation.key_for(*key)
        return found
