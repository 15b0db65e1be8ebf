"""Build a Network's status and decide which event, if any, a change deserves.

Reasons and messages are named constants, as in kubernetes/sample-controller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from netpool.pool import Pool

READY = "Ready"
INVALID_SPEC = "InvalidSpec"
OVERLAPS = "Overlaps"
POOL_EXHAUSTED = "PoolExhausted"
NO_MATCHING_NODES = "NoMatchingNodes"
ALLOCATED = "Allocated"
SYNCED = "Synced"  # the Normal event, as the seed's recorder posts it
WARNING_REASONS = frozenset({INVALID_SPEC, OVERLAPS, POOL_EXHAUSTED, NO_MATCHING_NODES})
MESSAGE_SYNCED = "Network synced successfully: {allocated} of {matching} matching nodes have a subnet"

POD_CIDRS = "PodCIDRs"  # the condition of a Network with spec.podCIDRs
WRITTEN = "Written"
OLDER_NETWORK = "OlderNetwork"
CONFLICTS = "Conflicts"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the Ready condition says."""

    ready: bool
    reason: str
    message: str


def invalid(problems: str) -> Outcome:
    return Outcome(False, INVALID_SPEC, f"invalid spec: {problems}")


def overlaps(cidr: str, other: str, other_cidr: str) -> Outcome:
    return Outcome(
        False,
        OVERLAPS,
        f"cidr {cidr} overlaps cidr {other_cidr} of the older Network {other}; "
        f"choose a cidr that does not overlap it (this Network allocates nothing until then)",
    )


def served(pool: Pool, matching: int, allocated: int, waiting: int) -> Outcome:
    if waiting:
        return Outcome(
            False,
            POOL_EXHAUSTED,
            f"{waiting} of {matching} matching nodes wait for a subnet: all {pool.capacity} usable "
            f"/{pool.subnet_prefix} subnets of {pool.network} are allocated; grow cidr or remove nodes",
        )
    if matching == 0:
        return Outcome(True, NO_MATCHING_NODES, "nodeSelector matches no node; nothing to allocate")
    return Outcome(True, ALLOCATED, f"{allocated} of {matching} matching nodes have a subnet")


@dataclasses.dataclass(frozen=True)
class PodCidrs:
    """What the PodCIDRs condition says, and its counts."""

    outcome: Outcome
    written: int = 0  # Nodes whose podCIDR is their subnet of this Network
    conflicts: int = 0  # matching Nodes whose podCIDRs this Network cannot write


def pod_cidrs_written(version: int, written: int, served: int) -> PodCidrs:
    message = f"{written} of {served} nodes with a subnet have it as their IPv{version} podCIDR"
    return PodCidrs(Outcome(True, WRITTEN, message), written)


def pod_cidrs_older(version: int, other: str) -> PodCidrs:
    message = (
        f"the older Network {other} writes the IPv{version} podCIDRs and only one Network per IP family "
        f"may; this Network writes none"
    )
    return PodCidrs(Outcome(False, OLDER_NETWORK, message))


def pod_cidrs_conflicts(written: int, conflicts: int, summary: str) -> PodCidrs:
    message = (
        f"{conflicts} matching nodes have podCIDRs this Network cannot write and get no subnet from it "
        f"(a podCIDR never changes once set): {summary}"
    )
    return PodCidrs(Outcome(False, CONFLICTS, message), written, conflicts)


def condition(
    outcome: Outcome, generation: int, now: str, previous: Mapping[str, Any] | None, kind: str = READY
) -> dict[str, Any]:
    """A condition (by default Ready); lastTransitionTime moves only when the status flips."""
    status = "True" if outcome.ready else "False"
    since = now
    if previous and previous.get("status") == status and previous.get("lastTransitionTime"):
        since = previous["lastTransitionTime"]
    return {
        "type": kind,
        "status": status,
        "reason": outcome.reason,
        "message": outcome.message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def ready_condition(status: Mapping[str, Any] | None, kind: str = READY) -> Mapping[str, Any] | None:
    """The condition of type `kind` (by default Ready), if the status has it."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def build(
    *,
    generation: int,
    outcome: Outcome,
    pool: Pool | None,
    allocated: int,
    waiting: int,
    previous: Mapping[str, Any] | None,
    now: str,
    pod_cidrs: PodCidrs | None = None,
) -> dict[str, Any]:
    """The whole status: counts and the condition, never a per-Node list (the
    allocations are NodeSubnet objects), so its size does not grow with Nodes.
    Capacity and free are decimal strings: an IPv6 pool can hold more subnets
    than an int64 (2001:db8::/32 in /96s: 2**64)."""
    conditions = [condition(outcome, generation, now, ready_condition(previous))]
    if pod_cidrs is not None:
        conditions.append(
            condition(pod_cidrs.outcome, generation, now, ready_condition(previous, POD_CIDRS), POD_CIDRS)
        )
    return {
        "observedGeneration": generation,
        "gateway": str(pool.gateway) if pool else None,
        "nodeSubnetPrefix": pool.subnet_prefix if pool else None,
        "capacity": str(pool.capacity) if pool else None,
        "allocated": allocated,
        "free": str(pool.capacity - allocated) if pool else None,
        "waiting": waiting,
        # Written by earlier versions; a merge patch with None removes it.
        "allocations": None,
        "podCIDRs": pod_cidrs.written if pod_cidrs else None,
        "podCIDRConflicts": pod_cidrs.conflicts if pod_cidrs else None,
        "conditions": conditions,
    }


def same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal as stored: a field set to None is the same as a field left out."""

    def clean(d: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (d or {}).items() if v is not None}

    return clean(a) == clean(b)


def event_for(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(type, reason, message) of the event to post for this change, or None.

    Warnings on a transition into a bad reason, or when a spec change brings a
    new message for it; Normal Synced when the Network becomes Ready, or is
    Ready again after a spec change. A resync that changes nothing posts nothing.
    """
    new = ready_condition(current)
    if new is None:
        return None
    old = ready_condition(previous)
    changed = old is None or (old.get("status"), old.get("reason")) != (new["status"], new["reason"])
    respec = (previous or {}).get("observedGeneration") != current.get("observedGeneration")
    if new["reason"] in WARNING_REASONS:
        # A spec edited from one mistake to another deserves a word about the new one.
        rewarn = respec and old is not None and old.get("message") != new["message"]
        return ("Warning", new["reason"], new["message"]) if changed or rewarn else None
    if new["status"] == "True" and (changed or respec):
        matching = current["allocated"] + current["waiting"]
        return "Normal", SYNCED, MESSAGE_SYNCED.format(allocated=current["allocated"], matching=matching)
    return None


def pod_cidrs_event(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """A Warning when the PodCIDRs condition turns False, and again whenever
    more Nodes conflict: each one is a Node whose pods this Network cannot serve."""
    new = ready_condition(current, POD_CIDRS)
    if new is None or new["status"] == "True":
        return None
    old = ready_condition(previous, POD_CIDRS)
    changed = old is None or (old.get("status"), old.get("reason")) != (new["status"], new["reason"])
    more = (current.get("podCIDRConflicts") or 0) > ((previous or {}).get("podCIDRConflicts") or 0)
    return ("Warning", new["reason"], new["message"]) if changed or more else None
