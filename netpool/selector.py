"""Kubernetes label selectors (`matchLabels` + `matchExpressions`), evaluated locally."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclasses.dataclass(frozen=True)
class Selector:
    """An empty selector matches every node, as in Kubernetes."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def parse_selector(raw: Mapping[str, Any] | None) -> tuple[Selector, list[str]]:
    """Parse `spec.nodeSelector`; returns the selector and a list of problems."""
    raw = raw or {}
    errors: list[str] = []
    reqs = [Requirement(str(k), "In", frozenset([str(v)])) for k, v in (raw.get("matchLabels") or {}).items()]
    for i, expr in enumerate(raw.get("matchExpressions") or []):
        where = f"nodeSelector.matchExpressions[{i}]"
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not key:
            errors.append(f"{where}: key is required")
            continue
        if op not in OPERATORS:
            errors.append(f"{where}: operator {op!r} is not one of {', '.join(OPERATORS)}")
            continue
        if op in ("In", "NotIn") and not values:
            errors.append(f"{where}: operator {op} needs at least one value")
            continue
        if op in ("Exists", "DoesNotExist") and values:
            errors.append(f"{where}: operator {op} takes no values, remove them")
            continue
        reqs.append(Requirement(str(key), op, frozenset(str(v) for v in values)))
    return Selector(tuple(reqs)), errors
