"""Cost anomalies through plan_policy, sample by sample on a pinned clock, with the status going through
JSON between samples as it does through the API server: learning comes first, a departure is raised
once sustained (one Event and alert, not one per sample), the action holds the workload at its minimum
in Enforce mode only and restores it when the anomaly clears, and the detector survives restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.finopspolicy import AnomalyPhase, FinOpsPolicyStatus, WorkloadState
from finops_operator.planners.policy import PolicyObservation, WorkloadFacts, parse_policy_spec, plan_policy
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.planners.policy.observation import DemandReading
from finops_operator.planners.policy.plan import PolicyPlan
from finops_operator.workloads.annotations import (
    ANNOTATION_PREVIOUS_REPLICAS,
    ANNOTATION_RELEARN,
    ANNOTATION_SCALED_BY,
)

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
STEP = 60.0
QUERY = 'sum(rate(requests_total{namespace="ns"}[5m]))'


def spec(**anomaly: Any) -> dict[str, Any]:
    return {
        "targetWorkloadSelector": {"matchLabels": {"app": "chat"}},
        "anomalyDetection": {
            "demandQuery": QUERY,
            "sustainedFor": "10m",
            "learningPeriod": "1h",
            **anomaly,
        },
        "alerting": {"anomalyDetected": {"severity": "CRITICAL", "recipientGroup": "mlops"}},
    }


@dataclass
class World:
    """One Deployment with GPU pods at a utilisation, a demand, and the policy's stored status."""

    policy: dict[str, Any]
    replicas: int = 3
    utilization: float | None = 40.0
    demand: float | None = 30.0
    annotations: dict[str, str] = field(default_factory=dict)
    status: FinOpsPolicyStatus = field(default_factory=FinOpsPolicyStatus)
    now: datetime = T0
    plans: list[PolicyPlan] = field(default_factory=list)

    def observation(self) -> PolicyObservation:
        pods = [
            LedgerPod("ns", f"chat-{i}", gpus=1, running_since=T0 - timedelta(hours=1), owner="chat")
            for i in range(self.replicas)
        ]
        return PolicyObservation(
            name="p",
            generation=1,
            namespace="ns",
            current_status=self.status,
            workloads=[
                WorkloadFacts(
                    "ns",
                    "chat",
                    {"app": "chat"},
                    replicas=self.replicas,
                    ready_replicas=self.replicas,
                    gpus_per_pod=1,
                    annotations=dict(self.annotations),
                )
            ],
            pods=pods,
            pod_utilization=None if self.utilization is None else {p.name: self.utilization for p in pods},
            anomaly_demand=DemandReading(value=self.demand),
            sample_interval_seconds=STEP,
        )

    def sample(self, seconds: float = STEP) -> PolicyPlan:
        """Plan one sample, then apply it as the API server would: status stored, replica changes and
        annotations onto the Deployment."""
        self.now += timedelta(seconds=seconds)
        plan = plan_policy(parse_policy_spec(self.policy), self.observation(), self.now)
        self.status = FinOpsPolicyStatus.model_validate(stored(plan.status.to_wire()))
        for change in plan.changes:
            if change.replicas is not None:
                self.replicas = change.replicas
            for key, value in change.annotations.items():
                if value is None:
                    self.annotations.pop(key, None)
                else:
                    self.annotations[key] = value
        self.plans.append(plan)
        return plan

    def run(self, samples: int) -> list[PolicyPlan]:
        return [self.sample() for _ in range(samples)]

    def condition(self) -> Any:
        return find(self.status.conditions, "AnomalyDetected")

    def entry(self) -> Any:
        return self.status.anomalies[0]


