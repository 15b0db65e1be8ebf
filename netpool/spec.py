"""Parse and validate a Network's spec into a Pool, with messages that say what to fix.

Addresses and prefixes follow Kubernetes' strict rules for new API fields
(IsValidIP and IsValidCIDR in k8s.io/apimachinery): no zone IDs, no
IPv4-mapped IPv6, no leading zeros, canonical IPv6 only, no host bits. The
CRD's CEL rules check the same, in the same order and with the same words
(tests/integration/test_address_forms.py holds them to it), so a value gets
one verdict and one message whether the API server, the webhook or the
status reports it. What the CRD cannot check across fields (families,
containment, sizes) is only here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from netpool.pool import IPAddress, IPNetwork, Pool
from netpool.selector import Selector, parse_selector

DEFAULT_SUBNET_PREFIX = {4: 24, 6: 64}


# What a valid value looks like, the fix that ends most messages.
CIDR_EXAMPLE = "a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32"
GATEWAY_EXAMPLE = "an IP address like 10.0.0.1 or 2001:db8::1"
RESERVED_EXAMPLE = "an address like 10.0.0.1 or a prefix like 10.0.0.0/24"
# The longest canonical forms: 8 groups of ffff, and /128 after them. The
# CRD's maxLength is far above these, so a long value meets these limits and
# their message instead of the API server's bare "Too long".
MAX_CIDR_LENGTH = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
MAX_ADDRESS_LENGTH = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")

# The CEL rules use RE2; these patterns mean the same in Python's re.
# Explicit classes: RE2's \s lacks \v, and Python's \d takes other scripts' digits.
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]")
_FOREIGN = re.compile(r"[^0-9A-Za-z.:/-]")
_DOTTED = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_DOTTED_TAIL = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\Z")
_OCTET_LEADING_ZERO = re.compile(r"(^|\.)0[0-9]")
_DIGITS = re.compile(r"[0-9]+")
# The IPv4 prefix length a mapped prefix's length likely means: /24 as written, /112 as /16.
_MAPPED_BITS = {n: n for n in range(33)} | {n: n - 96 for n in range(96, 129)}
NETMASKS = [str(ipaddress.IPv4Network(f"0.0.0.0/{n}").netmask) for n in range(33)]


def _first_problem(value: str, example: str, max_length: int) -> str | None:
    """What every field checks first, before it splits the value."""
    if len(value) > max_length:
        return f"is too long ({len(value)} characters, at most {max_length}); write {example}"
    if value == "":
        return f"is empty; write {example}"
    if _WHITESPACE.search(value):
        return "contains whitespace; remove it"
    if "%" in value:
        start = value.index("%")
        end = value.find("/", start)
        zone = value[start : end if end >= 0 else len(value)]
        return f"has a zone ID ({zone}), which Kubernetes does not allow; remove it"
    foreign = _FOREIGN.search(value)
    if foreign:
        return f"has the character '{foreign.group()}', which no address has; write {example}"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address_part_problem(text: str, example: str, length: str | None) -> str | None:
    """The address alone, or before the "/" of a prefix whose length text is `length`."""
    if _DOTTED.fullmatch(text) and _OCTET_LEADING_ZERO.search(text):
        # Some tools read 010 as octal 8, others as decimal 10; the hint is the decimal reading.
        decimal = ".".join(str(int(octet)) for octet in text.split("."))
        if _is_ip(decimal):
            return f"address {text} has a leading zero, which some tools read as octal; did you mean {decimal}"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return f"'{text}' is not an IPv4 or IPv6 address; write {example}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # Only a dotted tail gives the IPv4 address in a form CEL can compute too.
        tail = _DOTTED_TAIL.search(text)
        if length is None:
            fix = f"did you mean {tail.group()}" if tail else "write the IPv4 address instead"
        elif tail and _DIGITS.fullmatch(length) and int(length) in _MAPPED_BITS:
            ipv4 = ipaddress.ip_network(f"{tail.group()}/{_MAPPED_BITS[int(length)]}", strict=False)
            fix = f"did you mean {ipv4}"
        else:
            fix = "write an IPv4 prefix instead"
        return f"{text} is an IPv4-mapped IPv6 address, which Kubernetes does not allow; {fix}"
    return None


def _address_problem(value: str, example: str) -> str | None:
    problem = _address_part_problem(value, example, None)
    if problem is None and str(ipaddress.ip_address(value)) != value:
        problem = f"is not in canonical form; write it as {ipaddress.ip_address(value)}"
    return problem


def _prefix_problem(value: str, example: str) -> str | None:
    text, _, length = value.partition("/")
    problem = _address_part_problem(text, example, length)
    if problem is not None:
        return problem
    max_length = ipaddress.ip_address(text).max_prefixlen
    if length in NETMASKS:
        return f"prefix length {length} is a netmask; did you mean /{NETMASKS.index(length)}"
    if not _DIGITS.fullmatch(length):
        return f"prefix length '{length}' is not a number; write {example}"
    digits = length.lstrip("0") or "0"
    if len(digits) > 3 or int(digits) > max_length:
        family = 4 if max_length == 32 else 6
        return f"prefix length {digits} is larger than {max_length} for IPv{family}; use at most /{max_length}"
    if length != digits:
        return f"prefix length {length} has a leading zero; did you mean /{digits}"
    network = ipaddress.ip_network(value, strict=False)
    if network.network_address != ipaddress.ip_address(text):
        return f"host bits set, did you mean {network}"
    if str(network) != value:
        return f"is not in canonical form; write it as {network}"
    return None


def cidr_problem(value: str) -> str | None:
    """Why `value` is not a valid spec.cidr, or None; the words the CRD uses."""
    problem = _first_problem(value, CIDR_EXAMPLE, MAX_CIDR_LENGTH)
    if problem is None and "/" not in value:
        problem = f"has no prefix length; write {CIDR_EXAMPLE}"
    return problem or _prefix_problem(value, CIDR_EXAMPLE)


def gateway_problem(value: str) -> str | None:
    """Why `value` is not a valid spec.gateway, or None ("" means the default)."""
    if value == "":
        return None
    problem = _first_problem(value, GATEWAY_EXAMPLE, MAX_ADDRESS_LENGTH)
    if problem is None and "/" in value:
        problem = f"a gateway is one address, not a prefix; remove {value[value.index('/') :]}"
    return problem or _address_problem(value, GATEWAY_EXAMPLE)


def reserved_problem(value: str) -> str | None:
    """Why `value` is not a valid spec.reserved entry (an address or a prefix), or None."""
    problem = _first_problem(value, RESERVED_EXAMPLE, MAX_CIDR_LENGTH)
    if problem is not None:
        return problem
    if "/" in value:
        return _prefix_problem(value, RESERVED_EXAMPLE)
    return _address_problem(value, RESERVED_EXAMPLE)


def format_problems(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every string field the CRD's CEL rules reject: its verdict, in Python."""
    found = []
    if isinstance(spec.get("cidr"), str) and (problem := cidr_problem(spec["cidr"])):
        found.append(("cidr", problem))
    if isinstance(spec.get("gateway"), str) and (problem := gateway_problem(spec["gateway"])):
        found.append(("gateway", problem))
    for i, raw in enumerate(spec.get("reserved") or []):
        if isinstance(raw, str) and (problem := reserved_problem(raw)):
            found.append((f"reserved[{i}]", problem))
    return found


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    pool: Pool
    selector: Selector
    pod_cidrs: bool = False  # also write the subnets into Node.spec.podCIDRs


