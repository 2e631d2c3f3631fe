"""FinOpsPolicy planner: from the policy, what it observes in its namespace (Deployments, their pods,
other policies, GPU utilisation) and the clock, decide the ledger, the budget actions, idle shutdown,
the status and the Events. The handler only applies the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from finops_operator.api.common import ConditionStatus, EnforcementMode, LabelSelector
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.finopspolicy import (
    AlertRoute,
    FinOpsPolicySpec,
    FinOpsPolicyStatus,
    Severity,
    Violation,
    WorkloadState,
    WorkloadStatus,
)
from finops_operator.planners.bounds import BoundsTarget, HpaFacts, HpaPlan, plan_hpas
from finops_operator.planners.budget import (
    BudgetAssessment,
    BudgetPlan,
    ReplicaChange,
    WorkloadFacts,
    assess_budget,
    ceil_percent,
    plan_budget_actions,
    restore,
    thresholds_to_announce,
)
from finops_operator.planners.caps import PodTemplateFacts, cap_violations
from finops_operator.planners.idle import plan_idle
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.ledger import Ledger, PodFacts, advance_ledger
from finops_operator.planners.predictive import (
    PredictionInput,
    Recommendation,
    prediction_condition,
    prediction_status,
    projected_exhaustion,
    recommend,
)
from finops_operator.planners.window import InvalidTimeZoneError, window_bounds
from finops_operator.workloads.annotations import REASON_BUDGET, REASON_IDLE

MAX_LISTED_WORKLOADS = 500
MAX_LISTED_VIOLATIONS = 100


@dataclass(frozen=True)
class DeploymentFacts:
    """What the planners need to know about one Deployment (taken from a Kopf index)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    replicas: int = 0
    ready_replicas: int = 0
    gpus_per_pod: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod_selector: LabelSelector | None = None
    template: PodTemplateFacts = field(default_factory=PodTemplateFacts)

    def as_workload(self) -> WorkloadFacts:
        return WorkloadFacts(self.name, self.replicas, self.annotations)

    def owns(self, pod: PodFacts) -> bool:
        """Ownership as Kubernetes records it (pod -> ReplicaSet -> Deployment); the selector is only
        consulted for pods without an owner record."""
        if pod.owner_deployment is not None:
            return pod.owner_deployment == self.name
        selector = self.pod_selector
        return (
            selector is not None
            and bool(selector.match_labels or selector.match_expressions)
            and selector_matches(selector, pod.labels)
        )


@dataclass(frozen=True)
class PeerPolicy:
    """A FinOpsPolicy of the namespace, as indexed: for overlap detection and admission."""

    name: str
    selector: LabelSelector
    spec: FinOpsPolicySpec | None = None


@dataclass(frozen=True)
class PolicyObservation:
    name: str
    generation: int
    current_status: FinOpsPolicyStatus
    deployments: Sequence[DeploymentFacts]
    peers: Sequence[PeerPolicy] = ()
    pods: Sequence[PodFacts] = ()
    gpu_product_of_node: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""
    uid: str = ""
    hpas: Sequence[HpaFacts] = ()
    pod_utilization: Mapping[str, float] | None = None
    """GPU utilisation (percent) per pod name; None when no Prometheus is configured or reachable."""
    prediction: PredictionInput | None = None
    """The demand forecast (or why there is none), when predictive scaling is enabled."""
    metrics_error: str | None = None


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


@dataclass(frozen=True)
class PolicyPlan:
    status: FinOpsPolicyStatus
    governed: tuple[str, ...] = ()
    conflicted: tuple[str, ...] = ()
    changes: tuple[ReplicaChange, ...] = ()
    events: tuple[PlannedEvent, ...] = ()
    pods_to_track: tuple[PodFacts, ...] = ()
    """Running GPU pods of governed workloads that still need the ledger finalizer."""
    pods_to_release: tuple[PodFacts, ...] = ()
    """Pods whose finalizer can go once the status (ledger) is written."""
    hpas: HpaPlan = field(default_factory=HpaPlan)


def parse_spec(raw: Mapping[str, Any]) -> FinOpsPolicySpec:
    """Validate a spec as stored; the API server's schema already rejected most bad input."""
    return FinOpsPolicySpec.model_validate(dict(raw))


