"""Idle shutdown: scale a workload whose GPUs stayed below a utilisation threshold for long enough to
zero, and bring it back when someone asks (wake annotation) or the policy stops wanting it down.

Missing metrics never count as idle: a workload is only judged idle on evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from finops_operator.api.common import EnforcementMode
from finops_operator.api.finopspolicy import FinOpsPolicySpec
from finops_operator.planners.policy.budget import GovernedWorkload, ReplicaChange, restore, scale_down
from finops_operator.planners.policy.events import PlannedEvent, policy_event, would_have
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.planners.policy.observation import PolicyObservation, WorkloadFacts
from finops_operator.workloads.annotations import ANNOTATION_WAKE, REASON_IDLE


@dataclass(frozen=True)
class IdleDecision:
    idle_since: datetime | None
    """When the workload was first seen below the threshold (kept in status across restarts)."""
    change: ReplicaChange | None
    would: ReplicaChange | None
    """What Enforce would do, for DryRun and Warn."""
    idle: bool
    """Currently idle (below threshold, or already scaled down for idleness)."""


def plan_idle(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    workload: GovernedWorkload,
    utilization: float | None,
    idle_since: datetime | None,
    now: datetime,
) -> IdleDecision:
    """Decide idle tracking and shutdown/wake for one workload. Pure.

    ``utilization`` is the workload's mean GPU utilisation in percent over its pods, or None when
    Prometheus has no data for it.
    """
    rules = spec.optimization_rules
    mark = workload.scaled_by()
    asleep = mark is not None and mark == (policy, REASON_IDLE)
    enabled = rules is not None and rules.idle_shutdown_threshold_minutes is not None
    if asleep:
        if ANNOTATION_WAKE in workload.annotations:
            change = restore(workload, "WokenUp", "wake annotation set")
            change = ReplicaChange(
                change.workload,
                change.replicas,
                {**change.annotations, ANNOTATION_WAKE: None},
                change.reason,
                change.message,
            )
            return IdleDecision(None, change, None, idle=False)
        if not enabled or spec.enforcement_mode != EnforcementMode.ENFORCE:
            return IdleDecision(
                None, restore(workload, "WokenUp", "idle shutdown no longer enforced"), None, idle=False
            )
        return IdleDecision(idle_since, None, None, idle=True)
    if ANNOTATION_WAKE in workload.annotations:  # a wake request for a running workload: just clear it
        clear = ReplicaChange(
            workload.name, None, {ANNOTATION_WAKE: None}, "WakeCleared", f"{workload.name} is already running"
        )
        return IdleDecision(None, clear, None, idle=False)
    if not enabled or rules is None or rules.idle_shutdown_threshold_minutes is None:
        return IdleDecision(None, None, None, idle=False)
    if utilization is None or workload.replicas == 0 or utilization >= rules.idle_gpu_utilization_percent:
        return IdleDecision(None, None, None, idle=False)
    since = idle_since or now
    if now - since < timedelta(minutes=rules.idle_shutdown_threshold_minutes):
        return IdleDecision(since, None, None, idle=True)
    change = scale_down(policy, workload, 0, REASON_IDLE, "IdleShutdown")
    change = ReplicaChange(
        change.workload,
        change.replicas,
        change.annotations,
        change.reason,
        f"{change.message}: GPU utilisation {utilization:.1f}% below "
        f"{rules.idle_gpu_utilization_percent:g}% for {rules.idle_shutdown_threshold_minutes} min",
    )
    if spec.enforcement_mode == EnforcementMode.ENFORCE:
        return IdleDecision(since, change, None, idle=True)
    return IdleDecision(since, None, change, idle=True)


def mean_utilization(by_pod: Mapping[str, float] | None, pods: Sequence[LedgerPod]) -> float | None:
    """Mean over the workload's running pods that have a sample; None without any evidence."""
    if by_pod is None:
        return None
    values = [by_pod[p.name] for p in pods if p.ended_at is None and p.name in by_pod]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class IdleOutcome:
    changes: list[ReplicaChange]
    events: list[PlannedEvent]
    idle_since: dict[str, datetime | None]
    idle_names: list[str]
    metrics_missing: list[str]


def plan_idle_all(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    governed: Sequence[WorkloadFacts],
    pods_by_workload: Mapping[str, Sequence[LedgerPod]],
    observation: PolicyObservation,
    already_changed: set[str],
    now: datetime,
) -> IdleOutcome:
    """Idle tracking and shutdown for every governed workload; a budget change wins when both apply."""
    outcome = IdleOutcome([], [], {}, [], [])
    previous_workloads = {w.name: w for w in observation.current_status.workloads}
    route = spec.alerting.idle_shutdown if spec.alerting else None
    verb = would_have(spec.enforcement_mode)
    for deployment in governed:
        usage = mean_utilization(observation.pod_utilization, pods_by_workload.get(deployment.name, ()))
        if observation.pod_utilization is not None and usage is None and deployment.replicas > 0:
            outcome.metrics_missing.append(deployment.name)
        before = previous_workloads.get(deployment.name)
        decision = plan_idle(
            policy=policy,
            spec=spec,
            workload=deployment.as_workload(),
            utilization=usage,
            idle_since=before.idle_since if before else None,
            now=now,
        )
        outcome.idle_since[deployment.name] = decision.idle_since
        if decision.idle:
            outcome.idle_names.append(deployment.name)
        if decision.change and deployment.name not in already_changed:
            outcome.changes.append(decision.change)
            outcome.events.append(
                policy_event(
                    route,
                    decision.change.reason,
                    decision.change.message,
                    deployment.name,
                    alert=decision.change.reason == "IdleShutdown",
                )
            )
        if decision.would:
            outcome.events.append(
                policy_event(
                    route,
                    f"IdleShutdown{spec.enforcement_mode.value}",
                    f"{verb} {decision.would.message}",
                    deployment.name,
                    alert=False,
                )
            )
    return outcome
