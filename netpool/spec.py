"""Parse and validate a Network's spec into a Pool, with messages that say what to fix.

The CRD schema already rejects wrong types; this module checks what a schema
cannot: address syntax, host bits, families, containment, sizes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

from netpool.pool import IPAddress, IPNetwork, Pool
from netpool.selector import Selector, parse_selector

DEFAULT_SUBNET_PREFIX = {4: 24, 6: 64}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    pool: Pool
    selector: Selector


class SpecError(ValueError):
    """The spec is invalid; `problems` lists every problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_cidr(text: Any, field: str = "cidr") -> IPNetwork:
    """A prefix in CIDR notation with no host bits set; ValueError says what is wrong."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{field} {text!r} is not a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32")
    addr_text, _, len_text = text.partition("/")
    try:
        address = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ValueError(f"{field} {text!r}: {addr_text!r} is not an IPv4 or IPv6 address") from None
    if not (len_text.isascii() and len_text.isdigit()):  # str.isdigit() alone takes "²" and "١٦"
        raise ValueError(f"{field} {text!r}: prefix length {len_text!r} is not a number")
    length = int(len_text)
    if length > address.max_prefixlen:
        family = f"IPv{address.version}"
        raise ValueError(
            f"{field} {text!r}: prefix length {length} is larger than {address.max_prefixlen} for {family}"
        )
    network = ipaddress.ip_network((address, length), strict=False)
    if network.network_address != address:
        raise ValueError(f"{field} {text}: host bits set, did you mean {network}")
    return network


def _parse_range(text: Any, field: str) -> IPNetwork:
    """A reserved entry: a single address or a prefix."""
    if isinstance(text, str) and "/" not in text:
        try:
            return ipaddress.ip_network(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"{field} {text!r} is not an IP address or CIDR prefix") from None
    return parse_cidr(text, field)


def _check_gateway(network: IPNetwork, raw: Any) -> IPAddress:
    if raw is None or raw == "":
        if not _has_usable(network):
            raise ValueError(f"cidr {network} has no usable address for a gateway; use a shorter prefix")
        return network.network_address + 1
    try:
        gateway = ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError(f"gateway {raw!r} is not an IP address") from None
    if gateway.version != network.version:
        raise ValueError(f"gateway {gateway} is IPv{gateway.version} but cidr {network} is IPv{network.version}")
    if gateway not in network:
        raise ValueError(f"gateway {gateway} is outside cidr {network}")
    if gateway == network.network_address:
        raise ValueError(
            f"gateway {gateway} is the network address of {network}; "
            f"use a host address such as {network.network_address + 1}"
        )
    if network.version == 4 and gateway == network.broadcast_address:
        raise ValueError(
            f"gateway {gateway} is the broadcast address of {network}; "
            f"use a host address such as {network.network_address + 1}"
        )
    return gateway


def _has_usable(network: IPNetwork) -> bool:
    # IPv4 loses the network and broadcast addresses, IPv6 only the first.
    return network.num_addresses > (2 if network.version == 4 else 1)


def parse_spec(spec: Mapping[str, Any]) -> NetworkSpec:
    """Validate a Network spec; raise SpecError listing every problem found."""
    problems: list[str] = []
    selector, selector_problems = parse_selector(spec.get("nodeSelector"))
    problems += selector_problems
    try:
        network = parse_cidr(spec.get("cidr"))
    except ValueError as e:
        raise SpecError([str(e), *problems]) from None

    gateway: IPAddress | None = None
    try:
        gateway = _check_gateway(network, spec.get("gateway"))
    except ValueError as e:
        problems.append(str(e))

    max_len = network.max_prefixlen
    subnet_prefix = spec.get("nodeSubnetPrefix")
    said = "nodeSubnetPrefix"
    if subnet_prefix is None:
        subnet_prefix = DEFAULT_SUBNET_PREFIX[network.version]
        said = "nodeSubnetPrefix (not set, default)"
    if not isinstance(subnet_prefix, int) or not network.prefixlen <= subnet_prefix <= max_len:
        problems.append(
            f"{said} {subnet_prefix} must be between the cidr prefix length "
            f"{network.prefixlen} and {max_len}; set nodeSubnetPrefix in that range"
        )
        subnet_prefix = None

    reserved: list[IPNetwork] = []
    for i, raw in enumerate(spec.get("reserved") or []):
        field = f"reserved[{i}]"
        try:
            entry = _parse_range(raw, field)
        except ValueError as e:
            problems.append(str(e))
            continue
        if entry.version != network.version or not entry.subnet_of(network):  # type: ignore[arg-type]
            problems.append(f"{field} {entry} is not inside cidr {network}")
            continue
        reserved.append(entry)

    if problems or gateway is None or subnet_prefix is None:
        raise SpecError(problems)
    pool = Pool(network=network, subnet_prefix=subnet_prefix, gateway=gateway, reserved=tuple(reserved))
    if pool.capacity == 0:
        raise SpecError(
            [
                f"cidr {network} split into /{subnet_prefix} subnets has no usable subnet: "
                f"{'its only subnet holds' if pool.total == 1 else 'all hold'} the gateway or a reserved range; "
                f"use a larger cidr or a longer nodeSubnetPrefix"
            ]
        )
    return NetworkSpec(pool=pool, selector=selector)
