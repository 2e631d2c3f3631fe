"""``plan_release_gate(spec, observed, now) -> Plan``: one reconcile of a ModelReleaseGate.

Writes: the gate's ValidatingAdmissionPolicy and binding when their spec hash differs from the stored
one. Events: one Warning per newly found finding (capped). Status: the audit of every governed
workload (rule and evidence per finding, since-when kept), Ready (the key is usable) and Compliant,
with a 5-minute heartbeat for lastAuditTime so a quiet cluster sees no status writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.modelreleasegate import GateFinding, ModelReleaseGateSpec, ModelReleaseGateStatus
from finops_operator.planners.admissionpolicy import HASH_ANNOTATION
from finops_operator.planners.plan import ApplyManifest, Event, Plan, invalid_spec, spec_error_message
from finops_operator.planners.releasegate import vap
from finops_operator.planners.releasegate.admission import finding_message
from finops_operator.planners.releasegate.evaluation import evaluate
from finops_operator.planners.releasegate.facts import GateObservation
from finops_operator.planners.releasegate.gate import VerificationKey, parse_spec, selects, verification_key

MAX_FINDINGS = 100
MAX_EVENTS_PER_AUDIT = 10
AUDIT_HEARTBEAT = timedelta(minutes=5)


class GateReason:
    PUBLIC_KEY_UNAVAILABLE = "PublicKeyUnavailable"
    ALL_COMPLIANT = "AllCompliant"
    FINDINGS = "FindingsFound"


def plan_release_gate(
    raw_spec: Mapping[str, Any], observed: GateObservation, now: datetime
) -> Plan[ModelReleaseGateStatus]:
    """Decide one reconcile of one gate. Pure: same inputs, same plan."""
    current = observed.current_status
    try:
        spec = parse_spec(raw_spec)
    except ValidationError as error:
        message = spec_error_message(error)
        return invalid_spec(current, generation=observed.generation, now=now, message=message)
    key = verification_key(spec.signature, observed.key) if spec.signature is not None else None
    findings, governed, failing = audit(spec, observed, key, current.findings, now)
    status = current.model_copy(deep=True)
    status.observed_generation = observed.generation
    status.public_key_fingerprint = key.key.fingerprint if key is not None and key.key is not None else ""
    status.governed_workloads = governed
    status.failing_workloads = failing
    status.compliant_workloads = governed - failing
    status.findings = findings[:MAX_FINDINGS]
    status.finding_count = len(findings)
    status.last_audit_time = now
    status.conditions = apply_conditions(
        current.conditions, conditions(spec, key, governed, failing, findings), observed.generation, now
    )
    return Plan(
        status=keep_quiet(current, status, now),
        events=new_finding_events(observed.name, current.findings, findings),
        intents=tuple(admission_objects(spec, observed)),
        counts=dict(Counter(f.rule for f in findings)),
    )


def audit(
    spec: ModelReleaseGateSpec,
    observed: GateObservation,
    key: VerificationKey | None,
    previous: Sequence[GateFinding],
    now: datetime,
) -> tuple[list[GateFinding], int, int]:
    """(findings, governed workloads, failing workloads) over every workload the gate selects."""
    since = {(f.namespace, f.kind, f.name, f.rule, f.evidence): f.since for f in previous}
    findings: list[GateFinding] = []
    governed = failing = 0
    for workload in sorted(observed.workloads, key=lambda w: (w.namespace, w.kind, w.name)):
        if not selects(spec, observed.namespaces.get(workload.namespace), workload.template_labels):
            continue
        governed += 1
        found = evaluate(spec, workload.evidence, key)
        failing += bool(found)
        for finding in found:
            ident = (workload.namespace, workload.kind, workload.name, finding.rule, finding.evidence)
            findings.append(
                GateFinding(
                    namespace=workload.namespace,
                    kind=workload.kind,
                    name=workload.name,
                    rule=finding.rule,
                    evidence=finding.evidence,
                    value=finding.value,
                    message=finding_message(observed.name, workload, finding),
                    since=since.get(ident, now),
                )
            )
    return findings, governed, failing


def conditions(
    spec: ModelReleaseGateSpec,
    key: VerificationKey | None,
    governed: int,
    failing: int,
    findings: Sequence[GateFinding],
) -> list[ConditionUpdate]:
    mode = spec.enforcement_mode.value
    if key is not None and key.key is None:
        ready = ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.FALSE,
            GateReason.PUBLIC_KEY_UNAVAILABLE,
            f"{key.problem}; every signature check fails until it is fixed",
        )
    else:
        ready = ConditionUpdate(
            ConditionType.READY, ConditionStatus.TRUE, Reason.RECONCILED, f"{governed} workload(s) governed"
        )
    if not findings:
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.TRUE,
            GateReason.ALL_COMPLIANT,
            f"{governed} workload(s) compliant ({mode})",
        )
    else:
        rules = ", ".join(f"{rule}: {n}" for rule, n in sorted(Counter(f.rule for f in findings).items()))
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.FALSE,
            GateReason.FINDINGS,
            f"{governed - failing} workload(s) compliant, {failing} failing; {len(findings)} finding(s) "
            f"({rules}) ({mode})",
        )
    return [ready, compliant]


def admission_objects(spec: ModelReleaseGateSpec, observed: GateObservation) -> list[ApplyManifest]:
    """The gate's ValidatingAdmissionPolicy and binding, when the stored copy has another hash."""
    objects = (
        vap.validating_admission_policy(spec, gate=observed.name, uid=observed.uid),
        vap.validating_admission_policy_binding(spec, gate=observed.name, uid=observed.uid),
    )
    return [
        ApplyManifest(obj)
        for obj in objects
        if observed.admission_hashes.get((obj["kind"], obj["metadata"]["name"]))
        != obj["metadata"]["annotations"][HASH_ANNOTATION]
    ]


def new_finding_events(
    name: str, previous: Sequence[GateFinding], findings: Sequence[GateFinding]
) -> tuple[Event, ...]:
    """One Warning per finding the previous status did not list, at most MAX_EVENTS_PER_AUDIT."""
    known = {(f.namespace, f.kind, f.name, f.rule, f.evidence) for f in previous}
    new = [f for f in findings if (f.namespace, f.kind, f.name, f.rule, f.evidence) not in known]
    events = [
        Event("Warning", "ModelGateFinding", f.message, key=(f.namespace, f.kind, f.name, f.rule, f.evidence))
        for f in new[:MAX_EVENTS_PER_AUDIT]
    ]
    if len(new) > MAX_EVENTS_PER_AUDIT:
        more = len(new) - MAX_EVENTS_PER_AUDIT
        events.append(
            Event(
                "Warning",
                "ModelGateFinding",
                f"ModelReleaseGate {name}: {more} more new finding(s); see status.findings",
                key=("more",),
            )
        )
    return tuple(events)


def keep_quiet(
    current: ModelReleaseGateStatus, desired: ModelReleaseGateStatus, now: datetime
) -> ModelReleaseGateStatus:
    """Keep the previous lastAuditTime while nothing else changed and it is younger than the heartbeat."""
    previous = current.last_audit_time
    if previous is None:
        return desired
    before, after = current.to_wire(), desired.to_wire()
    if all(before.get(k) == v for k, v in after.items() if k != "lastAuditTime") and (
        now - previous < AUDIT_HEARTBEAT
    ):
        return desired.model_copy(update={"last_audit_time": previous})
    return desired
