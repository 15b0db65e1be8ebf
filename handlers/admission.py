"""The validating admission webhook: reject invalid and overlapping Networks at
`kubectl apply` time, with the same messages the status would carry, and spec
changes that would move a podCIDR (Kubernetes never lets one change). With the
webhook off, the operator still validates on its own (status and events)."""

from __future__ import annotations

from typing import Any

import kopf

from controller.kube import GROUP, PLURAL, VERSION
from handlers.networks import engine_of
from netpool import podcidr
from netpool import status as st
from netpool.overlap import Claim, older_overlap
from netpool.spec import SpecError, parse_spec

# Later than any real creationTimestamp: a Network being created is the youngest.
_NOW_AND_LATER = "9999-12-31T23:59:59Z"


@kopf.on.validate(GROUP, VERSION, PLURAL, id="validate-network", operations=["CREATE", "UPDATE"])
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
    try:
        pool = parse_spec(spec).pool
    except SpecError as e:
        raise kopf.AdmissionError(st.invalid(str(e)).message, code=422) from None
    engine = engine_of(memo, kwargs)
    me = Claim(meta.get("creationTimestamp") or _NOW_AND_LATER, f"{namespace}/{name}", pool.network)
    rival = older_overlap(me, engine.claims(exclude=(namespace or "", name)))
    if rival is not None:
        raise kopf.AdmissionError(st.overlaps(str(pool.network), rival.ref, str(rival.network)).message, code=422)
    if old is not None and (moved := podcidr.moved(pool, engine.pod_cidrs_given((namespace or "", name)))):
        raise kopf.AdmissionError(
            f"this change would leave podCIDRs this Network gave outside its subnets, and a Node's podCIDRs "
            f"never change once set: {podcidr.summary(moved)}; keep them in the pool, "
            f"or delete those Nodes first",
            code=422,
        )
