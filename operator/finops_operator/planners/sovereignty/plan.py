"""``plan_sovereignty(spec, observed, now) -> Plan``: everything one reconcile of a SovereignRegion
decides, from the audit to the writes that follow from it.

Writes, in order: the region's ValidatingAdmissionPolicy and binding when their spec hash differs
from what the API server has; in Enforce mode, the required node affinity restored on workloads that
lost it and out-of-region pods evicted (evictOutOfRegionPods), both throttled per audit so a wrong
node selector cannot roll out or drain a namespace in one tick. Events: one Warning per newly found
violation (capped). Status: the audit, with the lastAuditTime heartbeat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from finops_operator.api.common import EnforcementMode
from finops_operator.api.sovereignregion import (
    SovereignRegionSpec,
    SovereignRegionStatus,
    SovereigntyViolation,
)
from finops_operator.planners import admissionpolicy
from finops_operator.planners.plan import (
    ApplyManifest,
    Event,
    Evict,
    Intent,
    ObjectRef,
    PatchPodTemplate,
    Plan,
    invalid_spec,
    spec_error_message,
)
from finops_operator.planners.sovereignty import vap
from finops_operator.planners.sovereignty.affinity import merge_required_affinity
from finops_operator.planners.sovereignty.audit import AuditResult, audit
from finops_operator.planners.sovereignty.evaluation import evaluate_pod_template
from finops_operator.planners.sovereignty.facts import SovereigntyObservation
from finops_operator.planners.sovereignty.region import PreparedRegion, parse_spec, prepare_region
from finops_operator.planners.sovereignty.status import keep_quiet, plan_region_status
from finops_operator.workloads.templates import MUTABLE_TEMPLATE_KINDS, WORKLOAD_API_VERSIONS

MAX_EVICTIONS_PER_AUDIT = 5
"""Evictions per region per audit: a wrong node selector must not drain a namespace in one tick."""
MAX_REPAIRS_PER_AUDIT = 10
"""Affinity repairs per region per audit: each one starts a rollout."""
MAX_EVENTS_PER_AUDIT = 10
EVERY_VIOLATION = 1_000_000
"""The audit keeps every violation for metrics and Events; the status lists the first 100."""


def plan_sovereignty(
    raw_spec: Mapping[str, Any], observed: SovereigntyObservation, now: datetime
) -> Plan[SovereignRegionStatus]:
    """Decide one reconcile of one region. Pure: same inputs, same plan; applying it and planning
    again from what it wrote yields no further writes."""
    current = observed.current_status
    try:
        spec = parse_spec(raw_spec)
    except ValidationError as error:
        message = spec_error_message(error)
        return invalid_spec(current, generation=observed.generation, now=now, message=message)
    region = prepare_region(spec, observed.nodes, observed.name)
    result = audit(
        region, observed.inventory, previous_violations=current.violations, now=now, cap=EVERY_VIOLATION
    )
    status = plan_region_status(
        spec,
        generation=observed.generation,
        current_status=current,
        audit_result=result,
        namespace_conflicts=observed.conflicts,
        matching_nodes=len(region.inside),
        now=now,
        region_name=observed.name,
    )
    intents: list[Intent] = list(admission_objects(spec, observed))
    notes = list(result.notes[:MAX_EVENTS_PER_AUDIT])
    if spec.enforcement_mode == EnforcementMode.ENFORCE:
        intents.extend(repairs(spec, region, observed))
        intents.extend(evictions(observed.name, result))
        if len(result.evictions) > MAX_EVICTIONS_PER_AUDIT:
            more = len(result.evictions) - MAX_EVICTIONS_PER_AUDIT
            notes.append(f"eviction throttled: {more} more pod(s) next audit")
    return Plan(
        status=keep_quiet(current, status, now),
        events=new_violation_events(observed.name, current.violations, result.violations),
        intents=tuple(intents),
        notes=tuple(notes),
        counts=dict(Counter(v.rule for v in result.violations)),
    )


def admission_objects(spec: SovereignRegionSpec, observed: SovereigntyObservation) -> list[ApplyManifest]:
    """The region's ValidatingAdmissionPolicy and binding, when the API server's copy has another hash."""
    name, uid = observed.name, observed.uid
    policy = vap.validating_admission_policy(spec, region_name=name, uid=uid, nodes=observed.nodes)
    binding = vap.validating_admission_policy_binding(
        spec, region_name=name, uid=uid, excluded_namespaces=sorted(observed.conflicts)
    )
    return [
        ApplyManifest(obj)
        for obj in (policy, binding)
        if observed.admission_hashes.get((obj["kind"], obj["metadata"]["name"]))
        != obj["metadata"]["annotations"][admissionpolicy.HASH_ANNOTATION]
    ]


def repairs(
    spec: SovereignRegionSpec, region: PreparedRegion, observed: SovereigntyObservation
) -> list[PatchPodTemplate]:
    """Re-apply the region's required node affinity to governed workloads that lost it, at most
    MAX_REPAIRS_PER_AUDIT. Only workloads that ask for nothing outside the region: confining an
    explicit violator would only leave its new pods unschedulable (and the ValidatingAdmissionPolicy
    rejects that patch anyway); those stay listed as violations for a human to fix. Each repair
    changes the pod template, which starts a rollout: that is the point, the running pods are
    replaced by confined ones."""
    found: list[PatchPodTemplate] = []
    namespaces = observed.inventory.namespaces
    for workload in observed.inventory.workloads:
        if len(found) >= MAX_REPAIRS_PER_AUDIT:
            break
        if workload.kind not in MUTABLE_TEMPLATE_KINDS:
            continue
        merged, changed = merge_required_affinity(workload.pod_spec, spec)
        if not changed or evaluate_pod_template(workload, region, namespaces.get(workload.namespace)):
            continue
        required = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        target = ObjectRef(
            WORKLOAD_API_VERSIONS[workload.kind], workload.kind, workload.name, workload.namespace
        )
        message = (
            f"SovereignRegion {observed.name}: restored the required node affinity of {workload.kind} "
            f"{workload.namespace}/{workload.name} (region {spec.region})"
        )
        found.append(
            PatchPodTemplate(
                target,
                {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}},
                event=Event("Normal", "SovereigntyAffinityRestored", message, regarding=target),
            )
        )
    return found


def evictions(name: str, result: AuditResult) -> list[Evict]:
    """policy/v1 Evictions of out-of-region pods (PodDisruptionBudgets are respected), at most
    MAX_EVICTIONS_PER_AUDIT; the rest wait for the next audit."""
    found: list[Evict] = []
    for pod in result.evictions[:MAX_EVICTIONS_PER_AUDIT]:
        target = ObjectRef("v1", "Pod", pod.name, pod.namespace)
        message = (
            f"SovereignRegion {name}: evicted Pod {pod.namespace}/{pod.name}, running outside the region"
        )
        found.append(Evict(target, event=Event("Normal", "SovereigntyEviction", message, regarding=target)))
    return found


def new_violation_events(
    name: str, previous: Sequence[SovereigntyViolation], violations: Sequence[SovereigntyViolation]
) -> tuple[Event, ...]:
    """One Warning Event per violation the previous status did not list, at most MAX_EVENTS_PER_AUDIT,
    and one more saying how many were left out."""
    known = {(v.namespace, v.kind, v.name, v.rule) for v in previous}
    new = [v for v in violations if (v.namespace, v.kind, v.name, v.rule) not in known]
    events = [
        Event("Warning", "SovereigntyViolation", v.message, key=(v.namespace, v.kind, v.name, v.rule))
        for v in new[:MAX_EVENTS_PER_AUDIT]
    ]
    if len(new) > MAX_EVENTS_PER_AUDIT:
        more = len(new) - MAX_EVENTS_PER_AUDIT
        events.append(
            Event(
                "Warning",
                "SovereigntyViolation",
                f"SovereignRegion {name}: {more} more new violation(s); see status.violations",
                key=("more",),
            )
        )
    return tuple(events)
