"""Budgets over daily, weekly and monthly windows: how much is used, when it runs out, which
thresholds to announce, and what to do to the governed workloads once any is exhausted (and undo when
that window resets)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from finops_operator.api.common import EnforcementMode
from finops_operator.api.finopspolicy import BudgetAction, BudgetPeriod, CostLimits, FinOpsPolicySpec
from finops_operator.planners.policy.ledger import Ledger
from finops_operator.workloads.annotations import (
    ANNOTATION_CAPPED_BY,
    ANNOTATION_PREVIOUS_REPLICAS,
    ANNOTATION_PREVIOUS_SUSPEND,
    ANNOTATION_REPLICA_CAP,
    ANNOTATION_SCALED_BY,
    REASON_BUDGET,
)


@dataclass(frozen=True)
class WindowLimits:
    """The budgets of one window (unset: no such budget)."""

    gpu_hours: float | None = None
    cost: float | None = None


@dataclass(frozen=True)
class WindowUse:
    """One window's ledger, its end and its budgets, as the assessment needs them."""

    period: BudgetPeriod
    ledger: Ledger
    end: datetime
    limits: WindowLimits


@dataclass(frozen=True)
class BudgetAssessment:
    """Budget use in the current windows."""

    used_percent: float
    """Highest use of any budget of any window."""
    gpu_hours_remaining: float | None
    """GPU-hours left in the tightest GPU-hour budget."""
    projected_exhaustion: datetime | None
    exhausted: tuple[str, ...]
    """Names of the budgets used up (dailyGPUHours, dailyCost, weeklyGPUHours, monthlyCost...)."""
    percent_by_period: Mapping[BudgetPeriod, float] = field(default_factory=dict)
    """Use per window that has a budget."""

    @property
    def exceeded(self) -> bool:
        return bool(self.exhausted)


def window_limits(spec: FinOpsPolicySpec) -> dict[BudgetPeriod, WindowLimits]:
    """The budgets per window: spec.budgets, and the daily one of costLimits (the CRD's CEL rules
    refuse a daily budget set in both places)."""
    limits = {b.period: WindowLimits(b.gpu_hours, b.cost) for b in spec.budgets}
    daily = spec.cost_limits
    if daily is not None and (daily.daily_gpu_hours is not None or daily.daily_cost is not None):
        limits[BudgetPeriod.DAILY] = WindowLimits(daily.daily_gpu_hours, daily.daily_cost)
    return limits


def budget_settings(spec: FinOpsPolicySpec) -> CostLimits:
    """Budget action and alert thresholds, shared by every window: costLimits', else the default
    thresholds and AlertOnly (without costLimits nothing is ever scaled for a budget)."""
    return spec.cost_limits or CostLimits(budget_action=BudgetAction.ALERT_ONLY)


def assess_budget(
    *,
    limits: CostLimits | None,
    ledger: Ledger,
    running_gpus: int,
    cost_per_hour: float,
    window_end: datetime,
    now: datetime,
) -> BudgetAssessment:
    """The daily budgets of ``limits`` alone (see ``assess_windows``). Pure."""
    daily = WindowLimits(limits.daily_gpu_hours, limits.daily_cost) if limits else WindowLimits()
    return assess_windows(
        [WindowUse(BudgetPeriod.DAILY, ledger, window_end, daily)],
        running_gpus=running_gpus,
        cost_per_hour=cost_per_hour,
        now=now,
    )


def assess_windows(
    uses: Sequence[WindowUse], *, running_gpus: int, cost_per_hour: float, now: datetime
) -> BudgetAssessment:
    """Use, remaining and projected exhaustion of every budget of every window, at the current burn
    rate. Pure."""
    shares: list[tuple[str, float, float, float, datetime]] = []  # name, used, limit, burn/h, window end
    percent_by_period: dict[BudgetPeriod, float] = {}
    remaining: float | None = None
    for use in uses:
        mine: list[tuple[str, float, float, float, datetime]] = []
        if use.limits.gpu_hours is not None:
            left = max(use.limits.gpu_hours - use.ledger.gpu_hours, 0.0)
            remaining = left if remaining is None else min(remaining, left)
            mine.append(
                (
                    f"{use.period.value}GPUHours",
                    use.ledger.gpu_hours,
                    use.limits.gpu_hours,
                    running_gpus,
                    use.end,
                )
            )
        if use.limits.cost is not None:
            mine.append((f"{use.period.value}Cost", use.ledger.cost, use.limits.cost, cost_per_hour, use.end))
        if mine:
            percent_by_period[use.period] = max(_percent(used, limit) for _, used, limit, _, _ in mine)
        shares.extend(mine)
    if not shares:
        return BudgetAssessment(0.0, None, None, ())
    exhausted = tuple(name for name, used, limit, _, _ in shares if used >= limit)
    exhaustion_times = [
        now + timedelta(hours=(limit - used) / burn)
        for _, used, limit, burn, end in shares
        if used < limit and burn > 0 and now + timedelta(hours=(limit - used) / burn) < end
    ]
    # Once any budget is used up the tighter budget has run out: no later exhaustion to project.
    projected = None if exhausted else min(exhaustion_times, default=None)
    return BudgetAssessment(
        max(percent_by_period.values()), remaining, projected, exhausted, percent_by_period
    )


