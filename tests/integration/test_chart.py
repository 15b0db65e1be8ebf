"""The Helm chart (deploy/helm/network-operator): lint, values schema, what it
renders, what the API server accepts, and a real install, upgrade and uninstall.

There is no kubelet: installed pods never run, so nothing here needs the image.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.support import ROOT, KubeCluster, wait_for

CHART = ROOT / "deploy" / "helm" / "network-operator"
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
# cert-manager's CRDs are not installed here: these kinds are rendered but never applied.
CERT_MANAGER_KINDS = {"Certificate", "Issuer", "ClusterIssuer"}

RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["samplecrd.k8s.io"], "resources": ["networks"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["samplecrd.k8s.io"], "resources": ["networks/status"], "verbs": ["get", "patch"]},
    {
        "apiGroups": ["samplecrd.k8s.io"],
        "resources": ["nodesubnets"],
        "verbs": ["get", "list", "watch", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
PEERING_RULES = [
    {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]

Helm = Callable[..., subprocess.CompletedProcess[str]]
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def helm(cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Run helm against the test cluster, with its caches and config in a temporary home."""
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(cluster.bin / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="module")
def peering_crd(cluster: KubeCluster) -> None:
    """The chart's ClusterKopfPeering CRD (`helm template` leaves crds/ out).
    Left installed, like the CRDs conftest installs: other tests use it too,
    and deleting a CRD finishes asynchronously, racing whoever installs it next."""
    applied = cluster.kubectl(
        "apply", "--server-side", "-f", str(CHART / "crds" / "clusterkopfpeering.yaml"), check=False
    )
    assert applied.returncode == 0, applied.stderr
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PEERING_CRD}")
    wait_for(
        "clusterkopfpeerings to be served",
        lambda: cluster.kubectl("get", "clusterkopfpeerings", check=False).returncode == 0,
    )


