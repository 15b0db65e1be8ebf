"""The operator's login (controller/login.py): the API server by the address
in the pod's environment, never by a DNS name, for Kopf and for its own client."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest

from controller import kube, login


@pytest.fixture
def account(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text("token-1\n")
    (tmp_path / "ca.crt").write_text("not read here\n")
    (tmp_path / "namespace").write_text("network-system")
    return tmp_path


ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_cluster_is_the_service_address_with_the_mounted_credentials(account: Path) -> None:
    pod = login.in_cluster(ENV, account)
    assert pod == login.InCluster(
        "https://10.96.0.1:443", str(account / "ca.crt"), str(account / "token"), "network-system"
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


def test_the_api_client_uses_the_same_login_and_rereads_the_token(
    account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login, "SERVICE_ACCOUNT", account)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = kube.load_config()
    assert config.host == "https://10.96.0.1:443"
    assert config.ssl_ca_cert == str(account / "ca.crt")
    assert config.auth_settings()["BearerToken"]["value"] == "Bearer token-1"
    assert config.refresh_api_key_hook is not None


def test_the_api_client_rereads_a_rotated_token(account: Path) -> None:
    pod = login.in_cluster(ENV, account)
    assert pod is not None
    config = kubernetes.client.Configuration(host=pod.server)
    refresh = kube._refresh_token(pod, every=0)
    refresh(config)
    assert config.api_key == {"authorization": "token-1"}
    (account / "token").write_text("token-2\n")  # the kubelet rotated it
    refresh(config)
    assert config.api_key == {"authorization": "token-2"}
