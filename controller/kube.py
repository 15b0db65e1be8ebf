"""The few Kubernetes API calls the operator makes, over controller/transport.py.

The login (kubeconfig, or the pod's ServiceAccount) is controller/login.py's,
as Kopf's is. Writes go out only while the operator may
write: not once it is stopping, and with several replicas only while it
holds the Lease (controller/lease.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from controller.config import Config
from controller.lease import Lease
from controller.login import Login
from controller.metrics import Metrics
from controller.transport import ApiException, Transport
from netpool.names import API_VERSION, NETWORKS, NODESUBNETS

SUBNETS = f"/apis/{API_VERSION}/{NODESUBNETS}"
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_MERGE = "application/merge-patch+json"
T = TypeVar("T")
_log = logging.getLogger("network-operator")


class _Expired(Exception):
    """A list's `continue` token is too old: 410 Expired for its next page."""


class Fenced(RuntimeError):
    """A write refused because the operator is stopping."""


class Listing(list[T]):
    """A LIST's objects, and the resourceVersion it was read at: a watch that
    starts there sees every change that came after."""

    version: str = ""


class Api:
    """Raw JSON requests. The official client's generated API methods
    validate every argument and build model objects from every response, and
    it is synchronous (a thread per request in flight); the operator needs
    none of it. A Node PATCH cost about a third of the CPU it cost through
    the official client (see README.md "Dependencies")."""

    def __init__(self, login: Login, metrics: Metrics, page: int = Config.list_page) -> None:
        self.transport = Transport(login, metrics)
        self.metrics = metrics  # NodeSubnets made and deleted
        self.page = page  # objects per page of a LIST
        self.fenced = False
        self.lease: Lease | None = None  # with several replicas: held while writing (controller/lease.py)

    def fence(self) -> None:
        """Write nothing more: the operator is stopping and another replica may
        take over at once. Writes waiting for a free connection fail without a
        request; at most CONCURRENCY are in flight."""
        self.fenced = True

    async def close(self) -> None:
        await self.transport.close()

    def _guard(self, method: str, path: str) -> None:
        if method != "GET" and (self.fenced or (self.lease is not None and not self.lease.valid())):
            raise Fenced(f"{method} {path}: the operator is stopping or does not hold the Lease")

    async def _call(
        self, resource: str, write: bool, method: str, path: str, expected: int = 404, **kwargs: Any
    ) -> Any:
        """One request; None if it fails with the `expected` status (by
        default 404: the object is gone). A write waits until the Lease is ours."""
        if write and self.lease is not None:
            async with self.lease.writing():
                return await self.transport.counted(
                    resource, write, method, path, expected, guard=self._guard, **kwargs
                )
        return await self.transport.counted(resource, write, method, path, expected, guard=self._guard, **kwargs)

    async def version(self, within: float) -> dict[str, Any]:
        """GET /version, which every authenticated client may read: does the API server answer?"""
        return cast(dict[str, Any], await asyncio.wait_for(self.transport.request("GET", "/version"), within))

    async def streams_lists(self, within: float = 5) -> bool:
        """Whether the API server streams a watch's initial state in place of a LIST."""
        return await self.transport.streams_initial_events(f"/apis/{API_VERSION}/{NETWORKS}", within)

    async def patch_node(
        self, node: str, annotations: Mapping[str, str | None], pod_cidrs: Sequence[str] = ()
    ) -> bool | None:
        """Set annotations (None removes one) and, if given, spec.podCIDRs, in
        one PATCH. False if the Node is gone; None if the API server refused the
        podCIDRs (the Node has others: they are set once and never changed)."""
        patch: dict[str, Any] = {"metadata": {"annotations": dict(annotations)}}
        if pod_cidrs:
            # podCIDR is the first of podCIDRs; a client that knows only the old field reads it.
            patch["spec"] = {"podCIDR": pod_cidrs[0], "podCIDRs": list(pod_cidrs)}
        try:
            path = f"/api/v1/nodes/{node}"
            done = await self._call("nodes", True, "PATCH", path, body=patch, content_type=_MERGE, answer=False)
        except ApiException as e:
            if e.status == 422 and pod_cidrs:
                return None
            raise
        return done is not None

    async def get_node(self, node: str) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, await self._call("nodes", False, "GET", f"/api/v1/nodes/{node}"))

    async def patch_network_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        path = f"/apis/{API_VERSION}/namespaces/{namespace}/{NETWORKS}/{name}/status"
        body = {"status": dict(status)}
        await self._call("networks/status", True, "PATCH", path, body=body, content_type=_MERGE, answer=False)

    async def get_network(self, namespace: str, name: str) -> dict[str, Any] | None:
        path = f"/apis/{API_VERSION}/namespaces/{namespace}/{NETWORKS}/{name}"
        return cast(dict[str, Any] | None, await self._call("networks", False, "GET", path))

    async def list_node_metadata(self, view: Callable[[dict[str, Any]], T]) -> list[T]:
        """Every Node's metadata only (names, uids, labels, annotations), each
        reduced by `view`: the API's truth without the weight of Node status."""
        return await self._list("nodes", "/api/v1/nodes", accept=_METADATA_LIST, view=view)

    async def list_nodes(self, view: Callable[[dict[str, Any]], T]) -> list[T]:
        """Every Node, each reduced by `view` page by page: a kubelet's Node
        weighs about 10 KB, and only a projection is kept."""
        return await self._list("nodes", "/api/v1/nodes", view=view)

    async def list_nodesubnets(self, view: Callable[[dict[str, Any]], T], selector: str | None = None) -> Listing[T]:
        """Every NodeSubnet (with this label selector), each reduced by `view` page by page."""
        return await self._list("nodesubnets", SUBNETS, selector=selector, view=view)

    async def _list(
        self,
        resource: str,
        path: str,
        selector: str | None = None,
        accept: str = "application/json",
        view: Callable[[dict[str, Any]], Any] = lambda item: item,
    ) -> Listing[Any]:
        """Every object, page by page, each reduced by `view`.

        A `continue` token lasts only as long as etcd keeps the revision of
        the list's first page: a LIST that outlives a compaction (every 5
        minutes by default; a large cluster, a paused or starved process)
        gets 410 Expired for its next page. As client-go's pager does, the
        list starts again from the first page, and if that expires too, it
        is read in one unpaged request, which has no token to expire."""
        for limit, then in ((self.page, "from the first page"), (self.page, "in one unpaged request")):
            try:
                return await self._pages(resource, path, selector, accept, view, limit)
            except _Expired:
                _log.warning(
                    "listing %s: the API server no longer keeps the list's next page (410 Expired: the list "
                    "outlived a compaction of etcd); listing again %s",
                    resource,
                    then,
                )
        return await self._pages(resource, path, selector, accept, view, None)

    async def _pages(
        self,
        resource: str,
        path: str,
        selector: str | None,
        accept: str,
        view: Callable[[dict[str, Any]], Any],
        limit: int | None,
    ) -> Listing[Any]:
        items: Listing[Any] = Listing()
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", limit)] if limit else []
            query += [("labelSelector", selector)] if selector else []
            query += [("continue", token)] if token else []
            try:
                page = await self._call(resource, False, "GET", path, query=query, accept=accept)
            except ApiException as e:
                if e.status == 410 and token:
                    raise _Expired from e
                raise
            items += [view(item) for item in page.get("items") or []]
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            # Every page of a paged LIST is read at its first page's resourceVersion.
            items.version = meta.get("resourceVersion") or items.version
            if not token:
                return items

    async def create_nodesubnet(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create a NodeSubnet; None if one of that name (that subnet) exists."""
        done = await self._call("nodesubnets", True, "POST", SUBNETS, expected=409, body=dict(body))
        if done is not None:
            self.metrics.allocations.inc()
        return cast(dict[str, Any] | None, done)

    async def get_nodesubnet(self, name: str) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, await self._call("nodesubnets", False, "GET", f"{SUBNETS}/{name}"))

    async def delete_nodesubnet(self, name: str, uid: str) -> None:
        """Delete this incarnation of a NodeSubnet (the uid is a precondition);
        gone or already replaced is fine."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            if await self._call("nodesubnets", True, "DELETE", f"{SUBNETS}/{name}", body=options) is not None:
                self.metrics.releases.inc()
        except ApiException as e:
            if e.status != 409:  # a newer object of the same name: not ours to delete
                raise
