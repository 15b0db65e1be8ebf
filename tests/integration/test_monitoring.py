"""What a platform team plugs in, beside the alerts (test_alert_rules.py): the
ServiceMonitor and PrometheusRule accepted by the API server with
prometheus-operator's CRDs, the scrape annotations, the dashboard's ConfigMap,
and every metric and label the rules and the dashboard use found in a real
scrape of the operator.

The CRDs come from prometheus-operator's pinned Go module (controlplane/monitoring.sh).
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pykube
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.cluster import free_port
from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    CHART,
    KubeCluster,
    chart_rules,
    make_network,
    running_operator,
    service_account_kubeconfig,
    wait_for,
)
from tests.integration.test_alert_rules import rule_group, tools
from tests.integration.test_chart import Helm, helm, only, render

__all__ = ["helm", "tools"]  # fixtures, shared with test_chart.py and test_alert_rules.py

# Labels Prometheus adds to every series of a target (prometheus-operator's
# ServiceMonitor): a query may group by them though no scrape shows them.
TARGET_LABELS = {"job", "instance", "pod", "service", "container", "endpoint"}


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
        # The failed status write counted as a failed reconcile too: that comes
        # once the round is over, after the API error it counts.
        failed = 'network_operator_reconciles_total{result="error"}' in text
        done = waiting in text and failed and "network_operator_api_errors_total" in found
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