def ledger_from_status(status: FinOpsPolicyStatus) -> Ledger | None:
    if status.window_start is None or status.ledger_time is None:
        return None
    return Ledger(
        window_start=status.window_start,
        accounted_until=status.ledger_time,
        gpu_hours=status.gpu_hours_used,
        cost=status.cost_used,
        by_workload={w.name: w.gpu_hours for w in status.workloads},
    )


def _invalid(observation: PolicyObservation, now: datetime, reason: str, message: str) -> PolicyPlan:
    status = observation.current_status.model_copy(deep=True)
    status.conditions = apply_conditions(
        status.conditions,
        [ConditionUpdate(ConditionType.READY, ConditionStatus.FALSE, reason, message)],
        observation.generation,
        now,
    )
    status.observed_generation = observation.generation
    return PolicyPlan(status=status)


def _event(
    route: AlertRoute | None, reason: str, message: str, workload: str | None = None, alert: bool = True
) -> PlannedEvent:
    severity = route.severity if route else Severity.WARNING
    kind = "Normal" if severity == Severity.INFO else "Warning"
    prefix = f"[{severity.value}{f' -> {route.recipient_group}' if route else ''}] "
    return PlannedEvent(kind, reason, prefix + message, workload, route, alert)


def plan_policy(raw_spec: Mapping[str, Any], observation: PolicyObservation, now: datetime) -> PolicyPlan:
    """Decide everything a policy does in one sample. Pure: same inputs, same plan; applying the plan
    and planning again yields no further change."""
    try:
        spec = parse_spec(raw_spec)
        window_start, window_end = window_bounds(spec.budget_window, now)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _invalid(observation, now, Reason.INVALID_SPEC, f"spec.{where}: {first['msg']}")
    except InvalidTimeZoneError as error:
        return _invalid(observation, now, Reason.INVALID_TIME_ZONE, str(error))

    policy = observation.name
    selected = sorted(
        (d for d in observation.deployments if selector_matches(spec.target_workload_selector, d.labels)),
        key=lambda d: d.name,
    )
    overlaps = {
        d.name: sorted(p.name for p in observation.peers if selector_matches(p.selector, d.labels))
        for d in selected
    }
    conflicted = tuple(name for name, peers in overlaps.items() if peers)
    governed = [d for d in selected if d.name not in conflicted]

    released = _released(policy, observation.deployments, governed)
    pods_by_workload = _pods_by_workload(governed, observation.pods)
    previous = observation.current_status
    advance = advance_ledger(
        previous=ledger_from_status(previous),
        window_start=window_start,
        pods_by_workload=pods_by_workload,
        gpu_product_of_node=observation.gpu_product_of_node,
        pricing=spec.pricing,
        now=now,
    )
    ledger = advance.ledger
    assessment = assess_budget(
        limits=spec.cost_limits,
        ledger=ledger,
        running_gpus=advance.running_gpus,
        cost_per_hour=advance.cost_per_hour,
        window_end=window_end,
        now=now,
    )
    new_window = previous.window_start != window_start
    already = [] if new_window else list(previous.thresholds_notified)
    crossed = thresholds_to_announce(spec.cost_limits, assessment.used_percent, already)

    budget = plan_budget_actions(policy, spec, assessment, [d.as_workload() for d in governed])
    changes = [*released, *budget.changes]
    events = _budget_events(
        policy=policy,
        spec=spec,
        used_percent=assessment.used_percent,
        crossed=crossed,
        budget=budget,
        released=released,
    )

    idle = _plan_idle_all(
        policy=policy,
        spec=spec,
        governed=governed,
        pods_by_workload=pods_by_workload,
        observation=observation,
        already_changed={c.workload for c in changes},
        now=now,
    )
    changes.extend(idle.changes)
    events.extend(idle.events)

    violations = [v for d in governed for v in cap_violations(d.name, spec, d.template)]
    events.extend(_new_violation_events(policy, spec, violations, previous.violations))

    recommendation = _recommend(spec, observation, governed, assessment.gpu_hours_remaining, now)
    floor = recommendation.replicas if recommendation else None
    hpas = plan_hpas(
        policy,
        observation.namespace,
        spec,
        targets=[BoundsTarget(d.name, observation.uid, d.annotations, floor) for d in governed],
        existing=observation.hpas,
        budget_exhausted=assessment.exceeded,
    )
    status = previous.model_copy(deep=True)
    status.observed_generation = observation.generation
    status.violations = violations[:MAX_LISTED_VIOLATIONS]
    status.violation_count = len(violations)
    status.window_start, status.window_end = window_start, window_end
    _record_ledger(status, previous, ledger, assessment)
    _record_prediction(status, spec, observation, recommendation, governed)
    status.thresholds_notified = sorted({*already, *crossed})
    status.governed_workloads = len(governed)
    status.idle_workloads = len(idle.idle_names)
    status.workloads = [
        WorkloadStatus(
            name=d.name,
            state=_state(policy, d, conflicted),
            gpus_per_pod=d.gpus_per_pod,
            gpu_hours=round(ledger.by_workload.get(d.name, 0.0), 6),
            idle_since=idle.idle_since.get(d.name),
        )
        for d in selected[:MAX_LISTED_WORKLOADS]
    ]
    status.conditions = apply_conditions(
        status.conditions,
        _conditions(
            spec=spec,
            selected=selected,
            governed=governed,
            conflicted=conflicted,
            overlaps=overlaps,
            exhausted=assessment.exhausted,
            idle=idle.idle_names,
            observation=observation,
            metrics_missing=idle.metrics_missing,
            foreign_hpas=hpas.foreign,
        )
        + _optional(prediction_condition(spec.predictive_scaling, observation.prediction, recommendation)),
        observation.generation,
        now,
    )
    tracked = {(p.namespace, p.name) for pods in pods_by_workload.values() for p in pods}
    return PolicyPlan(
        status=status,
        governed=tuple(d.name for d in governed),
        conflicted=conflicted,
        changes=tuple(changes),
        events=tuple(events),
        pods_to_track=tuple(
            p
            for pods in pods_by_workload.values()
            for p in pods
            if not p.has_finalizer and p.ended_at is None and p.gpus > 0
        ),
        hpas=hpas,
        pods_to_release=(
            *(p for p in advance.releasable if p.has_finalizer and (p.namespace, p.name) in tracked),
            *_orphaned(observation, tracked),
        ),
    )


