"""Integration fixtures: one real control plane per test run (or $KUBECONFIG),
the CRDs installed, a namespace per test and a clean set of Nodes and Networks.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykube
import pytest

from tests.integration.support import CHART, ROOT, Cluster, KubeCluster, build, remove_networks_and_nodes, wait_for

# Short resync for tests; read by the handlers module when the operator loads.
os.environ.setdefault("NETWORK_RESYNC_SECONDS", "3")
os.environ.setdefault("NETWORK_RELIST_SECONDS", "1.5")
# No HTTP server unless a test asks for one (on a port of its own).
os.environ.setdefault("NETWORK_HTTP_PORT", "0")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    bin_dir = build()
    if os.environ.get("KUBECONFIG"):
        tc = KubeCluster(Path(os.environ["KUBECONFIG"]), bin_dir, None)
        _install_crds(tc)
        yield tc
        return
    local = Cluster(tmp_path_factory.mktemp("cluster"), bin_dir)
    local.start()
    os.environ["KUBECONFIG"] = str(local.kubeconfig)
    try:
        tc = KubeCluster(local.kubeconfig, bin_dir, local)
        _install_crds(tc)
        yield tc
    finally:
        os.environ.pop("KUBECONFIG", None)
        local.stop()


PLURALS = ("networks", "nodesubnets")


def _install_crds(tc: KubeCluster) -> None:
    tc.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    tc.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{p}.samplecrd.k8s.io" for p in PLURALS))
    # Established comes a moment before the new resources are served (429 until then).
    wait_for("the CRDs to be served", lambda: tc.kubectl("get", ",".join(PLURALS), "-A", check=False).returncode == 0)


@pytest.fixture(scope="session")
def api(cluster: KubeCluster) -> pykube.HTTPClient:
    return pykube.HTTPClient(pykube.KubeConfig.from_file(str(cluster.kubeconfig)))


@pytest.fixture
def namespace(api: pykube.HTTPClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace; the cluster starts each test with no Nodes and no Networks."""
    remove_networks_and_nodes(api)
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:6]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    ns = pykube.Namespace(api, {"metadata": {"name": name}})
    ns.create()
    yield name
    remove_networks_and_nodes(api)
    ns.delete()


NodeFactory = Callable[..., pykube.Node]


@pytest.fixture
def make_node(api: pykube.HTTPClient) -> NodeFactory:
    def make(name: str, labels: dict[str, str] | None = None, **meta: Any) -> pykube.Node:
        node = pykube.Node(api, {"metadata": {"name": name, "labels": labels or {}, **meta}})
        node.create()
        return node

    return make


@pytest.fixture(scope="session")
def peering(cluster: KubeCluster) -> str:
    """The chart's ClusterKopfPeering CRD and a peering object, as the chart makes them."""
    cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "clusterkopfpeering.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev")
    wait_for("peerings served", lambda: cluster.kubectl("get", "clusterkopfpeerings", check=False).returncode == 0)
    doc = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "network-operator-test"}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
    return "network-operator-test"
