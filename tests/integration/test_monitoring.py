"""What a platform team plugs in: the chart's PrometheusRule tested with
promtool, the ServiceMonitor and PrometheusRule accepted by the API server with
prometheus-operator's CRDs, the dashboard's ConfigMap, and every metric and
label the rules and the dashboard use found in a real scrape of the operator.

promtool and the CRDs come from pinned Go modules (controlplane/monitoring.sh).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pykube
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controlplane.cluster import free_port
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    CHART,
    ROOT,
    KubeCluster,
    chart_rules,
    make_network,
    running_operator,
    service_account_kubeconfig,
    wait_for,
)
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
# Labels Prometheus adds to every series of a target (prometheus-operator's
# ServiceMonitor): a query may group by them though no scrape shows them.
TARGET_LABELS = {"job", "instance", "pod", "service", "container", "endpoint"}


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


# --- the objects, as the API server takes them -------------------------------------------------


def within(sent: Any, stored: Any) -> bool:
    """Whether everything sent was stored (the API server may add defaults)."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(k in stored and within(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(map(within, sent, stored))
    return bool(sent == stored)


@pytest.fixture(scope="module")
def monitoring_crds(cluster: KubeCluster, tools: Path) -> None:
    """prometheus-operator's ServiceMonitor and PrometheusRule CRDs. Left
    installed, like the other CRDs: deleting one finishes asynchronously."""
    cluster.kubectl("apply", "--server-side", "-f", str(tools / "crds"))
    for crd in ("servicemonitors", "prometheusrules"):
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}.monitoring.coreos.com")

        def served(plural: str = crd) -> bool:
            return cluster.kubectl("get", plural, check=False).returncode == 0

        wait_for(f"{crd} served", served)


def test_the_servicemonitor_and_prometheusrule_are_accepted(
    cluster: KubeCluster, helm: Helm, namespace: str, monitoring_crds: None
) -> None:
    relabel = {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
    docs = render(
        helm,
        "--set",
        "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
        "--set-json",
        f"metrics.serviceMonitor.relabelings=[{json.dumps(relabel)}]",
        "--set-json",
        'metrics.serviceMonitor.metricRelabelings=[{"action": "drop", "regex": "python_gc_.*",'
        ' "sourceLabels": ["__name__"]}]',
        namespace=namespace,
    )
    monitor, rule = only(docs, "ServiceMonitor"), only(docs, "PrometheusRule")
    for doc in (monitor, rule):
        applied = cluster.kubectl(
            "apply", "--server-side", "--field-manager=helm", "-f", "-", input=json.dumps(doc), check=False
        )
        assert applied.returncode == 0, applied.stderr
        kind = doc["kind"].lower()
        stored = json.loads(cluster.kubectl("get", kind, doc["metadata"]["name"], "-n", namespace, "-o", "json").stdout)
        assert within(doc["spec"], stored["spec"])  # nothing pruned: every field is in the CRD's schema
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["interval"], endpoint["honorLabels"]) == ("http-metrics", "30s", True)
    assert endpoint["relabelings"] == [relabel]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The CRDs' schemas do check: a relabeling action they do not know is refused.
    monitor["spec"]["endpoints"][0]["relabelings"] = [{"action": "bogus"}]
    refused = cluster.kubectl(
        "apply", "--server-side", "--field-manager=helm", "-f", "-", input=json.dumps(monitor), check=False
    )
    assert refused.returncode != 0
    assert "action" in refused.stderr


def test_scrape_annotations_or_a_servicemonitor_never_both(helm: Helm) -> None:
    service = only(render(helm, "--set", "metrics.prometheusAnnotations=true,metrics.port=9191"), "Service")
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9191",
        "prometheus.io/path": "/metrics",
    }
    assert "annotations" not in only(render(helm), "Service")["metadata"]
    assert not [d for d in render(helm) if d["kind"] in ("ServiceMonitor", "PrometheusRule", "ConfigMap")]
    both = helm(
        "template",
        "rel",
        str(CHART),
        "--set",
        "metrics.prometheusAnnotations=true,metrics.serviceMonitor.enabled=true",
        check=False,
    )
    assert both.returncode != 0
    assert "choose one" in both.stderr


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_json(helm: Helm) -> None:
    docs = render(
        helm,
        "--set",
        "metrics.dashboard.enabled=true,metrics.dashboard.namespace=monitoring",
        "--set",
        "metrics.dashboard.annotations.grafana_folder=Networking",
    )
    config = only(docs, "ConfigMap")
    assert config["metadata"]["namespace"] == "monitoring"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Networking"}
    shipped = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert json.loads(config["data"]["network-operator.json"]) == shipped


