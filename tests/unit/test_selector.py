"""Label selectors behave as Kubernetes' do (k8s.io/apimachinery/pkg/labels)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpool.selector import Requirement, Selector, parse_selector


def selects(raw: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    selector, problems = parse_selector(raw)
    assert problems == []
    return selector.matches(labels)


WORKER = {"role": "worker", "zone": "a", "gpu": ""}


@pytest.mark.parametrize(
    ("raw", "labels", "expected"),
    [
        # empty or absent selects everything, even a node without labels
        (None, {}, True),
        ({}, WORKER, True),
        ({"matchLabels": {}, "matchExpressions": []}, {}, True),
        ({"matchLabels": None, "matchExpressions": None}, WORKER, True),
        # matchLabels: every pair, exactly
        ({"matchLabels": {"role": "worker"}}, WORKER, True),
        ({"matchLabels": {"role": "worker", "zone": "a"}}, WORKER, True),
        ({"matchLabels": {"role": "worker", "zone": "b"}}, WORKER, False),
        ({"matchLabels": {"role": "Worker"}}, WORKER, False),  # values are case-sensitive
        ({"matchLabels": {"role": "worker"}}, {}, False),
        ({"matchLabels": {"gpu": ""}}, WORKER, True),  # an empty value is a value
        ({"matchLabels": {"gpu": ""}}, {"role": "worker"}, False),
        # In: the key must be there, with one of the values
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, WORKER, True),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b", "c"]}]}, WORKER, False),
        ({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}, WORKER, False),
        ({"matchExpressions": [{"key": "gpu", "operator": "In", "values": [""]}]}, WORKER, True),
        # NotIn: a missing key matches
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}, WORKER, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a", "b"]}]}, WORKER, False),
        ({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}, WORKER, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        # Exists / DoesNotExist look at the key only
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, WORKER, True),
        ({"matchExpressions": [{"key": "rack", "operator": "Exists"}]}, WORKER, False),
        ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, WORKER, False),
        ({"matchExpressions": [{"key": "rack", "operator": "DoesNotExist"}]}, WORKER, True),
        ({"matchExpressions": [{"key": "gpu", "operator": "Exists", "values": []}]}, WORKER, True),
        # everything must hold: matchLabels AND every expression
        (
            {
                "matchLabels": {"role": "worker"},
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    {"key": "rack", "operator": "DoesNotExist"},
                ],
            },
            WORKER,
            True,
        ),
        (
            {
                "matchLabels": {"role": "worker"},
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    {"key": "gpu", "operator": "DoesNotExist"},
                ],
            },
            WORKER,
            False,
        ),
        (
            {"matchLabels": {"role": "infra"}, "matchExpressions": [{"key": "zone", "operator": "Exists"}]},
            WORKER,
            False,
        ),
        # two expressions on one key
        (
            {
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a", "b"]},
                    {"key": "zone", "operator": "NotIn", "values": ["a"]},
                ]
            },
            WORKER,
            False,
        ),
        # keys with a prefix are plain strings
        ({"matchLabels": {"node-role.kubernetes.io/worker": ""}}, {"node-role.kubernetes.io/worker": ""}, True),
        ({"matchLabels": {"node-role.kubernetes.io/worker": ""}}, {"worker": ""}, False),
    ],
)
def test_kubernetes_semantics(raw: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert selects(raw, labels) is expected


@pytest.mark.parametrize(
    ("expressions", "problems"),
    [
        ([{"key": "a", "operator": "In"}], ["nodeSelector.matchExpressions[0]: operator In needs at least one value"]),
        (
            [{"key": "a", "operator": "NotIn", "values": []}],
            ["nodeSelector.matchExpressions[0]: operator NotIn needs at least one value"],
        ),
        (
            [{"key": "a", "operator": "Exists", "values": ["x"]}],
            ["nodeSelector.matchExpressions[0]: operator Exists takes no values, remove them"],
        ),
        (
            [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}],
            ["nodeSelector.matchExpressions[0]: operator DoesNotExist takes no values, remove them"],
        ),
        (
            [{"key": "a", "operator": "Gt", "values": ["1"]}],
            ["nodeSelector.matchExpressions[0]: operator 'Gt' is not one of In, NotIn, Exists, DoesNotExist"],
        ),
        ([{"key": "", "operator": "Exists"}], ["nodeSelector.matchExpressions[0]: key is required"]),
        (
            [{"key": "ok", "operator": "Exists"}, {"operator": "In", "values": ["x"]}, {"key": "b", "operator": "X"}],
            [
                "nodeSelector.matchExpressions[1]: key is required",
                "nodeSelector.matchExpressions[2]: operator 'X' is not one of In, NotIn, Exists, DoesNotExist",
            ],
        ),
    ],
)
def test_expression_problems(expressions: list[dict[str, Any]], problems: list[str]) -> None:
    _, found = parse_selector({"matchExpressions": expressions})
    assert found == problems


def test_parsed_requirements() -> None:
    selector, problems = parse_selector(
        {
            "matchLabels": {"role": "worker"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a", "a"]},
                {"key": "gpu", "operator": "Exists"},
            ],
        }
    )
    assert problems == []
    assert selector == Selector(
        (
            Requirement("role", "In", frozenset({"worker"})),
            Requirement("zone", "In", frozenset({"a", "b"})),
            Requirement("gpu", "Exists"),
        )
    )


keys = st.sampled_from(["a", "b", "c", "example.com/d"])
values = st.sampled_from(["", "x", "y", "z"])
label_sets = st.dictionaries(keys, values, max_size=4)


@given(label_sets, keys, st.lists(values, min_size=1, max_size=3))
def test_notin_is_the_complement_of_in(labels: dict[str, str], key: str, vals: list[str]) -> None:
    inside = selects({"matchExpressions": [{"key": key, "operator": "In", "values": vals}]}, labels)
    outside = selects({"matchExpressions": [{"key": key, "operator": "NotIn", "values": vals}]}, labels)
    assert inside is not outside
    assert inside is (key in labels and labels[key] in vals)


@given(label_sets, keys)
def test_doesnotexist_is_the_complement_of_exists(labels: dict[str, str], key: str) -> None:
    exists = selects({"matchExpressions": [{"key": key, "operator": "Exists"}]}, labels)
    missing = selects({"matchExpressions": [{"key": key, "operator": "DoesNotExist"}]}, labels)
    assert exists is (key in labels)
    assert missing is (key not in labels)


@given(label_sets, st.dictionaries(keys, values, max_size=3))
def test_match_labels_is_a_subset_test(labels: dict[str, str], wanted: dict[str, str]) -> None:
    assert selects({"matchLabels": wanted}, labels) is (wanted.items() <= labels.items())
    # the same as one In requirement per label
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in wanted.items()]
    assert selects({"matchExpressions": expressions}, labels) is selects({"matchLabels": wanted}, labels)


@given(label_sets, st.dictionaries(keys, values, max_size=2), st.dictionaries(keys, values, max_size=2))
def test_requirements_are_anded(labels: dict[str, str], first: dict[str, str], second: dict[str, str]) -> None:
    exprs = [{"key": k, "operator": "In", "values": [v]} for k, v in second.items()]
    both = selects({"matchLabels": first, "matchExpressions": exprs}, labels)
    assert both is (selects({"matchLabels": first}, labels) and selects({"matchExpressions": exprs}, labels))
