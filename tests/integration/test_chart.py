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
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.cli import main as kopf_cli

from tests.integration.support import ROOT, Cluster, KubeCluster, wait_for

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


def helm_for(cluster: KubeCluster, home: Path) -> Helm:
    """Run helm against `cluster`, with its caches and config in `home`."""
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
def helm(cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm against the test cluster."""
    return helm_for(cluster, tmp_path_factory.mktemp("helm"))


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
    assert (CHART / "files" / "crds" / crd).read_bytes() == (ROOT / "crds" / crd).read_bytes(), (
        f"deploy/helm/network-operator/files/crds/{crd} differs from crds/{crd}: copy it over"
    )


def test_chart_ships_every_canonical_crd() -> None:
    assert sorted(p.name for p in (CHART / "files" / "crds").iterdir()) == sorted(
        p.name for p in (ROOT / "crds").iterdir()
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
        ("logging.format=xml", "format"),
        ("logging.level=trace", "level"),
        ("image.digest=latest", "digest"),
        ("revisionHistoryLimit=-1", "revisionHistoryLimit"),
        ("crds.bogus=1", "bogus"),
        ("crds.install=maybe", "install"),
        ("commonLabels.app\\.kubernetes\\.io/name=x", "commonLabels: app.kubernetes.io/name"),
        ("podDisruptionBudget.maxUnavailable=lots", "maxUnavailable"),
        ("podSecurityContext.runAsUser=-1", "runAsUser"),
        ("podSecurityContext.runAsUserr=1", "runAsUserr"),
        ("securityContext.capabilities.add=NET_ADMIN", "add"),
        ("spreadOverNodes=yes", "spreadOverNodes"),
        ("topologySpreadConstraints[0].maxSkeww=1", "maxSkeww"),
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
    docs = render(helm, "--set", "webhook.enabled=false,peering.enabled=false,crds.install=false")
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


def _pod(docs: list[Doc]) -> Doc:
    pod: Doc = only(docs, "Deployment")["spec"]["template"]["spec"]
    return pod


def test_crds_render_as_the_canonical_ones_with_keep(helm: Helm) -> None:
    """The canonical CRDs, unchanged but for Helm's keep policy and the chart's labels."""
    docs = render(helm, "--set", "commonLabels.team=platform")
    crds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
    canonical = {}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        canonical[crd["metadata"]["name"]] = crd
    assert sorted(crds) == sorted(canonical) == ["networks.samplecrd.k8s.io", "nodesubnets.samplecrd.k8s.io"]
    for name, crd in crds.items():
        meta = crd["metadata"]
        assert meta["annotations"].pop("helm.sh/resource-policy") == "keep", name
        assert meta.pop("labels") == only(docs, "Deployment")["metadata"]["labels"], name
        assert crd == canonical[name]
    # Kopf's CRD is no template (see templates/crds.yaml): helm installs it from crds/.
    assert [p.name for p in (CHART / "crds").iterdir()] == ["clusterkopfpeering.yaml"]
    assert not [d for d in render(helm, "--set", "crds.install=false") if d["kind"] == "CustomResourceDefinition"]


def test_common_labels_are_on_every_object(helm: Helm) -> None:
    labels = {"team": "platform", "example.com/cost-center": "42"}
    for extra in ([], ["--set", "webhook.certManager.enabled=true,replicaCount=2"]):
        docs = render(helm, "--set-json", f"commonLabels={json.dumps(labels)}", *extra)
        assert len(docs) >= 10
        for doc in docs:
            assert labels.items() <= doc["metadata"]["labels"].items(), (doc["kind"], doc["metadata"]["name"])
        deployment = only(docs, "Deployment")
        assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        # The selector stays as it was: a Deployment's selector cannot change.
        assert deployment["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "network-operator",
            "app.kubernetes.io/instance": "rel",
        }


def _kopf_run_options(container: Doc) -> dict[str, Any]:
    """The options `kopf run` takes from the container's command and args,
    parsed by Kopf's own command line (args come after the operator's path)."""
    argv = [*container["command"], *container["args"]]
    assert argv[:2] == ["kopf", "run"]
    context = kopf_cli.make_context("kopf", argv[1:])
    run = kopf_cli.get_command(context, "run")
    assert run is not None
    options: dict[str, Any] = run.make_context("run", argv[2:], parent=context).params
    return options


def test_logging_extra_args_and_extra_env(helm: Helm) -> None:
    (default,) = _pod(render(helm))["containers"]
    assert default["args"] == ["--log-format=full"]
    for level, flags in (("quiet", ["--quiet"]), ("info", []), ("verbose", ["--verbose"]), ("debug", ["--debug"])):
        (container,) = _pod(render(helm, "--set", f"logging.format=json,logging.level={level}"))["containers"]
        assert container["args"] == ["--log-format=json", *flags]
        options = _kopf_run_options(container)
        assert options["log_format"].name == "JSON"
        assert {k for k in ("quiet", "verbose", "debug") if options[k]} == ({level} - {"info"})
        assert options["paths"] == ("/app/operator.py",)
    (container,) = _pod(
        render(
            helm,
            "--set",
            "logging.format=plain",
            "--set-json",
            'extraArgs=["--log-refkey=obj"]',
            "--set-json",
            'extraEnv=[{"name":"NETWORK_PEERING_LIFETIME","value":"15"},'
            '{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}]',
        )
    )["containers"]
    assert container["args"] == ["--log-format=plain", "--log-refkey=obj"]
    assert container["env"][-2:] == [
        {"name": "NETWORK_PEERING_LIFETIME", "value": "15"},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    assert "POD_NAME" in _env(container)


def test_image_digest_and_revision_history(helm: Helm) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    deployment = only(
        render(helm, "--set", f"image.tag=1.2.3,image.digest={digest},revisionHistoryLimit=3"), "Deployment"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"network-operator:1.2.3@{digest}"
    assert deployment["spec"]["revisionHistoryLimit"] == 3
    assert only(render(helm), "Deployment")["spec"]["revisionHistoryLimit"] == 10


def test_security_contexts_can_be_overridden(helm: Helm) -> None:
    """OpenShift's restricted profile picks the UID itself: null removes the chart's."""
    pod = _pod(
        render(
            helm,
            "--set",
            "podSecurityContext.runAsUser=null,podSecurityContext.runAsGroup=null,podSecurityContext.fsGroup=null",
        )
    )
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod = _pod(
        render(
            helm,
            "--set",
            "securityContext.readOnlyRootFilesystem=false,podSecurityContext.fsGroupChangePolicy=OnRootMismatch",
        )
    )
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False


SPREAD_BY_NODE: Doc = {
    "maxSkew": 1,
    "topologyKey": "kubernetes.io/hostname",
    "whenUnsatisfiable": "ScheduleAnyway",
    "labelSelector": {
        "matchLabels": {"app.kubernetes.io/name": "network-operator", "app.kubernetes.io/instance": "rel"}
    },
    "matchLabelKeys": ["pod-template-hash"],
}


def test_disruption_budget_and_spread_only_with_several_replicas(helm: Helm) -> None:
    one = render(helm)
    assert "PodDisruptionBudget" not in kinds(one)
    assert "topologySpreadConstraints" not in _pod(one)

    two = render(helm, "--set", "replicaCount=2")
    pdb = only(two, "PodDisruptionBudget")
    assert pdb["metadata"]["name"] == "rel-network-operator"
    assert pdb["spec"] == {
        "selector": {"matchLabels": only(two, "Deployment")["spec"]["selector"]["matchLabels"]},
        "maxUnavailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    assert _pod(two)["topologySpreadConstraints"] == [SPREAD_BY_NODE]

    zone = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}
    three = render(
        helm,
        "--set",
        "replicaCount=3,podDisruptionBudget.minAvailable=2,podDisruptionBudget.unhealthyPodEvictionPolicy=",
        "--set-json",
        f"topologySpreadConstraints=[{json.dumps(zone)}]",
    )
    assert only(three, "PodDisruptionBudget")["spec"] == {
        "selector": {"matchLabels": SPREAD_BY_NODE["labelSelector"]["matchLabels"]},
        "minAvailable": 2,
    }
    assert _pod(three)["topologySpreadConstraints"] == [SPREAD_BY_NODE, zone]

    off = render(helm, "--set", "replicaCount=2,podDisruptionBudget.enabled=false,spreadOverNodes=false")
    assert "PodDisruptionBudget" not in kinds(off)
    assert "topologySpreadConstraints" not in _pod(off)


# --- against the API server ------------------------------------------------------


@pytest.mark.usefixtures("peering_crd")
@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "replicaCount=3,webhook.certManager.enabled=false"],
        ["--set", "webhook.certManager.enabled=true"],
        ["--set", "webhook.enabled=false,peering.enabled=false,serviceAccount.create=false"],
        [
            "--set",
            "podSecurityContext.runAsUser=null,podSecurityContext.runAsGroup=null,podSecurityContext.fsGroup=null",
        ],
        [
            "--set",
            "replicaCount=2,podDisruptionBudget.minAvailable=50%,logging.format=json,logging.level=debug,"
            "image.digest=sha256:" + "ab" * 32,
            "--set-json",
            'extraEnv=[{"name":"A","value":"b"}]',
            "--set-json",
            'topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone",'
            '"whenUnsatisfiable":"ScheduleAnyway"}]',
            "--set-json",
            'commonLabels={"team":"platform"}',
        ],
    ],
    ids=["defaults", "three-replicas", "cert-manager", "bare", "uid-from-platform", "knobs"],
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
    # The CRDs are conftest's, applied with kubectl: Helm would refuse to adopt
    # them (test_crds_upgrade_with_the_chart_and_outlive_it has the chart's own).
    settings = ["--set", "webhook.failurePolicy=Ignore,crds.install=false"]
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


def _run_pod(cluster: KubeCluster, namespace: str, pod: str, ready: bool) -> None:
    """Report what a kubelet would: the pod runs, Ready or not."""
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}
    cluster.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def _evict(cluster: KubeCluster, namespace: str, pod: str) -> subprocess.CompletedProcess[str]:
    """Ask for an eviction, as `kubectl drain` does."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    return cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
        check=False,
    )


