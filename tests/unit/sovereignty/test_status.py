"""The region's status and its conditions."""

from __future__ import annotations

from datetime import timedelta

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.sovereignregion import REGION_LABEL
from finops_operator.planners.sovereignty import (
    TemplatedWorkload,
    plan_region_status,
)
from tests.unit.sovereignty.helpers import (
    LATER,
    NOW,
    SPEC,
    US,
    run_audit,
)


def test_status_conditions_and_transition_times() -> None:
    clean = run_audit(workloads=[TemplatedWorkload("ai", "Deployment", "ok")])
    status = plan_region_status(
        SPEC,
        generation=3,
        current_status=None,
        audit_result=clean,
        namespace_conflicts={},
        matching_nodes=2,
        now=NOW,
    )
    ready, compliant, conflict = (
        find(status.conditions, t) for t in ("Ready", "Compliant", "NamespaceConflict")
    )
    assert ready is not None and ready.status == ConditionStatus.TRUE and ready.observed_generation == 3
    assert compliant is not None and compliant.status == ConditionStatus.TRUE
    assert compliant.message == "1 workload(s) compliant, 0 violating (Enforce)"
    assert conflict is not None and conflict.status == ConditionStatus.FALSE
    assert (status.bound_namespaces, status.bound_namespace_count, status.matching_nodes) == (["ai"], 1, 2)
    assert status.last_audit_time == NOW

    dirty = run_audit(
        workloads=[
            TemplatedWorkload("ai", "Deployment", "bad", pod_spec={"nodeSelector": {REGION_LABEL: US}})
        ]
    )
    later = plan_region_status(
        SPEC,
        generation=4,
        current_status=status,
        audit_result=dirty,
        namespace_conflicts={"shared": ["eu-west-1", "eu-gpu"]},
        matching_nodes=0,
        now=LATER,
    )
    ready, compliant, conflict = (
        find(later.conditions, t) for t in ("Ready", "Compliant", "NamespaceConflict")
    )
    assert ready is not None and ready.status == ConditionStatus.FALSE and ready.reason == "NoMatchingNodes"
    assert ready.message == (
        "SovereignRegion eu-west-1 selects no node (topology.kubernetes.io/region=eu-west-1); "
        "workloads bound to it cannot be scheduled"
    )
    assert ready.last_transition_time == LATER
    assert compliant is not None and compliant.status == ConditionStatus.FALSE
    assert (
        compliant.reason == "ViolationsFound" and "0 workload(s) compliant, 1 violating" in compliant.message
    )
    assert "Region: 1" in compliant.message
    assert conflict is not None and conflict.status == ConditionStatus.TRUE
    assert "shared (also bound to eu-gpu)" in conflict.message and "no region enforces" in conflict.message
    assert (later.violation_count, len(later.violations)) == (1, 1)
    assert status.violation_count == 0  # the input status is not mutated

    steady = plan_region_status(
        SPEC,
        generation=4,
        current_status=later,
        audit_result=dirty,
        namespace_conflicts={"shared": ["eu-west-1", "eu-gpu"]},
        matching_nodes=0,
        now=LATER + timedelta(hours=1),
    )
    assert [c.last_transition_time for c in steady.conditions] == [LATER, LATER, LATER]
    assert steady.conditions == later.conditions


def test_status_uses_the_object_name_and_caps_conflict_messages() -> None:
    conflicts = {f"ns-{i:05}": ["sovereign-eu", "other"] for i in range(3000)}
    audit_result = run_audit(bound_namespaces={f"b{i}": {} for i in range(1500)})
    status = plan_region_status(
        SPEC,
        generation=1,
        current_status=None,
        audit_result=audit_result,
        namespace_conflicts=conflicts,
        matching_nodes=0,
        now=NOW,
        region_name="sovereign-eu",
    )
    ready = find(status.conditions, "Ready")
    assert ready is not None and ready.message.startswith("SovereignRegion sovereign-eu selects no node")
    conflict = find(status.conditions, "NamespaceConflict")
    assert conflict is not None and "and 2980 more" in conflict.message and len(conflict.message) <= 4096
    assert "3000 namespace(s)" in conflict.message
    assert (len(status.bound_namespaces), status.bound_namespace_count) == (1000, 1500)
    status.model_validate(status.to_wire())  # still within the API's own limits
