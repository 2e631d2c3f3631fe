"""A policy's decision as plan intents: the ledger finalizers, the owned HPAs, the replica changes, and
the Events (on the workload they are about, and on the policy). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from finops_operator.api.finopspolicy import FinOpsPolicySpec, FinOpsPolicyStatus
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.plan import (
    AddFinalizer,
    ApplyManifest,
    DeleteObject,
    Event,
    Intent,
    ObjectRef,
    PatchWorkload,
    Plan,
    RemoveFinalizer,
)
from finops_operator.planners.policy.budget import restore
from finops_operator.planners.policy.events import PlannedEvent
from finops_operator.planners.policy.ledger import LEDGER_FINALIZER, LedgerPod
from finops_operator.planners.policy.observation import WorkloadFacts, selection_labels
from finops_operator.planners.policy.plan import PolicyPlan
from finops_operator.workloads.templates import WORKLOAD_API_VERSIONS


def workload_ref(workload: WorkloadFacts) -> ObjectRef:
    api_version = WORKLOAD_API_VERSIONS[workload.kind]
    return ObjectRef(api_version, workload.kind, workload.object_name, workload.namespace, uid=workload.uid)


def _pod_ref(pod: LedgerPod) -> ObjectRef:
    return ObjectRef("v1", "Pod", pod.name, pod.namespace)


SUMMARY_NAMES = 10
"""Workloads named in a policy's summary Event; the rest are counted (an Event's note is at most 1 kB)."""


def _events(events: Sequence[PlannedEvent], by_name: Mapping[str, WorkloadFacts]) -> list[Event]:
    """Each Event on the workload it names (so `kubectl describe` shows it there) and on the policy;
    where one sample does the same thing to several workloads, the policy gets one Event naming them
    rather than one per workload (a breach of a 1,000-workload policy is 1,001 Events, not 2,000)."""
    groups: dict[tuple[str, str], list[PlannedEvent]] = {}
    for event in events:
        if event.workload in by_name:
            groups.setdefault((event.type, event.reason), []).append(event)
    posted: list[Event] = []
    for event in events:
        workload = by_name.get(event.workload or "")
        if workload is None:
            posted.append(Event(event.type, event.reason, event.message))
            continue
        same = groups[(event.type, event.reason)]
        if same[0] is event:
            posted.append(Event(event.type, event.reason, _summary(same)))
        posted.append(Event(event.type, event.reason, event.message, regarding=workload_ref(workload)))
    return posted


def _summary(events: Sequence[PlannedEvent]) -> str:
    first, others = events[0], [e.workload or "" for e in events[1:]]
    if not others:
        return first.message
    named = ", ".join(others[:SUMMARY_NAMES])
    rest = f" and {len(others) - SUMMARY_NAMES} more" if len(others) > SUMMARY_NAMES else ""
    return f"{first.message}; the same for {len(others)} more workload(s): {named}{rest}"


def policy_writes(
    decision: PolicyPlan, namespace: str, workloads: Sequence[WorkloadFacts]
) -> Plan[FinOpsPolicyStatus]:
    """Finalizers first (the ledger must see every GPU pod end), then HPAs, then replica changes and
    suspensions."""
    hpa = "autoscaling/v2", "HorizontalPodAutoscaler"
    by_name = {w.name: w for w in workloads}
    intents: list[Intent] = [
        *(AddFinalizer(_pod_ref(p), LEDGER_FINALIZER) for p in decision.pods_to_track),
        *(RemoveFinalizer(_pod_ref(p), LEDGER_FINALIZER) for p in decision.pods_to_release),
        *(ApplyManifest(manifest) for manifest in decision.hpas.apply),
        *(DeleteObject(ObjectRef(*hpa, name, namespace)) for name in decision.hpas.delete),
        *(
            PatchWorkload(workload_ref(by_name[c.workload]), c.replicas, c.annotations, suspend=c.suspend)
            for c in decision.changes
            if c.workload in by_name
        ),
    ]
    return Plan(
        status=decision.status, events=tuple(_events(decision.events, by_name)), intents=tuple(intents)
    )


def plan_deletion(
    policy: str,
    spec: FinOpsPolicySpec | None,
    workloads: Sequence[WorkloadFacts],
    pods: Sequence[LedgerPod],
) -> tuple[Intent, ...]:
    """Deleting a policy undoes everything it did: replicas and suspensions restored (with an Event on
    the workload) and the ledger finalizers of its pods released (all of them when its spec cannot be
    read)."""
    restores: list[Intent] = []
    for workload in workloads:
        if not workload.as_workload().marked_by(policy):
            continue
        change = restore(workload.as_workload(), "PolicyDeleted", f"FinOpsPolicy {policy} deleted")
        ref = workload_ref(workload)
        event = Event("Normal", "PolicyDeleted", change.message, regarding=ref)
        restores.append(
            PatchWorkload(ref, change.replicas, change.annotations, suspend=change.suspend, event=event)
        )
    by_name = {w.name: w for w in workloads}
    released = [
        RemoveFinalizer(_pod_ref(pod), LEDGER_FINALIZER)
        for pod in pods
        if pod.has_finalizer
        and (
            spec is None
            or any(
                selector_matches(spec.target_workload_selector, selection_labels(w, by_name)) and w.owns(pod)
                for w in workloads
            )
        )
    ]
    return (*restores, *released)
