"""Cost anomalies (spec.anomalyDetection): each governed workload's GPU time against the demand that
should explain it, judged by ``forecasting.anomaly`` once per sample interval. Pure; ``now`` is given.

Per workload and sample, the mean GPU utilisation of its running pods, the GPUs they hold and the
policy's demand make one detector sample. The detector's state lives in status (about 2.5 KB per
workload, the first ``MAX_TRACKED`` by name), so a restart resumes it. Its decision becomes the
workload's phase and evidence, the AnomalyDetected condition, an Event (and an alert) when an anomaly
is raised and an Event when it clears; with action ScaleToMinimum in Enforce mode, a scale-down to the
minimum recorded on the workload, restored when the anomaly clears, the action is turned off or the
policy lets go of the workload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from finops_operator.api.common import ConditionStatus, EnforcementMode
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason
from finops_operator.api.finopspolicy import (
    AlertRoute,
    AnomalyAction,
    AnomalyDetection,
    AnomalyEvidence,
    AnomalyPhase,
    FinOpsPolicySpec,
    WorkloadAnomaly,
)
from finops_operator.planners.policy.budget import ReplicaChange, restore, scale_down
from finops_operator.planners.policy.events import PlannedEvent, policy_event, would_have
from finops_operator.planners.policy.idle import mean_utilization
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.planners.policy.observation import PolicyObservation, WorkloadFacts
from finops_operator.workloads.annotations import ANNOTATION_RELEARN, ANNOTATION_REPLICA_CAP, REASON_ANOMALY
from forecasting import (
    Anomaly,
    AnomalyConfig,
    AnomalyDecision,
    AnomalyKind,
    AnomalySample,
    AnomalyState,
    AnomalyStateError,
    NotJudged,
    detect,
)

MAX_TRACKED = 50
"""Workloads a policy keeps a detector for (its status holds each one's state)."""
MAX_LISTED = 10
"""Anomalies named in the condition message."""
SEASONAL = "seasonal"
DEMAND_KINDS = (
    AnomalyKind.BUSY_WITHOUT_DEMAND,
    AnomalyKind.COST_OUTPACING_DEMAND,
    AnomalyKind.UTILIZATION_COLLAPSE,
)
SEASONAL_KINDS = (AnomalyKind.ABOVE_PROFILE, AnomalyKind.BELOW_PROFILE)


def demand_query(spec: FinOpsPolicySpec) -> str | None:
    """The demand anomalies are judged against: anomalyDetection's query, else predictive scaling's
    (enabled or not: it names the workloads' demand either way); None judges by seasonal profile."""
    if spec.anomaly_detection is None:
        return None
    if spec.anomaly_detection.demand_query:
        return spec.anomaly_detection.demand_query
    return spec.predictive_scaling.demand_query if spec.predictive_scaling else None


def source_of(query: str | None) -> str:
    """What a detector learnt against: a changed demand query makes its state meaningless."""
    if query is None:
        return SEASONAL
    return "demand:" + hashlib.sha256(query.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AnomalyOutcome:
    statuses: tuple[WorkloadAnomaly, ...] = ()
    changes: tuple[ReplicaChange, ...] = ()
    events: tuple[PlannedEvent, ...] = ()
    condition: ConditionUpdate | None = None
    """AnomalyDetected; None without spec.anomalyDetection (the condition is then dropped)."""
    held: frozenset[str] = frozenset()
    """Workloads held at their minimum by the action: their HPA maximum is pinned to the minimum."""
    flags: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per tracked workload, 1 for the kind of its active anomaly, 0 for the other kinds it is judged on."""


@dataclass(frozen=True)
class _Judged:
    deployment: WorkloadFacts
    decision: AnomalyDecision
    status: WorkloadAnomaly


def plan_anomalies(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    governed: Sequence[WorkloadFacts],
    pods_by_workload: Mapping[str, Sequence[LedgerPod]],
    observation: PolicyObservation,
    already_changed: set[str],
    now: datetime,
) -> AnomalyOutcome:
    """Detect, report and (optionally) act for every governed workload; a budget or idle change made
    in the same sample wins over the action."""
    settings = spec.anomaly_detection
    if settings is None:  # detection turned off: undo the action, report nothing
        changes = [
            restore(d.as_workload(), "AnomalyRestored", "anomaly detection turned off")
            for d in governed
            if _held_by(policy, d) and d.name not in already_changed
        ]
        return AnomalyOutcome(changes=tuple(changes), events=tuple(_normal_events(changes)))
    query = demand_query(spec)
    source = source_of(query)
    previous = {entry.name: entry for entry in observation.current_status.anomalies}
    judged = [
        _judge(
            d,
            settings,
            previous.get(d.name),
            source=source,
            sample=_sample(d, pods_by_workload.get(d.name, ()), observation, now, demand=query is not None),
            interval=observation.sample_interval_seconds,
            now=now,
        )
        for d in governed[:MAX_TRACKED]
    ]
    route = spec.alerting.anomaly_detected if spec.alerting else None
    events: list[PlannedEvent] = []
    for item in judged:
        events.extend(_edge_events(policy, route, item, previous.get(item.deployment.name)))
    changes, held, would = _act(
        policy,
        spec=spec,
        settings=settings,
        judged=judged,
        governed=governed,
        skip=already_changed,
    )
    events.extend(_normal_events([c for c in changes if c.reason in ("AnomalyRestored", "AnomalyRelearn")]))
    events.extend(
        policy_event(
            route, c.reason, f"{c.message} ({_kind_of(judged, c.workload)})", c.workload, alert=False
        )
        for c in changes
        if c.reason == "AnomalyScaledDown"
    )
    verb = would_have(spec.enforcement_mode)
    events.extend(
        policy_event(
            route, f"AnomalyScaledDown{spec.enforcement_mode.value}", f"{verb} {c.message}", c.workload, False
        )
        for c in would
    )
    kinds = DEMAND_KINDS if query is not None else SEASONAL_KINDS
    return AnomalyOutcome(
        statuses=tuple(item.status for item in judged),
        changes=tuple(changes),
        events=tuple(events),
        condition=_condition(judged, observation, query=query, governed=len(governed)),
        held=frozenset(held),
        flags={
            item.deployment.name: {
                kind.value: int(item.decision.anomaly is not None and item.decision.anomaly.kind == kind)
                for kind in kinds
            }
            for item in judged
        },
    )


def _sample(
    deployment: WorkloadFacts,
    pods: Sequence[LedgerPod],
    observation: PolicyObservation,
    now: datetime,
    *,
    demand: bool,
) -> AnomalySample:
    """One interval of one workload: mean utilisation (fraction) and GPUs of its running pods, and the
    demand; a missing value is None (no data is never zero)."""
    running = [p for p in pods if p.ended_at is None and p.running_since is not None]
    percent = mean_utilization(observation.pod_utilization, running)
    reading = observation.anomaly_demand
    return AnomalySample(
        at=now.timestamp(),
        utilization=percent / 100.0 if percent is not None else None,
        gpus=float(sum(p.gpus for p in running)),
        demand=reading.value if demand and reading is not None else None,
    )


def _restored_state(
    entry: WorkloadAnomaly | None, source: str, now: datetime, *, relearn: bool
) -> AnomalyState:
    """The stored detector state; a fresh one when there is none, it learnt against another signal, it
    cannot be read back, or the user asked to relearn. The API server drops the nulls of a merge
    patch: ``run`` and ``active`` are absent when there is none."""
    if entry is None or entry.source != source or relearn:
        return AnomalyState.start(now.timestamp())
    try:
        return AnomalyState.from_dict({"run": None, "active": None, **entry.detector})
    except AnomalyStateError:
        return AnomalyState.start(now.timestamp())


def _judge(
    deployment: WorkloadFacts,
    settings: AnomalyDetection,
    entry: WorkloadAnomaly | None,
    *,
    source: str,
    sample: AnomalySample,
    interval: float,
    now: datetime,
) -> _Judged:
    """Feed at most one sample per interval: a reconcile sooner than half an interval after the last
    one (a spec change, a retry) is judged as already seen and changes nothing."""
    config = AnomalyConfig(
        sustain_seconds=settings.sustained_seconds,
        demand_signal=source != SEASONAL,
        max_sample_seconds=2 * interval,
        warmup_seconds=settings.learning_seconds,
        gpus_per_replica=float(max(deployment.gpus_per_pod, 1)),
    )
    relearn = ANNOTATION_RELEARN in deployment.annotations
    state = _restored_state(entry, source, now, relearn=relearn)
    if sample.at - state.updated_at < interval / 2:
        sample = replace(sample, at=state.updated_at)
    decision = detect(state, sample, config)
    status = WorkloadAnomaly(
        name=deployment.name,
        phase=_phase(decision, entry.phase if entry is not None and entry.source == source else None)
        if not relearn
        else AnomalyPhase.LEARNING,
        anomaly=_evidence(decision.anomaly),
        pending=_evidence(decision.pending),
        source=source,
        detector={key: value for key, value in decision.state.to_dict().items() if value is not None},
    )
    return _Judged(deployment, decision, status)


def _phase(decision: AnomalyDecision, before: AnomalyPhase | None) -> AnomalyPhase:
    if decision.anomaly is not None:
        return AnomalyPhase.ANOMALOUS
    if decision.pending is not None:
        return AnomalyPhase.DEPARTING
    if decision.not_judged is NotJudged.ALREADY_SEEN:
        return before or AnomalyPhase.LEARNING
    if decision.not_judged is NotJudged.WARMING_UP:
        return AnomalyPhase.LEARNING
    if decision.not_judged is NotJudged.MISSING_SAMPLE:
        return AnomalyPhase.NO_DATA
    return AnomalyPhase.NORMAL


def _evidence(anomaly: Anomaly | None) -> AnomalyEvidence | None:
    if anomaly is None:
        return None
    return AnomalyEvidence(
        kind=anomaly.kind.value,
        signal=anomaly.signal,
        unit=anomaly.unit,
        observed=round(anomaly.observed, 6),
        expected=round(anomaly.expected, 6),
        expected_low=round(anomaly.expected_low, 6),
        expected_high=round(anomaly.expected_high, 6),
        demand=round(anomaly.demand, 6) if anomaly.demand is not None else None,
        since=datetime.fromtimestamp(anomaly.since, UTC),
        sustained_seconds=round(anomaly.sustained_seconds, 3),
        message=anomaly.message(),
    )


def _since(evidence: AnomalyEvidence) -> str:
    return evidence.since.isoformat(timespec="seconds").replace("+00:00", "Z")


def _edge_events(
    policy: str, route: AlertRoute | None, item: _Judged, before: WorkloadAnomaly | None
) -> list[PlannedEvent]:
    """An Event (and an alert) when an anomaly is raised, an Event when it clears: edges, not levels."""
    name, status = item.deployment.name, item.status
    if item.decision.raised and status.anomaly is not None:
        message = f"{name}: {status.anomaly.message} since {_since(status.anomaly)} (FinOpsPolicy {policy})"
        return [policy_event(route, "AnomalyDetected", message, name)]
    if item.decision.cleared:
        kind = before.anomaly.kind if before is not None and before.anomaly is not None else "anomaly"
        message = f"{name}: {kind} cleared, GPU time back within its expected band (FinOpsPolicy {policy})"
        return [PlannedEvent("Normal", "AnomalyCleared", message, name)]
    return []


def _held_by(policy: str, deployment: WorkloadFacts) -> bool:
    return deployment.as_workload().scaled_by() == (policy, REASON_ANOMALY)


def _act(
    policy: str,
    *,
    spec: FinOpsPolicySpec,
    settings: AnomalyDetection,
    judged: Sequence[_Judged],
    governed: Sequence[WorkloadFacts],
    skip: set[str],
) -> tuple[list[ReplicaChange], set[str], list[ReplicaChange]]:
    """(changes, workloads held at the minimum, what Enforce would do in DryRun/Warn at a raise).

    Only a workload nobody else scaled or capped is scaled down; ours is restored once its anomaly is
    gone, the action is off, or it is no longer tracked."""
    acting = (
        settings.action == AnomalyAction.SCALE_TO_MINIMUM and spec.enforcement_mode == EnforcementMode.ENFORCE
    )
    minimum = spec.auto_scale.min_replicas if spec.auto_scale else 1
    decisions = {item.deployment.name: item.decision for item in judged}
    changes: list[ReplicaChange] = []
    held: set[str] = set()
    would: list[ReplicaChange] = []
    for deployment in governed:
        decision = decisions.get(deployment.name)
        anomalous = decision is not None and decision.anomaly is not None
        workload = deployment.as_workload()
        if deployment.name in skip:  # changed by a budget or idle decision of this sample
            continue
        relearn = ANNOTATION_RELEARN in deployment.annotations
        if _held_by(policy, deployment):
            if anomalous and acting:
                held.add(deployment.name)
            else:
                why = "anomaly cleared" if acting else "anomaly action no longer enforced"
                why = "relearning its GPU use" if relearn else why
                change = restore(workload, "AnomalyRestored", why)
                changes.append(_without_relearn(change) if relearn else change)
            continue
        if relearn:  # acknowledged: the detector started afresh this sample
            message = f"{deployment.name}: learning its GPU use afresh ({ANNOTATION_RELEARN} set)"
            changes.append(
                _without_relearn(ReplicaChange(deployment.name, None, {}, "AnomalyRelearn", message))
            )
            continue
        free = workload.scaled_by() is None and ANNOTATION_REPLICA_CAP not in deployment.annotations
        if not anomalous or not free or settings.action != AnomalyAction.SCALE_TO_MINIMUM:
            continue
        if acting:
            held.add(deployment.name)
            if deployment.replicas > minimum:
                changes.append(scale_down(policy, workload, minimum, REASON_ANOMALY, "AnomalyScaledDown"))
        elif decision is not None and decision.raised and deployment.replicas > minimum:
            would.append(scale_down(policy, workload, minimum, REASON_ANOMALY, "AnomalyScaledDown"))
    return changes, held, would


def _without_relearn(change: ReplicaChange) -> ReplicaChange:
    """The change, also removing the relearn request it acts on (as a wake request is removed)."""
    return replace(change, annotations={**change.annotations, ANNOTATION_RELEARN: None})


def _kind_of(judged: Sequence[_Judged], name: str) -> str:
    anomaly = next((i.status.anomaly for i in judged if i.deployment.name == name), None)
    return anomaly.kind if anomaly is not None else "anomaly"


def _normal_events(changes: Sequence[ReplicaChange]) -> list[PlannedEvent]:
    return [PlannedEvent("Normal", c.reason, c.message, c.workload) for c in changes]


def _condition(
    judged: Sequence[_Judged], observation: PolicyObservation, *, query: str | None, governed: int
) -> ConditionUpdate:
    """True naming each anomalous workload with its evidence; otherwise False saying why it is clean
    (judged and within the bands) or why nothing could be judged."""
    anomalous = [(i.deployment.name, i.status.anomaly) for i in judged if i.status.anomaly is not None]
    beyond = (
        f"; anomaly detection covers the first {MAX_TRACKED} of {governed} workloads"
        if governed > MAX_TRACKED
        else ""
    )
    if anomalous:
        kinds = {evidence.kind for _, evidence in anomalous}
        listed = "; ".join(f"{name}: {e.message} since {_since(e)}" for name, e in anomalous[:MAX_LISTED])
        more = f"; and {len(anomalous) - MAX_LISTED} more" if len(anomalous) > MAX_LISTED else ""
        reason = next(iter(kinds)) if len(kinds) == 1 else Reason.MULTIPLE_ANOMALIES
        return ConditionUpdate(
            ConditionType.ANOMALY_DETECTED, ConditionStatus.TRUE, reason, listed + more + beyond
        )
    false = ConditionStatus.FALSE
    reading = observation.anomaly_demand
    if query is not None and (reading is None or reading.value is None):
        why = (reading.error if reading is not None else None) or "no current sample of the demand query"
        return ConditionUpdate(
            ConditionType.ANOMALY_DETECTED, false, Reason.DEMAND_UNAVAILABLE, f"not judged: {why}{beyond}"
        )
    if observation.pod_utilization is None:
        why = observation.metrics_error or "no Prometheus URL configured"
        return ConditionUpdate(
            ConditionType.ANOMALY_DETECTED,
            false,
            Reason.GPU_METRICS_UNAVAILABLE,
            f"not judged: {why}{beyond}",
        )
    phases: dict[AnomalyPhase, list[str]] = {}
    for item in judged:
        phases.setdefault(item.status.phase, []).append(item.deployment.name)
    against = "its demand" if query is not None else "its own hour-of-day profile"
    details = "".join(
        f"; {label}: {', '.join(names[:MAX_LISTED])}"
        for phase, label in (
            (AnomalyPhase.DEPARTING, "departing, not sustained yet"),
            (AnomalyPhase.LEARNING, "learning"),
            (AnomalyPhase.NO_DATA, "no GPU data"),
        )
        if (names := phases.get(phase))
    )
    judging = phases.get(AnomalyPhase.NORMAL, []) + phases.get(AnomalyPhase.DEPARTING, [])
    if not judging and phases.get(AnomalyPhase.LEARNING):
        return ConditionUpdate(
            ConditionType.ANOMALY_DETECTED,
            false,
            Reason.LEARNING,
            f"learning each workload's GPU use against {against}{details}{beyond}",
        )
    return ConditionUpdate(
        ConditionType.ANOMALY_DETECTED,
        false,
        Reason.NO_ANOMALY,
        f"GPU time of {len(judging)} workload(s) explained by {against}{details}{beyond}",
    )
