"""What admission answers: selection, modes, unchanged updates, gates composing."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.planners.releasegate import AdmissionReview, GateState, plan_admission
from tests.unit.releasegate.helpers import evidence, key, spec

NS_LABELS = {"release-gate": "prod"}


def deployment(annotations: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "serving"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": labels or {"component": "model"}, "annotations": annotations},
                "spec": {"containers": [{"name": "m", "image": "llm:1"}]},
            },
        },
    }


def review(body: dict[str, Any], *, mode: str = "Enforce", **kwargs: Any) -> AdmissionReview:
    gates = {"prod": GateState(spec(enforcementMode=mode), key())}
    return AdmissionReview(
        kind=kwargs.get("kind", "Deployment"),
        body=body,
        old=kwargs.get("old"),
        operation=kwargs.get("operation", "CREATE"),
        namespace_labels=kwargs.get("namespace_labels", NS_LABELS),
        gates=kwargs.get("gates", gates),
    )


@pytest.mark.parametrize(
    ("mode", "allowed", "warned", "reported"),
    [
        pytest.param("Enforce", False, False, False, id="enforce-rejects"),
        pytest.param("Warn", True, True, False, id="warn-admits-with-warning"),
        pytest.param("DryRun", True, False, True, id="dry-run-admits-silently"),
    ],
)
def test_modes(mode: str, allowed: bool, warned: bool, reported: bool) -> None:
    answer = plan_admission(review(deployment(evidence(sbom=None)), mode=mode))
    assert answer.allowed is allowed
    assert bool(answer.warnings) is warned and bool(answer.dry_run_report) is reported
    text = answer.message or " ".join(answer.warnings) or " ".join(answer.dry_run_report)
    assert text == (
        "ModelReleaseGate prod: Deployment serving/llm lacks evidence annotation model.finops.dev/sbom "
        "[rule RequiredEvidence]"
    )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"namespace_labels": {"release-gate": "staging"}}, id="namespace-not-bound"),
        pytest.param({"namespace_labels": None}, id="namespace-unknown"),
        pytest.param({"kind": "ConfigMap"}, id="kind-without-template"),
    ],
)
def test_not_governed(changes: dict[str, Any]) -> None:
    assert plan_admission(review(deployment({}), **changes)).allowed


def test_workload_selector_is_on_pod_template_labels() -> None:
    assert plan_admission(review(deployment({}, labels={"component": "web"}))).allowed
    assert not plan_admission(review(deployment({}))).allowed


def test_unchanged_update_is_never_judged_but_a_template_change_is() -> None:
    old = deployment({})
    scaled = {**old, "spec": {**old["spec"], "replicas": 3}}
    assert plan_admission(review(scaled, operation="UPDATE", old=old)).allowed
    new_annotations = deployment(evidence(sbom=None))
    assert not plan_admission(review(new_annotations, operation="UPDATE", old=old)).allowed


def test_pods_and_cronjobs_read_their_own_template() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "serving",
            "labels": {"component": "model"},
            "annotations": evidence(),
        },
        "spec": {},
    }
    assert plan_admission(review(pod, kind="Pod")).allowed
    template = deployment(evidence(**{"bias.demographicParityDifference": "0.3"}))["spec"]["template"]
    cron = {
        "kind": "CronJob",
        "metadata": {"name": "retrain", "namespace": "serving"},
        "spec": {"jobTemplate": {"spec": {"template": template}}},
    }
    answer = plan_admission(review(cron, kind="CronJob"))
    assert not answer.allowed and "[rule Threshold]" in answer.message


def test_gates_compose_each_with_its_mode() -> None:
    gates = {
        "prod": GateState(spec(), key()),
        "audit": GateState(spec(enforcementMode="Warn", requiredEvidence=["card.owner"]), key()),
    }
    answer = plan_admission(review(deployment(evidence()), gates=gates))
    assert answer.allowed
    assert answer.warnings == (
        "ModelReleaseGate audit: Deployment serving/llm lacks evidence annotation "
        "model.finops.dev/card.owner [rule RequiredEvidence]",
    )
