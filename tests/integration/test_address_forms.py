"""The CRD's CEL rules against netpool/spec.py: every entry of the address table
goes through the real API server, with no operator and no webhook running, and
the API server's verdict and message must be the ones netpool.spec gives."""

from __future__ import annotations

import json
from typing import Any

import pykube

from netpool.spec import format_problems
from tests.unit.address_forms import CASES, WRITE_CIDR, spec_for

_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
_GO_ESCAPES |= {"\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """The value as the API server prints it (Go's %q): printable runes as they are."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch == " " or ch.isprintable():  # the same set as Go's unicode.IsPrint
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def create(api: pykube.HTTPClient, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """POST a Network; the API server's answer (the object, or a Status)."""
    body = {"apiVersion": "samplecrd.k8s.io/v1", "kind": "Network", "metadata": {"name": name}, "spec": spec}
    response = api.post(url=f"namespaces/{namespace}/networks", version="samplecrd.k8s.io/v1", data=json.dumps(body))
    answer: dict[str, Any] = response.json()
    answer["code"] = response.status_code
    return answer


def causes(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((c.get("field", ""), c["message"]) for c in answer.get("details", {}).get("causes", []))


def test_the_crd_gives_every_address_form_the_verdict_and_message_of_netpool_spec(
    api: pykube.HTTPClient, namespace: str
) -> None:
    disagreements = []
    rejected = 0
    for i, (field, value, _) in enumerate(CASES):
        spec = spec_for(field, value)
        expected = sorted(
            (f"spec.{path}", f"Invalid value: {go_quote(value)}: {message}") for path, message in format_problems(spec)
        )
        answer = create(api, namespace, f"case-{i}", spec)
        got = [] if answer["code"] == 201 else causes(answer)
        rejected += answer["code"] == 422
        if answer["code"] not in (201, 422) or got != expected:
            disagreements.append((field, value, answer["code"], got, expected))
    assert disagreements == []
    assert rejected == sum(message is not None for _, _, message in CASES)


def test_what_a_user_sees_for_the_reported_forms(api: pykube.HTTPClient, namespace: str) -> None:
    seen = {
        value: create(api, namespace, f"seen-{i}", spec_for(field, value))["message"]
        for i, (field, value) in enumerate(
            [
                ("cidr", "fe80::%eth0/64"),
                ("gateway", "fd00:1::1%eth0"),
                ("cidr", "::ffff:10.99.0.0/112"),
                ("cidr", "::ffff:1.1.1.0/24"),
                ("cidr", "192.168.0.0/016"),
                ("cidr", "1.1.01.0/24"),
                ("cidr", "2001:DB8::/32"),
                ("cidr", "2001:0db8::/32"),
                ("cidr", "10.0.0.0/255.255.0.0"),
                ("cidr", "10.0.0.0/16,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16"),
            ]
        )
    }
    invalid = 'Network.samplecrd.k8s.io "seen-{}" is invalid: '
    assert seen == {
        "fe80::%eth0/64": invalid.format(0)
        + 'spec.cidr: Invalid value: "fe80::%eth0/64": has a zone ID (%eth0), which Kubernetes does not allow; '
        "remove it",
        "fd00:1::1%eth0": invalid.format(1)
        + 'spec.gateway: Invalid value: "fd00:1::1%eth0": has a zone ID (%eth0), which Kubernetes does not allow; '
        "remove it",
        "::ffff:10.99.0.0/112": invalid.format(2)
        + 'spec.cidr: Invalid value: "::ffff:10.99.0.0/112": ::ffff:10.99.0.0 is an IPv4-mapped IPv6 address, '
        "which Kubernetes does not allow; did you mean 10.99.0.0/16",
        "::ffff:1.1.1.0/24": invalid.format(3)
        + 'spec.cidr: Invalid value: "::ffff:1.1.1.0/24": ::ffff:1.1.1.0 is an IPv4-mapped IPv6 address, '
        "which Kubernetes does not allow; did you mean 1.1.1.0/24",
        "192.168.0.0/016": invalid.format(4)
        + 'spec.cidr: Invalid value: "192.168.0.0/016": prefix length 016 has a leading zero; did you mean /16',
        "1.1.01.0/24": invalid.format(5)
        + 'spec.cidr: Invalid value: "1.1.01.0/24": address 1.1.01.0 has a leading zero, '
        "which some tools read as octal; did you mean 1.1.1.0",
        "2001:DB8::/32": invalid.format(6)
        + 'spec.cidr: Invalid value: "2001:DB8::/32": is not in canonical form; write it as 2001:db8::/32',
        "2001:0db8::/32": invalid.format(7)
        + 'spec.cidr: Invalid value: "2001:0db8::/32": is not in canonical form; write it as 2001:db8::/32',
        "10.0.0.0/255.255.0.0": invalid.format(8)
        + 'spec.cidr: Invalid value: "10.0.0.0/255.255.0.0": prefix length 255.255.0.0 is a netmask; '
        "did you mean /16",
        "10.0.0.0/16,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16": invalid.format(9)
        + 'spec.cidr: Invalid value: "10.0.0.0/16,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16": '
        "is too long (47 characters, at most 43); write a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32",
    }


def test_every_bad_field_is_reported_at_once(api: pykube.HTTPClient, namespace: str) -> None:
    spec = {"cidr": "10.0.0.1/8", "gateway": "10.0.0.01", "reserved": ["10.0.0.0/24", "10.0.1.0/024", "bogus"]}
    answer = create(api, namespace, "many", spec)
    assert answer["code"] == 422
    assert causes(answer) == sorted(
        (f"spec.{path}", f"Invalid value: {go_quote(value)}: {message}")
        for (path, message), value in zip(
            format_problems(spec), ["10.0.0.1/8", "10.0.0.01", "10.0.1.0/024", "bogus"], strict=True
        )
    )
    assert len(causes(answer)) == 4


def test_a_value_beyond_the_schema_length_gets_the_api_servers_own_message(
    api: pykube.HTTPClient, namespace: str
) -> None:
    # 1,024 characters is the schema's limit: up to it the CEL rule answers with
    # what a valid value looks like; past it the API server stops before any rule.
    # netpool.spec still says why (a Network stored without the rules).
    answer = create(api, namespace, "huge", {"cidr": "1" * 1025})
    assert format_problems({"cidr": "1" * 1025}) == [
        ("cidr", f"is too long (1025 characters, at most 43); {WRITE_CIDR}")
    ]
    assert answer["code"] == 422
    assert causes(answer) == [
        (
            "<nil>",  # the API server's spelling of "no field"
            "Invalid value: null: some validation rules were not checked because the object was invalid; "
            "correct the existing errors to complete validation",
        ),
        ("spec.cidr", "Too long: may not be more than 1024 bytes"),
    ]
