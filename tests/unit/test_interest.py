"""Which Networks a Node's change concerns: exhaustively over small cases."""

from __future__ import annotations

import itertools

import pytest

from netpool.interest import concerns
from netpool.selector import Requirement, Selector
from netpool.views import NodeView

KEY = "network.samplecrd.k8s.io/ns.net"
OTHER = "network.samplecrd.k8s.io/ns.other"
GPU = Selector((Requirement("pool", "In", frozenset({"gpu"})),))


def node(
    pool: str | None = None, mine: str | None = None, other: str | None = None, zone: str = "a", cidr: str = ""
) -> NodeView:
    labels = {"zone": zone} | ({"pool": pool} if pool else {})
    subnets = ({KEY: mine} if mine else {}) | ({OTHER: other} if other else {})
    return NodeView(name="n", labels=labels, subnets=subnets, uid="u", pod_cidrs=(cidr,) if cidr else ())


@pytest.mark.parametrize(
    ("old", "new", "selector", "expected"),
    [
        (None, node("gpu"), GPU, True),  # joins, matches
        (None, node("cpu"), GPU, False),  # joins, does not match
        (node("gpu"), None, GPU, True),  # leaves, matched
        (node("cpu"), None, GPU, False),  # leaves, never matched
        (node("cpu"), node("gpu"), GPU, True),  # starts matching
        (node("gpu"), node("cpu"), GPU, True),  # stops matching
        (node("gpu", zone="a"), node("gpu", zone="b"), GPU, False),  # a label the selector ignores
        (node("gpu", mine="x"), node("gpu", mine="y"), GPU, True),  # its annotation edited
        (node("cpu", mine="x"), node("cpu"), GPU, True),  # its annotation removed, even if not matching
        (node("gpu", other="x"), node("gpu", other="y"), GPU, False),  # another Network's annotation
        (node("gpu"), node("gpu"), GPU, False),
        (None, node("gpu"), None, False),  # invalid spec: joining changes nothing it counts
        (None, node(mine="x"), None, True),  # ... unless the Node carries its subnet
        (node(mine="x"), None, None, True),
        (node(mine="x"), node(mine="x", zone="b"), None, False),
        (None, node(), Selector(), True),  # the empty selector matches every Node
        (node("gpu"), node("gpu", cidr="10.0.1.0/24"), GPU, True),  # a Node it selects got podCIDRs
        (node("cpu"), node("cpu", cidr="10.0.1.0/24"), GPU, False),  # ... one it does not select
        (node(), node(cidr="10.0.1.0/24"), None, False),  # invalid: podCIDRs change nothing it counts
    ],
)
def test_concerns(old: NodeView | None, new: NodeView | None, selector: Selector | None, expected: bool) -> None:
    assert concerns(old, new, selector, KEY) is expected


VIEWS = [None] + [
    node(pool, mine, other)
    for pool, mine, other in itertools.product([None, "gpu", "cpu"], [None, "x", "y"], [None, "z"])
]


@pytest.mark.parametrize("selector", [GPU, Selector(), None], ids=["gpu", "all", "invalid"])
def test_no_change_concerns_nobody_and_the_relation_is_symmetric(selector: Selector | None) -> None:
    for old, new in itertools.product(VIEWS, VIEWS):
        if old == new:
            assert not concerns(old, new, selector, KEY)
        assert concerns(old, new, selector, KEY) == concerns(new, old, selector, KEY)


def test_whatever_changes_the_plan_inputs_concerns_the_network() -> None:
    """The sync reads, of a Node, whether it matches and what its annotation
    says (and, of a Node it selects, its podCIDRs: tested above): a change
    that leaves both equal is the only kind ignored."""
    for old, new in itertools.product(VIEWS, VIEWS):
        for selector in (GPU, Selector()):
            inputs_old = (old is not None and selector.matches(old.labels), (old.subnets if old else {}).get(KEY))
            inputs_new = (new is not None and selector.matches(new.labels), (new.subnets if new else {}).get(KEY))
            assert concerns(old, new, selector, KEY) == (inputs_old != inputs_new)
