"""Decide which node keeps, gets or loses which subnet of a pool.

Like kube-controller-manager's cidrset, this is a pure function over state read
from the cluster: what each node holds now (its NodeSubnet, else its
annotation), what is remembered of it (its NodeSubnet, else what an older
version's status recorded), and what is taken elsewhere. It treats "already
allocated" as success, so running it again on its own output changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import math
from collections.abc import Collection, Iterable, Mapping

from netpool.pool import Interval, IPNetwork, Pool, gaps, merge


@dataclasses.dataclass(frozen=True)
class Plan:
    """The allocations a pool should have, and what is left waiting."""

    allocations: dict[str, IPNetwork]  # node name -> subnet, for every served node
    waiting: tuple[str, ...]  # nodes that want a subnet and got none: the pool is full


def parse_subnet(text: str | None) -> IPNetwork | None:
    """A subnet written by this operator (strict prefix), or None for anything else."""
    if not text:
        return None
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None


def plan(
    pool: Pool,
    wanted: Iterable[str],
    held: Mapping[str, IPNetwork | None],
    remembered: Mapping[str, IPNetwork | None] | None = None,
    taken: Iterable[IPNetwork] = (),
    joined: Mapping[str, str] | None = None,
) -> Plan:
    """Allocate one subnet of `pool` to each node in `wanted`.

    - `held`: what each node holds now: its NodeSubnet's subnet, else the one
      its annotation carries (None: garbage).
    - `remembered`: its NodeSubnet's subnet, else what an older version's
      status recorded; gives a node back its subnet when what it holds is
      unusable.
    - `taken`: subnets held elsewhere (other pools, other Nodes' annotations,
      subnets being released); never handed out here.
    - `joined`: when each node joined (its creationTimestamp); missing: first.

    A node keeps a subnet it holds if that subnet is one of the pool's and is
    not blocked (gateway, reserved, taken). When two nodes hold the same one,
    the node that also remembers it keeps it, else the earlier name.
    A node without a usable holding gets back its remembered subnet under the
    same rules, and otherwise the lowest free subnet. The others are served in
    the order they joined, then by name; those left over when the pool is full
    are `waiting`.

    Join order, not name order, so that two writers that know different
    Nodes still agree: Nodes join one after another and every watch shows
    them in that order, so each writer knows the same Nodes up to some point
    of the sequence. In name order, one newcomer a writer knows and the other
    does not yet moves every later name to another subnet, and most creates
    of one writer collide with the other's; in join order the newcomers come
    last and move nothing before them (creationTimestamp counts seconds:
    Nodes of the same second go by name, and only those can still move).
    """
    remembered = remembered or {}
    blocked = pool.blocked()
    taken_spans = [s for s in (pool.span(t) for t in taken) if s is not None]
    unavailable = merge(blocked + taken_spans)

    def usable(subnet: IPNetwork | None) -> int | None:
        if subnet is None:
            return None
        number = pool.number(subnet)
        if number is None or _inside(unavailable, number):
            return None
        return number

    order = sorted(set(wanted))
    used: set[int] = set()
    allocations: dict[str, IPNetwork] = {}
    # Holdings a memory confirms come first, so a hand-copied annotation can
    # never take a subnet from the node that had it; then other holdings, so a
    # memory never takes away what a node actually carries; then memories.
    confirmed = {n: s for n, s in held.items() if s is not None and (remembered.get(n) is s or remembered.get(n) == s)}
    for source in (confirmed, held, remembered):
        for node in order:
            if node in allocations:
                continue
            subnet = source.get(node)
            number = usable(subnet)
            if number is not None and number not in used:
                used.add(number)
                allocations[node] = subnet  # type: ignore[assignment]  # usable: not None

    since = joined or {}
    needy = sorted((node for node in order if node not in allocations), key=lambda n: (since.get(n, ""), n))
    free = gaps(merge(unavailable + [(n, n) for n in used]), pool.total)
    waiting: list[str] = []
    for node in needy:
        number = next(free, None)
        if number is None:
            waiting.append(node)
        else:
            allocations[node] = pool.subnet(number)
    return Plan(allocations=allocations, waiting=tuple(waiting))


def not_free(carried: Iterable[IPNetwork | None], recorded: Collection[IPNetwork]) -> list[IPNetwork]:
    """Of the subnets Node annotations carry without a record behind them (a
    value about to be replaced, another Network's annotation), those not free
    in this round: a Node still carries them. A subnet a record holds is not
    among them: the record is the truth and its Node keeps that subnet, so a
    value copied onto another Node is repaired there and moves nobody else."""
    return [s for s in carried if s is not None and s not in recorded]


def _inside(merged: list[Interval], number: int) -> bool:
    i = bisect.bisect_right(merged, (number, math.inf)) - 1
    return i >= 0 and merged[i][0] <= number <= merged[i][1]
