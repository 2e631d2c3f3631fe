from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from finops_operator.api.common import ConditionStatus, LabelSelector
from finops_operator.api.conditions import find
from finops_operator.api.finopspolicy import FinOpsPolicyStatus, WorkloadState
from finops_operator.planners.policy import (
    PeerPolicy,
    PolicyObservation,
    WorkloadFacts,
    parse_policy_spec,
    plan_policy,
)
from finops_operator.workloads.resources import gpus_in_pod_spec

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
    "costLimits": {"dailyGPUHours": 18},
}
DEPLOYMENTS = [
    WorkloadFacts("ns", "llm-a", {"app": "llm", "team": "a"}, replicas=2, gpus_per_pod=1),
    WorkloadFacts("ns", "llm-b", {"app": "llm", "team": "b"}, replicas=1, gpus_per_pod=2),
    WorkloadFacts("ns", "web", {"app": "web"}, replicas=3),
]


def observe(**overrides: Any) -> PolicyObservation:
    values: dict[str, Any] = {
        "name": "p",
        "generation": 4,
        "current_status": FinOpsPolicyStatus(),
        "workloads": DEPLOYMENTS,
    }
    values.update(overrides)
    return PolicyObservation(**values)


def test_selects_matching_deployments_and_reports_ready() -> None:
    plan = plan_policy(parse_policy_spec(SPEC), observe(), NOW)
    assert plan.governed == ("llm-a", "llm-b")
    assert plan.status.governed_workloads == 2
    ready = find(plan.status.conditions, "Ready")
    assert ready is not None and ready.status == ConditionStatus.TRUE and ready.observed_generation == 4
    assert plan.status.window_start == datetime(2026, 11, 22, tzinfo=UTC)


def test_overlapping_policies_conflict_and_leave_the_workload_alone() -> None:
    peer = PeerPolicy("team-b-policy", LabelSelector.model_validate({"matchLabels": {"team": "b"}}))
    plan = plan_policy(parse_policy_spec(SPEC), observe(peers=[peer]), NOW)
    assert plan.governed == ("llm-a",)
    assert plan.conflicted == ("llm-b",)
    conflict = find(plan.status.conditions, "Conflict")
    assert conflict is not None and conflict.status == ConditionStatus.TRUE
    assert conflict.reason == "SelectorOverlap" and "team-b-policy" in conflict.message
    assert [w.state for w in plan.status.workloads] == [WorkloadState.ACTIVE, WorkloadState.CONFLICT]


def test_invalid_time_zone_is_ready_false_and_keeps_the_ledger() -> None:
    previous = FinOpsPolicyStatus(gpu_hours_used=7.5)
    spec = {**SPEC, "budgetWindow": {"timeZone": "Nowhere/Else"}}
    plan = plan_policy(parse_policy_spec(spec), observe(current_status=previous), NOW)
    ready = find(plan.status.conditions, "Ready")
    assert ready is not None and ready.status == ConditionStatus.FALSE and ready.reason == "InvalidTimeZone"
    assert plan.status.gpu_hours_used == 7.5
    assert plan.governed == ()


def test_planning_twice_gives_the_same_status() -> None:
    first = plan_policy(parse_policy_spec(SPEC), observe(), NOW)
    second = plan_policy(parse_policy_spec(SPEC), observe(current_status=first.status), NOW)
    assert second.status.to_wire() == first.status.to_wire()


def test_gpus_per_pod_counts_limits_then_requests_and_init_containers() -> None:
    assert (
        gpus_in_pod_spec(
            {
                "containers": [
                    {"resources": {"limits": {"nvidia.com/gpu": "2"}}},
                    {"resources": {"requests": {"nvidia.com/gpu": 1}}},
                    {"resources": {}},
                ]
            }
        )
        == 3
    )
    assert (
        gpus_in_pod_spec(
            {"containers": [], "initContainers": [{"resources": {"limits": {"nvidia.com/gpu": "4"}}}]}
        )
        == 4
    )
    assert gpus_in_pod_spec({"containers": [{"resources": {"limits": {"nvidia.com/gpu": "lots"}}}]}) == 0


