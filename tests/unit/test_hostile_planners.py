"""Hostile specs through the pure planners (many examples, no cluster): every spec, however wrong,
gives a plan (never an exception) whose status says Ready=True or Ready=False with a reason and a
message, the same plan every time; an invalid spec writes nothing. Pathological sizes are bounded
by the models, which are the CRD schemas (crds/ is generated from them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from finops_operator.api.common import ConditionStatus, LabelSelector
from finops_operator.api.conditions import find
from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.api.finopspolicy import FinOpsPolicySpec, FinOpsPolicyStatus
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec, SovereignRegionStatus
from finops_operator.planners.fleet import FleetObservation, plan_fleet, site_node
from finops_operator.planners.fleet.author import (
    author_check_binding,
    author_check_object,
    author_check_policy,
)
from finops_operator.planners.plan import invalid_spec, spec_error_message
from finops_operator.planners.policy import (
    PolicyObservation,
    PolicyPlan,
    WorkloadFacts,
    invalid_policy,
    parse_policy_spec,
    plan_policy,
)
from finops_operator.planners.sovereignty import (
    ClusterNode,
    Inventory,
    SovereigntyObservation,
    plan_sovereignty,
)
from tests.hostile_specs import FLEET_SPEC, POLICY_SPEC, REGION_SPEC

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ready(conditions: Any) -> None:
    ready = find(conditions, "Ready")
    assert ready is not None, "no Ready condition"
    assert ready.status in (ConditionStatus.TRUE, ConditionStatus.FALSE)
    assert ready.reason
    if ready.status == ConditionStatus.FALSE:
        assert ready.message


@MANY
@given(POLICY_SPEC)
def test_any_policy_spec_plans_to_a_ready_condition(spec: dict[str, Any]) -> None:
    observed = PolicyObservation(
        name="p",
        generation=3,
        current_status=FinOpsPolicyStatus(),
        workloads=[
            WorkloadFacts("ns", "llm", {"app": "llm"}, replicas=2, gpus_per_pod=1),
            WorkloadFacts("ns", "web", {"app": "web"}, replicas=1),
        ],
        namespace="ns",
    )
    plan = _plan_as_the_handler_does(spec, observed)
    _ready(plan.status.conditions)
    assert plan == _plan_as_the_handler_does(spec, observed)
    try:
        FinOpsPolicySpec.model_validate(spec)
    except ValidationError:
        assert not plan.changes and not plan.hpas.apply and not plan.hpas.delete and not plan.pods_to_track


def _plan_as_the_handler_does(spec: dict[str, Any], observed: PolicyObservation) -> PolicyPlan:
    """The spec parsed once, the shared invalid-spec rule when it does not parse."""
    try:
        parsed = parse_policy_spec(spec)
    except ValidationError as error:
        return invalid_policy(observed, NOW, spec_error_message(error))
    return plan_policy(parsed, observed, NOW)


@MANY
@given(REGION_SPEC)
def test_any_region_spec_plans_to_a_ready_condition(spec: dict[str, Any]) -> None:
    observed = SovereigntyObservation(
        name="r",
        uid="uid-r",
        generation=2,
        current_status=SovereignRegionStatus(),
        nodes={"n1": ClusterNode("n1", {REGION_LABEL: "eu-west-1"}), "n2": ClusterNode("n2", {})},
        inventory=Inventory({"ai": {"sovereignty": "eu"}}),
    )
    plan = plan_sovereignty(spec, observed, NOW)
    _ready(plan.status.conditions)
    assert plan == plan_sovereignty(spec, observed, NOW)
    try:
        SovereignRegionSpec.model_validate(spec)
    except ValidationError:
        assert not plan.intents


NODES = tuple(
    site_node(
        {
            "metadata": {
                "name": f"edge-{i}",
                "labels": {"finops.dev/edge": "true", "finops.dev/site": f"s{i % 3}"},
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T09:00:00Z"}
                ]
            },
        }
    )
    for i in range(5)
)


def _plan_fleet_as_the_handler_does(raw: dict[str, Any]) -> Any:
    """The handler's parse-or-InvalidSpec step, then the planner."""
    try:
        spec = EdgeFleetSpec.model_validate(raw)
    except ValidationError as error:
        return invalid_spec(EdgeFleetStatus(), generation=1, now=NOW, message=spec_error_message(error))
    checked = {
        m["kind"]: author_check_object(
            {"metadata": {**m["metadata"], "creationTimestamp": "2026-01-01T00:00:00Z"}}
        )
        for m in (author_check_policy(), author_check_binding())
    }
    observed = FleetObservation(
        namespace="ns",
        name="f",
        uid="uid-f",
        generation=1,
        current_status=EdgeFleetStatus(),
        nodes=NODES,
        author_check=checked,
        spec_written=NOW,
    )
    return plan_fleet(spec, observed, NOW)


