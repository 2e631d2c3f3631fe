"""FinOpsPolicy planner: from the policy, what it observes in its namespace (Deployments, their pods,
other policies, GPU utilisation) and the clock, decide the ledger, the budget actions, idle shutdown,
cost anomalies, the status and the Events. The handler only applies the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from finops_operator.api.conditions import ConditionType, Reason, apply_conditions
from finops_operator.api.finopspolicy import (
    BudgetPeriod,
    FinOpsPolicySpec,
    FinOpsPolicyStatus,
    WorkloadStatus,
)
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.plan import invalid_spec
from finops_operator.planners.policy.anomaly import plan_anomalies
from finops_operator.planners.policy.bounds import BoundsTarget, HpaPlan, plan_hpas
from finops_operator.planners.policy.budget import (
    BudgetAssessment,
    ReplicaChange,
    WindowUse,
    assess_windows,
    budget_settings,
    ceil_percent,
    plan_budget_actions,
    restore,
    thresholds_to_announce,
    window_limits,
)
from finops_operator.planners.policy.caps import cap_violations
from finops_operator.planners.policy.conditions import optional, policy_conditions, workload_state
from finops_operator.planners.policy.declared import plan_declared_costs
from finops_operator.planners.policy.events import PlannedEvent, budget_events, new_violation_events
from finops_operator.planners.policy.idle import plan_idle_all
from finops_operator.planners.policy.ledger import LedgerAdvance, LedgerPod
from finops_operator.planners.policy.observation import (
    BARE_POD,
    SCALABLE_KINDS,
    PolicyObservation,
    WorkloadFacts,
    selection_labels,
)
from finops_operator.planners.policy.predictive import (
    PredictiveDecision,
    calibration_status,
    decide,
    prediction_condition,
    prediction_status,
    projected_exhaustion,
)
from finops_operator.planners.policy.window import InvalidTimeZoneError, window_bounds
from finops_operator.planners.policy.window_ledgers import advance_windows, notified_in, window_entries
from finops_operator.workloads.owners import workload_key

MAX_LISTED_WORKLOADS = 500
MAX_LISTED_VIOLATIONS = 100


@dataclass(frozen=True)
class PolicyPlan:
    status: FinOpsPolicyStatus
    governed: tuple[str, ...] = ()
    conflicted: tuple[str, ...] = ()
    changes: tuple[ReplicaChange, ...] = ()
    events: tuple[PlannedEvent, ...] = ()
    pods_to_track: tuple[LedgerPod, ...] = ()
    """Running GPU pods of governed workloads that still need the ledger finalizer."""
    pods_to_release: tuple[LedgerPod, ...] = ()
    """Pods whose finalizer can go once the status (ledger) is written."""
    hpas: HpaPlan = field(default_factory=HpaPlan)
    anomaly_flags: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per workload and anomaly kind, 1 while that anomaly is active (the finops_anomalies gauge)."""


class Selection(NamedTuple):
    """Which workloads a policy governs in one sample."""

    selected: list[WorkloadFacts]
    """Top-level workloads its selector matches (bare pods included), by name."""
    overlaps: dict[str, list[str]]
    """Per selected workload, the other policies selecting it."""
    conflicted: tuple[str, ...]
    governed: list[WorkloadFacts]
    """Selected and not conflicted."""
    members: list[WorkloadFacts]
    """Jobs made by a governed CronJob: accounted under it, suspended with it."""
    scalable: list[WorkloadFacts]
    """Governed Deployments and StatefulSets: budget scale-downs, HPAs, idle, anomalies, caps."""


def select(spec: FinOpsPolicySpec, observation: PolicyObservation) -> Selection:
    selected = sorted(
        (
            d
            for d in (*observation.workloads, *bare_pods(observation))
            if d.parent is None and selector_matches(spec.target_workload_selector, d.labels)
        ),
        key=lambda d: d.name,
    )
    overlaps = {
        d.name: sorted(p.name for p in observation.peers if selector_matches(p.selector, d.labels))
        for d in selected
    }
    conflicted = tuple(name for name, peers in overlaps.items() if peers)
    governed = [d for d in selected if d.name not in conflicted]
    governed_names = {d.name for d in governed}
    return Selection(
        selected=selected,
        overlaps=overlaps,
        conflicted=conflicted,
        governed=governed,
        members=[d for d in observation.workloads if d.parent in governed_names],
        scalable=[d for d in governed if d.kind in SCALABLE_KINDS],
    )