def render(helm: Helm, *args: str, release: str = "rel", namespace: str = "demo") -> list[Doc]:
    """`helm template` output as a list of objects."""
    out = helm("template", release, str(CHART), "--namespace", namespace, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def only(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def get_json(cluster: KubeCluster, *args: str) -> Doc:
    result: Doc = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return result


def absent(cluster: KubeCluster, *args: str) -> bool:
    got = cluster.kubectl("get", *args, check=False)
    return got.returncode != 0 and "NotFound" in got.stderr


# --- files -----------------------------------------------------------------


@pytest.mark.parametrize("crd", ["network.yaml", "nodesubnet.yaml"])
def test_chart_crd_is_a_byte_copy_of_the_canonical_one(crd: str) -> None:
    assert (CHART / "crds" / crd).read_bytes() == (ROOT / "crds" / crd).read_bytes(), (
        f"deploy/helm/network-operator/crds/{crd} differs from crds/{crd}: copy it over"
    )


def _documented_keys(values: Doc, prefix: str = "") -> set[str]:
    """values.yaml's keys as the README's table lists them: leaves, and `resources` as one row."""
    keys = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path != "resources":
            keys |= _documented_keys(value, f"{path}.")
        else:
            keys.add(path)
    return keys


def test_readme_values_table_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = set(re.findall(r"^\| `([\w.]+)` \|", (CHART / "README.md").read_text(), re.M))
    assert table == _documented_keys(values)


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[\w]+:", line):
            assert i > 0, line
            assert lines[i - 1].strip().startswith("#"), f"values.yaml line {i + 1} has no comment: {line!r}"


def test_chart_runs_the_image_as_the_dockerfile_does(helm: Helm) -> None:
    """With default values the pod runs the image's own ENTRYPOINT, on the ports it EXPOSEs, as its USER."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    exposed = re.search(r"^EXPOSE (.*)$", dockerfile, re.M)
    user = re.search(r"^USER (\d+)$", dockerfile, re.M)
    assert entrypoint, "Dockerfile has no exec-form ENTRYPOINT"
    assert exposed, "Dockerfile has no EXPOSE"
    assert user, "Dockerfile has no numeric USER"
    pod = only(render(helm), "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == json.loads(entrypoint.group(1))
    assert sorted(p["containerPort"] for p in container["ports"]) == sorted(int(p) for p in exposed.group(1).split())
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))


# --- lint and schema -------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[], ["--set", "webhook.certManager.enabled=true"]], ids=["defaults", "cert-manager"]
)
def test_lint_strict_is_clean(helm: Helm, values: list[str]) -> None:
    linted = helm("lint", "--strict", str(CHART), *values, check=False)
    output = linted.stdout + linted.stderr
    assert linted.returncode == 0, output
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output
    assert "[ERROR]" not in output


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("bogus=1", "bogus"),
        ("webhook.certManager.bogus=1", "bogus"),
        ("image.tagg=v1", "tagg"),
        ("replicaCount=abc", "replicaCount"),
        ("replicaCount=0", "replicaCount"),
        ("webhook.failurePolicy=Sometimes", "failurePolicy"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("webhook.port=80", "port"),
        ("peering.enabled=yes", "enabled"),
        ("metrics.port=8080", "must differ"),  # the health port's default
    ],
)
def test_bad_values_are_rejected(helm: Helm, setting: str, named: str) -> None:
    rendered = helm("template", "rel", str(CHART), "--set", setting, check=False)
    assert rendered.returncode != 0, f"--set {setting} was accepted"
    assert named in rendered.stderr


# --- rendering ---------------------------------------------------------------


def test_cluster_role_has_exactly_the_needed_rules(helm: Helm) -> None:
    role = only(render(helm), "ClusterRole")
    assert role["rules"] == [*RULES, *PEERING_RULES]
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[field]), rule
    without_peering = render(helm, "--set", "peering.enabled=false")
    assert only(without_peering, "ClusterRole")["rules"] == RULES
    assert "ClusterKopfPeering" not in kinds(without_peering)


def _env(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_deployment_command_env_and_ports_follow_values(helm: Helm) -> None:
    docs = render(
        helm,
        "--set",
        "replicaCount=3,resyncSeconds=5,health.port=8081,metrics.port=9091,webhook.port=9444,peering.name=meet",
    )
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "network-operator:0.1.0"
    assert container["command"] == [
        "kopf",
        "run",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8081/healthz",
        "/app/operator.py",
    ]
    assert _env(container) == {
        "NETWORK_RESYNC_SECONDS": "5",
        "NETWORK_HTTP_ADDRESS": "0.0.0.0",
        "NETWORK_HTTP_PORT": "9091",
        "NETWORK_WEBHOOK_ADDRESS": "0.0.0.0",
        "NETWORK_WEBHOOK_PORT": "9444",
        "NETWORK_WEBHOOK_CERT": "/certs/tls.crt",
        "NETWORK_WEBHOOK_KEY": "/certs/tls.key",
        "NETWORK_PEERING": "meet",
        "NETWORK_LEASE": "meet",
        "NETWORK_LEASE_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8081,
        "http-metrics": 9091,
        "webhook": 9444,
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "/tmp": False,
        "/certs": True,
    }
    assert only(docs, "ClusterKopfPeering")["metadata"]["name"] == "meet"
    service = only(docs, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "webhook": (443, "webhook"),
        "http-metrics": (9091, "http-metrics"),
    }


def test_without_webhook_and_peering(helm: Helm) -> None:
    docs = render(helm, "--set", "webhook.enabled=false,peering.enabled=false")
    assert kinds(docs) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert not [k for k in env if k.startswith("NETWORK_WEBHOOK_")]
    assert "NETWORK_PEERING" not in env
    assert "NETWORK_LEASE" not in env
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    assert [p["name"] for p in only(docs, "Service")["spec"]["ports"]] == ["http-metrics"]


def test_own_webhook_certificate_is_for_the_service(helm: Helm, tmp_path: Path) -> None:
    docs = render(helm, release="rel", namespace="ops")
    secret = only(docs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["name"] == "rel-network-operator-webhook-tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    vwc = only(docs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["name"] == "rel-network-operator"
    assert "annotations" not in vwc["metadata"]
    (hook,) = vwc["webhooks"]
    assert hook["name"] == "validate.networks.samplecrd.k8s.io"
    assert hook["rules"] == [
        {
            "apiGroups": ["samplecrd.k8s.io"],
            "apiVersions": ["v1"],
            "resources": ["networks"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    assert hook["clientConfig"]["service"] == {
        "name": "rel-network-operator",
        "namespace": "ops",
        "path": "/validate-network",
        "port": 443,
    }
    assert (hook["admissionReviewVersions"], hook["sideEffects"], hook["failurePolicy"], hook["timeoutSeconds"]) == (
        ["v1"],
        "None",
        "Fail",
        10,
    )
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    # The serving certificate is signed by that CA and names the Service.
    for key in ("tls.crt", "ca.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "tls.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert set(re.findall(r"DNS:([^,\s]+)", sans)) == {
        "rel-network-operator",
        "rel-network-operator.ops",
        "rel-network-operator.ops.svc",
        "rel-network-operator.ops.svc.cluster.local",
    }


def test_cert_manager_certificate(helm: Helm) -> None:
    docs = render(helm, "--set", "webhook.certManager.enabled=true", release="rel", namespace="ops")
    assert "Secret" not in kinds(docs)  # cert-manager writes it
    certificate = only(docs, "Certificate")
    assert certificate["metadata"]["name"] == "rel-network-operator-webhook"
    assert certificate["spec"]["secretName"] == "rel-network-operator-webhook-tls"
    assert "rel-network-operator.ops.svc" in certificate["spec"]["dnsNames"]
    issuer = only(docs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"] == {
        "name": issuer["metadata"]["name"],
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    vwc = only(docs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "ops/rel-network-operator-webhook"}
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]

    given = render(
        helm,
        "--set",
        "webhook.certManager.enabled=true,webhook.certManager.issuerRef.name=corp-ca,"
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
    )
    assert "Issuer" not in kinds(given)
    assert only(given, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


# --- against the API server ------------------------------------------------------


@pytest.mark.usefixtures("peering_crd")
@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "replicaCount=3,webhook.certManager.enabled=false"],
        ["--set", "webhook.certManager.enabled=true"],
        ["--set", "webhook.enabled=false,peering.enabled=false,serviceAccount.create=false"],
    ],
    ids=["defaults", "three-replicas", "cert-manager", "bare"],
)
def test_server_dry_run_accepts_the_rendered_chart(
    cluster: KubeCluster, helm: Helm, namespace: str, values: list[str]
) -> None:
    docs = render(helm, *values, release=f"dry-{uuid.uuid4().hex[:6]}", namespace=namespace)
    applicable = [d for d in docs if d["kind"] not in CERT_MANAGER_KINDS]
    assert "Deployment" in kinds(applicable)
    applied = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(applicable), check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(applicable), applied.stdout


def _cleanup(cluster: KubeCluster, helm: Helm, release: str, namespace: str, fullname: str) -> None:
    """Never leave a webhook configuration behind: it would send every later
    Network to a Service with no pod."""
    helm("uninstall", release, "--namespace", namespace, check=False)
    for obj in (
        f"validatingwebhookconfiguration/{fullname}",
        f"clusterrole/{fullname}",
        f"clusterrolebinding/{fullname}",
        f"clusterkopfpeering/{fullname}",
    ):
        cluster.kubectl("delete", obj, "--ignore-not-found", check=False)


@pytest.mark.usefixtures("peering_crd")
def test_install_upgrade_uninstall(cluster: KubeCluster, helm: Helm, namespace: str) -> None:
    release = f"it-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-network-operator"
    # Ignore: the webhook has no pod behind it here; Fail would refuse every Network.
    settings = ["--set", "webhook.failurePolicy=Ignore"]
    try:
        helm("install", release, str(CHART), "--namespace", namespace, "--wait=false", *settings)

        for obj in ("serviceaccount", "deployment", "service"):
            get_json(cluster, "-n", namespace, f"{obj}/{fullname}")
        secret = get_json(cluster, "-n", namespace, f"secret/{fullname}-webhook-tls")
        assert secret["type"] == "kubernetes.io/tls"
        role = get_json(cluster, f"clusterrole/{fullname}")
        assert role["rules"] == [*RULES, *PEERING_RULES]
        binding = get_json(cluster, f"clusterrolebinding/{fullname}")
        assert binding["roleRef"]["name"] == fullname
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": namespace}]
        get_json(cluster, f"clusterkopfpeering/{fullname}")
        vwc = get_json(cluster, f"validatingwebhookconfiguration/{fullname}")
        (hook,) = vwc["webhooks"]
        assert hook["failurePolicy"] == "Ignore"
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
        assert hook["clientConfig"]["service"]["namespace"] == namespace

        # The pod spec as the API server stored it: hardened.
        pod = get_json(cluster, "-n", namespace, f"deployment/{fullname}")["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert pod["serviceAccountName"] == fullname
        assert pod["automountServiceAccountToken"] is True
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tmp"]["emptyDir"] == {}
        assert volumes["webhook-tls"]["secret"]["secretName"] == f"{fullname}-webhook-tls"

        # An upgrade reuses the certificate it finds instead of rotating it.
        helm("upgrade", release, str(CHART), "--namespace", namespace, "--wait=false", *settings)
        after = get_json(cluster, "-n", namespace, f"secret/{fullname}-webhook-tls")
        assert after["data"] == secret["data"]
        vwc = get_json(cluster, f"validatingwebhookconfiguration/{fullname}")
        assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

        helm("uninstall", release, "--namespace", namespace)
        gone = [
            *([f"{kind}/{fullname}"] for kind in ("clusterrole", "clusterrolebinding", "clusterkopfpeering")),
            [f"validatingwebhookconfiguration/{fullname}"],
            *(["-n", namespace, f"{kind}/{fullname}"] for kind in ("serviceaccount", "service", "deployment")),
            ["-n", namespace, f"secret/{fullname}-webhook-tls"],
        ]
        for args in gone:
            wait_for(f"{args[-1]} to be gone", functools.partial(absent, cluster, *args))
    finally:
        _cleanup(cluster, helm, release, namespace, fullname)


def test_pods_can_start_before_the_pod_network(helm: Helm) -> None:
    """Defaults: NotReady and control-plane nodes tolerated, system-cluster-critical,
    the pod network; hostNetwork=true: the node's network, cluster DNS if any, no surge."""
    deployment = only(render(helm), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert "hostNetwork" not in pod
    assert "dnsPolicy" not in pod
    assert "strategy" not in deployment["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}

    host = only(render(helm, "--set", "hostNetwork=true"), "Deployment")
    assert (host["spec"]["template"]["spec"]["hostNetwork"], host["spec"]["template"]["spec"]["dnsPolicy"]) == (
        True,
        "ClusterFirstWithHostNet",
    )
    assert host["spec"]["strategy"] == {"type": "Recreate"}
    two = only(render(helm, "--set", "hostNetwork=true,replicaCount=2"), "Deployment")
    assert two["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
