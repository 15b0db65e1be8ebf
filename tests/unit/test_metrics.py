"""The metrics a rule can trust: what runs, which replica writes, and per-Network
gauges from the writer only (a sum across replicas counts each pool once)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import platform
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller import VERSION
from controller.lease import Lease
from controller.metrics import NEARLY_FULL_LABEL, Metrics
from controller.writer import PEERING_LOGGER, Writer
from tests.unit.test_lease import FakeApi

ROOT = Path(__file__).resolve().parents[2]
EXHAUSTED = {
    "capacity": "4",
    "allocated": 4,
    "free": "0",
    "waiting": 2,
    "conditions": [{"type": "Ready", "status": "False", "reason": "PoolExhausted"}],
}
ALLOCATED = {**EXHAUSTED, "free": "1", "allocated": 3, "waiting": 0}
ALLOCATED["conditions"] = [{"type": "Ready", "status": "True", "reason": "Allocated"}]


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)]."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_build_info_names_the_version_kopf_and_python_and_the_chart_ships_that_version() -> None:
    info = scrape(Metrics())["network_operator_build_info"]
    labels = {"version": VERSION, "kopf_version": importlib.metadata.version("kopf")}
    assert info == [({**labels, "python_version": platform.python_version()}, 1.0)]
    chart = yaml.safe_load((ROOT / "deploy/helm/network-operator/Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION


def test_the_standard_process_and_python_series_are_there() -> None:
    names = scrape(Metrics())
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert name in names, name
    assert "python_gc_collections_total" in names


def test_the_writer_reports_every_pool_gauge_and_the_ready_reason() -> None:
    metrics = Metrics()
    metrics.observe("ns", "pool", EXHAUSTED, {})
    got = scrape(metrics)
    pool = {"namespace": "ns", "network": "pool"}
    assert got["network_operator_active_writer"] == [({}, 1.0)]
    assert got["network_operator_pool_capacity"] == [(pool, 4.0)]
    assert got["network_operator_pool_free"] == [(pool, 0.0)]
    assert got["network_operator_pool_waiting"] == [(pool, 2.0)]
    assert got["network_operator_pool_exhausted"] == [(pool, 1.0)]
    assert got["network_operator_pool_ready"] == [(pool, 0.0)]
    assert got["network_operator_pool_reason"] == [({**pool, "reason": "PoolExhausted"}, 1.0)]
    assert got["network_operator_pool_nearly_full_alert"] == [(pool, 1.0)]
    # A new reason replaces the series of the old one.
    metrics.observe("ns", "pool", ALLOCATED, {NEARLY_FULL_LABEL: "false"})
    got = scrape(metrics)
    assert got["network_operator_pool_ready"] == [(pool, 1.0)]
    assert got["network_operator_pool_reason"] == [({**pool, "reason": "Allocated"}, 1.0)]
    assert got["network_operator_pool_exhausted"] == [(pool, 0.0)]
    assert got["network_operator_pool_nearly_full_alert"] == [(pool, 0.0)]
    metrics.forget("ns", "pool")
    assert not any(name.startswith("network_operator_pool_") for name in scrape(metrics))


def test_a_standby_reports_no_pool_gauges_and_drops_those_it_had() -> None:
    metrics = Metrics()
    active = True
    metrics.writer = lambda: active
    metrics.observe("ns", "pool", ALLOCATED, {})
    assert "network_operator_pool_free" in scrape(metrics)
    active = False
    got = scrape(metrics)
    assert got["network_operator_active_writer"] == [({}, 0.0)]
    assert not any(name.startswith("network_operator_pool_") for name in got)
    metrics.observe("ns", "pool", ALLOCATED, {})  # a reconcile finishing after the pause
    active = True
    assert not any(name.startswith("network_operator_pool_") for name in scrape(metrics))  # cleared, not hidden


def test_the_writer_follows_kopfs_peering_pauses_and_keeps_the_log_level() -> None:
    peering = logging.getLogger(PEERING_LOGGER)
    before = peering.level
    peering.setLevel(logging.WARNING)  # as under kopf run -q
    shown: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    catch = Catch()
    peering.addHandler(catch)
    writer = Writer(paused=True, lease=None)
    writer.attach()
    try:
        assert not writer()  # mandatory peering: paused until Kopf has looked at the peers
        peering.info("Resuming operations after the pause. Conflicting operators with the same priority are gone.")
        assert writer()
        peering.info("Pausing operations in favour of [<Peer x: priority=10>].")
        assert not writer()
        peering.info("Resuming operations after the pause. Conflicting operators with the same priority are gone.")
        peering.warning("Pausing all operators, including self: []")
        assert not writer()
    finally:
        writer.detach()
        peering.removeHandler(catch)
        peering.setLevel(before)
    assert shown == ["Pausing all operators, including self: []"]  # the INFO lines stayed hidden
    assert peering.level == before
    writer.paused = False
    writer.stopped = True
    assert not writer()


def test_the_writer_stands_by_while_another_replica_holds_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller import lease as lease_module

    monkeypatch.setattr(lease_module, "DURATION", 0.3)
    monkeypatch.setattr(lease_module, "RETRY", 0.02)
    api = FakeApi()

    async def run() -> None:
        lease = Lease(api.request, "ns", "op", "me", logging.getLogger("test"))
        writer = Writer(paused=False, lease=lease)
        lease.start()
        await asyncio.sleep(0.05)
        assert writer()  # no Lease yet
        api.hold("other")
        await asyncio.sleep(0.05)
        assert not writer()  # another replica writes
        await asyncio.sleep(0.4)
        assert writer()  # it stopped renewing: gone
        api.hold("other")
        await asyncio.sleep(0.05)
        assert not writer()
        assert api.obj is not None
        api.obj["spec"]["holderIdentity"] = None  # given back
        api.version += 1
        api.obj["metadata"]["resourceVersion"] = str(api.version)
        await asyncio.sleep(0.05)
        assert writer()
        await lease.stop()

    asyncio.run(run())
