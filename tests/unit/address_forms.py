"""Addresses and prefixes in the forms real users and tools write, with the verdict
Kubernetes' strict rules give each: None (valid) or the message, word for word.

One table for two tests: tests/unit/test_spec.py checks netpool/spec.py against
it, and tests/integration/test_address_forms.py sends every entry through the
API server and checks that the CRD's CEL rules agree. The messages here were
read one by one; a change to either implementation must change them here.
"""

# ruff: noqa: E501  (a table of messages reads best one entry per line)

from __future__ import annotations

from typing import Any

WRITE_CIDR = "write a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32"
WRITE_IP = "write an IP address like 10.0.0.1 or 2001:db8::1"
WRITE_RESERVED = "write an address like 10.0.0.1 or a prefix like 10.0.0.0/24"


def spec_for(field: str, value: str) -> dict[str, Any]:
    """A spec whose only value under test is `value`, in `field`."""
    if field == "cidr":
        return {"cidr": value}
    if field == "gateway":
        return {"cidr": "10.0.0.0/8", "gateway": value}
    return {"cidr": "10.0.0.0/8", "reserved": [value]}


def path_of(field: str) -> str:
    """Where spec_for puts the value, as the API server and netpool.spec name it."""
    return "reserved[0]" if field == "reserved" else field


