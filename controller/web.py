"""A small read-only HTTP server: Prometheus metrics and the operator's caches.

    GET /metrics   Prometheus text format
    GET /nodes     the Node cache: [{name, labels, subnets: {namespace/name: subnet}}]
    GET /networks  the Network index: [{namespace, name, cidr, gateway, ready, reason,
                   capacity, allocated, free, waiting}]
    GET /readyz    200 when this replica can serve, else 503 and why (controller/ready.py)

It is the seed's Lister used as a client cache, served from memory: no
request reaches the Kubernetes API.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller import ready
from controller.engine import Engine
from netpool import annotation
from netpool.status import ready_condition


def nodes_view(engine: Engine) -> list[dict[str, Any]]:
    return [
        {
            "name": node.name,
            "labels": dict(node.labels),
            "subnets": {
                doc.get("network", key): doc.get("subnet")
                for key, value in sorted(node.subnets.items())
                if (doc := annotation.parse(value)) is not None
            },
        }
        for node in sorted(engine.nodes, key=lambda n: n.name)
    ]


def networks_view(engine: Engine) -> list[dict[str, Any]]:
    found = []
    for key in sorted(engine.networks.keys()):
        net = engine.networks.get(key)
        if net is None:
            continue
        cond = ready_condition(net.status) or {}
        found.append(
            {
                "namespace": net.namespace,
                "name": net.name,
                "cidr": net.spec.get("cidr"),
                "gateway": net.status.get("gateway"),
                "ready": cond.get("status"),
                "reason": cond.get("reason"),
                "capacity": net.status.get("capacity"),
                "allocated": net.status.get("allocated"),
                "free": net.status.get("free"),
                "waiting": net.status.get("waiting"),
            }
        )
    return found


def app(engine: Engine, checks: list[ready.Check] | None = None) -> web.Application:
    def as_json(data: Any) -> web.Response:
        return web.Response(text=json.dumps(data, indent=1), content_type="application/json")

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(engine.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def nodes(_: web.Request) -> web.Response:
        return as_json(nodes_view(engine))

    async def networks(_: web.Request) -> web.Response:
        return as_json(networks_view(engine))

    async def readyz(_: web.Request) -> web.Response:
        wrong = await ready.problems(checks or [])
        if wrong:
            return web.Response(status=503, text="not ready:\n" + "\n".join(wrong) + "\n")
        return web.Response(text="ok\n")

    application = web.Application()
    application.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/nodes", nodes),
            web.get("/networks", networks),
            web.get("/readyz", readyz),
        ]
    )
    return application


async def serve(engine: Engine, address: str, port: int, checks: list[ready.Check] | None = None) -> web.AppRunner:
    runner = web.AppRunner(app(engine, checks), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
