"""An address pool carved into equal per-node subnets.

Subnets are numbered 0..total-1 inside the pool. Everything a pool must not
hand out (the gateway, reserved ranges, subnets other pools hold) is kept as
sorted, merged intervals of those numbers, so memory and time depend on the
number of allocations and reserved ranges, never on the pool's capacity:
a 2001:db8::/32 pool with a /64 per node has 2**32 subnets and costs nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Iterator

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Interval = tuple[int, int]  # inclusive range of subnet numbers


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching inclusive intervals."""
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def covered(intervals: Iterable[Interval]) -> int:
    """How many numbers the (possibly overlapping) intervals cover."""
    return sum(hi - lo + 1 for lo, hi in merge(intervals))


def gaps(blocked: list[Interval], total: int) -> Iterator[int]:
    """Every number in 0..total-1 outside the merged `blocked` intervals, in order."""
    nxt = 0
    for lo, hi in blocked:
        yield from range(nxt, min(lo, total))
        nxt = max(nxt, hi + 1)
    yield from range(nxt, total)


@dataclasses.dataclass(frozen=True)
class Pool:
    """A validated pool: `network` split into subnets of length `subnet_prefix`."""

    network: IPNetwork
    subnet_prefix: int
    gateway: IPAddress
    reserved: tuple[IPNetwork, ...] = ()

    # Made once (a round asks `number` of every Node's subnet); not fields, so not compared.
    @functools.cached_property
    def total(self) -> int:
        """Number of subnets in the pool, usable or not."""
        return 1 << (self.subnet_prefix - self.network.prefixlen)

    @functools.cached_property
    def _host_bits(self) -> int:
        return self.network.max_prefixlen - self.subnet_prefix

    @functools.cached_property
    def _base(self) -> int:
        return int(self.network.network_address)

    def span(self, net: IPNetwork) -> Interval | None:
        """Numbers of the subnets that share any address with `net`, or None."""
        if net.version != self.network.version or not net.overlaps(self.network):
            return None
        base = int(self.network.network_address)
        first = max(int(net.network_address), base)
        last = min(int(net.broadcast_address), int(self.network.broadcast_address))
        return (first - base) >> self._host_bits, (last - base) >> self._host_bits

    def blocked(self) -> list[Interval]:
        """Subnets never handed out: the one holding the gateway and any touching a reserved range."""
        spans = [self.span(ipaddress.ip_network(self.gateway))]
        spans += [self.span(r) for r in self.reserved]
        return merge(s for s in spans if s is not None)

    @property
    def capacity(self) -> int:
        """Number of subnets that may be handed out."""
        return self.total - covered(self.blocked())

    def subnet(self, number: int) -> IPNetwork:
        """The subnet with this number."""
        if not 0 <= number < self.total:
            raise IndexError(number)
        address = int(self.network.network_address) + (number << self._host_bits)
        # The pool's own class: ip_network() reads a small int as IPv4, so "::/16" would come back as 0.0.0.0/16.
        return type(self.network)((address, self.subnet_prefix))

    def number(self, subnet: IPNetwork) -> int | None:
        """The number of `subnet` if it is exactly one of this pool's subnets, else None."""
        if subnet.version != self.network.version or subnet.prefixlen != self.subnet_prefix:
            return None
        # Integers, not subnet_of(): a round asks this of every Node's subnet.
        number = (int(subnet.network_address) - self._base) >> self._host_bits
        return number if 0 <= number < self.total else None