# --- every name and label they use, in a real scrape ----------------------------------------------

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def names_and_labels(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and label names a PromQL expression (or Grafana's
    label_values(metric, label)) refers to."""
    labels: set[str] = set()
    expr = re.sub(r"label_values\((.*),\s*(\w+)\)$", r"\1 by (\2)", expr.strip())
    for group in _GROUPING.findall(expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for matchers in _MATCHERS.findall(expr):
        labels |= set(_MATCHER.findall(matchers))
    bare = _GROUPING.sub(" ", _MATCHERS.sub(" ", re.sub(r'"[^"]*"|\[[^\]]*\]', " ", expr)))
    names = {
        m.group(1)
        for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\()?", bare)
        if not m.group(2) and m.group(1) not in _KEYWORDS
    }
    return names, labels


def test_names_and_labels_are_read_from_an_expression() -> None:
    names, labels = names_and_labels(
        '(max by (namespace, network) (a_b{x="1", y=~"$y"}) == 0) * on (namespace) group_left (reason)'
        " sum(rate(c_total[$__rate_interval])) and absent(d) offset 5m"
    )
    assert names == {"a_b", "c_total", "d"}
    assert labels == {"namespace", "network", "x", "y", "reason"}
    assert names_and_labels('label_values(m{n=~"$n"}, network)') == ({"m"}, {"n", "network"})


def used_queries(helm: Helm) -> list[tuple[str, str, set[str]]]:
    """(where, expression, labels its text names) for every alert and dashboard query."""
    found = []
    for rule in rule_group(helm)["rules"]:
        text = " ".join(rule.get("annotations", {}).values())
        found.append((rule["alert"], rule["expr"], set(re.findall(r"\$labels\.(\w+)", text))))
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found.append(
                (panel["title"], target["expr"], set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"])))
            )
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"${variable['name']}", variable["query"]["query"], set()))
    return found


def test_every_metric_and_label_the_rules_and_dashboard_use_is_scraped(
    cluster: KubeCluster, helm: Helm, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory, tmp_path: Path
) -> None:
    """The operator on the real control plane with a full pool. Its
    ClusterRole lacks networks/status (a mistake NetworkOperatorReconcileErrors
    names), so that failed reconciles and API errors are real series too."""
    rules = [r for r in chart_rules(cluster) if r["resources"] != ["networks/status"]]
    assert len(rules) == len(chart_rules(cluster)) - 1
    kubeconfig = service_account_kubeconfig(cluster, namespace, "scraped", rules, tmp_path)
    make_node("s-a")
    make_node("s-b")
    make_network(api, namespace, "full", {"cidr": "10.150.0.0/23"})  # one subnet: the other Node waits
    make_network(api, namespace, "roomy", {"cidr": "10.151.0.0/16"})
    port = free_port()

    def scraped() -> dict[str, set[str]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:  # not serving yet
            return None
        found: dict[str, set[str]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
        waiting = f'network_operator_pool_waiting{{namespace="{namespace}",network="full"}} 1.0'
        done = waiting in text and "network_operator_api_errors_total" in found
        return found if done and "network_operator_subnet_allocations_total" in found else None

    with running_operator(env={"NETWORK_HTTP_PORT": str(port), "KUBECONFIG": str(kubeconfig)}):
        series = wait_for("a full pool and a failed status write in the scrape", scraped, timeout=60)
    assert series["network_operator_active_writer"] == set()
    assert series["network_operator_pool_reason"] == {"namespace", "network", "reason"}
    missing = []
    for where, expr, named in used_queries(helm):
        names, labels = names_and_labels(expr)
        assert names, f"{where}: no metric in {expr!r}"
        have = set().union(*(series.get(n, set()) for n in names)) | TARGET_LABELS
        missing += [f"{where}: metric {n}" for n in names if n not in series]
        missing += [f"{where}: label {label}" for label in (labels | named) - have]
    assert missing == []
