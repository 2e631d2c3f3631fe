"""The conditions a policy reports, and the state of each workload it selects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason
from finops_operator.api.finopspolicy import (
    FinOpsPolicySpec,
    WorkloadState,
)
from finops_operator.planners.policy.budget import budget_settings, window_limits
from finops_operator.planners.policy.observation import SUSPENDABLE_KINDS, PolicyObservation, WorkloadFacts
from finops_operator.workloads.annotations import REASON_ANOMALY, REASON_BUDGET, REASON_IDLE


def optional(update: ConditionUpdate | None) -> list[ConditionUpdate]:
    return [update] if update is not None else []


def workload_state(policy: str, deployment: WorkloadFacts, conflicted: Sequence[str]) -> WorkloadState:
    if deployment.name in conflicted:
        return WorkloadState.CONFLICT
    mark = deployment.as_workload().scaled_by()
    if mark == (policy, REASON_IDLE):
        return WorkloadState.IDLE_SCALED_DOWN
    if mark == (policy, REASON_BUDGET):
        suspendable = deployment.kind in SUSPENDABLE_KINDS
        return WorkloadState.BUDGET_SUSPENDED if suspendable else WorkloadState.BUDGET_SCALED_DOWN
    if mark == (policy, REASON_ANOMALY):
        return WorkloadState.ANOMALY_SCALED_DOWN
    return WorkloadState.ACTIVE


def policy_conditions(
    *,
    spec: FinOpsPolicySpec,
    selected: Sequence[WorkloadFacts],
    governed: Sequence[WorkloadFacts],
    conflicted: Sequence[str],
    overlaps: Mapping[str, Sequence[str]],
    exhausted: Sequence[str],
    idle: Sequence[str],
    observation: PolicyObservation,
    metrics_missing: Sequence[str],
    foreign_hpas: Sequence[str],
) -> list[ConditionUpdate]:
    true, false = ConditionStatus.TRUE, ConditionStatus.FALSE
    updates = [
        ConditionUpdate(
            ConditionType.READY,
            true,
            Reason.RECONCILED if selected else Reason.NO_MATCHING_WORKLOADS,
            (f"governing {len(governed)} workload(s)" if selected else "no workload matches the selector")
            + (
                f"; autoScale not applied to {', '.join(foreign_hpas)}: already scaled by another HPA"
                if foreign_hpas
                else ""
            ),
        ),
        ConditionUpdate(
            ConditionType.CONFLICT,
            true,
            Reason.SELECTOR_OVERLAP,
            "; ".join(f"{name} is also selected by {', '.join(overlaps[name])}" for name in conflicted)
            + "; neither policy acts on these",
        )
        if conflicted
        else ConditionUpdate(
            ConditionType.CONFLICT,
            false,
            Reason.NO_OVERLAP,
            "no governed workload is selected by another policy",
        ),
    ]
    if window_limits(spec):
        updates.append(
            ConditionUpdate(
                ConditionType.BUDGET_EXCEEDED,
                true,
                Reason.BUDGET_EXHAUSTED,
                f"{', '.join(exhausted)} used up; budgetAction {budget_settings(spec).budget_action.value} "
                f"({spec.enforcement_mode.value})",
            )
            if exhausted
            else ConditionUpdate(ConditionType.BUDGET_EXCEEDED, false, Reason.WITHIN_BUDGET, "within budget")
        )
    else:
        updates.append(
            ConditionUpdate(ConditionType.BUDGET_EXCEEDED, false, Reason.NO_BUDGET, "no budget set")
        )
    updates.append(
        ConditionUpdate(ConditionType.IDLE, true, "WorkloadsIdle", f"idle: {', '.join(idle)}")
        if idle
        else ConditionUpdate(ConditionType.IDLE, false, "NoIdleWorkloads", "no governed workload is idle")
    )
    if observation.pod_utilization is None:
        updates.append(
            ConditionUpdate(
                ConditionType.METRICS_AVAILABLE,
                false,
                Reason.METRICS_NOT_CONFIGURED,
                observation.metrics_error
                or "no Prometheus URL configured; "
                "idle shutdown is suspended (never shuts down without evidence)",
            )
        )
    elif metrics_missing:
        updates.append(
            ConditionUpdate(
                ConditionType.METRICS_AVAILABLE,
                false,
                "MetricsMissing",
                f"no GPU utilisation for {', '.join(metrics_missing[:20])}; "
                "they are never shut down for idleness without data",
            )
        )
    else:
        updates.append(
            ConditionUpdate(
                ConditionType.METRICS_AVAILABLE,
                true,
                "MetricsFound",
                "GPU utilisation available for every running workload",
            )
        )
    return updates