def stored(value: Any) -> Any:
    """As the API server stores a status merge patch: through JSON, nulls dropped."""
    if isinstance(value, dict):
        return {k: stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [stored(v) for v in value]
    return json.loads(json.dumps(value))


def reasons(plans: list[PolicyPlan]) -> list[str]:
    return [e.reason for plan in plans for e in plan.events if e.reason.startswith("Anomaly")]


def learnt(policy: dict[str, Any]) -> World:
    world = World(policy)
    first = world.run(3)
    assert world.entry().phase == AnomalyPhase.LEARNING
    assert world.condition().reason == "Learning" and world.condition().status == ConditionStatus.FALSE
    world.run(60)  # the hour of learning
    assert world.entry().phase == AnomalyPhase.NORMAL
    assert reasons([*first, *world.plans]) == []
    return world


def test_a_clean_workload_learns_then_reports_no_anomaly_and_posts_nothing() -> None:
    world = learnt(spec())
    clean = world.run(120)
    condition = world.condition()
    assert condition.status == ConditionStatus.FALSE and condition.reason == "NoAnomaly"
    assert "explained by its demand" in condition.message
    assert reasons(clean) == []
    assert clean[-1].anomaly_flags == {
        "chat": {"BusyWithoutDemand": 0, "CostOutpacingDemand": 0, "UtilizationCollapse": 0}
    }
    # Planning again at the same instant (a retry) changes nothing.
    again = plan_policy(parse_policy_spec(world.policy), world.observation(), world.now)
    assert again.status.to_wire() == world.status.to_wire()
    # The detector's state is bounded: a few KB per workload.
    assert len(json.dumps(world.entry().detector)) < 4000


def test_busy_gpus_without_demand_are_raised_once_sustained_with_evidence() -> None:
    world = learnt(spec())
    world.utilization = 95.0
    departing = world.run(9)  # 9 minutes: not sustained yet
    assert world.entry().phase == AnomalyPhase.DEPARTING and world.entry().pending.kind == "BusyWithoutDemand"
    assert world.condition().status == ConditionStatus.FALSE and "departing" in world.condition().message
    raised = world.run(3)
    assert world.entry().phase == AnomalyPhase.ANOMALOUS
    condition = world.condition()
    assert condition.status == ConditionStatus.TRUE and condition.reason == "BusyWithoutDemand"
    evidence = world.entry().anomaly
    assert evidence.signal == "gpuUtilization" and evidence.observed == 0.95
    assert evidence.expected_high < evidence.observed and 0.35 < evidence.expected < 0.45
    assert evidence.demand == 30.0 and evidence.since == T0 + timedelta(seconds=64 * STEP)
    assert (
        "chat: BusyWithoutDemand" in condition.message and "since 2026-11-22T01:04:00Z" in condition.message
    )
    detected = [e for plan in [*departing, *raised] for e in plan.events if e.reason == "AnomalyDetected"]
    assert len(detected) == 1 and detected[0].alert and detected[0].workload == "chat"
    assert detected[0].message.startswith("[CRITICAL -> mlops] chat: BusyWithoutDemand")
    assert raised[-1].anomaly_flags["chat"]["BusyWithoutDemand"] == 1
    # Reporting only (action None): nothing is changed on the workload.
    assert world.replicas == 3 and not world.annotations
    # It stays raised without a new Event while it lasts.
    assert reasons(world.run(5)) == []


def test_a_single_glitch_or_missing_data_never_fires() -> None:
    world = learnt(spec())
    world.utilization = 100.0
    world.sample()
    world.utilization = 40.0
    assert reasons(world.run(30)) == [] and world.condition().reason == "NoAnomaly"
    world.utilization = None  # Prometheus lost the GPU series
    world.run(30)
    assert world.entry().phase == AnomalyPhase.NO_DATA and reasons(world.plans) == []
    assert world.condition().reason == "GPUMetricsUnavailable"
    world.utilization, world.demand = 40.0, None
    world.run(3)
    assert world.condition().reason == "DemandUnavailable" and reasons(world.plans) == []


def test_scale_to_minimum_holds_the_workload_in_enforce_and_restores_it_on_clear() -> None:
    policy = {**spec(action="ScaleToMinimum"), "autoScale": {"minReplicas": 1, "maxReplicas": 4}}
    world = learnt(policy)
    world.utilization = 95.0
    plans = world.run(12)
    assert world.replicas == 1
    assert world.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:anomaly"}
    assert reasons(plans) == ["AnomalyDetected", "AnomalyScaledDown"]
    assert world.status.workloads[0].state == WorkloadState.ANOMALY_SCALED_DOWN
    held = world.run(3)  # held at the minimum, the HPA may not scale it back up meanwhile
    assert all(not p.changes for p in held) and world.condition().status == ConditionStatus.TRUE
    hpa = world.plans[-1].hpas.apply or world.plans[-4].hpas.apply
    assert hpa and hpa[0]["spec"]["minReplicas"] == hpa[0]["spec"]["maxReplicas"] == 1

    world.utilization = 40.0  # fixed: the anomaly clears after sustainedFor, and the replicas come back
    cleared = world.run(12)
    assert reasons(cleared) == ["AnomalyCleared", "AnomalyRestored"]
    assert world.replicas == 3 and not world.annotations
    assert world.condition().status == ConditionStatus.FALSE
    assert world.status.workloads[0].state == WorkloadState.ACTIVE


def test_dry_run_reports_what_the_action_would_do_and_changes_nothing() -> None:
    world = learnt({**spec(action="ScaleToMinimum"), "enforcementMode": "DryRun"})
    world.utilization = 95.0
    plans = world.run(12)
    assert reasons(plans) == ["AnomalyDetected", "AnomalyScaledDownDryRun"]
    would = next(e for p in plans for e in p.events if e.reason == "AnomalyScaledDownDryRun")
    assert "would have scaled chat from 3 to 1 replicas" in would.message and not would.alert
    assert world.replicas == 3 and not world.annotations


def test_turning_detection_off_drops_the_condition_and_restores_a_held_workload() -> None:
    world = learnt(spec(action="ScaleToMinimum"))
    world.utilization = 95.0
    world.run(12)
    assert world.replicas == 1
    world.policy = {k: v for k, v in world.policy.items() if k != "anomalyDetection"}
    plan = world.sample()
    assert world.replicas == 3 and not world.annotations
    assert world.condition() is None and world.status.anomalies == []
    assert [e.reason for e in plan.events] == ["AnomalyRestored"] and plan.anomaly_flags == {}


def test_a_restart_resumes_and_a_new_demand_query_relearns() -> None:
    world = learnt(spec())
    world.utilization = 95.0
    world.run(5)
    # A restart is the next sample planned from the stored status alone (World keeps nothing else).
    stored = world.entry().pending
    world.run(7)
    assert world.entry().anomaly.since == stored.since
    world.policy = spec(demandQuery='sum(rate(tokens_total{namespace="ns"}[5m]))')
    world.sample()
    assert world.entry().phase == AnomalyPhase.LEARNING and world.condition().reason == "Learning"


def test_without_a_demand_signal_it_judges_the_seasonal_profile() -> None:
    policy = spec()
    del policy["anomalyDetection"]["demandQuery"]
    world = World(policy)
    plan = world.sample()
    assert world.entry().source == "seasonal"
    assert plan.anomaly_flags == {"chat": {"AboveSeasonalProfile": 0, "BelowSeasonalProfile": 0}}
    # predictiveScaling's demand query is the default demand signal.
    with_prediction = replace(World(policy), policy={**policy, "predictiveScaling": {"demandQuery": QUERY}})
    with_prediction.sample()
    assert with_prediction.entry().source.startswith("demand:")


def test_the_relearn_annotation_accepts_the_current_gpu_use_as_the_new_normal() -> None:
    world = learnt(spec(action="ScaleToMinimum"))
    world.utilization = 95.0  # say, a new model version that legitimately works the GPUs harder
    world.run(12)
    assert world.replicas == 1 and world.condition().status == ConditionStatus.TRUE
    world.annotations[ANNOTATION_RELEARN] = "true"
    plan = world.sample()
    assert [e.reason for e in plan.events] == ["AnomalyRestored"]
    assert world.replicas == 3 and not world.annotations  # restored, and the request removed
    assert world.entry().phase == AnomalyPhase.LEARNING and world.condition().reason == "Learning"
    world.run(62)  # learns the new normal: 95 % at this demand is no longer an anomaly
    assert world.entry().phase == AnomalyPhase.NORMAL and world.condition().reason == "NoAnomaly"
    assert reasons(world.plans[-62:]) == []
    world.annotations[ANNOTATION_RELEARN] = "true"  # on a workload not held: just learns afresh
    plan = world.sample()
    assert [e.reason for e in plan.events] == ["AnomalyRelearn"] and not world.annotations
