"""The Events (and alerts) a policy posts: budget thresholds and actions, cap violations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from finops_operator.api.common import EnforcementMode
from finops_operator.api.finopspolicy import (
    AlertRoute,
    BudgetPeriod,
    FinOpsPolicySpec,
    Severity,
    Violation,
)
from finops_operator.planners.policy.budget import (
    BudgetPlan,
    ReplicaChange,
)


@dataclass(frozen=True)
class PlannedEvent:
    """A Kubernetes Event to post on the policy, and on the workload when one is named."""

    type: str
    reason: str
    message: str
    workload: str | None = None
    route: AlertRoute | None = None
    alert: bool = False
    """Also send to the alert webhook."""


def policy_event(
    route: AlertRoute | None, reason: str, message: str, workload: str | None = None, alert: bool = True
) -> PlannedEvent:
    severity = route.severity if route else Severity.WARNING
    kind = "Normal" if severity == Severity.INFO else "Warning"
    prefix = f"[{severity.value}{f' -> {route.recipient_group}' if route else ''}] "
    return PlannedEvent(kind, reason, prefix + message, workload, route, alert)


def would_have(mode: EnforcementMode) -> str:
    """How DryRun and Warn word what Enforce would have done."""
    return "would have" if mode == EnforcementMode.DRY_RUN else "would have (Warn mode)"


def new_violation_events(
    policy: str, spec: FinOpsPolicySpec, violations: Sequence[Violation], known: Sequence[Violation]
) -> list[PlannedEvent]:
    """An Event (and alert) the first time a cap violation is seen, not on every sample."""
    seen = {(v.name, v.rule) for v in known}
    route = spec.alerting.cap_violation if spec.alerting else None
    return [
        policy_event(route, "CapViolation", f"{v.name}: {v.message} (FinOpsPolicy {policy})", v.name)
        for v in violations
        if (v.name, v.rule) not in seen
    ]


def budget_events(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    percent_by_period: Mapping[BudgetPeriod, float],
    crossed: Mapping[BudgetPeriod, Sequence[int]],
    budget: BudgetPlan,
    released: Sequence[ReplicaChange],
) -> list[PlannedEvent]:
    """Threshold crossings, budget actions (or what they would have been), and releases."""
    alerting = spec.alerting
    events = [
        policy_event(
            alerting.threshold_exceeded if alerting else None,
            "BudgetThresholdCrossed",
            f"{policy} used {percent_by_period[period]:.0f}% of its {period.value} budget (threshold {t}%)",
        )
        for period, thresholds in crossed.items()
        for t in thresholds
    ]
    events.extend(policy_event(None, c.reason, c.message, c.workload, alert=False) for c in released)
    exhausted_route = alerting.budget_exhausted if alerting else None
    for change in budget.changes:
        acted = change.reason == "BudgetExhausted"
        events.append(
            policy_event(
                exhausted_route if acted else None,
                change.reason,
                change.message,
                change.workload,
                alert=acted,
            )
        )
    verb = would_have(spec.enforcement_mode)
    events.extend(
        policy_event(
            exhausted_route,
            f"{would.reason}{spec.enforcement_mode.value}",
            f"{verb} {would.message}",
            would.workload,
            alert=spec.enforcement_mode == EnforcementMode.WARN,
        )
        for would in budget.would
    )
    return events