@pytest.mark.usefixtures("peering_crd")
def test_disruption_budget_and_spread_as_the_cluster_sees_them(
    cluster: KubeCluster, helm: Helm, namespace: str
) -> None:
    """With two replicas: the API server adds each pod's ReplicaSet to its
    spread, and evictions (a drain) go by the budget: a replica that is not
    Ready never blocks one, and of two Ready replicas one goes at a time."""
    release = f"ha-{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-network-operator"

    def pods(without: str = "") -> list[Doc] | None:
        items: list[Doc] = get_json(cluster, "-n", namespace, "pods", "-l", f"app.kubernetes.io/instance={release}")[
            "items"
        ]
        live = [p for p in items if "deletionTimestamp" not in p["metadata"] and p["metadata"]["name"] != without]
        return live if len(live) == 2 else None

    def budget(healthy: int) -> Callable[[], Doc | None]:
        def check() -> Doc | None:
            status: Doc = get_json(cluster, "-n", namespace, f"pdb/{fullname}").get("status", {})
            return status if (status.get("expectedPods"), status.get("currentHealthy")) == (2, healthy) else None

        return check

    try:
        helm(
            "install", release, str(CHART), "--namespace", namespace, "--wait=false",
            "--set", "webhook.failurePolicy=Ignore,crds.install=false,replicaCount=2",
        )  # fmt: skip
        first = wait_for("two pods", pods, timeout=60)
        for pod in first:
            (spread,) = pod["spec"]["topologySpreadConstraints"]
            template_hash = pod["metadata"]["labels"]["pod-template-hash"]
            assert spread["labelSelector"] == {
                "matchLabels": {"app.kubernetes.io/name": "network-operator", "app.kubernetes.io/instance": release},
                "matchExpressions": [{"key": "pod-template-hash", "operator": "In", "values": [template_hash]}],
            }
            assert (spread["topologyKey"], spread["whenUnsatisfiable"], spread["maxSkew"]) == (
                "kubernetes.io/hostname",
                "ScheduleAnyway",
                1,
            )

        # Running but never Ready (a crash loop): the budget allows no
        # disruption, yet unhealthyPodEvictionPolicy lets the drain through.
        names = [p["metadata"]["name"] for p in first]
        for name in names:
            _run_pod(cluster, namespace, name, ready=False)
        status = wait_for("the disruption controller to count two unhealthy pods", budget(0), timeout=60)
        assert (status["desiredHealthy"], status["disruptionsAllowed"]) == (1, 0)
        evicted = _evict(cluster, namespace, names[0])
        assert evicted.returncode == 0, evicted.stderr

        # Two Ready replicas: the first eviction goes through, the second waits.
        second = [p["metadata"]["name"] for p in wait_for("a replacement pod", lambda: pods(without=names[0]))]
        for name in second:
            _run_pod(cluster, namespace, name, ready=True)
        status = wait_for("the disruption controller to count two healthy pods", budget(2), timeout=60)
        assert status["disruptionsAllowed"] == 1
        evicted = _evict(cluster, namespace, second[0])
        assert evicted.returncode == 0, evicted.stderr
        refused = _evict(cluster, namespace, second[1])
        assert refused.returncode != 0
        assert "violate the pod's disruption budget" in refused.stderr
    finally:
        _cleanup(cluster, helm, release, namespace, fullname)


