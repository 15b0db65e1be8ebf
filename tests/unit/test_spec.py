"""Spec validation: every message a user can see, word for word, and the valid cases."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netpool.pool import IPAddress
from netpool.spec import (
    SpecError,
    cidr_problem,
    format_problems,
    gateway_problem,
    parse_cidr,
    parse_spec,
    reserved_problem,
)
from tests.unit.address_forms import CASES, WRITE_CIDR, WRITE_IP, WRITE_RESERVED, path_of, spec_for

CIDR_HELP = "is not a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32"
PREFIX_HELP = "; set nodeSubnetPrefix in that range"


def problems_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec)
    return caught.value.problems


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        # --- cidr: how each kind of problem reaches the status (every form: tests/unit/address_forms.py)
        pytest.param({"cidr": "foo"}, [f"cidr 'foo': has no prefix length; {WRITE_CIDR}"], id="word"),
        pytest.param({"cidr": "10.0.0.0"}, [f"cidr '10.0.0.0': has no prefix length; {WRITE_CIDR}"], id="no-length"),
        pytest.param({"cidr": None}, [f"cidr None {CIDR_HELP}"], id="none"),
        pytest.param({}, [f"cidr None {CIDR_HELP}"], id="missing"),
        pytest.param({"cidr": 42}, [f"cidr 42 {CIDR_HELP}"], id="int"),
        pytest.param({"cidr": ""}, [f"cidr '': is empty; {WRITE_CIDR}"], id="empty"),
        pytest.param(
            {"cidr": "10.0.0.0/x"},
            [f"cidr '10.0.0.0/x': prefix length 'x' is not a number; {WRITE_CIDR}"],
            id="length-x",
        ),
        pytest.param({"cidr": "10.0.0.0/8 "}, ["cidr '10.0.0.0/8 ': contains whitespace; remove it"], id="space"),
        pytest.param(
            {"cidr": "nope/8"},
            [f"cidr 'nope/8': 'nope' is not an IPv4 or IPv6 address; {WRITE_CIDR}"],
            id="bad-address",
        ),
        # --- host bits set
        pytest.param(
            {"cidr": "192.168.1.5/16"},
            ["cidr '192.168.1.5/16': host bits set, did you mean 192.168.0.0/16"],
            id="host-bits",
        ),
        pytest.param(
            {"cidr": "2001:db8::1/32"},
            ["cidr '2001:db8::1/32': host bits set, did you mean 2001:db8::/32"],
            id="host-bits6",
        ),
        # --- prefix length beyond the family's
        pytest.param(
            {"cidr": "10.0.0.0/33"},
            ["cidr '10.0.0.0/33': prefix length 33 is larger than 32 for IPv4; use at most /32"],
            id="len33",
        ),
        pytest.param(
            {"cidr": "2001:db8::/129"},
            ["cidr '2001:db8::/129': prefix length 129 is larger than 128 for IPv6; use at most /128"],
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
            {"cidr": "10.0.0.0/16", "gateway": "bogus"},
            [f"gateway 'bogus': 'bogus' is not an IPv4 or IPv6 address; {WRITE_IP}"],
            id="gateway-bogus",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "gateway": "10.0.0.1/32"},
            ["gateway '10.0.0.1/32': a gateway is one address, not a prefix; remove /32"],
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
            [f"reserved[0] 'bogus': 'bogus' is not an IPv4 or IPv6 address; {WRITE_RESERVED}"],
            id="reserved-bogus",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.1.1/24"]},
            ["reserved[0] '10.0.1.1/24': host bits set, did you mean 10.0.1.0/24"],
            id="reserved-host-bits",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": ["10.0.1.0/x"]},
            [f"reserved[0] '10.0.1.0/x': prefix length 'x' is not a number; {WRITE_RESERVED}"],
            id="reserved-bad-length",
        ),
        pytest.param(
            {"cidr": "10.0.0.0/16", "reserved": [42]},
            ["reserved[0] 42 is not an address like 10.0.0.1 or a prefix like 10.0.0.0/24"],
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
                f"reserved[1] 'x': 'x' is not an IPv4 or IPv6 address; {WRITE_RESERVED}",
            ],
            id="everything-wrong",
        ),
        pytest.param(
            {
                "cidr": "bad",
                "gateway": "10.1.0.1",
                "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
            },
            [
                f"cidr 'bad': has no prefix length; {WRITE_CIDR}",
                "nodeSelector.matchExpressions[0]: operator In needs at least one value",
            ],
            id="bad-cidr-and-selector",
        ),
    ],
)
def test_bad_spec_messages(spec: dict[str, Any], problems: list[str]) -> None:
    assert problems_of(spec) == problems


def test_host_bits_message_suggests_the_network() -> None:
    message = str(problems_of({"cidr": "192.168.1.5/16", "gateway": "192.168.0.1"}))
    assert "'192.168.1.5/16': host bits set, did you mean 192.168.0.0/16" in message


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
        ("foo", f"reserved[3] 'foo': has no prefix length; {WRITE_CIDR}"),
        ("10.0.0.1/8", "reserved[3] '10.0.0.1/8': host bits set, did you mean 10.0.0.0/8"),
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


@pytest.mark.parametrize(("value", "expected"), [(None, False), (False, False), (True, True)])
def test_pod_cidrs_is_a_flag_off_by_default(value: Any, expected: bool) -> None:
    spec = {"cidr": "10.0.0.0/16"} | ({} if value is None else {"podCIDRs": value})
    assert parse_spec(spec).pod_cidrs is expected


@pytest.mark.parametrize("value", ["true", 1, [True]])
def test_non_boolean_pod_cidrs_is_rejected(value: Any) -> None:
    assert problems_of({"cidr": "10.0.0.0/16", "podCIDRs": value}) == [f"podCIDRs {value!r} must be true or false"]


def _mapped(address: IPAddress) -> bool:
    return isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None


@given(st.ip_addresses(), st.data())
def test_parse_cidr_accepts_every_network_and_rejects_host_bits(address: IPAddress, data: st.DataObject) -> None:
    assume(not _mapped(address))
    length = data.draw(st.integers(0, address.max_prefixlen))
    network = ipaddress.ip_network((address, length), strict=False)
    assert parse_cidr(str(network)) == network
    if network.network_address != address:
        with pytest.raises(ValueError, match="host bits set, did you mean") as caught:
            parse_cidr(f"{address}/{length}")
        assert str(caught.value).endswith(f"did you mean {network}")


# --- address forms: the table the CRD is held to as well -------------------------------

CHECKS = {"cidr": cidr_problem, "gateway": gateway_problem, "reserved": reserved_problem}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [pytest.param(*case, id=f"{i}-{case[0]}-{case[1][:40]!r}") for i, case in enumerate(CASES)],
)
def test_address_forms(field: str, value: str, message: str | None) -> None:
    assert CHECKS[field](value) == message
    spec = spec_for(field, value)
    path = path_of(field)
    assert format_problems(spec) == ([] if message is None else [(path, message)])
    if message is not None:
        # The status and the webhook say the same, after the field and the value.
        assert f"{path} {value!r}: {message}" in problems_of(spec)


def test_address_forms_cover_every_class_and_family() -> None:
    assert len(CASES) >= 150
    valid = {(field, value) for field, value, message in CASES if message is None}
    for field in CHECKS:
        versions = {ipaddress.ip_network(value).version for f, value in valid if f == field and value}
        assert versions == {4, 6}, field
    reserved = [value for field, value in valid if field == "reserved"]
    assert any("/" in value for value in reserved)
    assert any(value and "/" not in value for value in reserved)


def test_a_valid_gateway_may_still_be_wrong_for_its_cidr() -> None:
    # Valid in form, so the CRD admits it; only the operator (status, webhook) sees the family.
    spec = spec_for("gateway", "2001:db8::1")
    assert format_problems(spec) == []
    assert problems_of(spec) == ["gateway 2001:db8::1 is IPv6 but cidr 10.0.0.0/8 is IPv4"]


@given(st.text(max_size=60))
def test_checks_never_raise_and_accept_only_canonical_forms(text: str) -> None:
    for field, check in CHECKS.items():
        if check(text) is None and text:
            # Valid means what Kubernetes' IsValidCIDR / IsValidIP mean: the canonical string.
            if "/" in text:
                network = ipaddress.ip_network(text)
                assert str(network) == text
                assert not _mapped(network.network_address)
            else:
                address = ipaddress.ip_address(text)
                assert str(address) == text
                assert field != "cidr"
                assert not _mapped(address)


@given(st.text(alphabet="0123456789abcdefABCDEF.:/%x -", max_size=45))
def test_checks_never_raise_on_near_addresses(text: str) -> None:
    for check in CHECKS.values():
        message = check(text)
        assert message is None or message.strip() == message


@given(st.ip_addresses())
def test_every_canonical_address_is_a_valid_gateway_and_reserved_entry(address: IPAddress) -> None:
    assume(not _mapped(address))
    assert gateway_problem(str(address)) is None
    assert reserved_problem(str(address)) is None
    assert reserved_problem(f"{address}/{address.max_prefixlen}") is None


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
