"""Readiness checks (controller/ready.py): each says what is wrong, or nothing."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller import ready
from controller.config import Config


class FakeApi:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def version(self, within: float) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"gitVersion": "v1.37.2"}


def test_api_check() -> None:
    assert asyncio.run(ready.api_answers(FakeApi(None))()) is None  # type: ignore[arg-type]
    wrong = asyncio.run(ready.api_answers(FakeApi(TimeoutError("no answer")))())  # type: ignore[arg-type]
    assert wrong == "API server: TimeoutError: no answer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_check_refused() -> None:
    port = _free_port()
    wrong = asyncio.run(ready.webhook_answers("0.0.0.0", port)())
    assert wrong is not None
    assert wrong.startswith(f"webhook 127.0.0.1:{port}: ")


def test_webhook_check_needs_tls(tmp_path: Path) -> None:
    """A port that accepts TCP but speaks no TLS is not a webhook."""

    async def main() -> str | None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await ready.webhook_answers("127.0.0.1", port, timeout=2)()

    assert asyncio.run(main()) is not None


def test_webhook_check_passes_on_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    self_signed = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*self_signed, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def main() -> list[str]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await ready.problems([ready.webhook_answers("0.0.0.0", port)])

    assert asyncio.run(main()) == []


@pytest.mark.parametrize("names", [("a", "b"), ("b", "a")])
def test_older_replica_has_the_higher_peering_priority(names: tuple[str, str]) -> None:
    older, younger = Config(pod_name=names[0], started=1000.0), Config(pod_name=names[1], started=1000.5)
    assert older.peering_priority > younger.peering_priority
    # Started in the same millisecond: still distinct.
    assert Config(pod_name="a", started=5.0).peering_priority != Config(pod_name="b", started=5.0).peering_priority
