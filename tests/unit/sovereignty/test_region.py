"""A region: which namespaces it binds, its node selector, the constraints it puts on node labels, and
the nodes it selects."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.api.sovereignregion import REGION_LABEL
from finops_operator.planners.sovereignty import (
    ClusterNode,
    bound_regions,
    effective_node_selector,
    matching_node_names,
    namespace_conflict_decision,
    resolve_namespace_bindings,
)
from tests.unit.sovereignty.helpers import (
    EU,
    NODES,
    SPEC,
    US,
    region,
)

REGIONS = {
    "eu": region(namespaceSelector={"matchLabels": {"sovereignty": "eu"}}),
    "eu-gpu": region(namespaceSelector={"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}),
    "us": region(region=US, namespaceSelector={"matchLabels": {"sovereignty": "us"}}),
}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"sovereignty": "eu"}, ["eu"]),
        ({"sovereignty": "us"}, ["us"]),
        ({"sovereignty": "eu", "gpu": "yes"}, ["eu", "eu-gpu"]),
        ({}, []),
        (None, []),
        ({"sovereignty": "EU"}, []),
        ({"sovereignty": "eu\x00", "x": "\u202e"}, []),
    ],
    ids=["eu", "us", "two-regions", "no-labels", "none", "case-sensitive", "garbage"],
)
def test_bound_regions(labels: dict[str, str] | None, expected: list[str]) -> None:
    assert bound_regions(labels, REGIONS) == expected


def test_namespace_bound_twice_is_governed_by_neither_and_reported_on_both() -> None:
    bindings = resolve_namespace_bindings(
        {
            "ai": {"sovereignty": "eu", "gpu": "1"},
            "web": {"sovereignty": "eu"},
            "us-app": {"sovereignty": "us"},
        },
        REGIONS,
    )
    assert bindings.governed == {"eu": ("web",), "eu-gpu": (), "us": ("us-app",)}
    assert bindings.conflicts["eu"] == {"ai": ("eu", "eu-gpu")}
    assert bindings.conflicts["eu-gpu"] == {"ai": ("eu", "eu-gpu")}
    assert bindings.conflicts["us"] == {}
    decision = namespace_conflict_decision("ai", ["eu-gpu", "eu"])
    assert decision.allowed and "ai" in decision.warnings[0] and "[eu, eu-gpu]" in decision.warnings[0]


@pytest.mark.parametrize(
    ("node_selector", "expected"),
    [
        (None, {"matchLabels": {REGION_LABEL: EU}}),
        ({}, {"matchLabels": {REGION_LABEL: EU}}),
        ({"matchLabels": {"pool": "sovereign-eu"}}, {"matchLabels": {"pool": "sovereign-eu"}}),
    ],
    ids=["unset-defaults", "empty-defaults-not-everything", "custom"],
)
def test_effective_node_selector(node_selector: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    spec = region(nodeSelector=node_selector) if node_selector is not None else region()
    assert effective_node_selector(spec).to_wire() == {"matchLabels": {}, "matchExpressions": [], **expected}


def test_matching_node_names() -> None:
    assert matching_node_names(SPEC, NODES) == ["eu-1", "eu-gpu"]
    assert matching_node_names(region(region="ap-south-1"), NODES) == []


def test_region_constraints_cover_the_selector_the_legacy_label_and_known_nodes() -> None:
    from finops_operator.planners.sovereignty import LEGACY_REGION_LABEL, region_constraints

    constraints = region_constraints(SPEC, NODES)
    assert constraints[REGION_LABEL] == [(REGION_LABEL, "In", (EU,))]
    assert constraints[LEGACY_REGION_LABEL] == [(LEGACY_REGION_LABEL, "In", (EU,))]
    custom = region(nodeSelector={"matchLabels": {"pool": "sovereign"}})
    nodes = {"x": ClusterNode("x", {"pool": "sovereign", REGION_LABEL: "eu-central-1"})}
    widened = region_constraints(custom, nodes)
    assert widened["pool"] == [("pool", "In", ("sovereign",))]
    assert widened[REGION_LABEL] == [(REGION_LABEL, "In", ("eu-central-1", EU))]
