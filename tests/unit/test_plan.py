"""The shared plan contract: references, and the one rule for an invalid spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.sovereignregion import SovereignRegionSpec, SovereignRegionStatus
from finops_operator.planners.plan import ApplyManifest, ObjectRef, invalid_spec, spec_error_message

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


def test_invalid_spec_says_why_and_keeps_the_rest_of_status() -> None:
    current = SovereignRegionStatus(matching_nodes=3, violation_count=2)
    plan = invalid_spec(current, generation=4, now=NOW, message="spec.region: Field required")
    ready = find(plan.status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (
        ConditionStatus.FALSE,
        "InvalidSpec",
        "spec.region: Field required",
    )
    assert plan.status.observed_generation == 4
    assert (plan.status.matching_nodes, plan.status.violation_count) == (3, 2)
    assert plan.intents == () and plan.events == ()
    assert current.conditions == []  # the observed status is not changed in place


def test_invalid_spec_twice_keeps_the_transition_time() -> None:
    first = invalid_spec(SovereignRegionStatus(), generation=1, now=NOW, message="bad")
    second = invalid_spec(first.status, generation=1, now=NOW + timedelta(minutes=5), message="bad")
    assert second.status.to_wire() == first.status.to_wire()


def test_spec_error_message_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        SovereignRegionSpec.model_validate({})
    assert spec_error_message(caught.value).startswith("spec.")


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"}},
            ObjectRef("apps/v1", "Deployment", "a", "n"),
            id="namespaced",
        ),
        pytest.param(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "p"},
            },
            ObjectRef("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "p"),
            id="cluster-scoped",
        ),
    ],
)
def test_apply_manifest_names_its_target(manifest: dict[str, object], expected: ObjectRef) -> None:
    assert ApplyManifest(manifest).target == expected
