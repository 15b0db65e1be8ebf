"""The few Kubernetes API calls the operator makes, with the official client.

The `kubernetes` client is synchronous, so every call runs in a worker thread
(`asyncio.to_thread`) and never blocks Kopf's event loop. Writes are counted
and failures counted by resource and status (see handlers/metrics.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from handlers.metrics import Metrics

GROUP, VERSION, PLURAL = "samplecrd.k8s.io", "v1", "networks"
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_PAGE = 500


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster credentials in a pod, the kubeconfig ($KUBECONFIG) elsewhere."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        # Read $KUBECONFIG now, not when the client library was imported.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


class Api:
    def __init__(self, client: kubernetes.client.ApiClient, metrics: Metrics) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.metrics = metrics

    async def _call(self, resource: str, write: bool, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one client call in a thread; None if the object is gone (404)."""
        if write:
            self.metrics.api_writes.labels(resource).inc()
        try:
            return await asyncio.to_thread(fn, *args)
        except ApiException as e:
            if e.status == 404:
                return None
            self.metrics.api_errors.labels(resource, str(e.status)).inc()
            raise

    async def annotate_node(self, node: str, key: str, value: str | None) -> bool:
        """Set (or with None, remove) one annotation; False if the node is gone."""
        patch = {"metadata": {"annotations": {key: value}}}
        return await self._call("nodes", True, self.core.patch_node, node, patch) is not None

    async def patch_network_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        fn = self.custom.patch_namespaced_custom_object_status
        await self._call("networks/status", True, fn, GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)})

    async def get_network(self, namespace: str, name: str) -> dict[str, Any] | None:
        fn = self.custom.get_namespaced_custom_object
        return cast(
            dict[str, Any] | None, await self._call("networks", False, fn, GROUP, VERSION, namespace, PLURAL, name)
        )

    async def list_node_metadata(self) -> list[dict[str, Any]]:
        """Every Node's metadata only (names, labels, annotations), in pages:
        the API's truth, without the weight of Node status."""
        return cast(list[dict[str, Any]], await self._call("nodes", False, self._list_node_metadata))

    def _list_node_metadata(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", _PAGE)]
            if token:
                query.append(("continue", token))
            request = self.client.param_serialize(
                "GET",
                "/api/v1/nodes",
                query_params=query,
                header_params={"Accept": _METADATA_LIST},
                auth_settings=["BearerToken"],
            )
            resp = self.client.call_api(*request)
            data = resp.read()  # type: ignore[no-untyped-call]
            if not 200 <= resp.status < 300:
                raise ApiException(http_resp=resp)
            page = json.loads(data)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
