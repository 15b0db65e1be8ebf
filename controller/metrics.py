"""Prometheus metrics. Each operator instance owns its registry, so several
instances in one process (tests) never collide."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_POOL = ("namespace", "network")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.capacity = Gauge("network_operator_pool_capacity", "Subnets a Network may hand out.", _POOL, registry=r)
        self.allocated = Gauge(
            "network_operator_pool_allocated", "Nodes holding a subnet of a Network.", _POOL, registry=r
        )
        self.free = Gauge("network_operator_pool_free", "Subnets of a Network not handed out.", _POOL, registry=r)
        self.waiting = Gauge(
            "network_operator_pool_waiting", "Matching Nodes without a subnet: the pool is full.", _POOL, registry=r
        )
        self.ready = Gauge("network_operator_pool_ready", "1 if the Network is Ready, else 0.", _POOL, registry=r)
        self.exhausted = Gauge(
            "network_operator_pool_exhausted", "1 if the Network is PoolExhausted.", _POOL, registry=r
        )
        self.reconciles = Counter(
            "network_operator_reconciles", "Reconciles of a Network, by result (ok or error).", ["result"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "network_operator_reconcile_duration_seconds",
            "Time of one round of reconciles (every Network that needed one, together).",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.api_writes = Counter(
            "network_operator_api_writes", "Writes to the Kubernetes API, by resource.", ["resource"], registry=r
        )
        self.api_errors = Counter(
            "network_operator_api_errors",
            "Failed Kubernetes API calls, by resource and HTTP status.",
            ["resource", "code"],
            registry=r,
        )
        self.nodes = Gauge("network_operator_nodes_cached", "Nodes in the operator's cache.", registry=r)

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Per-Network gauges from the status just computed."""
        labels = (namespace, name)
        ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        self.capacity.labels(*labels).set(float(status.get("capacity") or 0))
        self.allocated.labels(*labels).set(status.get("allocated") or 0)
        self.free.labels(*labels).set(float(status.get("free") or 0))
        self.waiting.labels(*labels).set(status.get("waiting") or 0)
        self.ready.labels(*labels).set(1 if ready.get("status") == "True" else 0)
        self.exhausted.labels(*labels).set(1 if ready.get("reason") == "PoolExhausted" else 0)

    def forget(self, namespace: str, name: str) -> None:
        for gauge in (self.capacity, self.allocated, self.free, self.waiting, self.ready, self.exhausted):
            with contextlib.suppress(KeyError):  # never observed
                gauge.remove(namespace, name)
