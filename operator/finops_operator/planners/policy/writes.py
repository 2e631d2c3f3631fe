"""A policy's decision as plan intents: the ledger finalizers, the owned HPAs, the replica changes, and
the Events (on the policy, and again on the workload they are about). Pure."""

from __future__ import annotations

from collections.abc import Sequence

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
from finops_operator.planners.policy.observation import DeploymentFacts
from finops_operator.planners.policy.plan import PolicyPlan


def _deployment(name: str, namespace: str, uid: str = "") -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", name, namespace, uid=uid)


def deployment_ref(deployment: DeploymentFacts) -> ObjectRef:
    return _deployment(deployment.name, deployment.namespace, deployment.uid)


def _pod_ref(pod: LedgerPod) -> ObjectRef:
    return ObjectRef("v1", "Pod", pod.name, pod.namespace)


def _events(events: Sequence[PlannedEvent], deployments: Sequence[DeploymentFacts]) -> list[Event]:
    """Each Event on the policy, and on the Deployment it names (so `kubectl describe` shows it there)."""
    by_name = {d.name: d for d in deployments}
    posted: list[Event] = []
    for event in events:
        posted.append(Event(event.type, event.reason, event.message))
        deployment = by_name.get(event.workload or "")
        if deployment is not None:
            regarding = deployment_ref(deployment)
            posted.append(Event(event.type, event.reason, event.message, regarding=regarding))
    return posted


def policy_writes(
    decision: PolicyPlan, namespace: str, deployments: Sequence[DeploymentFacts]
) -> Plan[FinOpsPolicyStatus]:
    """Finalizers first (the ledger must see every GPU pod end), then HPAs, then replica changes."""
    hpa = "autoscaling/v2", "HorizontalPodAutoscaler"
    intents: list[Intent] = [
        *(AddFinalizer(_pod_ref(p), LEDGER_FINALIZER) for p in decision.pods_to_track),
        *(RemoveFinalizer(_pod_ref(p), LEDGER_FINALIZER) for p in decision.pods_to_release),
        *(ApplyManifest(manifest) for manifest in decision.hpas.apply),
        *(DeleteObject(ObjectRef(*hpa, name, namespace)) for name in decision.hpas.delete),
        *(
            PatchWorkload(
                ObjectRef("apps/v1", "Deployment", c.workload, namespace), c.replicas, c.annotations
            )
            for c in decision.changes
        ),
    ]
    return Plan(
        status=decision.status, events=tuple(_events(decision.events, deployments)), intents=tuple(intents)
    )


def plan_deletion(
    policy: str,
    spec: FinOpsPolicySpec | None,
    deployments: Sequence[DeploymentFacts],
    pods: Sequence[LedgerPod],
) -> tuple[Intent, ...]:
    """Deleting a policy undoes everything it did: replicas restored (with an Event on the workload)
    and the ledger finalizers of its pods released (all of them when its spec cannot be read)."""
    restores: list[Intent] = []
    for deployment in deployments:
        if not deployment.as_workload().marked_by(policy):
            continue
        change = restore(deployment.as_workload(), "PolicyDeleted", f"FinOpsPolicy {policy} deleted")
        ref = deployment_ref(deployment)
        event = Event("Normal", "PolicyDeleted", change.message, regarding=ref)
        restores.append(PatchWorkload(ref, change.replicas, change.annotations, event=event))
    released = [
        RemoveFinalizer(_pod_ref(pod), LEDGER_FINALIZER)
        for pod in pods
        if pod.has_finalizer
        and (
            spec is None
            or any(
                selector_matches(spec.target_workload_selector, d.labels) and d.owns(pod) for d in deployments
            )
        )
    ]
    return (*restores, *released)
