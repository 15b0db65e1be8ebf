"""The Node annotation: valid, unique keys for every Network name; values that round-trip."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.annotation import PREFIX, key_for, ours, render, renderer, subnet_of

# What Kubernetes accepts for an annotation key (apimachinery IsQualifiedName)
NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SHORTENED = re.compile(r"-[0-9a-f]{16}")

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def dns_labels(draw: st.DrawFn, max_size: int = 63) -> str:
    """An RFC 1123 label: what a namespace may be called."""
    size = draw(st.integers(1, max_size))
    if size == 1:
        return draw(st.sampled_from(ALNUM))
    middle = draw(st.text(ALNUM + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(ALNUM)) + middle + draw(st.sampled_from(ALNUM))


@st.composite
def dns_subdomains(draw: st.DrawFn) -> str:
    """An RFC 1123 subdomain of up to 253 characters: what a Network may be called."""
    labels = draw(st.lists(dns_labels(), min_size=1, max_size=6))
    name = labels[0]
    for label in labels[1:]:
        if len(name) + 1 + len(label) > 253:
            break
        name += "." + label
    return name


namespaces = dns_labels()
names = dns_subdomains() | st.text(ALNUM, min_size=1, max_size=253)


def check_valid(key: str) -> None:
    prefix, slash, name_part = key.partition("/")
    assert slash == "/"
    assert len(prefix) <= 253
    assert DNS_SUBDOMAIN.fullmatch(prefix)
    assert 1 <= len(name_part) <= 63
    assert NAME_PART.fullmatch(name_part), name_part


@pytest.mark.parametrize(
    ("namespace", "name", "key"),
    [
        ("default", "example-network", "network.samplecrd.k8s.io/default.example-network"),
        ("kube-system", "pods.v4", "network.samplecrd.k8s.io/kube-system.pods.v4"),
        ("a", "b" * 61, "network.samplecrd.k8s.io/a." + "b" * 61),  # 63 characters: kept whole
    ],
)
def test_short_keys_are_readable(namespace: str, name: str, key: str) -> None:
    assert key_for(namespace, name) == key
    check_valid(key)


def test_long_key_is_cut_and_hashed() -> None:
    name = "b" * 62  # "a." + 62 characters: one too many
    digest = hashlib.sha256(f"a/{name}".encode()).hexdigest()[:16]
    assert key_for("a", name) == f"{PREFIX}a.{'b' * 44}-{digest}"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("ns", "x" * 42 + "." + "y" * 40),  # the cut ends on a dot
        ("ns", "x" * 41 + "--" + "y" * 40),  # the cut ends on dashes
        ("n" * 63, "name"),  # the cut falls inside the namespace
        ("n" * 45, "a.b" + "c" * 30),  # the cut leaves "<namespace>."
    ],
)
def test_cut_never_leaves_a_separator_before_the_hash(namespace: str, name: str) -> None:
    key = key_for(namespace, name)
    check_valid(key)
    suffix = key.removeprefix(PREFIX)
    assert len(suffix) <= 63
    assert SHORTENED.fullmatch(suffix[-17:])
    assert suffix[-18] not in "-_."


@given(namespaces, names)
def test_every_key_is_a_valid_annotation_key(namespace: str, name: str) -> None:
    check_valid(key_for(namespace, name))


@given(namespaces, names)
def test_keys_that_fit_are_kept_whole(namespace: str, name: str) -> None:
    suffix = f"{namespace}.{name}"
    key = key_for(namespace, name)
    if len(suffix) <= 63 and not SHORTENED.search(suffix[-17:]):
        assert key == PREFIX + suffix
    else:
        assert key != PREFIX + suffix
        assert SHORTENED.fullmatch(key[-17:])


@given(st.lists(st.tuples(namespaces, names), unique=True, max_size=30))
def test_distinct_networks_get_distinct_keys(refs: list[tuple[str, str]]) -> None:
    keys = {key_for(ns, name) for ns, name in refs}
    assert len(keys) == len(refs)


@given(
    st.sampled_from(["default", "n" * 40, "n" * 63]),
    dns_labels(max_size=60),
    st.lists(st.text(ALNUM, min_size=1, max_size=8), unique=True, min_size=2, max_size=10),
)
def test_long_names_with_a_common_beginning_get_distinct_keys(namespace: str, stem: str, tails: list[str]) -> None:
    # Everything up to the cut is the same; only the hash tells these apart.
    keys = {key_for(namespace, f"{stem}.{stem}.{tail}") for tail in tails}
    assert len(keys) == len(tails)


@given(dns_labels(max_size=40), dns_subdomains())
def test_a_name_copying_a_shortened_key_gets_its_own_key(namespace: str, name: str) -> None:
    long_name = (name + ".") * (1 + 64 // len(name + ".")) + "z"  # too long to fit whole
    shortened = key_for(namespace, long_name).removeprefix(PREFIX)
    head, dot, copied = shortened.partition(".")
    if head != namespace or not dot:  # the cut fell inside the namespace: no name can reproduce it
        return
    assert DNS_SUBDOMAIN.fullmatch(copied)  # a name Kubernetes would accept for another Network
    assert key_for(namespace, copied) != key_for(namespace, long_name)


def test_crafted_name_does_not_take_another_networks_key() -> None:
    victim = key_for("team", "w" * 80)
    crafted = victim.removeprefix(PREFIX + "team.")  # "w"*41 + "-" + 16 hex digits: a valid Network name
    assert len(crafted) <= 253
    assert DNS_SUBDOMAIN.fullmatch(crafted)
    assert key_for("team", crafted) != victim


# --- values ------------------------------------------------------------------------


def test_render_is_compact_json_with_sorted_keys() -> None:
    value = render("default", "example-network", "192.168.1.0/24", "192.168.0.1")
    assert value == '{"gateway":"192.168.0.1","network":"default/example-network","subnet":"192.168.1.0/24"}'


@st.composite
def subnets(draw: st.DrawFn) -> str:
    address = draw(st.ip_addresses())
    return str(ipaddress.ip_network((address, draw(st.integers(0, address.max_prefixlen))), strict=False))


@given(namespaces, names, subnets(), st.ip_addresses())
def test_render_and_subnet_of_round_trip(namespace: str, name: str, subnet: str, gateway: object) -> None:
    value = render(namespace, name, subnet, str(gateway))
    assert subnet_of(value) == subnet
    assert json.loads(value) == {"gateway": str(gateway), "network": f"{namespace}/{name}", "subnet": subnet}


@given(namespaces, names, subnets(), st.ip_addresses())
def test_renderer_renders_what_render_does(namespace: str, name: str, subnet: str, gateway: object) -> None:
    assert renderer(namespace, name, str(gateway))(subnet) == render(namespace, name, subnet, str(gateway))


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "192.168.1.0/24",  # a bare subnet is not this operator's format
        "null",
        "42",
        '"192.168.1.0/24"',
        "[]",
        '["192.168.1.0/24"]',
        "{}",
        '{"subnet": null}',
        '{"subnet": 42}',
        '{"subnet": ["192.168.1.0/24"]}',
        '{"gateway": "192.168.0.1"}',
        '{"subnet": "192.168.1.0/24"',  # truncated
        "{" * 10,
        "[" * 100_000,  # nesting deeper than the JSON parser's recursion limit
        '{"subnet":' * 100_000,
        '{"n": 1' + "0" * 5000 + "}",  # an integer longer than Python will parse
    ],
)
def test_subnet_of_garbage_is_none(value: str | None) -> None:
    assert subnet_of(value) is None


def test_subnet_of_returns_the_string_as_written() -> None:
    # Validation is the allocator's job (parse_subnet): this only extracts.
    assert subnet_of('{"subnet": "not-a-subnet", "extra": 1}') == "not-a-subnet"


def test_ours_keeps_only_this_operators_annotations() -> None:
    annotations = {
        PREFIX + "default.a": "x",
        PREFIX + "other.b": "y",
        "network.samplecrd.k8s.io": "no slash: not ours",
        "other.io/network.samplecrd.k8s.io/x": "z",
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
    }
    assert ours(annotations) == {PREFIX + "default.a": "x", PREFIX + "other.b": "y"}
    assert ours(None) == {}
    assert ours({}) == {}
