"""The chart's PrometheusRule, rendered by helm and run by promtool
(`promtool test rules`): each alert fires on series made for it, with the
summary and description expected, and none fires on a healthy operator.

promtool comes from the pinned Go module of Prometheus (controlplane/monitoring.sh).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.support import ROOT
from tests.integration.test_chart import Helm, helm, only, render

__all__ = ["helm"]  # the fixture, shared with test_chart.py

ALERTS = {
    "NetworkPoolExhausted",
    "NetworkPoolNearlyFull",
    "NetworkNotReady",
    "NetworkOperatorNoActiveWriter",
    "NetworkOperatorDown",
    "NetworkOperatorReconcileErrors",
}


@pytest.fixture(scope="module")
def tools() -> Path:
    """promtool and prometheus-operator's CRDs, built or fetched once and cached."""
    built = subprocess.run([str(ROOT / "controlplane" / "monitoring.sh")], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip())


def rule_group(helm: Helm, *values: str) -> dict[str, Any]:
    docs = render(helm, "--set", "metrics.prometheusRule.enabled=true", *values)
    (group,) = only(docs, "PrometheusRule")["spec"]["groups"]
    return dict(group)


# --- the rules, with promtool ---------------------------------------------------------------

SICK = {
    # prod/pods: full, Nodes waiting (its own alert, not NetworkNotReady too)
    'network_operator_pool_waiting{namespace="prod",network="pods"}': "3x40",
    'network_operator_pool_free{namespace="prod",network="pods"}': "0x40",
    'network_operator_pool_capacity{namespace="prod",network="pods"}': "256x40",
    'network_operator_pool_nearly_full_alert{namespace="prod",network="pods"}': "1x40",
    'network_operator_pool_ready{namespace="prod",network="pods"}': "0x40",
    'network_operator_pool_reason{namespace="prod",network="pods",reason="PoolExhausted"}': "1x40",
    # prod/edge: 10 of 256 free
    'network_operator_pool_free{namespace="prod",network="edge"}': "10x40",
    'network_operator_pool_capacity{namespace="prod",network="edge"}': "256x40",
    'network_operator_pool_nearly_full_alert{namespace="prod",network="edge"}': "1x40",
    # prod/quiet: 1 of 256 free, but labelled out of the nearly-full alert
    'network_operator_pool_free{namespace="prod",network="quiet"}': "1x40",
    'network_operator_pool_capacity{namespace="prod",network="quiet"}': "256x40",
    'network_operator_pool_nearly_full_alert{namespace="prod",network="quiet"}': "0x40",
    # dev/typo: an invalid spec
    'network_operator_pool_ready{namespace="dev",network="typo"}': "0x40",
    'network_operator_pool_reason{namespace="dev",network="typo",reason="InvalidSpec"}': "1x40",
    # two replicas scraped, both standing by; no build_info: as if the operator were not scraped
    'network_operator_active_writer{pod="op-a"}': "0x40",
    'network_operator_active_writer{pod="op-b"}': "0x40",
    # six failed reconciles a minute
    'network_operator_reconciles_total{result="error"}': "0+6x40",
}
HEALTHY = {
    'network_operator_build_info{version="0.1.0",kopf_version="1.45.2",python_version="3.11.2",pod="op-a"}': "1x40",
    'network_operator_active_writer{pod="op-a"}': "1x40",
    'network_operator_active_writer{pod="op-b"}': "0x40",
    'network_operator_pool_waiting{namespace="prod",network="pods"}': "0x40",
    'network_operator_pool_free{namespace="prod",network="pods"}': "200x40",
    'network_operator_pool_capacity{namespace="prod",network="pods"}': "256x40",
    'network_operator_pool_nearly_full_alert{namespace="prod",network="pods"}': "1x40",
    'network_operator_pool_ready{namespace="prod",network="pods"}': "1x40",
    'network_operator_pool_reason{namespace="prod",network="pods",reason="Allocated"}': "1x40",
    'network_operator_reconciles_total{result="ok"}': "0+6x40",
    'network_operator_reconciles_total{result="error"}': "2x40",  # errors long ago, none now
}


