"""The operator's login (controller/login.py): the API server by the address
in the pod's environment, never by a DNS name, else the kubeconfig's current
context; one login for Kopf and for its own client."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from controller import login, transport
from controller.metrics import Metrics


@pytest.fixture
def account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("token-1\n")
    (tmp_path / "ca.crt").write_text("not read here\n")
    (tmp_path / "namespace").write_text("network-system")
    return tmp_path


ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_cluster_is_the_service_address_with_the_mounted_credentials(account: Path) -> None:
    pod = login.in_cluster(ENV, account)
    assert pod == login.Login(
        "https://10.96.0.1:443",
        ca_path=str(account / "ca.crt"),
        token_path=str(account / "token"),
        namespace="network-system",
    )
    assert pod.token() == "token-1"


def test_ipv6_service_address(account: Path) -> None:
    pod = login.in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}, account)
    assert pod is not None
    assert pod.server == "https://[fd00::1]:6443"


@pytest.mark.parametrize(
    "env",
    [{}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT": "443"}],
    ids=["no-env", "no-port", "no-host"],
)
def test_not_in_a_pod(account: Path, env: dict[str, str]) -> None:
    assert login.in_cluster(env, account) is None


def test_no_token_is_not_in_a_pod(account: Path) -> None:
    (account / "token").unlink()
    assert login.in_cluster(ENV, account) is None


def test_the_api_client_sends_the_pods_token_and_rereads_it_when_rotated(
    account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login, "SERVICE_ACCOUNT", account)
    monkeypatch.setattr(transport, "AUTH_SECONDS", 0)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", lambda *_, **__: None)  # the CA is not a real one
    client = transport.Transport(login.load(), Metrics())
    assert client.login.server == "https://10.96.0.1:443"
    assert client._authorization() == "Bearer token-1"
    (account / "token").write_text("token-2\n")  # the kubelet rotated it
    assert client._authorization() == "Bearer token-2"


def kubeconfig(path: Path, user: Mapping[str, object], cluster: Mapping[str, object] | None = None) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
        "current-context": "ctx",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_a_kubeconfig_token_and_ca_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kube" / "config", {"token": "t0k"}, {"certificate-authority": "ca.crt"})
    found = login.from_kubeconfig({"KUBECONFIG": str(config)})
    assert found == login.Login(
        "https://127.0.0.1:6443", ca_path=str(tmp_path / "kube" / "ca.crt"), token_value="t0k", namespace="team"
    )
    assert found.token() == "t0k"


def test_a_kubeconfig_list_merges_and_its_first_value_wins(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", {"tokenFile": "/run/token", "client-certificate": "/etc/c.crt"})
    second = tmp_path / "b"
    second.write_text(json.dumps({"current-context": "other", "users": [{"name": "x", "user": {"token": "t"}}]}))
    found = login.from_kubeconfig({"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"})
    assert (found.token_path, found.cert_path, found.token_value) == ("/run/token", "/etc/c.crt", None)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"current-context": ""}, "no current-context in"),
        ({"current-context": "ctx"}, "the kubeconfig's current-context names context 'ctx', which it does not define"),
        (
            {"current-context": "ctx", "contexts": [{"name": "ctx", "context": {"cluster": "gone"}}]},
            "names cluster 'gone', which it does not define",
        ),
    ],
    ids=["no-context", "unknown-context", "unknown-cluster"],
)
def test_a_kubeconfig_that_names_nothing_usable_says_what_is_missing(
    tmp_path: Path, doc: dict[str, object], message: str
) -> None:
    (tmp_path / "config").write_text(json.dumps(doc))
    with pytest.raises(login.LoginError, match=re.escape(message)):
        login.from_kubeconfig({"KUBECONFIG": str(tmp_path / "config")})


def test_no_kubeconfig_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(login.LoginError, match=f"not in a pod, and no kubeconfig at {re.escape(str(tmp_path))}/none"):
        login.from_kubeconfig({"KUBECONFIG": str(tmp_path / "none")})


def test_a_credential_plugin_is_refused_with_what_to_give_instead(tmp_path: Path) -> None:
    config = kubeconfig(
        tmp_path / "config", {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
    )
    with pytest.raises(login.LoginError, match=r"user 'u' logs in through a credential plugin \(aws\)"):
        login.from_kubeconfig({"KUBECONFIG": str(config)})


def test_certificate_data_and_basic_auth_reach_the_client(tmp_path: Path) -> None:
    """The client certificate as base64 data (kind's and most generated
    kubeconfigs), loaded into the TLS context; a user and password as Basic."""
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=me",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    data = {"client-certificate-data": base64.b64encode(cert.read_bytes()).decode()}
    data["client-key-data"] = base64.b64encode(key.read_bytes()).decode()
    user = {**data, "username": "me", "password": "secret"}
    config = kubeconfig(tmp_path / "config", user, {"certificate-authority-data": data["client-certificate-data"]})
    found = login.from_kubeconfig({"KUBECONFIG": str(config)})
    loaded: list[tuple[str, str]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, keyfile: str | None = None, password: object = None) -> None:
        loaded.append((Path(certfile).read_text(), Path(keyfile or certfile).read_text()))
        original(self, certfile, keyfile)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(ssl.SSLContext, "load_cert_chain", spy)
        client = transport.Transport(found, Metrics())
    assert loaded == [(cert.read_text(), key.read_text())]
    assert client._tls.cert_store_stats()["x509_ca"] == 1
    assert client._authorization() == "Basic " + base64.b64encode(b"me:secret").decode()
    asyncio.run(client.close())
