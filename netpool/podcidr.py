"""`Node.spec.podCIDRs`: the field container runtimes and CNIs read.

Kubernetes' rules, which every function here keeps:
- a Node's podCIDRs are set once, from empty, and never changed: not even a
  second IP family can be added later;
- at most one prefix per IP family; `spec.podCIDR` is the first of them.

So at most one Network per IP family writes podCIDRs (the oldest that asks
and allocates), a Node that already has a podCIDR keeps it (inside the pool it
is that Node's allocation; anywhere else the Network leaves the Node alone), and
a dual-stack Node gets both families in one write.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from netpool.overlap import Claim, older_overlap
from netpool.pool import Interval, IPNetwork, Pool
from netpool.records import Record

_SHOWN = 3  # conflicts named in a message; the rest are counted


def writers(claims: Iterable[Claim]) -> dict[int, Claim]:
    """Per IP family (4, 6), the Network whose subnets become podCIDRs: the
    oldest that asks for it among those that allocate (no older Network overlaps it)."""
    every = sorted(claims)
    found: dict[int, Claim] = {}
    for claim in every:
        version = claim.network.version
        if claim.pod_cidrs and version not in found and older_overlap(claim, every) is None:
            found[version] = claim
    return found


def parse(texts: Iterable[str]) -> dict[int, IPNetwork]:
    """A Node's podCIDRs by IP family; what does not parse is ignored."""
    found: dict[int, IPNetwork] = {}
    for text in texts:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        found.setdefault(net.version, net)
    return found


def of_family(texts: Iterable[str], version: int, hint: Record | None = None) -> IPNetwork | None:
    """A Node's podCIDR of one IP family (the first, as `parse`), or None.
    `hint` is the record it most likely matches: a text equal to its subnet
    is not parsed again (a round asks this of every Node)."""
    for text in texts:
        if (":" in text) != (version == 6):  # only an IPv6 address has a colon
            continue
        if hint is not None and text == hint.text:
            return hint.subnet
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.version == version:
            return net
    return None


def ordered(cidrs: Mapping[int, IPNetwork], primary: int) -> list[str]:
    """podCIDRs as Kubernetes expects them: one per family, the Node's primary
    family (that of its first InternalIP) first."""
    return [str(cidrs[v]) for v in sorted(cidrs, key=lambda v: v != primary)]


@dataclasses.dataclass(frozen=True)
class Fit:
    """How the podCIDRs Nodes already have fit one pool."""

    pinned: dict[str, IPNetwork]  # wanted Node -> its podCIDR, one of the pool's subnets: its allocation
    conflicts: dict[str, str]  # wanted Node -> why the pool cannot be its podCIDR (the sentence names it)
    taken: list[IPNetwork]  # every other podCIDR touching the pool: never handed out


def fit(
    pool: Pool,
    wanted: Iterable[str],
    pod_cidrs: Mapping[str, Sequence[str]],
    known: Mapping[str, Record] | None = None,
) -> Fit:
    """Sort the Nodes of `pod_cidrs` (name -> its podCIDRs) against `pool`.
    `known`: each Node's record of this pool, a hint (see `of_family`)."""
    known = known or {}
    wanted = set(wanted)
    version = pool.network.version
    blocked = pool.blocked()
    pinned: dict[str, IPNetwork] = {}
    conflicts: dict[str, str] = {}
    taken: list[IPNetwork] = []
    by_number: dict[int, str] = {}  # pool.number(podCIDR) -> the Node pinned to it
    for node in sorted(pod_cidrs):
        texts = list(pod_cidrs[node])
        if not texts:
            continue
        mine = of_family(texts, version, known.get(node))
        if mine is not None and node not in wanted:
            taken.append(mine)
            continue
        if node not in wanted:
            continue
        number = pool.number(mine) if mine is not None else None
        problem = _problem(pool, blocked, node, texts, mine, number)
        if problem is None and number in by_number:
            problem = f"node {node} has podCIDR {mine}, which node {by_number[number]} has too"
        if problem is not None:
            conflicts[node] = problem
            if mine is not None:
                taken.append(mine)
            continue
        assert mine is not None
        assert number is not None
        by_number[number] = node
        pinned[node] = mine
    # A podCIDR two Nodes have (a broken cluster) stays with the one pinned to it.
    return Fit(pinned=pinned, conflicts=conflicts, taken=[t for t in taken if pool.number(t) not in by_number])


def _problem(
    pool: Pool, blocked: list[Interval], node: str, texts: list[str], mine: IPNetwork | None, number: int | None
) -> str | None:
    if mine is None:
        return (
            f"node {node} has podCIDRs {', '.join(texts)} and no IPv{pool.network.version} one; "
            f"Kubernetes sets podCIDRs only once, so it can never gain one"
        )
    if number is None:
        where = f"not one of the /{pool.subnet_prefix} subnets of" if mine.overlaps(pool.network) else "outside"
        return f"node {node} has podCIDR {mine}, {where} {pool.network}"
    if any(lo <= number <= hi for lo, hi in blocked):
        return f"node {node} has podCIDR {mine}, which holds the gateway or a reserved range of {pool.network}"
    return None


def moved(pool: Pool, given: Mapping[str, IPNetwork]) -> dict[str, str]:
    """What a new spec would do to the podCIDRs a Network gave (Node -> podCIDR):
    for each Node whose podCIDR would no longer be one of its subnets, why."""
    return fit(pool, given, {n: [str(s)] for n, s in given.items()}).conflicts


def summary(conflicts: Mapping[str, str]) -> str:
    """The first few conflicts, in name order, and how many more there are."""
    shown = [conflicts[n] for n in sorted(conflicts)[:_SHOWN]]
    more = len(conflicts) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")