@MANY
@given(FLEET_SPEC)
def test_any_fleet_spec_plans_to_a_ready_condition(spec: dict[str, Any]) -> None:
    plan = _plan_fleet_as_the_handler_does(spec)
    _ready(plan.status.conditions)
    assert plan == _plan_fleet_as_the_handler_does(spec)


# Pathological sizes: the models (hence the CRD schemas) refuse them, so neither the API server's
# CEL nor the planners ever see them.
HUGE_LABELS = {f"k{i}": f"v{i}" for i in range(5000)}


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        pytest.param(LabelSelector, {"matchLabels": HUGE_LABELS}, id="thousands-of-match-labels"),
        pytest.param(LabelSelector, {"matchLabels": {"app": "x" * 100_000}}, id="huge-label-value"),
        pytest.param(
            LabelSelector,
            {"matchExpressions": [{"key": "k", "operator": "In", "values": [str(i) for i in range(5000)]}]},
            id="thousands-of-values",
        ),
        pytest.param(
            LabelSelector,
            {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v" * 100_000]}]},
            id="huge-expression-value",
        ),
        pytest.param(
            SovereignRegionSpec,
            {"region": "eu", "namespaceSelector": {}, "allowedGPUProducts": ["A" * 100_000]},
            id="huge-gpu-product",
        ),
        pytest.param(
            SovereignRegionSpec,
            {"region": "eu", "namespaceSelector": {}, "allowedDataClassifications": ["c" * 100_000]},
            id="huge-data-class",
        ),
        pytest.param(
            FinOpsPolicySpec,
            {
                "targetWorkloadSelector": {},
                "pricing": {"gpuHourlyRate": 1, "gpuProductRates": {f"p{i}": 1.0 for i in range(5000)}},
            },
            id="thousands-of-product-rates",
        ),
        pytest.param(
            EdgeFleetSpec,
            {
                "nodeSelector": {},
                "modelVersion": "v1",
                "template": {},
                "hardwareProfiles": [{"name": "p", "nodeLabels": HUGE_LABELS}],
            },
            id="thousands-of-profile-labels",
        ),
    ],
)
def test_pathological_sizes_are_refused_by_the_schema(model: Any, raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(raw)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    "depth", [100, 3000, 9000], ids=["deep", "deeper-than-python-recursion", "near-api-limit"]
)
def test_a_deep_template_is_an_invalid_spec_not_a_crash(depth: int) -> None:
    """The API server accepts JSON nested up to 10 000 levels in a preserve-unknown-fields template;
    Python's recursive copy and JSON encoding would crash far earlier. The model bounds the depth."""
    raw = {
        "nodeSelector": {},
        "modelVersion": "v1",
        "template": {"spec": {"containers": []}, "metadata": _nested(depth)},
    }
    plan = _plan_fleet_as_the_handler_does(raw)
    _ready(plan.status.conditions)
    ready = find(plan.status.conditions, "Ready")
    assert ready is not None
    if depth > 100:
        assert ready.status == ConditionStatus.FALSE and "deep" in ready.message
        assert not plan.intents
