"""The Node annotation that tells a node-local agent its subnet of a Network.

Key:   network.samplecrd.k8s.io/<namespace>.<name>
       When `<namespace>.<name>` is longer than the 63 characters Kubernetes
       allows after the prefix, it is cut to 46 characters and followed by `-`
       and the first 16 hex digits of sha256("<namespace>/<name>"). Namespaces
       hold no dots, so the first dot always ends the namespace. A suffix that
       already ends like a shortened one (`-` and 16 hex digits) is shortened
       too, so no Network's key can equal another Network's shortened key.
Value: compact JSON with sorted keys, for example
       {"gateway":"192.168.0.1","network":"default/example-network","subnet":"192.168.1.0/24"}
       `network` names the Network in full, so an agent can tell which pool a
       shortened key belongs to without listing Networks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping

from netpool import names

PREFIX = names.ANNOTATION_PREFIX
_NAME_MAX = 63
_CUT = 46
_NAME_OK = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SHORTENED = re.compile(r"-[0-9a-f]{16}\Z")


def key_for(namespace: str, name: str) -> str:
    """The annotation key for the Network `namespace/name`; always a valid key."""
    return PREFIX + shorten(f"{namespace}.{name}", f"{namespace}/{name}")


def shorten(text: str, identity: str) -> str:
    """`text` if it is a valid key name or label value, else its first 46
    characters, `-` and 16 hex digits of sha256(`identity`)."""
    if len(text) > _NAME_MAX or not _NAME_OK.match(text) or _SHORTENED.search(text):
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        text = text[:_CUT].rstrip("-_.") + "-" + digest
    return text


def render(namespace: str, name: str, subnet: str, gateway: str) -> str:
    """The annotation value for a node's subnet."""
    doc = {"gateway": gateway, "network": f"{namespace}/{name}", "subnet": subnet}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def renderer(namespace: str, name: str, gateway: str) -> Callable[[str], str]:
    """`render` for one Network and gateway, as a function of the subnet: a
    round renders every Node's value. The subnet is the last key, and a
    subnet's text (digits, dots, colons, a slash) needs no escaping, so the
    rest is rendered once."""
    head = render(namespace, name, "", gateway).removesuffix('""}') + '"'
    return lambda subnet: head + subnet + '"}'


def parse(value: str | None) -> dict[str, str] | None:
    """An annotation value's fields, or None if the value is garbage."""
    if not value:
        return None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("subnet"), str):
        return None
    return {k: v for k, v in doc.items() if isinstance(v, str)}


def subnet_of(value: str | None) -> str | None:
    """The subnet an annotation value carries, or None if the value is garbage."""
    doc = parse(value)
    return doc["subnet"] if doc is not None else None


def ours(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """Only this operator's annotations: what a Node projection needs to keep."""
    return {k: v for k, v in (annotations or {}).items() if k.startswith(PREFIX)}