def _record_ledger(
    status: FinOpsPolicyStatus, previous: FinOpsPolicyStatus, ledger: Ledger, assessment: BudgetAssessment
) -> None:
    """Persist the ledger and the budget figures (rounded: status is for people and diffs).

    ``ledgerTime`` only moves when the stored sum does: with no GPU in use nothing is written, and the
    next sample simply accounts from the older instant, which gives the same sum.
    """
    used = round(ledger.gpu_hours, 6)
    moved = previous.window_start != ledger.window_start or previous.gpu_hours_used != used
    if moved or previous.ledger_time is None:
        status.ledger_time = ledger.accounted_until
    status.gpu_hours_used = used
    status.cost_used = round(ledger.cost, 6)
    status.gpu_hours_remaining = (
        round(assessment.gpu_hours_remaining, 6) if assessment.gpu_hours_remaining is not None else None
    )
    status.budget_used_percent = ceil_percent(assessment.used_percent)
    status.projected_exhaustion_time = assessment.projected_exhaustion


def _new_violation_events(
    policy: str, spec: FinOpsPolicySpec, violations: Sequence[Violation], known: Sequence[Violation]
) -> list[PlannedEvent]:
    """An Event (and alert) the first time a cap violation is seen, not on every sample."""
    seen = {(v.name, v.rule) for v in known}
    route = spec.alerting.cap_violation if spec.alerting else None
    return [
        _event(route, "CapViolation", f"{v.name}: {v.message} (FinOpsPolicy {policy})", v.name)
        for v in violations
        if (v.name, v.rule) not in seen
    ]