# (field, value, message or None); field is cidr, gateway or reserved (one entry).
CASES: list[tuple[str, str, str | None]] = [
    # --- valid: IPv4 prefixes
    ("cidr", "10.0.0.0/8", None),
    ("cidr", "10.244.0.0/16", None),
    ("cidr", "192.168.0.0/16", None),
    ("cidr", "172.16.0.0/12", None),
    ("cidr", "100.64.0.0/10", None),
    ("cidr", "0.0.0.0/0", None),
    ("cidr", "10.0.0.0/32", None),
    ("cidr", "255.255.255.255/32", None),
    ("cidr", "192.0.2.0/24", None),
    ("cidr", "10.1.2.4/30", None),
    # --- valid: IPv6 prefixes, canonical
    ("cidr", "2001:db8::/32", None),
    ("cidr", "::/0", None),
    ("cidr", "fd00::/8", None),
    ("cidr", "fe80::/64", None),
    ("cidr", "2001:db8:0:1::/64", None),
    ("cidr", "2001:db8::1/128", None),
    ("cidr", "::1/128", None),
    ("cidr", "2001:db8:1:2:3:4:5:0/112", None),
    ("cidr", "1:2:3:4:5:6:7:8/128", None),
    ("cidr", "2001:db8::a:0:0/96", None),
    ("cidr", "64:ff9b::/96", None),
    ("cidr", "::102:304/128", None),
    ("cidr", "2001:db8:0:0:1::/80", None),
    ("cidr", "fd00:1:2:3::/64", None),
    # --- valid: addresses
    ("gateway", "10.0.0.1", None),
    ("gateway", "192.168.0.1", None),
    ("gateway", "255.255.255.254", None),
    ("gateway", "0.0.0.0", None),
    ("gateway", "2001:db8::1", None),
    ("gateway", "fe80::1", None),
    ("gateway", "::1", None),
    ("gateway", "::", None),
    ("gateway", "1:2:3:4:5:6:7:8", None),
    ("gateway", "2001:db8:0:1::1", None),
    ("gateway", "2001:db8::1:0:0:1", None),
    ("gateway", "1:2:3:4:5:6:7:0", None),
    ("gateway", "64:ff9b::a00:1", None),
    ("gateway", "", None),
    # --- valid: reserved entries
    ("reserved", "10.0.0.0/24", None),
    ("reserved", "10.0.0.7", None),
    ("reserved", "2001:db8::/64", None),
    ("reserved", "2001:db8::5", None),
    ("reserved", "0.0.0.0/0", None),
    ("reserved", "::/128", None),
    # --- zone IDs
    ("cidr", "fe80::%eth0/64", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::1%eth0/64", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::%25eth0/64", "has a zone ID (%25eth0), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::%/64", "has a zone ID (%), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::%eth0", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("cidr", "10.0.0.0%eth0/8", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::%1/64", "has a zone ID (%1), which Kubernetes does not allow; remove it"),
    ("cidr", "fe80::/64%eth0", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("gateway", "fd00:1::1%eth0", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("gateway", "fe80::1%lo", "has a zone ID (%lo), which Kubernetes does not allow; remove it"),
    ("gateway", "fe80::1%", "has a zone ID (%), which Kubernetes does not allow; remove it"),
    ("gateway", "fe80::1%eth0/64", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("reserved", "fe80::5%eth0", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    ("reserved", "fe80::%eth0/64", "has a zone ID (%eth0), which Kubernetes does not allow; remove it"),
    # --- IPv4-mapped IPv6
    (
        "cidr",
        "::ffff:10.99.0.0/112",
        "::ffff:10.99.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.99.0.0/16",
    ),
    (
        "cidr",
        "::ffff:1.1.1.0/24",
        "::ffff:1.1.1.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 1.1.1.0/24",
    ),
    (
        "cidr",
        "::ffff:a63:0/112",
        "::ffff:a63:0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "cidr",
        "::FFFF:10.0.0.0/104",
        "::FFFF:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.0/8",
    ),
    (
        "cidr",
        "0:0:0:0:0:ffff:10.0.0.0/120",
        "0:0:0:0:0:ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.0/24",
    ),
    (
        "cidr",
        "::ffff:0:0/96",
        "::ffff:0:0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "cidr",
        "::ffff:10.0.0.0/64",
        "::ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "cidr",
        "::ffff:10.0.0.5/120",
        "::ffff:10.0.0.5 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.0/24",
    ),
    (
        "cidr",
        "::ffff:10.0.0.0/200",
        "::ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "cidr",
        "0000:0000:0000:0000:0000:ffff:0a00:0000/104",
        "0000:0000:0000:0000:0000:ffff:0a00:0000 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "cidr",
        "::ffff:10.0.0.0/0112",
        "::ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.0/16",
    ),
    (
        "cidr",
        "::ffff:10.0.0.0/x",
        "::ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write an IPv4 prefix instead",
    ),
    (
        "gateway",
        "::ffff:10.0.0.1",
        "::ffff:10.0.0.1 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.1",
    ),
    (
        "gateway",
        "::ffff:a00:1",
        "::ffff:a00:1 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; write the IPv4 address instead",
    ),
    (
        "gateway",
        "::FFFF:192.168.0.1",
        "::FFFF:192.168.0.1 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 192.168.0.1",
    ),
    (
        "gateway",
        "0:0:0:0:0:ffff:10.0.0.1",
        "0:0:0:0:0:ffff:10.0.0.1 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.1",
    ),
    (
        "gateway",
        "::ffff:0.0.0.0",
        "::ffff:0.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 0.0.0.0",
    ),
    (
        "reserved",
        "::ffff:10.0.0.7",
        "::ffff:10.0.0.7 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.7",
    ),
    (
        "reserved",
        "::ffff:10.0.0.0/120",
        "::ffff:10.0.0.0 is an IPv4-mapped IPv6 address, which Kubernetes does not allow; did you mean 10.0.0.0/24",
    ),
    # --- leading zeros in an address
    (
        "cidr",
        "010.0.0.0/8",
        "address 010.0.0.0 has a leading zero, which some tools read as octal; did you mean 10.0.0.0",
    ),
    (
        "cidr",
        "10.01.0.0/16",
        "address 10.01.0.0 has a leading zero, which some tools read as octal; did you mean 10.1.0.0",
    ),
    (
        "cidr",
        "1.1.01.0/24",
        "address 1.1.01.0 has a leading zero, which some tools read as octal; did you mean 1.1.1.0",
    ),
    (
        "cidr",
        "10.0.0.00/24",
        "address 10.0.0.00 has a leading zero, which some tools read as octal; did you mean 10.0.0.0",
    ),
    ("cidr", "00.0.0.0/0", "address 00.0.0.0 has a leading zero, which some tools read as octal; did you mean 0.0.0.0"),
    (
        "cidr",
        "0010.0.0.0/8",
        "address 0010.0.0.0 has a leading zero, which some tools read as octal; did you mean 10.0.0.0",
    ),
    ("cidr", "10.0.0.0256/24", "'10.0.0.0256' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "300.0.0.01/8", "'300.0.0.01' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    (
        "cidr",
        "192.168.000.000/16",
        "address 192.168.000.000 has a leading zero, which some tools read as octal; did you mean 192.168.0.0",
    ),
    (
        "gateway",
        "010.0.0.1",
        "address 010.0.0.1 has a leading zero, which some tools read as octal; did you mean 10.0.0.1",
    ),
    (
        "gateway",
        "10.0.0.01",
        "address 10.0.0.01 has a leading zero, which some tools read as octal; did you mean 10.0.0.1",
    ),
    (
        "gateway",
        "192.168.000.001",
        "address 192.168.000.001 has a leading zero, which some tools read as octal; did you mean 192.168.0.1",
    ),
    (
        "gateway",
        "0.0.0.00",
        "address 0.0.0.00 has a leading zero, which some tools read as octal; did you mean 0.0.0.0",
    ),
    (
        "reserved",
        "10.0.0.07",
        "address 10.0.0.07 has a leading zero, which some tools read as octal; did you mean 10.0.0.7",
    ),
    (
        "reserved",
        "10.0.01.0/24",
        "address 10.0.01.0 has a leading zero, which some tools read as octal; did you mean 10.0.1.0",
    ),
    # --- leading zeros in a prefix length
    ("cidr", "192.168.0.0/016", "prefix length 016 has a leading zero; did you mean /16"),
    ("cidr", "10.0.0.0/08", "prefix length 08 has a leading zero; did you mean /8"),
    ("cidr", "10.0.0.0/00", "prefix length 00 has a leading zero; did you mean /0"),
    ("cidr", "2001:db8::/064", "prefix length 064 has a leading zero; did you mean /64"),
    ("cidr", "10.0.0.0/0033", "prefix length 33 is larger than 32 for IPv4; use at most /32"),
    ("cidr", "10.0.0.0/000", "prefix length 000 has a leading zero; did you mean /0"),
    ("cidr", "0.0.0.0/00", "prefix length 00 has a leading zero; did you mean /0"),
    ("cidr", "2001:db8::/0128", "prefix length 0128 has a leading zero; did you mean /128"),
    ("reserved", "10.0.1.0/024", "prefix length 024 has a leading zero; did you mean /24"),
    # --- non-canonical IPv6
    ("cidr", "2001:DB8::/32", "is not in canonical form; write it as 2001:db8::/32"),
    ("cidr", "2001:0db8::/32", "is not in canonical form; write it as 2001:db8::/32"),
    ("cidr", "2001:db8:0:0::/64", "is not in canonical form; write it as 2001:db8::/64"),
    ("cidr", "2001:db8::0/64", "is not in canonical form; write it as 2001:db8::/64"),
    ("cidr", "FD00::/8", "is not in canonical form; write it as fd00::/8"),
    ("cidr", "2001:db8:0:0:0:0:0:0/32", "is not in canonical form; write it as 2001:db8::/32"),
    ("cidr", "2001:db8::0:1/128", "is not in canonical form; write it as 2001:db8::1/128"),
    ("cidr", "0::/0", "is not in canonical form; write it as ::/0"),
    ("cidr", "::0/0", "is not in canonical form; write it as ::/0"),
    ("cidr", "2001:db8:0:1:0:0:0:0/64", "is not in canonical form; write it as 2001:db8:0:1::/64"),
    ("cidr", "1:0:0:2:0:0:0:3/128", "is not in canonical form; write it as 1:0:0:2::3/128"),
    ("cidr", "2001:db8:0:0:1::1/128", "is not in canonical form; write it as 2001:db8::1:0:0:1/128"),
    ("cidr", "::1.2.3.4/128", "is not in canonical form; write it as ::102:304/128"),
    ("cidr", "2001:db8::1.2.3.4/128", "is not in canonical form; write it as 2001:db8::102:304/128"),
    ("cidr", "Fe80::/64", "is not in canonical form; write it as fe80::/64"),
    ("cidr", "2001:db8:0000::/48", "is not in canonical form; write it as 2001:db8::/48"),
    ("gateway", "2001:DB8::1", "is not in canonical form; write it as 2001:db8::1"),
    ("gateway", "2001:0db8::1", "is not in canonical form; write it as 2001:db8::1"),
    ("gateway", "2001:db8:0:0:0:0:0:1", "is not in canonical form; write it as 2001:db8::1"),
    ("gateway", "FE80::1", "is not in canonical form; write it as fe80::1"),
    ("gateway", "::0:1", "is not in canonical form; write it as ::1"),
    ("gateway", "0:0:0:0:0:0:0:1", "is not in canonical form; write it as ::1"),
    ("gateway", "2001:db8:0:0:1::1", "is not in canonical form; write it as 2001:db8::1:0:0:1"),
    ("gateway", "1:2:3:4:5:6:7::", "is not in canonical form; write it as 1:2:3:4:5:6:7:0"),
    ("gateway", "::1.2.3.4", "is not in canonical form; write it as ::102:304"),
    ("gateway", "2001:db8::01", "is not in canonical form; write it as 2001:db8::1"),
    ("reserved", "2001:DB8::5", "is not in canonical form; write it as 2001:db8::5"),
    ("reserved", "2001:db8:0::/64", "is not in canonical form; write it as 2001:db8::/64"),
    # --- netmask instead of a prefix length
    ("cidr", "10.0.0.0/255.255.0.0", "prefix length 255.255.0.0 is a netmask; did you mean /16"),
    ("cidr", "192.168.1.0/255.255.255.0", "prefix length 255.255.255.0 is a netmask; did you mean /24"),
    ("cidr", "10.0.0.0/255.0.0.0", "prefix length 255.0.0.0 is a netmask; did you mean /8"),
    ("cidr", "0.0.0.0/0.0.0.0", "prefix length 0.0.0.0 is a netmask; did you mean /0"),
    ("cidr", "10.0.0.0/255.255.255.255", "prefix length 255.255.255.255 is a netmask; did you mean /32"),
    ("cidr", "10.0.0.0/255.0.255.0", "prefix length '255.0.255.0' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/0.0.255.255", "prefix length '0.0.255.255' is not a number; " + WRITE_CIDR),
    ("cidr", "2001:db8::/255.255.0.0", "prefix length 255.255.0.0 is a netmask; did you mean /16"),
    ("cidr", "10.0.0.0/255.255.0.00", "prefix length '255.255.0.00' is not a number; " + WRITE_CIDR),
    ("reserved", "10.0.1.0/255.255.255.0", "prefix length 255.255.255.0 is a netmask; did you mean /24"),
    # --- too long
    (
        "cidr",
        "10.0.0.0/16,10.1.0.0/16,10.2.0.0/16,10.3.0.0/16",
        "is too long (47 characters, at most 43); " + WRITE_CIDR,
    ),
    ("cidr", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/1280", "is too long (44 characters, at most 43); " + WRITE_CIDR),
    ("cidr", "1" * 1000, "is too long (1000 characters, at most 43); " + WRITE_CIDR),
    ("cidr", "2001:0db8:0000:0000:0000:0000:0000:0000/32", "is not in canonical form; write it as 2001:db8::/32"),
    ("gateway", "2001:0db8:0000:0000:0000:0000:0000:00001", "is too long (40 characters, at most 39); " + WRITE_IP),
    ("gateway", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:1", "is too long (41 characters, at most 39); " + WRITE_IP),
    (
        "reserved",
        "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24 10.0.3.0/24",
        "is too long (47 characters, at most 43); " + WRITE_RESERVED,
    ),
    ("cidr", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", None),
    ("gateway", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    # --- whitespace
    ("cidr", " 10.0.0.0/8", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0/8 ", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0 /8", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0/8\n", "contains whitespace; remove it"),
    ("cidr", "\t10.0.0.0/8", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0/8\r\n", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0/\x0b8", "contains whitespace; remove it"),
    ("cidr", "10.0.0.0/\x0c8", "contains whitespace; remove it"),
    ("cidr", " ", "contains whitespace; remove it"),
    ("gateway", " 10.0.0.1", "contains whitespace; remove it"),
    ("gateway", "10.0.0.1 ", "contains whitespace; remove it"),
    ("gateway", "10.0.0.1\t", "contains whitespace; remove it"),
    ("reserved", "10.0.0.0/24 ", "contains whitespace; remove it"),
    ("reserved", " 10.0.0.7", "contains whitespace; remove it"),
    # --- characters no address has
    ("cidr", "10.0.0.0/²", "has the character '²', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/١٦", "has the character '١', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/16\xa0", "has the character '\xa0', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/8\u200b", "has the character '\u200b', which no address has; " + WRITE_CIDR),
    ("cidr", "１０.0.0.0/8", "has the character '１', which no address has; " + WRITE_CIDR),
    ("cidr", "10,0,0,0/8", "has the character ',', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0\\8", "has the character '\\', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/8;", "has the character ';', which no address has; " + WRITE_CIDR),
    ("cidr", "[2001:db8::]/32", "has the character '[', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/16,10.1.0.0/16", "has the character ',', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0_8", "has the character '_', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/+8", "has the character '+', which no address has; " + WRITE_CIDR),
    ("cidr", '"10.0.0.0/8"', "has the character '\"', which no address has; " + WRITE_CIDR),
    ("cidr", "'10.0.0.0/8'", "has the character ''', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/8\x00", "has the character '\x00', which no address has; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/٨", "has the character '٨', which no address has; " + WRITE_CIDR),
    ("gateway", "10.0.0.1\xa0", "has the character '\xa0', which no address has; " + WRITE_IP),
    ("gateway", "[2001:db8::1]", "has the character '[', which no address has; " + WRITE_IP),
    ("gateway", "10.0.0.1,10.0.0.2", "has the character ',', which no address has; " + WRITE_IP),
    ("gateway", "ｆｅ80::1", "has the character 'ｆ', which no address has; " + WRITE_IP),
    ("reserved", "10.0.0.0/24,10.0.1.0/24", "has the character ',', which no address has; " + WRITE_RESERVED),
    ("reserved", "10.0.0.7\u2003", "has the character '\u2003', which no address has; " + WRITE_RESERVED),
    # --- not an address
    ("cidr", "nope/8", "'nope' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "10.0.0/8", "'10.0.0' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "10.0.0.0.0/8", "'10.0.0.0.0' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "10.0.0.256/24", "'10.0.0.256' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "256.0.0.0/8", "'256.0.0.0' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "2001:db8:::/32", "'2001:db8:::' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "2001:db8::g/32", "'2001:db8::g' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "1.2.3.4.5/32", "'1.2.3.4.5' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "::1::/128", "'::1::' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "12345::/16", "'12345::' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "/8", "'' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "localhost/8", "'localhost' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "0x0a.0.0.0/8", "'0x0a.0.0.0' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "10.0.0.-1/8", "'10.0.0.-1' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "1:2:3:4:5:6:7:8:9/128", "'1:2:3:4:5:6:7:8:9' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "10/8", "'10' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", "2001:db8/32", "'2001:db8' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("cidr", ":/0", "':' is not an IPv4 or IPv6 address; " + WRITE_CIDR),
    ("gateway", "bogus", "'bogus' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "10.0.0", "'10.0.0' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "10.0.0.256", "'10.0.0.256' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "10.0.0.1:80", "'10.0.0.1:80' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "2001:db8::g", "'2001:db8::g' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "::1::", "'::1::' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "gateway", "'gateway' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "-1", "'-1' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "10.0.0.1.", "'10.0.0.1.' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("gateway", "1.2.3.4.5", "'1.2.3.4.5' is not an IPv4 or IPv6 address; " + WRITE_IP),
    ("reserved", "bogus", "'bogus' is not an IPv4 or IPv6 address; " + WRITE_RESERVED),
    ("reserved", "10.0.0.300", "'10.0.0.300' is not an IPv4 or IPv6 address; " + WRITE_RESERVED),
    ("reserved", "bogus/24", "'bogus' is not an IPv4 or IPv6 address; " + WRITE_RESERVED),
    # --- prefix length not a number or out of range
    ("cidr", "10.0.0.0/", "prefix length '' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/x", "prefix length 'x' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/-8", "prefix length '-8' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/33", "prefix length 33 is larger than 32 for IPv4; use at most /32"),
    (
        "cidr",
        "10.0.0.0/99999999999999999999",
        "prefix length 99999999999999999999 is larger than 32 for IPv4; use at most /32",
    ),
    ("cidr", "2001:db8::/129", "prefix length 129 is larger than 128 for IPv6; use at most /128"),
    ("cidr", "2001:db8::/200", "prefix length 200 is larger than 128 for IPv6; use at most /128"),
    ("cidr", "10.0.0.0/1.5", "prefix length '1.5' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/16/", "prefix length '16/' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/8-", "prefix length '8-' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0//8", "prefix length '/8' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/8/8", "prefix length '8/8' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/0x10", "prefix length '0x10' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/1e1", "prefix length '1e1' is not a number; " + WRITE_CIDR),
    ("cidr", "10.0.0.0/sixteen", "prefix length 'sixteen' is not a number; " + WRITE_CIDR),
    ("cidr", "0.0.0.0/1000", "prefix length 1000 is larger than 32 for IPv4; use at most /32"),
    ("reserved", "10.0.1.0/", "prefix length '' is not a number; " + WRITE_RESERVED),
    ("reserved", "10.0.1.0/33", "prefix length 33 is larger than 32 for IPv4; use at most /32"),
    # --- host bits set
    ("cidr", "192.168.1.5/16", "host bits set, did you mean 192.168.0.0/16"),
    ("cidr", "10.0.0.1/8", "host bits set, did you mean 10.0.0.0/8"),
    ("cidr", "2001:db8::1/32", "host bits set, did you mean 2001:db8::/32"),
    ("cidr", "11.0.0.0/7", "host bits set, did you mean 10.0.0.0/7"),
    ("cidr", "255.255.255.255/0", "host bits set, did you mean 0.0.0.0/0"),
    ("cidr", "2001:DB8::1/32", "host bits set, did you mean 2001:db8::/32"),
    ("cidr", "::1/0", "host bits set, did you mean ::/0"),
    ("cidr", "10.1.2.3/31", "host bits set, did you mean 10.1.2.2/31"),
    ("cidr", "fe80::1/10", "host bits set, did you mean fe80::/10"),
    ("cidr", "2001:0db8:0:0:0:0:0:1/64", "host bits set, did you mean 2001:db8::/64"),
    ("reserved", "10.0.1.1/24", "host bits set, did you mean 10.0.1.0/24"),
    ("reserved", "2001:db8::1/64", "host bits set, did you mean 2001:db8::/64"),
    # --- no prefix length
    ("cidr", "10.0.0.0", "has no prefix length; " + WRITE_CIDR),
    ("cidr", "2001:db8::", "has no prefix length; " + WRITE_CIDR),
    ("cidr", "10.0.0.1", "has no prefix length; " + WRITE_CIDR),
    ("cidr", "::", "has no prefix length; " + WRITE_CIDR),
    ("cidr", "", "is empty; " + WRITE_CIDR),
    ("cidr", "fe80", "has no prefix length; " + WRITE_CIDR),
    ("reserved", "", "is empty; " + WRITE_RESERVED),
    # --- a gateway is one address
    ("gateway", "10.0.0.1/32", "a gateway is one address, not a prefix; remove /32"),
    ("gateway", "2001:db8::1/128", "a gateway is one address, not a prefix; remove /128"),
    ("gateway", "10.0.0.1/", "a gateway is one address, not a prefix; remove /"),
    ("gateway", "10.0.0.0/24", "a gateway is one address, not a prefix; remove /24"),
]
