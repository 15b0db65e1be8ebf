"""Every bad input of the design: a clear status and event, nothing lost, others keep working."""

from __future__ import annotations

import json
import time
from typing import Any

import pykube

from tests.integration.conftest import NodeFactory
from tests.integration.support import (
    QUICK_RESYNC,
    QUICK_RESYNC_ENV,
    KubeCluster,
    create_nodes,
    events,
    get_network,
    make_network,
    network_ready_with,
    ready,
    running_operator,
    stored_before_the_address_rules,
    wait_for,
    wait_subnets,
)

CIDR_HELP = "write a CIDR prefix like 10.0.0.0/16 or 2001:db8::/32"

# name -> (spec, the Ready message a user sees). The API server refuses these
# (the CRD's rules); the operator still meets them in Networks stored before.
MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "not-a-cidr": ({"cidr": "not-a-cidr"}, f"cidr 'not-a-cidr': has no prefix length; {CIDR_HELP}"),
    "no-prefix": ({"cidr": "10.0.0.0"}, f"cidr '10.0.0.0': has no prefix length; {CIDR_HELP}"),
    "host-bits": ({"cidr": "192.168.1.5/16"}, "cidr '192.168.1.5/16': host bits set, did you mean 192.168.0.0/16"),
    "prefix-33": (
        {"cidr": "10.6.0.0/33"},
        "cidr '10.6.0.0/33': prefix length 33 is larger than 32 for IPv4; use at most /32",
    ),
    "prefix-129": (
        {"cidr": "2001:db8::/129"},
        "cidr '2001:db8::/129': prefix length 129 is larger than 128 for IPv6; use at most /128",
    ),
    "zone": (
        {"cidr": "fe80::%eth0/64"},
        "cidr 'fe80::%eth0/64': has a zone ID (%eth0), which Kubernetes does not allow; remove it",
    ),
    "mapped-gateway": (
        {"cidr": "10.13.0.0/16", "gateway": "::ffff:10.13.0.1"},
        "gateway '::ffff:10.13.0.1': ::ffff:10.13.0.1 is an IPv4-mapped IPv6 address, which Kubernetes does not "
        "allow; did you mean 10.13.0.1",
    ),
    "uppercase-reserved": (
        {"cidr": "2001:db8:1::/48", "reserved": ["2001:DB8:1::/64"]},
        "reserved[0] '2001:DB8:1::/64': is not in canonical form; write it as 2001:db8:1::/64",
    ),
}