def expand(template: str, labels: dict[str, str], value: str) -> str:
    """The few Prometheus template forms the rules use."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    return re.sub(r"\{\{ (printf \"[^\"]*\" )?\$value( \| \w+)? \}\}", value, text)


def expected(group: dict[str, Any], alert: str, labels: dict[str, str], value: str = "") -> dict[str, Any]:
    (rule,) = [r for r in group["rules"] if r.get("alert") == alert]
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {k: expand(v, labels, value) for k, v in rule["annotations"].items()},
    }


def promtool_test(
    tools: Path, tmp_path: Path, group: dict[str, Any], series: dict[str, str], firing: dict[str, list[Any]]
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    checked = subprocess.run(
        [str(tools / "promtool"), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rule_names = [r["alert"] for r in group["rules"] if "alert" in r]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": name, "exp_alerts": firing.get(name, [])} for name in rule_names
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, width=1000))
    ran = subprocess.run(
        [str(tools / "promtool"), "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_each_alert_fires_on_its_series(helm: Helm, tools: Path, tmp_path: Path) -> None:
    group = rule_group(helm)
    assert {r["alert"] for r in group["rules"]} == ALERTS
    pods = {"namespace": "prod", "network": "pods"}
    firing = {
        "NetworkPoolExhausted": [expected(group, "NetworkPoolExhausted", pods, "3")],
        "NetworkPoolNearlyFull": [
            expected(group, "NetworkPoolNearlyFull", pods, "0%"),
            expected(group, "NetworkPoolNearlyFull", {"namespace": "prod", "network": "edge"}, "3.906%"),
        ],
        "NetworkNotReady": [
            expected(group, "NetworkNotReady", {"namespace": "dev", "network": "typo", "reason": "InvalidSpec"})
        ],
        "NetworkOperatorNoActiveWriter": [expected(group, "NetworkOperatorNoActiveWriter", {})],
        "NetworkOperatorDown": [expected(group, "NetworkOperatorDown", {})],
        "NetworkOperatorReconcileErrors": [expected(group, "NetworkOperatorReconcileErrors", {}, "0.1")],
    }
    promtool_test(tools, tmp_path, group, SICK, firing)
    # Each names what is wrong and the fix.
    for alert in firing.values():
        for a in alert:
            if "network" in a["exp_labels"]:
                assert f"{a['exp_labels']['namespace']}/{a['exp_labels']['network']}" in a["exp_annotations"]["summary"]
    assert "Grow spec.cidr" in firing["NetworkPoolExhausted"][0]["exp_annotations"]["description"]
    assert "alert-pool-nearly-full=false" in firing["NetworkPoolNearlyFull"][0]["exp_annotations"]["description"]


def test_no_alert_on_a_healthy_operator(helm: Helm, tools: Path, tmp_path: Path) -> None:
    promtool_test(tools, tmp_path, rule_group(helm), HEALTHY, {})


def test_the_nearly_full_threshold_and_extra_rules_come_from_values(helm: Helm, tools: Path, tmp_path: Path) -> None:
    extra = {"alert": "MyPoolsChanged", "expr": "changes(network_operator_pool_capacity[10m]) > 0"}
    group = rule_group(
        helm,
        "--set-json",
        "metrics.prometheusRule.poolNearlyFullRatio=0.02",
        "--set-json",
        f"metrics.prometheusRule.extraRules=[{json.dumps(extra)}]",
    )
    assert group["rules"][-1] == extra
    pods = {"namespace": "prod", "network": "pods"}
    # edge's 3.9 % is now enough; pods' 0 % is not.
    firing = {"NetworkPoolNearlyFull": [expected(group, "NetworkPoolNearlyFull", pods, "0%")]}
    firing["NetworkPoolExhausted"] = [expected(group, "NetworkPoolExhausted", pods, "3")]
    firing["NetworkNotReady"] = [
        expected(group, "NetworkNotReady", {"namespace": "dev", "network": "typo", "reason": "InvalidSpec"})
    ]
    for name in ("NetworkOperatorNoActiveWriter", "NetworkOperatorDown"):
        firing[name] = [expected(group, name, {})]
    firing["NetworkOperatorReconcileErrors"] = [expected(group, "NetworkOperatorReconcileErrors", {}, "0.1")]
    assert "(the threshold is 2 %)" in firing["NetworkPoolNearlyFull"][0]["exp_annotations"]["description"]
    promtool_test(tools, tmp_path, group, SICK, firing)
