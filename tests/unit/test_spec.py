"""Spec validation: every message a user can see, word for word, and the valid cases."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.pool import IPAddress
from netpool.spec import SpecError, parse_cidr, parse_spec

CIDR_HELP = "is not a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32"
PREFIX_HELP = "; set nodeSubnetPrefix in that range"


def problems_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    return caught.value.problems


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        # --- cidr that is not CIDR at all
        pytest.param({"cidr": "foo"}, [f"cidr 'foo' {CIDR_HELP}"], id="word"),
        pytest.param({"cidr": "10.0.0.0"}, [f"cidr '10.0.0.0' {CIDR_HELP}"], id="no-length"),
        pytest.param({"cidr": None}, [f"cidr None {CIDR_HELP}"], id="none"),
        pytest.param({}, [f"cidr None {CIDR_HELP}"], id="missing"),
        pytest.param({"cidr": 42}, [f"cidr 42 {CIDR_HELP}"], id="int"),
        pytest.param({"cidr": ""}, [f"cidr '' {CIDR_HELP}"], id="empty"),
        pytest.param({"cidr": "10.0.0.0/x"}, ["cidr '10.0.0.0/x': prefix length 'x' is not a number"], id="length-x"),
        pytest.param({"cidr": "10.0.0.0/"}, ["cidr '10.0.0.0/': prefix length '' is not a number"], id="length-empty"),
        pytest.param(
            {"cidr": "10.0.0.0/-8"}, ["cidr '10.0.0.0/-8': prefix length '-8' is not a number"], id="negative"
        ),
        pytest.param({"cidr": "10.0.0.0/8 "}, ["cidr '10.0.0.0/8 ': prefix length '8 ' is not a number"], id="space"),
        pytest.param(
            {"cidr": "10.0.0.0/²"}, ["cidr '10.0.0.0/²': prefix length '²' is not a number"], id="superscript-two"
        ),
        pytest.param(
            {"cidr": "10.0.0.0/١٦"}, ["cidr '10.0.0.0/١٦': prefix length '١٦' is not a number"], id="arabic-digits"
        ),
        pytest.param({"cidr": "nope/8"}, ["cidr 'nope/8': 'nope' is not an IPv4 or IPv6 address"], id="bad-address"),
        pytest.param(
            {"cidr": "10.0.0.256/24"}, ["cidr '10.0.0.256/24': '10.0.0.256' is not an IPv4 or IPv6 address"], id="octet"
        ),
        pytest.param(
            {"cidr": "10.0.0.0/8/8"}, ["cidr '10.0.0.0/8/8': prefix length '8/8' is not a number"], id="two-slashes"
        ),
        # --- host bits set
        pytest.param(
            {"cidr": "192.168.1.5/16"},
            ["cidr 192.168.1.5/16: host bits set, did you mean 192.168.0.0/16"],
            id="host-bits",
        ),
        pytest.param(
            {"cidr": "2001:db8::1/32"},
            ["cidr 2001:db8::1/32: host bits set, did you mean 2001:db8::/32"],
            id="host-bits6",
        ),
        # --- prefix length beyond the family's
        pytest.param(
            {"cidr": "10.0.0.0/33"}, ["cidr '10.0.0.0/33': prefix length 33 is larger than 32 for IPv4"], id="len33"
        ),
        pytest.param(
            {"cidr": "2001:db8::/129"},
            ["cidr '2001:db8::/129': prefix length 129 is larger than 128 for IPv6"],
            id="len129",
        ),
        # --- gateway
        pytest.param(
            {"cidr": "10.0.0.0/8", "gateway": "2001:db8::1"},
            ["gateway 2001:db8::1 is IPv6 but cidr 10.0.0.0/8 is IPv4"],
            id="gateway-v6-in-v4",
        ),
        pytest.param(
            {"cidr": "2001:db8::/32", "gateway": "10.0.0.1"},
            ["gateway 10.0.0.1 is IPv4 but cidr 2001:db8::/32 is IPv6"],
            id="gateway-v4-in-v6",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "10.1.0.1"},
            ["gateway 10.1.0.1 is outside cidr 10.0.0.0/16"],
            id="gateway-outside",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "10.0.0.0"},
            ["gateway 10.0.0.0 is the network address of 10.0.0.0/16; use a host address such as 10.0.0.1"],
            id="gateway-network",
        ),
        pytest.param(
            {"cidr": "2001:db8::/32", "gateway": "2001:db8::"},
            ["gateway 2001:db8:: is the network address of 2001:db8::/32; use a host address such as 2001:db8::1"],
            id="gateway-network6",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "10.0.255.255"},
            ["gateway 10.0.255.255 is the broadcast address of 10.0.0.0/16; use a host address such as 10.0.0.1"],
            id="gateway-broadcast",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "bogus"}, ["gateway 'bogus' is not an IP address"], id="gateway-bogus"
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "10.0.0.1/32"},
            ["gateway '10.0.0.1/32' is not an IP address"],
            id="gateway-cidr",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/31", "nodeSubnetPrefix": 32},
            ["cidr 10.0.0.0/31 has no usable address for a gateway; use a shorter prefix"],
            id="slash31-no-gateway",
        ),
        pytest.param(
            {"cidr": "10.0.0.5/32", "nodeSubnetPrefix": 32},
            ["cidr 10.0.0.5/32 has no usable address for a gateway; use a shorter prefix"],
            id="slash32-no-gateway",
        ),
        pytest.param(
            {"cidr": "10.0.0.5/32", "gateway": "10.0.0.5", "nodeSubnetPrefix": 32},
            ["gateway 10.0.0.5 is the network address of 10.0.0.5/32; use a host address such as 10.0.0.6"],
            id="slash32-gateway",
        ),
        pytest.param(
            {"cidr": "2001:db8::1/128", "nodeSubnetPrefix": 128},
            ["cidr 2001:db8::1/128 has no usable address for a gateway; use a shorter prefix"],
            id="slash128-no-gateway",
        ),
        # --- nodeSubnetPrefix out of range, set and defaulted
        pytest.param(
            {"cidr": "10.0.0.0/16", "nodeSubnetPrefix": 33},
            [f"nodeSubnetPrefix 33 must be between the cidr prefix length 16 and 32{PREFIX_HELP}"],
            id="prefix-33",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "nodeSubnetPrefix": 8},
            [f"nodeSubnetPrefix 8 must be between the cidr prefix length 16 and 32{PREFIX_HELP}"],
            id="prefix-shorter-than-cidr",
        ),
        pytest.param(
            {"cidr": "2001:db8::/32", "nodeSubnetPrefix": 129},
            [f"nodeSubnetPrefix 129 must be between the cidr prefix length 32 and 128{PREFIX_HELP}"],
            id="prefix-129",
        ),
        pytest.param(
            {"cidr": "2001:db8::/32", "nodeSubnetPrefix": 16},
            [f"nodeSubnetPrefix 16 must be between the cidr prefix length 32 and 128{PREFIX_HELP}"],
            id="prefix-shorter-than-cidr6",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/28"},
            [f"nodeSubnetPrefix (not set, default) 24 must be between the cidr prefix length 28 and 32{PREFIX_HELP}"],
            id="default-prefix-too-short",
        ),
        pytest.param(
            {"cidr": "2001:db8::/80"},
            [f"nodeSubnetPrefix (not set, default) 64 must be between the cidr prefix length 80 and 128{PREFIX_HELP}"],
            id="default-prefix-too-short6",
        ),
        # --- no usable subnet
        pytest.param(
            {"cidr": "10.0.0.0/24", "nodeSubnetPrefix": 24},
            [
                "cidr 10.0.0.0/24 split into /24 subnets has no usable subnet: its only subnet holds the gateway "
                "or a reserved range; use a larger cidr or a longer nodeSubnetPrefix"
            ],
            id="only-subnet-holds-gateway",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/23", "reserved": ["10.0.1.0/24"]},
            [
                "cidr 10.0.0.0/23 split into /24 subnets has no usable subnet: all hold the gateway "
                "or a reserved range; use a larger cidr or a longer nodeSubnetPrefix"
            ],
            id="all-subnets-blocked",
        ),
        pytest.param(
            {"cidr": "2001:db8::/63", "reserved": ["2001:db8:0:1::5"]},
            [
                "cidr 2001:db8::/63 split into /64 subnets has no usable subnet: all hold the gateway "
                "or a reserved range; use a larger cidr or a longer nodeSubnetPrefix"
            ],
            id="all-subnets-blocked6",
        ),
        # --- reserved
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.1.0.0/24"]},
            ["reserved[0] 10.1.0.0/24 is not inside cidr 10.0.0.0/16"],
            id="reserved-outside",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.0.3", "10.1.0.1"]},
            ["reserved[1] 10.1.0.1/32 is not inside cidr 10.0.0.0/16"],
            id="reserved-address-outside",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.0.0/8"]},
            ["reserved[0] 10.0.0.0/8 is not inside cidr 10.0.0.0/16"],
            id="reserved-larger-than-cidr",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["2001:db8::1"]},
            ["reserved[0] 2001:db8::1/128 is not inside cidr 10.0.0.0/16"],
            id="reserved-other-family",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["bogus"]},
            ["reserved[0] 'bogus' is not an IP address or CIDR prefix"],
            id="reserved-bogus",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.1.1/24"]},
            ["reserved[0] 10.0.1.1/24: host bits set, did you mean 10.0.1.0/24"],
            id="reserved-host-bits",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.1.0/x"]},
            ["reserved[0] '10.0.1.0/x': prefix length 'x' is not a number"],
            id="reserved-bad-length",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": [42]},
            [f"reserved[0] 42 {CIDR_HELP}"],
            id="reserved-int",
        ),
        # --- nodeSelector expressions
        pytest.param(
            {"cidr": "10.0.0.0/16", "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            ["nodeSelector.matchExpressions[0]: operator In needs at least one value"],
            id="in-without-values",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            },
            ["nodeSelector.matchExpressions[0]: operator NotIn needs at least one value"],
            id="notin-empty-values",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            },
            ["nodeSelector.matchExpressions[0]: operator Exists takes no values, remove them"],
            id="exists-with-values",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]},
            },
            ["nodeSelector.matchExpressions[0]: operator DoesNotExist takes no values, remove them"],
            id="doesnotexist-with-values",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            },
            ["nodeSelector.matchExpressions[0]: operator 'Equals' is not one of In, NotIn, Exists, DoesNotExist"],
            id="unknown-operator",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]},
            },
            ["nodeSelector.matchExpressions[0]: operator 'in' is not one of In, NotIn, Exists, DoesNotExist"],
            id="operator-case",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "nodeSelector": {"matchExpressions": [{"key": "a"}]}},
            ["nodeSelector.matchExpressions[0]: operator None is not one of In, NotIn, Exists, DoesNotExist"],
            id="missing-operator",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "nodeSelector": {"matchExpressions": [{"operator": "Exists"}]}},
            ["nodeSelector.matchExpressions[0]: key is required"],
            id="missing-key",
        ),
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "nodeSelector": {
                    "matchExpressions": [
                        {"key": "ok", "operator": "Exists"},
                        {"key": "a", "operator": "In"},
                        {"key": "b", "operator": "Exists", "values": ["y"]},
                    ]
                },
            },
            [
                "nodeSelector.matchExpressions[1]: operator In needs at least one value",
                "nodeSelector.matchExpressions[2]: operator Exists takes no values, remove them",
            ],
            id="expression-indexes",
        ),
        # --- several problems at once
        pytest.param(
            {
                "cidr": "10.0.0.0/16",
                "gateway": "10.1.0.1",
                "nodeSubnetPrefix": 8,
                "reserved": ["10.2.0.0/16", "x"],
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            [
                "nodeSelector.matchExpressions[0]: operator In needs at least one value",
                "gateway 10.1.0.1 is outside cidr 10.0.0.0/16",
                f"nodeSubnetPrefix 8 must be between the cidr prefix length 16 and 32{PREFIX_HELP}",
                "reserved[0] 10.2.0.0/16 is not inside cidr 10.0.0.0/16",
                "reserved[1] 'x' is not an IP address or CIDR prefix",
            ],
            id="everything-wrong",
        ),
        pytest.param(
            {
                "cidr": "bad",
                "gateway": "10.1.0.1",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            [f"cidr 'bad' {CIDR_HELP}", "nodeSelector.matchExpressions[0]: operator In needs at least one value"],
            id="bad-cidr-and-selector",
        ),
    ],
)
def test_bad_spec_messages(spec: dict[str, Any], problems: list[str]) -> None:
    assert problems_of(spec) == problems


def test_host_bits_message_suggests_the_network() -> None:
    message = str(problems_of({"cidr": "192.168.1.5/16", "gateway": "192.168.0.1"}))
    assert "192.168.1.5/16: host bits set, did you mean 192.168.0.0/16" in message


def test_spec_error_joins_every_problem() -> None:
    spec = {"cidr": "10.0.0.0/16", "gateway": "10.1.0.1", "nodeSubnetPrefix": 40}
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    assert str(caught.value) == (
        "gateway 10.1.0.1 is outside cidr 10.0.0.0/16; "
        f"nodeSubnetPrefix 40 must be between the cidr prefix length 16 and 32{PREFIX_HELP}"
    )
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", f"reserved[3] 'foo' {CIDR_HELP}"),
        ("10.0.0.1/8", "reserved[3] 10.0.0.1/8: host bits set, did you mean 10.0.0.0/8"),
    ],
)
def test_parse_cidr_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_cidr(text, "reserved[3]")


@pytest.mark.parametrize("prefix", ["24", 24.0, [24]])
def test_non_integer_node_subnet_prefix_is_rejected(prefix: Any) -> None:
    # The CRD schema rejects these first; the parser must not accept them either.
    (problem,) = problems_of({"cidr": "10.0.0.0/16", "nodeSubnetPrefix": prefix})
    assert problem.startswith("nodeSubnetPrefix ")


@given(st.ip_addresses(), st.data())
def test_parse_cidr_accepts_every_network_and_rejects_host_bits(address: IPAddress, data: st.DataObject) -> None:
    length = data.draw(st.integers(0, address.max_prefixlen))
    network = ipaddress.ip_network((address, length), strict=False)
    assert parse_cidr(str(network)) == network
    if network.network_address != address:
        with pytest.raises(ValueError, match="host bits set, did you mean") as caught:
            parse_cidr(f"{address}/{length}")
        assert str(caught.value).endswith(f"did you mean {network}")


# --- valid specs -------------------------------------------------------------------


def test_seed_example() -> None:
    parsed = parse_spec({"cidr": "192.168.0.0/16", "gateway": "192.168.0.1"})
    pool = parsed.pool
    assert pool.network == ipaddress.ip_network("192.168.0.0/16")
    assert pool.gateway == ipaddress.ip_address("192.168.0.1")
    assert pool.subnet_prefix == 24
    assert pool.total == 256
    assert pool.capacity == 255
    assert pool.reserved == ()
    assert parsed.selector.matches({})  # no selector: every node


@pytest.mark.parametrize(
    ("spec", "gateway", "prefix", "capacity"),
    [
        ({"cidr": "10.0.0.0/16"}, "10.0.0.1", 24, 255),
        ({"cidr": "10.0.0.0/16", "gateway": ""}, "10.0.0.1", 24, 255),
        ({"cidr": "10.0.0.0/16", "gateway": None}, "10.0.0.1", 24, 255),
        ({"cidr": "10.0.0.0/16", "gateway": "10.0.200.9"}, "10.0.200.9", 24, 255),
        ({"cidr": "10.0.0.0/16", "gateway": "10.0.255.254"}, "10.0.255.254", 24, 255),
        ({"cidr": "2001:db8::/48"}, "2001:db8::1", 64, 2**16 - 1),
        ({"cidr": "2001:db8::/32", "nodeSubnetPrefix": 96}, "2001:db8::1", 96, 2**64 - 1),
        ({"cidr": "2001:db8::/32", "nodeSubnetPrefix": 64}, "2001:db8::1", 64, 2**32 - 1),
        ({"cidr": "::/0", "nodeSubnetPrefix": 128}, "::1", 128, 2**128 - 1),
        ({"cidr": "::/64", "nodeSubnetPrefix": 128}, "::1", 128, 2**64 - 1),
        ({"cidr": "0.0.0.0/0", "nodeSubnetPrefix": 32}, "0.0.0.1", 32, 2**32 - 1),
        ({"cidr": "10.0.0.0/30", "nodeSubnetPrefix": 32}, "10.0.0.1", 32, 3),
        ({"cidr": "2001:db8::/127", "nodeSubnetPrefix": 128}, "2001:db8::1", 128, 1),
        (
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.1.0/24", "10.0.2.7", "10.0.0.0/24", "10.0.8.0/21"]},
            "10.0.0.1",
            24,
            245,
        ),
    ],
)
def test_valid_specs(spec: dict[str, Any], gateway: str, prefix: int, capacity: int) -> None:
    pool = parse_spec(spec).pool
    assert pool.gateway == ipaddress.ip_address(gateway)
    assert pool.subnet_prefix == prefix
    assert pool.capacity == capacity
    assert str(pool.network) == spec["cidr"]


def test_ipv6_default_prefix_is_64() -> None:
    pool = parse_spec({"cidr": "2001:db8::/56"}).pool
    assert pool.subnet_prefix == 64
    assert pool.total == 256
    assert pool.gateway == ipaddress.ip_address("2001:db8::1")


def test_ipv6_has_no_broadcast_so_the_last_address_may_be_the_gateway() -> None:
    pool = parse_spec({"cidr": "2001:db8::/48", "gateway": "2001:db8:0:ffff:ffff:ffff:ffff:ffff"}).pool
    assert pool.gateway == ipaddress.ip_address("2001:db8:0:ffff:ffff:ffff:ffff:ffff")
    assert pool.blocked() == [(2**16 - 1, 2**16 - 1)]


def test_reserved_entries_are_parsed_in_order() -> None:
    pool = parse_spec({"cidr": "10.0.0.0/16", "reserved": ["10.0.5.0/24", "10.0.9.9"]}).pool
    assert pool.reserved == (ipaddress.ip_network("10.0.5.0/24"), ipaddress.ip_network("10.0.9.9/32"))


def test_selector_is_parsed() -> None:
    parsed = parse_spec(
        {
            "cidr": "10.0.0.0/16",
            "nodeSelector": {
                "matchLabels": {"role": "worker"},
                "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}],
            },
        }
    )
    assert parsed.selector.matches({"role": "worker", "zone": "a"})
    assert parsed.selector.matches({"role": "worker"})
    assert not parsed.selector.matches({"role": "worker", "zone": "b"})
    assert not parsed.selector.matches({"zone": "a"})