class SpecError(ValueError):
    """The spec is invalid; `problems` lists every problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_cidr(text: Any, field: str = "cidr") -> IPNetwork:
    """A prefix in CIDR notation, in Kubernetes' strict form; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{field} {text!r} is not {CIDR_EXAMPLE}")
    problem = cidr_problem(text)
    if problem is not None:
        raise ValueError(f"{field} {text!r}: {problem}")
    return ipaddress.ip_network(text)


def _parse_range(text: Any, field: str) -> IPNetwork:
    """A reserved entry: a single address or a prefix."""
    if not isinstance(text, str):
        raise ValueError(f"{field} {text!r} is not {RESERVED_EXAMPLE}")
    problem = reserved_problem(text)
    if problem is not None:
        raise ValueError(f"{field} {text!r}: {problem}")
    return ipaddress.ip_network(text)


def _check_gateway(network: IPNetwork, raw: Any) -> IPAddress:
    if raw is None or raw == "":
        if not _has_usable(network):
            raise ValueError(f"cidr {network} has no usable address for a gateway; use a shorter prefix")
        return network.network_address + 1
    if not isinstance(raw, str):
        raise ValueError(f"gateway {raw!r} is not {GATEWAY_EXAMPLE}")
    problem = gateway_problem(raw)
    if problem is not None:
        raise ValueError(f"gateway {raw!r}: {problem}")
    gateway = ipaddress.ip_address(raw)
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

    pod_cidrs = spec.get("podCIDRs")
    if pod_cidrs is not None and not isinstance(pod_cidrs, bool):
        problems.append(f"podCIDRs {pod_cidrs!r} must be true or false")

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
    return NetworkSpec(pool=pool, selector=selector, pod_cidrs=pod_cidrs is True)