def parse_policy_spec(raw: Mapping[str, Any]) -> FinOpsPolicySpec:
    """Validate a spec as stored; the API server's schema already rejected most bad input."""
    return FinOpsPolicySpec.model_validate(dict(raw))


def invalid_policy(
    observation: PolicyObservation, now: datetime, message: str, reason: str = Reason.INVALID_SPEC
) -> PolicyPlan:
    """The shared rule for a spec that cannot be planned: Ready=False, the rest kept, no changes."""
    current = observation.current_status
    plan = invalid_spec(current, generation=observation.generation, now=now, message=message, reason=reason)
    return PolicyPlan(status=plan.status)


def plan_policy(spec: FinOpsPolicySpec, observation: PolicyObservation, now: datetime) -> PolicyPlan:
    """Decide everything a policy does in one sample. Pure: same inputs, same plan; applying the plan
    and planning again yields no further change."""
    try:
        window_start, window_end = window_bounds(spec.budget_window, now)
    except InvalidTimeZoneError as error:
        return invalid_policy(observation, now, str(error), Reason.INVALID_TIME_ZONE)

    policy = observation.name
    selected, overlaps, conflicted, governed, members, scalable = select(spec, observation)

    released = _released(policy, observation.workloads, [*governed, *members])
    pods_by_workload = _pods_by_workload(governed, members, observation.pods)
    previous = observation.current_status
    windows = advance_windows(
        budget_window=spec.budget_window,
        status=previous,
        pods_by_workload=pods_by_workload,
        gpu_product_of_node=observation.gpu_product_of_node,
        pricing=spec.pricing,
        pod_utilization=observation.pod_utilization,
        now=now,
    )
    advance = windows.current[BudgetPeriod.DAILY][0]
    ledger = advance.ledger
    limits = window_limits(spec)
    assessment = assess_windows(
        [WindowUse(p, a.ledger, end, limits[p]) for p, (a, end) in windows.current.items() if p in limits],
        running_gpus=advance.running_gpus,
        cost_per_hour=advance.cost_per_hour,
        now=now,
    )
    already = {
        period: notified_in(previous, period, step.ledger.window_start)
        for period, (step, _) in windows.current.items()
    }
    crossed = {
        period: thresholds_to_announce(budget_settings(spec), percent, already[period])
        for period, percent in assessment.percent_by_period.items()
    }
    budget = plan_budget_actions(
        policy,
        spec,
        assessment,
        [
            d.as_workload()
            for d in (*governed, *members)
            if d.kind != BARE_POD and (not d.finished or d.as_workload().marked_by(policy))
        ],
    )
    changes = [*released, *budget.changes]
    events = budget_events(
        policy=policy,
        spec=spec,
        percent_by_period=assessment.percent_by_period,
        crossed=crossed,
        budget=budget,
        released=released,
    )

    idle = plan_idle_all(
        policy=policy,
        spec=spec,
        governed=scalable,
        pods_by_workload=pods_by_workload,
        observation=observation,
        already_changed={c.workload for c in changes},
        now=now,
    )
    changes.extend(idle.changes)
    events.extend(idle.events)

    anomalies = plan_anomalies(
        policy=policy,
        spec=spec,
        governed=scalable,
        pods_by_workload=pods_by_workload,
        observation=observation,
        already_changed={c.workload for c in changes},
        now=now,
    )
    changes.extend(anomalies.changes)
    events.extend(anomalies.events)

    declared = plan_declared_costs(
        policy=policy,
        spec=spec,
        governed=governed,
        pods_by_workload=pods_by_workload,
        gpu_product_of_node=observation.gpu_product_of_node,
        previous=previous.cost_overruns,
        now=now,
    )
    events.extend(declared.events)

    violations = [v for d in scalable for v in cap_violations(d.name, spec, d.template, d.replicas)]
    events.extend(new_violation_events(policy, spec, violations, previous.violations))

    decision = _decide_prediction(spec, observation, scalable, assessment.gpu_hours_remaining, now)
    minimum = spec.auto_scale.min_replicas if spec.auto_scale else 1
    hpas = plan_hpas(
        policy,
        observation.namespace,
        spec,
        targets=[
            BoundsTarget(
                d.name,
                observation.uid,
                d.annotations,
                decision.floor(current=d.replicas, minimum=minimum) if decision else None,
                pinned_to_minimum=d.name in anomalies.held,
                kind=d.kind,
                object_name=d.object_name,
            )
            for d in scalable
        ],
        existing=observation.hpas,
        budget_exhausted=assessment.exceeded,
    )
    bare_names = {d.name for d in governed if d.kind == BARE_POD}
    status = previous.model_copy(deep=True, update={"observed_generation": observation.generation})
    status.violations = violations[:MAX_LISTED_VIOLATIONS]
    status.violation_count = len(violations)
    status.window_start, status.window_end = window_start, window_end
    _record_ledger(status, previous, advance, assessment)
    status.windows = window_entries(
        advance=windows,
        previous=previous,
        percent_by_period=assessment.percent_by_period,
        notified={p: [*already[p], *crossed.get(p, ())] for p in already},
    )
    _record_prediction(status, spec, observation, decision=decision, governed=scalable, now=now)
    status.anomalies = list(anomalies.statuses)
    status.cost_overruns = declared.overruns
    status.thresholds_notified = sorted({*already[BudgetPeriod.DAILY], *crossed.get(BudgetPeriod.DAILY, ())})
    status.governed_workloads = len(governed)
    status.idle_workloads = len(idle.idle_names)
    status.workloads = [
        WorkloadStatus(
            name=d.name,
            state=workload_state(policy, d, conflicted),
            gpus_per_pod=d.gpus_per_pod,
            gpu_hours=round(ledger.by_workload.get(d.name, 0.0), 6),
            idle_since=idle.idle_since.get(d.name),
        )
        for d in selected[:MAX_LISTED_WORKLOADS]
    ]
    if anomalies.condition is None:  # detection turned off: its condition goes with it
        status.conditions = [c for c in status.conditions if c.type != ConditionType.ANOMALY_DETECTED]
    status.conditions = apply_conditions(
        status.conditions,
        policy_conditions(
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
        + optional(prediction_condition(spec.predictive_scaling, decision, minimum=minimum, now=now))
        + optional(anomalies.condition),
        observation.generation,
        now,
    )
    tracked = {
        (p.namespace, p.name) for key, pods in pods_by_workload.items() if key not in bare_names for p in pods
    }
    return PolicyPlan(
        status=status,
        governed=tuple(d.name for d in governed),
        conflicted=conflicted,
        changes=tuple(changes),
        events=tuple(events),
        pods_to_track=tuple(
            p
            for key, pods in pods_by_workload.items()
            if key not in bare_names  # a bare pod is never changed, not even by a finalizer
            for p in pods
            if not p.has_finalizer and p.ended_at is None and p.gpus > 0
        ),
        hpas=hpas,
        anomaly_flags=anomalies.flags,
        pods_to_release=(
            *(
                p
                for p in advance.releasable
                if p.has_finalizer and (p.namespace, p.name) in tracked & windows.releasable
            ),
            *_orphaned(observation, tracked),
        ),
    )


def _record_ledger(
    status: FinOpsPolicyStatus,
    previous: FinOpsPolicyStatus,
    advance: LedgerAdvance,
    assessment: BudgetAssessment,
) -> None:
    """Persist the ledger and the budget figures (rounded: status is for people and diffs).

    ``ledgerTime`` only moves when the stored sum does: with no GPU in use nothing is written, and the
    next sample simply accounts from the older instant, which gives the same sum.
    """
    ledger = advance.ledger
    status.gpus_running = advance.running_gpus
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


def _orphaned(observation: PolicyObservation, tracked: set[tuple[str, str]]) -> list[LedgerPod]:
    """Pods still carrying the ledger finalizer although no policy of the namespace governs them any
    more (selector changed, conflict): the finalizer must go, or their deletion would hang.

    What the peers claim is worked out once per sample (peers x workloads), then each pod is a lookup:
    pods x peers x workloads made this the largest cost of a sample in a busy namespace."""
    candidates = [p for p in observation.pods if p.has_finalizer and (p.namespace, p.name) not in tracked]
    if not candidates or any(peer.spec is None for peer in observation.peers):
        return []  # a peer whose spec cannot be read may govern anything: leave its finalizers alone
    by_name = {d.name: d for d in observation.workloads}
    claimed = [
        d
        for d in observation.workloads
        if any(selector_matches(peer.selector, selection_labels(d, by_name)) for peer in observation.peers)
    ]
    claimed_names = {d.name for d in claimed}

    def claimed_by_peer(pod: LedgerPod) -> bool:
        if pod.owner is not None:
            return pod.owner in claimed_names
        return any(d.owns(pod) for d in claimed)

    return [p for p in candidates if not claimed_by_peer(p)]


def _gpus_per_replica(governed: Sequence[WorkloadFacts]) -> int:
    return max((d.gpus_per_pod for d in governed), default=0)


def _decide_prediction(
    spec: FinOpsPolicySpec,
    observation: PolicyObservation,
    governed: Sequence[WorkloadFacts],
    remaining_gpu_hours: float | None,
    now: datetime,
) -> PredictiveDecision | None:
    settings = spec.predictive_scaling
    if settings is None or not settings.enabled or spec.auto_scale is None:
        return None
    return decide(
        settings,
        observation.prediction,
        observation.current_status.calibration,
        bounds=(spec.auto_scale.min_replicas, spec.auto_scale.max_replicas),
        ready_replicas=min((d.ready_replicas for d in governed), default=None),
        gpus_per_replica=_gpus_per_replica(governed),
        remaining_gpu_hours=remaining_gpu_hours,
        now=now,
    )


def _record_prediction(
    status: FinOpsPolicyStatus,
    spec: FinOpsPolicySpec,
    observation: PolicyObservation,
    *,
    decision: PredictiveDecision | None,
    governed: Sequence[WorkloadFacts],
    now: datetime,
) -> None:
    """Prediction figures and calibration, and the budget projection from the forecast rather than the
    burn rate. The calibration outlives a fallback: it is only dropped with predictive scaling."""
    prediction, settings = observation.prediction, spec.predictive_scaling
    status.calibration = calibration_status(decision, now) if decision else None
    if prediction is None or settings is None or decision is None or prediction.forecast is None:
        status.prediction = None
        return
    status.prediction = prediction_status(prediction, decision)
    daily = window_limits(spec).get(BudgetPeriod.DAILY)
    if daily is not None and daily.gpu_hours is not None and settings.target_per_replica:
        projected = projected_exhaustion(
            prediction.forecast,
            target_per_replica=settings.target_per_replica,
            gpus_per_replica=_gpus_per_replica(governed) * max(len(governed), 1),
            replicas_floor=decision.floor(
                current=0, minimum=spec.auto_scale.min_replicas if spec.auto_scale else 1
            ),
            used_gpu_hours=status.gpu_hours_used,
            limit_gpu_hours=daily.gpu_hours,
        )
        if projected is not None and (status.window_end is None or projected < status.window_end):
            status.projected_exhaustion_time = projected


def _released(
    policy: str, workloads: Sequence[WorkloadFacts], governed: Sequence[WorkloadFacts]
) -> list[ReplicaChange]:
    """Undo this policy's changes on workloads it no longer governs (selector changed, conflict)."""
    names = {d.name for d in governed}
    return [
        restore(d.as_workload(), "NoLongerGoverned", f"no longer governed by FinOpsPolicy {policy}")
        for d in workloads
        if d.name not in names and d.as_workload().marked_by(policy)
    ]


def bare_pods(observation: PolicyObservation) -> list[WorkloadFacts]:
    """Pods created directly (no controller, no workload selector claims them), each a workload of its
    own: accounted and reported, never changed."""
    return [
        WorkloadFacts(
            namespace=pod.namespace,
            name=workload_key(BARE_POD, pod.name),
            labels=pod.labels,
            replicas=int(pod.ended_at is None),
            gpus_per_pod=pod.gpus,
            kind=BARE_POD,
        )
        for pod in observation.pods
        if pod.owner is None and not any(d.owns(pod) for d in observation.workloads)
    ]


def _pods_by_workload(
    governed: Sequence[WorkloadFacts], members: Sequence[WorkloadFacts], pods: Sequence[LedgerPod]
) -> dict[str, list[LedgerPod]]:
    """GPU pods of each governed workload (a CronJob's through its Jobs, a bare pod's itself). Linear
    in pods: owned pods are grouped by their recorded owner; only the rare pods without one are
    matched against selectors."""
    result: dict[str, list[LedgerPod]] = {d.name: [] for d in governed}
    parent = {d.name: d.parent for d in members if d.parent is not None}
    unowned: list[LedgerPod] = []
    for pod in pods:
        if pod.owner is None:
            unowned.append(pod)
            continue
        owner = parent.get(pod.owner, pod.owner)
        if owner in result:
            result[owner].append(pod)
    for pod in unowned:
        claimed = next((d.name for d in governed if d.owns(pod)), workload_key(BARE_POD, pod.name))
        if claimed in result:
            result[claimed].append(pod)
    return result