# --- the CRDs' lifecycle, on a control plane of its own ----------------------------------

NETWORK_CRD = "networks.samplecrd.k8s.io"
CRD_NAMES = (NETWORK_CRD, "nodesubnets.samplecrd.k8s.io")


@pytest.fixture(scope="module")
def bare_cluster(cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A control plane without the CRDs: the chart installs, upgrades and keeps
    them, which the shared cluster's CRDs (applied by conftest) must not see."""
    local = Cluster(tmp_path_factory.mktemp("bare") / "cp", cluster.bin)
    local.start()
    try:
        yield KubeCluster(local.kubeconfig, cluster.bin, local)
    finally:
        local.stop()


def chart_without_pod_cidrs(where: Path, crds_dir: bool) -> Path:
    """The chart as it was before spec.podCIDRs: the Network CRD without the
    field; with `crds_dir`, also with its CRDs in crds/ as the chart had them
    until 0.1.0 (installed once, never upgraded, not owned by the release)."""
    shutil.copytree(CHART, where)
    path = where / "files" / "crds" / "network.yaml"
    crd = yaml.safe_load(path.read_text())
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["podCIDRs"]
    path.write_text(yaml.safe_dump(crd))
    if crds_dir:
        for file in (where / "files" / "crds").iterdir():
            file.rename(where / "crds" / file.name)
        (where / "templates" / "crds.yaml").unlink()
    return where


def _pod_cidrs_kept(cluster: KubeCluster, namespace: str, name: str) -> bool:
    """Whether the API server stores spec.podCIDRs of a new Network (it prunes unknown fields)."""
    doc = {
        "apiVersion": "samplecrd.k8s.io/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"cidr": "10.20.0.0/16", "gateway": "10.20.0.1", "podCIDRs": True},
    }
    # --validate=ignore: an unknown field is dropped, not refused.
    created = json.loads(
        cluster.kubectl("create", "--validate=ignore", "-o", "json", "-f", "-", input=json.dumps(doc)).stdout
    )
    return "podCIDRs" in created["spec"]


def _served(cluster: KubeCluster) -> bool:
    return cluster.kubectl("get", "networks,nodesubnets", "-A", check=False).returncode == 0


def test_crds_upgrade_with_the_chart_and_outlive_it(bare_cluster: KubeCluster, tmp_path: Path) -> None:
    cluster = bare_cluster
    helm = helm_for(cluster, tmp_path / "helm")
    release, namespace = "crds", "default"
    settings = ["--namespace", namespace, "--wait=false", "--set", "webhook.failurePolicy=Ignore"]
    before = chart_without_pod_cidrs(tmp_path / "0.1.0", crds_dir=True)
    older = chart_without_pod_cidrs(tmp_path / "older", crds_dir=False)

    # The chart of 0.1.0: Helm installs its crds/ once.
    helm("install", release, str(before), *settings)
    wait_for("the CRDs to be served", lambda: _served(cluster))
    assert not _pod_cidrs_kept(cluster, namespace, "old")
    assert "meta.helm.sh/release-name" not in get_json(cluster, f"crd/{NETWORK_CRD}")["metadata"].get("annotations", {})

    # From it, once: the release takes over the CRDs it did not own (README, "Upgrade").
    helm("upgrade", release, str(older), *settings, "--take-ownership")
    for name in CRD_NAMES:
        meta = get_json(cluster, f"crd/{name}")["metadata"]
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
        assert meta["annotations"]["meta.helm.sh/release-name"] == release
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"

    # A plain upgrade to the current chart brings the new schema.
    helm("upgrade", release, str(CHART), *settings)
    schema = get_json(cluster, f"crd/{NETWORK_CRD}")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["podCIDRs"]["type"] == "boolean"
    # The API server takes a moment to serve with the new schema.
    wait_for("spec.podCIDRs to be stored", lambda: _pod_cidrs_kept(cluster, namespace, f"new-{uuid.uuid4().hex[:6]}"))

    networks = {n["metadata"]["name"] for n in get_json(cluster, "networks", "-n", namespace)["items"]}
    assert "old" in networks

    # Switched off on an upgrade, the chart leaves the CRDs in place; back on, it owns them again.
    helm("upgrade", release, str(CHART), *settings, "--set", "crds.install=false")
    for name in CRD_NAMES:
        get_json(cluster, f"crd/{name}")
    helm("upgrade", release, str(CHART), *settings)
    assert {n["metadata"]["name"] for n in get_json(cluster, "networks", "-n", namespace)["items"]} == networks

    # Uninstall keeps the CRDs, and so the Networks.
    uninstalled = helm("uninstall", release, "--namespace", namespace)
    assert "kept due to the resource policy" in uninstalled.stdout
    wait_for(
        "the Deployment to be gone",
        functools.partial(absent, cluster, "-n", namespace, f"deployment/{release}-network-operator"),
    )
    for name in CRD_NAMES:
        get_json(cluster, f"crd/{name}")
    after = {n["metadata"]["name"] for n in get_json(cluster, "networks", "-n", namespace)["items"]}
    assert after == networks

    # Installed again under the same name, the release owns them again.
    helm("install", release, str(CHART), *settings)
    manifest = helm("get", "manifest", release, "--namespace", namespace).stdout
    assert sorted(
        d["metadata"]["name"] for d in yaml.safe_load_all(manifest) if d and d["kind"] == "CustomResourceDefinition"
    ) == sorted(CRD_NAMES)
    # Another release next to it leaves them to the first (crds.install=false).
    helm("install", "second", str(CHART), *settings, "--set", "crds.install=false")
    assert "CustomResourceDefinition" not in helm("get", "manifest", "second", "--namespace", namespace).stdout
