"""Readiness: whether this replica can do its job right now.

The pod is Ready (and in the webhook Service's endpoints) only while every
check passes: the API server answers, and, with the webhook on, the webhook
port accepts a TLS handshake. Liveness is another question (Kopf's /healthz):
a replica cut off from the API server should leave the endpoints, not restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from controller.kube import Api

Check = Callable[[], Coroutine[Any, Any, str | None]]  # None when fine, else what is wrong
TIMEOUT = 2.0


def api_answers(api: Api, timeout: float = TIMEOUT) -> Check:
    async def check() -> str | None:
        try:
            await api.version(within=timeout)
        except Exception as e:  # any failure means not ready; say which
            return f"API server: {type(e).__name__}: {e}"[:300]
        return None

    return check


def webhook_answers(address: str, port: int, timeout: float = TIMEOUT) -> Check:
    """A TLS handshake with the webhook server, as the API server would start one."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address, address)
    context = ssl.create_default_context()
    # Only whether it serves TLS on that port; the API server checks the certificate.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def check() -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
        except Exception as e:
            return f"webhook {host}:{port}: {type(e).__name__}: {e}"[:300]
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return None

    return check


async def problems(checks: list[Check]) -> list[str]:
    """What is wrong, from all checks run at once; empty when ready."""
    found = await asyncio.gather(*(check() for check in checks))
    return [p for p in found if p]
