"""plan_release_gate: the audit into status (rule and evidence), conditions, Events for new findings,
admission objects only when their hash differs, invalid specs, quiet when nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finops_operator.api.modelreleasegate import ModelReleaseGateStatus
from finops_operator.planners.admissionpolicy import HASH_ANNOTATION
from finops_operator.planners.plan import ApplyManifest
from finops_operator.planners.releasegate import (
    GateObservation,
    KeyMaterial,
    ModelWorkload,
    plan_release_gate,
)
from tests.unit.releasegate.helpers import KEY, P, evidence, raw_spec, spec

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NAMESPACES = {"serving": {"release-gate": "prod"}, "dev": {}}


def workload(name: str, annotations: dict[str, str], namespace: str = "serving") -> ModelWorkload:
    return ModelWorkload(namespace, "Deployment", name, {"component": "model"}, annotations)


def observe(
    *workloads: ModelWorkload,
    status: ModelReleaseGateStatus | None = None,
    pem: str | None = KEY.public_pem,
    hashes: dict[tuple[str, str], str] | None = None,
) -> GateObservation:
    return GateObservation(
        name="prod",
        uid="u-1",
        generation=2,
        current_status=status or ModelReleaseGateStatus(),
        namespaces=NAMESPACES,
        workloads=workloads,
        key=KeyMaterial(pem, "" if pem else "ConfigMap keys/signing not found"),
        admission_hashes=hashes or {},
    )


def condition(status: ModelReleaseGateStatus, kind: str) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == kind)
    return found.status.value, found.reason


def test_audit_lists_rule_and_evidence_of_existing_workloads() -> None:
    observed = observe(
        workload("good", evidence()),
        workload("biased", evidence(**{"bias.demographicParityDifference": "0.3"})),
        workload("elsewhere", {}, namespace="dev"),
    )
    plan = plan_release_gate(raw_spec(), observed, NOW)
    status = plan.status
    assert (status.governed_workloads, status.compliant_workloads, status.failing_workloads) == (2, 1, 1)
    (finding,) = status.findings
    assert (finding.name, finding.rule, finding.evidence, finding.value) == (
        "biased",
        "Threshold",
        P + "bias.demographicParityDifference",
        "0.3",
    )
    assert finding.since == NOW and "[rule Threshold]" in finding.message
    assert condition(status, "Ready") == ("True", "Reconciled")
    assert condition(status, "Compliant") == ("False", "FindingsFound")
    assert status.public_key_fingerprint.startswith("sha256:")
    assert [e.reason for e in plan.events] == ["ModelGateFinding"]
    assert plan.counts == {"Threshold": 1}


def test_a_second_reconcile_keeps_since_and_posts_no_event_and_writes_nothing() -> None:
    observed = observe(workload("biased", evidence(**{"bias.demographicParityDifference": "0.3"})))
    first = plan_release_gate(raw_spec(), observed, NOW)
    hashes = {
        (i.manifest["kind"], i.manifest["metadata"]["name"]): i.manifest["metadata"]["annotations"][
            HASH_ANNOTATION
        ]
        for i in first.intents
        if isinstance(i, ApplyManifest)
    }
    again = plan_release_gate(
        raw_spec(),
        observe(*observed.workloads, status=first.status, hashes=hashes),
        NOW + timedelta(minutes=1),
    )
    assert again.status.to_wire() == first.status.to_wire()
    assert again.events == () and again.intents == ()
    assert len(first.intents) == 2


def test_missing_key_is_ready_false_and_fails_signatures() -> None:
    plan = plan_release_gate(raw_spec(), observe(workload("good", evidence()), pem=None), NOW)
    assert condition(plan.status, "Ready") == ("False", "PublicKeyUnavailable")
    assert plan.status.findings[0].rule == "Signature"


def test_invalid_spec_is_ready_false_with_the_path_and_no_writes() -> None:
    plan = plan_release_gate({**raw_spec(), "thresholds": [{"evidence": "bad name!"}]}, observe(), NOW)
    ready = plan.status.conditions[0]
    assert (ready.status.value, ready.reason) == ("False", "InvalidSpec")
    assert ready.message.startswith("spec.thresholds.0.evidence")
    assert plan.intents == ()


def test_gate_without_signature_needs_no_key() -> None:
    raw = {k: v for k, v in raw_spec().items() if k != "signature"}
    plan = plan_release_gate(raw, observe(workload("good", evidence(signature=None))), NOW)
    assert plan.status.findings == [] and condition(plan.status, "Ready")[0] == "True"
    assert spec().signature is not None