def _percent(used: float, limit: float) -> float:
    if limit <= 0:
        return 100.0 if used > 0 or limit == 0 else 0.0
    return 100.0 * used / limit


def thresholds_to_announce(
    limits: CostLimits | None, used_percent: float, already: Sequence[int]
) -> tuple[int, ...]:
    """Thresholds crossed and not yet announced in this window (each fires once per window)."""
    if limits is None:
        return ()
    return tuple(
        sorted(t for t in set(limits.alert_thresholds_percent) if used_percent >= t and t not in already)
    )


@dataclass(frozen=True)
class GovernedWorkload:
    """A governed workload and the operator's marks on it."""

    name: str
    replicas: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    suspended: bool | None = None
    """spec.suspend of a Job or CronJob; None for a kind that has none (it is scaled instead)."""

    def marked_by(self, policy: str) -> bool:
        """Whether ``policy`` changed this workload (scaled it down or capped it)."""
        mark = self.scaled_by()
        return (mark is not None and mark[0] == policy) or self.annotations.get(
            ANNOTATION_CAPPED_BY
        ) == policy

    def scaled_by(self) -> tuple[str, str] | None:
        """(policy, reason) of the operator's scale-down recorded on this workload, if any."""
        mark = self.annotations.get(ANNOTATION_SCALED_BY)
        if not mark or ":" not in mark:
            return None
        policy, reason = mark.rsplit(":", 1)
        return policy, reason


@dataclass(frozen=True)
class ReplicaChange:
    """A change to one workload: replicas (or, for a Job or CronJob, spec.suspend) plus the annotations
    recording how to undo it."""

    workload: str
    replicas: int | None
    annotations: Mapping[str, str | None]
    reason: str
    """CamelCase Event reason."""
    message: str
    suspend: bool | None = None
    """spec.suspend to set (None: leave it)."""


def scale_down(policy: str, workload: GovernedWorkload, target: int, why: str, reason: str) -> ReplicaChange:
    """Scale to ``target`` (a Job or CronJob cannot shrink: it is suspended), recording what to restore
    (an earlier record is kept)."""
    if workload.suspended is None:
        record, before, replicas, suspend = ANNOTATION_PREVIOUS_REPLICAS, str(workload.replicas), target, None
        message = f"scaled {workload.name} from {workload.replicas} to {target} replicas"
    else:
        record, before, replicas, suspend = (
            ANNOTATION_PREVIOUS_SUSPEND,
            str(workload.suspended).lower(),
            None,
            True,
        )
        message = f"suspended {workload.name}"
    return ReplicaChange(
        workload=workload.name,
        replicas=replicas,
        annotations={
            record: workload.annotations.get(record, before),
            ANNOTATION_SCALED_BY: f"{policy}:{why}",
        },
        reason=reason,
        message=message,
        suspend=suspend,
    )


def restore(workload: GovernedWorkload, reason: str, why: str) -> ReplicaChange:
    """Put back the recorded replica count (or spec.suspend) and remove the operator's marks."""
    if workload.suspended is not None:
        return _resume(workload, reason, why)
    raw = workload.annotations.get(ANNOTATION_PREVIOUS_REPLICAS)
    replicas = int(raw) if raw is not None and raw.isdecimal() else None
    return ReplicaChange(
        workload=workload.name,
        replicas=replicas,
        annotations={
            ANNOTATION_PREVIOUS_REPLICAS: None,
            ANNOTATION_SCALED_BY: None,
            ANNOTATION_REPLICA_CAP: None,
            ANNOTATION_CAPPED_BY: None,
        },
        reason=reason,
        message=f"restored {workload.name} to {replicas} replicas ({why})"
        if replicas is not None
        else f"removed the operator's marks from {workload.name} ({why})",
    )