def _budget_events(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    used_percent: float,
    crossed: Sequence[int],
    budget: BudgetPlan,
    released: Sequence[ReplicaChange],
) -> list[PlannedEvent]:
    """Threshold crossings, budget actions (or what they would have been), and releases."""
    alerting = spec.alerting
    events = [
        _event(
            alerting.threshold_exceeded if alerting else None,
            "BudgetThresholdCrossed",
            f"{policy} used {used_percent:.0f}% of its daily budget (threshold {t}%)",
        )
        for t in crossed
    ]
    events.extend(_event(None, c.reason, c.message, c.workload, alert=False) for c in released)
    exhausted_route = alerting.budget_exhausted if alerting else None
    for change in budget.changes:
        acted = change.reason == "BudgetExhausted"
        events.append(
            _event(
                exhausted_route if acted else None,
                change.reason,
                change.message,
                change.workload,
                alert=acted,
            )
        )
    verb = "would have" if spec.enforcement_mode == EnforcementMode.DRY_RUN else "would have (Warn mode)"
    events.extend(
        _event(
            exhausted_route,
            f"{would.reason}{spec.enforcement_mode.value}",
            f"{verb} {would.message}",
            would.workload,
            alert=spec.enforcement_mode == EnforcementMode.WARN,
        )
        for would in budget.would
    )
    return events


def _orphaned(observation: PolicyObservation, tracked: set[tuple[str, str]]) -> list[PodFacts]:
    """Pods still carrying the ledger finalizer although no policy of the namespace governs them any
    more (selector changed, conflict): the finalizer must go, or their deletion would hang."""

    def claimed_by_peer(pod: PodFacts) -> bool:
        return any(
            peer.spec is None or (selector_matches(peer.selector, d.labels) and d.owns(pod))
            for peer in observation.peers
            for d in observation.deployments
        )

    return [
        p
        for p in observation.pods
        if p.has_finalizer and (p.namespace, p.name) not in tracked and not claimed_by_peer(p)
    ]


def _optional(update: ConditionUpdate | None) -> list[ConditionUpdate]:
    return [update] if update is not None else []


def _gpus_per_replica(governed: Sequence[DeploymentFacts]) -> int:
    return max((d.gpus_per_pod for d in governed), default=0)


def _recommend(
    spec: FinOpsPolicySpec,
    observation: PolicyObservation,
    governed: Sequence[DeploymentFacts],
    remaining_gpu_hours: float | None,
    now: datetime,
) -> Recommendation | None:
    settings, prediction = spec.predictive_scaling, observation.prediction
    if settings is None or not settings.enabled or spec.auto_scale is None:
        return None
    if prediction is None or prediction.forecast is None:
        return None
    return recommend(
        settings,
        prediction.forecast,
        bounds=(spec.auto_scale.min_replicas, spec.auto_scale.max_replicas),
        gpus_per_replica=_gpus_per_replica(governed),
        remaining_gpu_hours=remaining_gpu_hours,
        now=now,
    )


def _record_prediction(
    status: FinOpsPolicyStatus,
    spec: FinOpsPolicySpec,
    observation: PolicyObservation,
    recommendation: Recommendation | None,
    governed: Sequence[DeploymentFacts],
) -> None:
    """Prediction figures, and the budget projection from the forecast rather than the burn rate."""
    prediction, settings = observation.prediction, spec.predictive_scaling
    if prediction is None or settings is None or recommendation is None or prediction.forecast is None:
        status.prediction = None
        return
    status.prediction = prediction_status(prediction, recommendation, None)
    limits = spec.cost_limits
    if limits is not None and limits.daily_gpu_hours is not None and settings.target_per_replica:
        projected = projected_exhaustion(
            prediction.forecast,
            target_per_replica=settings.target_per_replica,
            gpus_per_replica=_gpus_per_replica(governed) * max(len(governed), 1),
            replicas_floor=recommendation.replicas,
            used_gpu_hours=status.gpu_hours_used,
            limit_gpu_hours=limits.daily_gpu_hours,
        )
        if projected is not None and (status.window_end is None or projected < status.window_end):
            status.projected_exhaustion_time = projected


def _released(
    policy: str, deployments: Sequence[DeploymentFacts], governed: Sequence[DeploymentFacts]
) -> list[ReplicaChange]:
    """Undo this policy's changes on workloads it no longer governs (selector changed, conflict)."""
    names = {d.name for d in governed}
    return [
        restore(d.as_workload(), "NoLongerGoverned", f"no longer governed by FinOpsPolicy {policy}")
        for d in deployments
        if d.name not in names and d.as_workload().marked_by(policy)
    ]


