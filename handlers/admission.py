"""The validating admission webhook: reject invalid and overlapping Networks at
`kubectl apply` time, with the same messages the status would carry, and spec
changes that would move a podCIDR (Kubernetes never lets one change). With the
webhook off, the operator still validates on its own (status and events)."""

from __future__ import annotations

from typing import Any

import kopf

from handlers.networks import engine_of
from netpool import podcidr
from netpool.names import GROUP, NETWORKS, VERSION
from netpool.verdict import judge, refusal

# Later than any real creationTimestamp: a Network being created is the youngest.
_NOW_AND_LATER = "9999-12-31T23:59:59Z"


@kopf.on.validate(GROUP, VERSION, NETWORKS, id="validate-network", operations=["CREATE", "UPDATE"])
async def validate(
    spec: kopf.Spec,
    meta: kopf.Meta,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    old: kopf.Body | None = kwargs.get("old")
    if old is not None and old.get("spec") == spec:
        # Metadata only (finalizers, annotations): never block it, or a Network
        # that was invalid before the webhook existed could not even be deleted.
        return
    engine = engine_of(memo, kwargs)
    key = (namespace or "", name)
    verdict = judge(spec)
    created = meta.get("creationTimestamp") or _NOW_AND_LATER
    refused = refusal(verdict, created, f"{namespace}/{name}", engine.networks.claims(exclude=key))
    if refused is not None:
        raise kopf.AdmissionError(refused.message, code=422)
    assert verdict.spec is not None  # judged valid: refusal() says why otherwise
    if old is not None and (moved := podcidr.moved(verdict.spec.pool, engine.pod_cidrs_given(key))):
        raise kopf.AdmissionError(
            f"this change would leave podCIDRs this Network gave outside its subnets, and a Node's podCIDRs "
            f"never change once set: {podcidr.summary(moved)}; keep them in the pool, "
            f"or delete those Nodes first",
            code=422,
        )