# What the CRD cannot check, across fields and against the pool: the API server
# stores these, and the operator (status, events, webhook) says what to fix.
CROSS_FIELD: dict[str, tuple[dict[str, Any], str]] = {
    "v6-gateway": (
        {"cidr": "10.1.0.0/16", "gateway": "2001:db8::1"},
        "gateway 2001:db8::1 is IPv6 but cidr 10.1.0.0/16 is IPv4",
    ),
    "gateway-outside": ({"cidr": "10.2.0.0/16", "gateway": "10.3.0.1"}, "gateway 10.3.0.1 is outside cidr 10.2.0.0/16"),
    "gateway-network": (
        {"cidr": "10.4.0.0/16", "gateway": "10.4.0.0"},
        "gateway 10.4.0.0 is the network address of 10.4.0.0/16; use a host address such as 10.4.0.1",
    ),
    "gateway-broadcast": (
        {"cidr": "10.5.0.0/16", "gateway": "10.5.255.255"},
        "gateway 10.5.255.255 is the broadcast address of 10.5.0.0/16; use a host address such as 10.5.0.1",
    ),
    "subnet-shorter": (
        {"cidr": "10.7.0.0/16", "nodeSubnetPrefix": 8},
        "nodeSubnetPrefix 8 must be between the cidr prefix length 16 and 32; set nodeSubnetPrefix in that range",
    ),
    "default-shorter": (
        {"cidr": "10.8.0.0/26"},
        "nodeSubnetPrefix (not set, default) 24 must be between the cidr prefix length 26 and 32; "
        "set nodeSubnetPrefix in that range",
    ),
    "no-usable-subnet": (
        {"cidr": "10.9.0.0/24"},
        "cidr 10.9.0.0/24 split into /24 subnets has no usable subnet: its only subnet holds the gateway or a "
        "reserved range; use a larger cidr or a longer nodeSubnetPrefix",
    ),
    "reserved-outside": (
        {"cidr": "10.10.0.0/16", "reserved": ["10.10.1.0/24", "10.11.0.0/24"]},
        "reserved[1] 10.11.0.0/24 is not inside cidr 10.10.0.0/16",
    ),
    "bad-selector": (
        {"cidr": "10.12.0.0/16", "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        "nodeSelector.matchExpressions[0]: operator In needs at least one value",
    ),
}
INVALID = MALFORMED | CROSS_FIELD


def test_each_invalid_spec_says_what_to_fix_and_others_keep_working(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    make_node("n0")
    make_network(api, namespace, "good", {"cidr": "172.16.0.0/16"})
    stored_before_the_address_rules(cluster, api, namespace, {name: spec for name, (spec, _) in MALFORMED.items()})
    for name, (spec, _) in CROSS_FIELD.items():
        make_network(api, namespace, name, spec)
    make_network(
        api, namespace, "nothing-matches", {"cidr": "172.17.0.0/16", "nodeSelector": {"matchLabels": {"x": "y"}}}
    )

    with running_operator(env=QUICK_RESYNC_ENV) as runner:
        wait_for("good", network_ready_with(api, namespace, "good", "True", "Allocated"))
        seen = {}
        for name in INVALID:
            net = wait_for(name, network_ready_with(api, namespace, name, "False", "InvalidSpec"))
            seen[name] = ready(net)["message"]
            assert net["status"]["allocated"] == 0
            assert net["status"].get("capacity") is None
        assert seen == {name: f"invalid spec: {message}" for name, (_, message) in INVALID.items()}
        none = wait_for("no match", network_ready_with(api, namespace, "nothing-matches", "True", "NoMatchingNodes"))
        assert ready(none)["message"] == "nodeSelector matches no node; nothing to allocate"

        # The good Network keeps serving new Nodes while the bad ones sit there.
        make_node("n1")
        wait_subnets(api, namespace, "good", "n1 served", lambda s: set(s) == {"n0", "n1"})
        time.sleep(2 * QUICK_RESYNC + 1)  # resyncs must not repeat the warnings or retry the handlers

        for name in [*INVALID, "nothing-matches"]:
            warnings = [(e["type"], e["reason"], e["message"]) for e in events(api, namespace, name)]
            reason = "NoMatchingNodes" if name == "nothing-matches" else "InvalidSpec"
            assert warnings == [("Warning", reason, ready(get_network(api, namespace, name))["message"])], name

    assert "Traceback" not in runner.output


# name -> what the API server answers when the MALFORMED Network is created now.
REFUSED = {
    "not-a-cidr": 'spec.cidr: Invalid value: "not-a-cidr": has no prefix length; ' + CIDR_HELP,
    "no-prefix": 'spec.cidr: Invalid value: "10.0.0.0": has no prefix length; ' + CIDR_HELP,
    "host-bits": 'spec.cidr: Invalid value: "192.168.1.5/16": host bits set, did you mean 192.168.0.0/16',
    "prefix-33": 'spec.cidr: Invalid value: "10.6.0.0/33": prefix length 33 is larger than 32 for IPv4; '
    "use at most /32",
    "prefix-129": 'spec.cidr: Invalid value: "2001:db8::/129": prefix length 129 is larger than 128 for IPv6; '
    "use at most /128",
    "zone": 'spec.cidr: Invalid value: "fe80::%eth0/64": has a zone ID (%eth0), which Kubernetes does not allow; '
    "remove it",
    "mapped-gateway": 'spec.gateway: Invalid value: "::ffff:10.13.0.1": ::ffff:10.13.0.1 is an IPv4-mapped IPv6 '
    "address, which Kubernetes does not allow; did you mean 10.13.0.1",
    "uppercase-reserved": 'spec.reserved[0]: Invalid value: "2001:DB8:1::/64": is not in canonical form; '
    "write it as 2001:db8:1::/64",
}


def test_the_api_server_refuses_malformed_addresses_with_the_fix(cluster: KubeCluster, namespace: str) -> None:
    # No operator, no webhook: the CRD alone.
    assert set(REFUSED) == set(MALFORMED)
    for name, (spec, _) in MALFORMED.items():
        doc = {"apiVersion": "samplecrd.k8s.io/v1", "kind": "Network", "metadata": {"name": name}, "spec": spec}
        result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False)
        assert result.returncode != 0
        assert result.stderr.strip() == f'The Network "{name}" is invalid: {REFUSED[name]}', name
    assert cluster.kubectl("get", "networks", "-n", namespace, "-o", "name").stdout == ""


def test_fixing_an_invalid_spec_recovers_by_itself(
    cluster: KubeCluster, api: pykube.HTTPClient, namespace: str, make_node: NodeFactory
) -> None:
    make_node("n0")
    stored_before_the_address_rules(cluster, api, namespace, {"typo": {"cidr": "10.200.0.1/16"}})
    with running_operator():
        wait_for("invalid", network_ready_with(api, namespace, "typo", "False", "InvalidSpec"))
        # Only an unchanged malformed value is kept: an edit must be well formed.
        still_wrong = cluster.kubectl(
            "patch",
            "network",
            "typo",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"cidr":"10.200.0.1/17"}}',
            check=False,
        )
        assert still_wrong.stderr.strip() == (
            'The Network "typo" is invalid: spec.cidr: Invalid value: "10.200.0.1/17": '
            "host bits set, did you mean 10.200.0.0/17"
        )
        cluster.kubectl(
            "patch", "network", "typo", "-n", namespace, "--type=merge", "-p", '{"spec":{"cidr":"10.200.0.0/16"}}'
        )
        wait_for("fixed", network_ready_with(api, namespace, "typo", "True", "Allocated"))
        wait_subnets(api, namespace, "typo", "allocated", lambda s: set(s) == {"n0"})
        kinds = [(e["type"], e["reason"]) for e in events(api, namespace, "typo")]
        assert kinds == [("Warning", "InvalidSpec"), ("Normal", "Synced")]


def test_ten_thousand_nodes_on_a_24(cluster: KubeCluster, api: pykube.HTTPClient, namespace: str) -> None:
    total = 10_000
    create_nodes([f"big-{i:05d}" for i in range(total)])
    # /32 per node: 256 addresses, the gateway's excluded.
    make_network(api, namespace, "tiny", {"cidr": "10.250.0.0/24", "nodeSubnetPrefix": 32})
    with running_operator():
        net = wait_for("exhausted", network_ready_with(api, namespace, "tiny", "False", "PoolExhausted"), timeout=120)
        net = wait_for(
            "settled",
            lambda: (n := get_network(api, namespace, "tiny"))["status"]["waiting"] == total - 255 and n,
            timeout=60,
        )
        assert (net["status"]["allocated"], net["status"]["free"]) == (255, "0")
        time.sleep(4)
        assert [e["reason"] for e in events(api, namespace, "tiny")] == ["PoolExhausted"]