def _mean_utilization(by_pod: Mapping[str, float] | None, pods: Sequence[PodFacts]) -> float | None:
    """Mean over the workload's running pods that have a sample; None without any evidence."""
    if by_pod is None:
        return None
    values = [by_pod[p.name] for p in pods if p.ended_at is None and p.name in by_pod]
    return sum(values) / len(values) if values else None


def _pods_by_workload(
    governed: Sequence[DeploymentFacts], pods: Sequence[PodFacts]
) -> dict[str, list[PodFacts]]:
    """GPU pods of each governed Deployment. Linear in pods: owned pods are grouped by their recorded
    owner; only the rare pods without one are matched against selectors."""
    result: dict[str, list[PodFacts]] = {d.name: [] for d in governed}
    unowned: list[PodFacts] = []
    for pod in pods:
        if pod.owner_deployment is None:
            unowned.append(pod)
        elif pod.owner_deployment in result:
            result[pod.owner_deployment].append(pod)
    for pod in unowned:
        owner = next((d for d in governed if d.owns(pod)), None)
        if owner is not None:
            result[owner.name].append(pod)
    return result


@dataclass(frozen=True)
class _IdleOutcome:
    changes: list[ReplicaChange]
    events: list[PlannedEvent]
    idle_since: dict[str, datetime | None]
    idle_names: list[str]
    metrics_missing: list[str]


def _plan_idle_all(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    governed: Sequence[DeploymentFacts],
    pods_by_workload: Mapping[str, Sequence[PodFacts]],
    observation: PolicyObservation,
    already_changed: set[str],
    now: datetime,
) -> _IdleOutcome:
    """Idle tracking and shutdown for every governed workload; a budget change wins when both apply."""
    outcome = _IdleOutcome([], [], {}, [], [])
    previous_workloads = {w.name: w for w in observation.current_status.workloads}
    route = spec.alerting.idle_shutdown if spec.alerting else None
    verb = "would have" if spec.enforcement_mode == EnforcementMode.DRY_RUN else "would have (Warn mode)"
    for deployment in governed:
        usage = _mean_utilization(observation.pod_utilization, pods_by_workload.get(deployment.name, ()))
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
                _event(
                    route,
                    decision.change.reason,
                    decision.change.message,
                    deployment.name,
                    alert=decision.change.reason == "IdleShutdown",
                )
            )
        if decision.would:
            outcome.events.append(
                _event(
                    route,
                    f"IdleShutdown{spec.enforcement_mode.value}",
                    f"{verb} {decision.would.message}",
                    deployment.name,
                    alert=False,
                )
            )
    return outcome


def _state(policy: str, deployment: DeploymentFacts, conflicted: Sequence[str]) -> WorkloadState:
    if deployment.name in conflicted:
        return WorkloadState.CONFLICT
    mark = deployment.as_workload().scaled_by()
    if mark == (policy, REASON_IDLE):
        return WorkloadState.IDLE_SCALED_DOWN
    if mark == (policy, REASON_BUDGET):
        return WorkloadState.BUDGET_SCALED_DOWN
    return WorkloadState.ACTIVE


def _conditions(
    *,
    spec: FinOpsPolicySpec,
    selected: Sequence[DeploymentFacts],
    governed: Sequence[DeploymentFacts],
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
            (f"governing {len(governed)} Deployment(s)" if selected else "no Deployment matches the selector")
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
            "no governed Deployment is selected by another policy",
        ),
    ]
    if spec.cost_limits and (
        spec.cost_limits.daily_gpu_hours is not None or spec.cost_limits.daily_cost is not None
    ):
        updates.append(
            ConditionUpdate(
                ConditionType.BUDGET_EXCEEDED,
                true,
                Reason.BUDGET_EXHAUSTED,
                f"{', '.join(exhausted)} used up; budgetAction {spec.cost_limits.budget_action.value} "
                f"({spec.enforcement_mode.value})",
            )
            if exhausted
            else ConditionUpdate(ConditionType.BUDGET_EXCEEDED, false, Reason.WITHIN_BUDGET, "within budget")
        )
    else:
        updates.append(
            ConditionUpdate(ConditionType.BUDGET_EXCEEDED, false, Reason.NO_BUDGET, "no daily budget set")
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