def test_ledger_finalizer_is_released_from_pods_no_policy_governs_any_more() -> None:
    from finops_operator.planners.policy.ledger import LedgerPod

    web = WorkloadFacts(
        "ns",
        "web",
        {"app": "web"},
        pod_selector=LabelSelector.model_validate({"matchLabels": {"app": "web"}}),
    )
    stray = LedgerPod("ns", "web-1", {"app": "web"}, gpus=1, running_since=NOW, has_finalizer=True)
    plan = plan_policy(parse_policy_spec(SPEC), observe(workloads=[*DEPLOYMENTS, web], pods=[stray]), NOW)
    assert plan.pods_to_release == (stray,)
    other = PeerPolicy("web-policy", LabelSelector.model_validate({"matchLabels": {"app": "web"}}))
    claimed = plan_policy(
        parse_policy_spec(SPEC), observe(workloads=[*DEPLOYMENTS, web], pods=[stray], peers=[other]), NOW
    )
    assert claimed.pods_to_release == ()


def test_a_peer_keeps_the_finalizers_of_the_pods_its_workloads_own() -> None:
    from finops_operator.planners.policy.ledger import LedgerPod

    batch = WorkloadFacts("ns", "batch", {"app": "batch"})
    pods = [
        LedgerPod("ns", f"{owner}-1", {}, gpus=1, running_since=NOW, has_finalizer=True, owner=owner)
        for owner in ("web", "batch", "gone")
    ]
    spec = parse_policy_spec({**SPEC, "targetWorkloadSelector": {"matchLabels": {"app": "web"}}})
    peer = PeerPolicy("web-policy", spec.target_workload_selector, spec=spec)
    plan = plan_policy(
        parse_policy_spec(SPEC), observe(workloads=[*DEPLOYMENTS, batch], pods=pods, peers=[peer]), NOW
    )
    assert [p.name for p in plan.pods_to_release] == ["batch-1", "gone-1"]


def test_pods_are_attributed_by_their_recorded_owner_before_any_selector() -> None:
    from finops_operator.planners.policy.ledger import LedgerPod, ledger_pod

    def owner(meta: dict[str, Any], labels: dict[str, str]) -> str | None:
        return ledger_pod(namespace="ns", name="p", labels=labels, spec={}, status={}, meta=meta).owner

    meta = {"ownerReferences": [{"kind": "ReplicaSet", "name": "llm-a-7d9f8c6b5", "controller": True}]}
    assert owner(meta, {"pod-template-hash": "7d9f8c6b5"}) == "llm-a"
    assert owner(meta, {}) == "replicaset/llm-a-7d9f8c6b5"
    assert owner({"ownerReferences": [{"kind": "ReplicaSet", "name": "llm-a-7d9f8c6b5"}]}, {}) is None
    job = {"ownerReferences": [{"kind": "Job", "name": "x-1", "controller": True}]}
    assert owner(job, {"pod-template-hash": "1"}) == "job/x-1"
    assert owner({}, {}) is None  # a bare pod
    # A pod whose labels match llm-b's selector, but which llm-a's ReplicaSet owns, is llm-a's.
    selector = LabelSelector.model_validate({"matchLabels": {"app": "llm"}})
    a = WorkloadFacts("ns", "llm-a", {"app": "llm"}, replicas=1, gpus_per_pod=1, pod_selector=selector)
    b = WorkloadFacts("ns", "llm-b", {"app": "llm"}, replicas=1, gpus_per_pod=1, pod_selector=selector)
    pod = LedgerPod("ns", "p", {"app": "llm"}, gpus=1, running_since=NOW - timedelta(hours=1), owner="llm-a")
    plan = plan_policy(parse_policy_spec(SPEC), observe(workloads=[a, b], pods=[pod]), NOW)
    hours = {w.name: w.gpu_hours for w in plan.status.workloads}
    assert hours["llm-a"] > 0 and hours["llm-b"] == 0