def _resume(workload: GovernedWorkload, reason: str, why: str) -> ReplicaChange:
    raw = workload.annotations.get(ANNOTATION_PREVIOUS_SUSPEND)
    previous = raw.strip().lower() == "true" if raw is not None else None
    return ReplicaChange(
        workload=workload.name,
        replicas=None,
        annotations={ANNOTATION_PREVIOUS_SUSPEND: None, ANNOTATION_SCALED_BY: None},
        reason=reason,
        message=(
            f"removed the operator's marks from {workload.name} ({why})"
            if previous is None
            else f"left {workload.name} suspended, as it was before ({why})"
            if previous
            else f"resumed {workload.name} ({why})"
        ),
        suspend=previous,
    )


@dataclass(frozen=True)
class BudgetPlan:
    changes: tuple[ReplicaChange, ...]
    """Changes to make now (Enforce only)."""
    would: tuple[ReplicaChange, ...]
    """Changes Enforce would make, reported in DryRun and Warn."""


def plan_budget_actions(
    policy: str, spec: FinOpsPolicySpec, assessment: BudgetAssessment, workloads: Sequence[GovernedWorkload]
) -> BudgetPlan:
    """What the budget requires of each governed workload. Pure and idempotent: a workload already
    in the required state yields no change."""
    action = budget_settings(spec).budget_action
    changes: list[ReplicaChange] = []
    for workload in sorted(workloads, key=lambda w: w.name):
        mark = workload.scaled_by()
        ours = mark is not None and mark[0] == policy and mark[1] == REASON_BUDGET
        capped = (
            ANNOTATION_REPLICA_CAP in workload.annotations
            and workload.annotations.get(ANNOTATION_CAPPED_BY, policy) == policy
        )
        if not assessment.exceeded:
            if ours:
                changes.append(restore(workload, "BudgetRestored", "new budget window"))
            elif (
                capped and workload.suspended is None
            ):  # only lift the cap: another scale-down (e.g. idle shutdown) is not ours to undo
                changes.append(
                    ReplicaChange(
                        workload=workload.name,
                        replicas=None,
                        annotations={ANNOTATION_REPLICA_CAP: None, ANNOTATION_CAPPED_BY: None},
                        reason="BudgetRestored",
                        message=f"lifted the replica cap of {workload.name} (new budget window)",
                    )
                )
            continue
        if workload.suspended is not None:  # a run cannot shrink: any action but AlertOnly pauses it
            if action != BudgetAction.ALERT_ONLY and not workload.suspended:
                changes.append(scale_down(policy, workload, 0, REASON_BUDGET, "BudgetExhausted"))
        elif action in (BudgetAction.SCALE_TO_ZERO, BudgetAction.SCALE_TO_MIN):
            target = 0 if action == BudgetAction.SCALE_TO_ZERO else _min_replicas(spec)
            if workload.replicas > target:
                changes.append(scale_down(policy, workload, target, REASON_BUDGET, "BudgetExhausted"))
        elif action == BudgetAction.BLOCK_SCALE_UP:
            raw_cap = workload.annotations.get(ANNOTATION_REPLICA_CAP, "")
            valid_cap = raw_cap.isdecimal()  # a hand-edited, malformed cap is replaced, not fatal
            cap = int(raw_cap) if valid_cap else workload.replicas
            if not valid_cap or workload.replicas > cap:
                changes.append(
                    ReplicaChange(
                        workload=workload.name,
                        replicas=cap if workload.replicas > cap else None,
                        annotations={ANNOTATION_REPLICA_CAP: str(cap), ANNOTATION_CAPPED_BY: policy},
                        reason="BudgetExhausted",
                        message=f"blocked scale-up of {workload.name} above {cap} replicas",
                    )
                )
    if spec.enforcement_mode == EnforcementMode.ENFORCE:
        return BudgetPlan(tuple(changes), ())
    restores = tuple(c for c in changes if c.reason == "BudgetRestored")  # undo always allowed
    return BudgetPlan(restores, tuple(c for c in changes if c.reason != "BudgetRestored"))


def _min_replicas(spec: FinOpsPolicySpec) -> int:
    return spec.auto_scale.min_replicas if spec.auto_scale else 1


def ceil_percent(value: float) -> int:
    """Percent shown in `kubectl get`: rounded down so 100 means the budget is really used up."""
    return math.floor(value + 1e-9)
