"""Idle shutdown: scale a workload whose GPUs stayed below a utilisation threshold for long enough to
zero, and bring it back when someone asks (wake annotation) or the policy stops wanting it down.

Missing metrics never count as idle: a workload is only judged idle on evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from finops_operator.api.common import EnforcementMode
from finops_operator.api.finopspolicy import FinOpsPolicySpec
from finops_operator.planners.budget import ReplicaChange, WorkloadFacts, restore, scale_down
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
    workload: WorkloadFacts,
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
