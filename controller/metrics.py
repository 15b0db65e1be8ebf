"""Prometheus metrics. Each operator instance owns its registry, so several
instances in one process (tests) never collide.

Only the active writer reports the per-Network gauges (see `Metrics.writer`):
a standby's, or a replica's that lost the Lease, would be stale, and a sum
across replicas must count each pool once."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from controller import VERSION

_POOL = ("namespace", "network")
# A Network with this label set to "false" is left out of the PoolNearlyFull alert.
NEARLY_FULL_LABEL = "samplecrd.k8s.io/alert-pool-nearly-full"


class _Pools(Collector):
    """The per-Network gauges, collected only while this replica is the writer."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        if not self._metrics.writer():
            self._metrics.clear_pools()
            return
        for gauge in self._metrics.pool_gauges():
            yield from gauge.collect()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The standard process_* and python_* series, as the default registry has them.
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(standard)
        # Whether this replica handles events and may write: set by the wiring
        # (Kopf peering and the Lease); a lone operator always is.
        self.writer: Callable[[], bool] = lambda: True
        Gauge(
            "network_operator_build_info",
            "Always 1; the labels say what runs.",
            ["version", "kopf_version", "python_version"],
            registry=r,
        ).labels(VERSION, importlib.metadata.version("kopf"), platform.python_version()).set(1)
        Gauge(
            "network_operator_active_writer",
            "1 on the replica that handles events and may write (Kopf peering not paused, "
            "the Lease not held by another replica), 0 on standbys.",
            registry=r,
        ).set_function(lambda: 1.0 if self.writer() else 0.0)
        self.capacity = Gauge("network_operator_pool_capacity", "Subnets a Network may hand out.", _POOL, registry=None)
        self.allocated = Gauge(
            "network_operator_pool_allocated", "Nodes holding a subnet of a Network.", _POOL, registry=None
        )
        self.free = Gauge("network_operator_pool_free", "Subnets of a Network not handed out.", _POOL, registry=None)
        self.waiting = Gauge(
            "network_operator_pool_waiting", "Matching Nodes without a subnet: the pool is full.", _POOL, registry=None
        )
        self.ready = Gauge("network_operator_pool_ready", "1 if the Network is Ready, else 0.", _POOL, registry=None)
        self.reason = Gauge(
            "network_operator_pool_reason",
            "1, with the reason of the Network's Ready condition as a label (one series per Network).",
            (*_POOL, "reason"),
            registry=None,
        )
        self.exhausted = Gauge(
            "network_operator_pool_exhausted", "1 if the Network is PoolExhausted.", _POOL, registry=None
        )
        self.nearly_full_alert = Gauge(
            "network_operator_pool_nearly_full_alert",
            f"0 if the Network has the label {NEARLY_FULL_LABEL}=false (no PoolNearlyFull alert), else 1.",
            _POOL,
            registry=None,
        )
        self._reasons: dict[tuple[str, str], str] = {}
        r.register(_Pools(self))
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
        self.allocations = Counter(
            "network_operator_subnet_allocations", "Subnets handed out (NodeSubnets created).", registry=r
        )
        self.releases = Counter("network_operator_subnet_releases", "Subnets freed (NodeSubnets deleted).", registry=r)
        self.nodes = Gauge("network_operator_nodes_cached", "Nodes in the operator's cache.", registry=r)

    def pool_gauges(self) -> tuple[Gauge, ...]:
        return (
            self.capacity,
            self.allocated,
            self.free,
            self.waiting,
            self.ready,
            self.reason,
            self.exhausted,
            self.nearly_full_alert,
        )

    def observe(self, namespace: str, name: str, status: Mapping[str, Any], labels: Mapping[str, str]) -> None:
        """Per-Network gauges from the status just computed and the Network's labels; none on a standby."""
        if not self.writer():
            self.clear_pools()
            return
        key = (namespace, name)
        ready: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        reason = str(ready.get("reason") or "")
        if self._reasons.get(key, reason) != reason:
            with contextlib.suppress(KeyError):
                self.reason.remove(namespace, name, self._reasons[key])
        self._reasons[key] = reason
        self.capacity.labels(*key).set(float(status.get("capacity") or 0))
        self.allocated.labels(*key).set(status.get("allocated") or 0)
        self.free.labels(*key).set(float(status.get("free") or 0))
        self.waiting.labels(*key).set(status.get("waiting") or 0)
        self.ready.labels(*key).set(1 if ready.get("status") == "True" else 0)
        self.reason.labels(*key, reason).set(1)
        self.exhausted.labels(*key).set(1 if reason == "PoolExhausted" else 0)
        self.nearly_full_alert.labels(*key).set(0 if labels.get(NEARLY_FULL_LABEL) == "false" else 1)

    def forget(self, namespace: str, name: str) -> None:
        reason = self._reasons.pop((namespace, name), None)
        for gauge in self.pool_gauges():
            with contextlib.suppress(KeyError):  # never observed
                if gauge is self.reason:
                    gauge.remove(namespace, name, reason)
                else:
                    gauge.remove(namespace, name)

    def clear_pools(self) -> None:
        for gauge in self.pool_gauges():
            gauge.clear()
        self._reasons.clear()
