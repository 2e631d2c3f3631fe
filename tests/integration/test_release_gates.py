"""ModelReleaseGate against the real control plane with the real operator and its webhook: a signed,
compliant model is admitted; a tampered digest, a wrong key, a missing SBOM and a bias score over the
threshold are each rejected naming the rule; Warn and DryRun; the audit of workloads that existed
before the gate; the ValidatingAdmissionPolicy rejecting missing evidence with the operator stopped.

Signatures are real: ECDSA P-256 over the artifact-digest string in cosign's key-pair format
(tests/signing.py), verified by the operator against the PEM key in a labelled ConfigMap. Every
namespace and gate here is this module's own, and removed afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_sovereignty import applied, apply
from tests.kube import Kube, eventually
from tests.operator_process import OperatorProcess, free_port, running_operator
from tests.signing import SigningKey, digest_of, model_evidence

SAMPLE = 2.0
P = "model.finops.dev/"
KEY, OTHER_KEY = SigningKey.generate(), SigningKey.generate()
DIGEST = digest_of(b"llm weights v1")
KEYS_NS = "mrg-keys"
BINDING_LABEL = "release-gate-test"


def evidence(**overrides: str | None) -> dict[str, str]:
    """Annotations of a signed model that passes every rule; a None override removes one."""
    return model_evidence(KEY, DIGEST, **overrides)


def model(namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name, "component": "model"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": "model", "image": "example/llm:1"}]},
            },
        },
    }


def gate(name: str, binding: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "ModelReleaseGate",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {BINDING_LABEL: binding}},
            "workloadSelector": {"matchLabels": {"component": "model"}},
            "enforcementMode": mode,
            "requiredEvidence": ["sbom", "sbom-digest", "xai-report"],
            "thresholds": [{"evidence": "bias.demographicParityDifference", "max": 0.1}],
            "allowedValues": [{"evidence": "card.license", "values": ["apache-2.0", "mit"]}],
            "signature": {"publicKey": {"configMap": {"namespace": KEYS_NS, "name": "model-signing"}}},
        },
    }


def namespace(kube: Kube, name: str, binding: str = "") -> None:
    labels = {BINDING_LABEL: binding} if binding else {}
    applied(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def status(kube: Kube, name: str) -> dict[str, Any]:
    return dict(kube.get_json("mrg", name).get("status") or {})


def condition(kube: Kube, name: str, kind: str) -> dict[str, Any]:
    return next((c for c in status(kube, name).get("conditions", []) if c["type"] == kind), {})


def findings(kube: Kube, gate_name: str, workload: str) -> list[dict[str, Any]]:
    return [f for f in status(kube, gate_name).get("findings", []) if f["name"] == workload]


@pytest.fixture(scope="module")
def signing_key(kube: Kube) -> Iterator[None]:
    """The public key as cosign.pub, in a ConfigMap labelled as a signing key."""
    namespace(kube, KEYS_NS)
    applied(
        kube,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "model-signing",
                "namespace": KEYS_NS,
                "labels": {"finops.dev/model-signing-key": "true"},
            },
            "data": {"cosign.pub": KEY.public_pem},
        },
    )
    yield
    kube.kubectl("delete", "namespace", KEYS_NS, "--ignore-not-found", "--wait=false")


@pytest.fixture
def cleanup(kube: Kube) -> Iterator[tuple[list[str], list[str]]]:
    gates: list[str] = []
    namespaces: list[str] = []
    yield gates, namespaces
    for name in gates:
        kube.kubectl(
            "patch", "mrg", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
        kube.kubectl("delete", "mrg", name, "--ignore-not-found", "--wait=false")
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            kube.kubectl("delete", kind, f"finops-modelgate-{name}", "--ignore-not-found")
    for name in namespaces:
        kube.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def _webhook_operator(kube: Kube, tmp_path: Path) -> Any:
    return running_operator(
        kube, tmp_path, "--sample-interval", str(SAMPLE), "--webhook", "--webhook-port", str(free_port())
    )


def _wait_for_webhooks(kube: Kube) -> None:
    eventually(
        lambda: (
            "modelgate"
            in kube.kubectl("get", "validatingwebhookconfiguration", "finops.dev", "-o", "yaml", check=False)
        ),
        timeout=30,
        what="the managed ValidatingWebhookConfiguration",
    )


def _drop_webhooks(kube: Kube) -> None:
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        kube.kubectl("delete", kind, "finops.dev", "--ignore-not-found")


@pytest.fixture
def operator(kube: Kube, tmp_path: Path, signing_key: None) -> Iterator[OperatorProcess]:
    with _webhook_operator(kube, tmp_path) as process:
        _wait_for_webhooks(kube)
        yield process
    _drop_webhooks(kube)


def _ready(kube: Kube, name: str) -> None:
    eventually(
        lambda: (
            condition(kube, name, "Ready").get("status") == "True"
            and kube.get_json("validatingadmissionpolicybinding", f"finops-modelgate-{name}")
        ),
        timeout=30,
        what=f"gate {name} Ready with its admission policy",
    )


def test_enforce_admits_a_signed_compliant_model_and_rejects_each_failure_naming_the_rule(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    name, ns = "mrg-test-enforce", "mrg-enforce"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "enforce")
    # Before the gate exists: a model without an SBOM, to be found by the audit.
    applied(kube, model(ns, "legacy", evidence(sbom=None)))
    applied(kube, gate(name, "enforce", "Enforce"))
    _ready(kube, name)
    assert status(kube, name)["publicKeyFingerprint"].startswith("sha256:")

    result = apply(kube, model(ns, "llm", evidence()))
    assert result.returncode == 0, result.stderr
    eventually(
        lambda: kube.get_json("pods", "-n", ns, "-l", "app=llm")["items"], timeout=30, what="the model's pod"
    )

    for bad, rule, what in (
        ("tampered", "Signature", {"artifact-digest": digest_of(b"other weights")}),
        ("wrong-key", "Signature", {"signature": OTHER_KEY.sign(DIGEST)}),
        ("no-sbom", "RequiredEvidence", {"sbom": None}),
        ("biased", "Threshold", {"bias.demographicParityDifference": "0.25"}),
    ):
        rejected = apply(kube, model(ns, bad, evidence(**what)))
        assert rejected.returncode != 0, f"{bad} was admitted"
        assert f"ModelReleaseGate {name}: Deployment {ns}/{bad}" in rejected.stderr, rejected.stderr
        assert f"[rule {rule}]" in rejected.stderr, rejected.stderr
    assert (
        "does not verify against public key sha256:"
        in apply(kube, model(ns, "wrong-key", evidence(signature=OTHER_KEY.sign(DIGEST)))).stderr
    )

    # The workload that predates the gate is audited into status, with rule and evidence.
    (finding,) = eventually(lambda: findings(kube, name, "legacy"), timeout=30, what="legacy audited")
    assert (finding["rule"], finding["evidence"], finding["kind"]) == (
        "RequiredEvidence",
        P + "sbom",
        "Deployment",
    )
    assert finding["since"] and not findings(kube, name, "llm")
    assert condition(kube, name, "Compliant")["status"] == "False"
    assert "Enforce" in kube.kubectl("get", "mrg", name)
    events = kube.get_json("events", "-A", "--field-selector", "reason=ModelGateFinding")["items"]
    assert any("legacy" in e.get("message", "") for e in events)
    assert 'finops_model_gate_findings{gate="mrg-test-enforce",rule="RequiredEvidence"} 1.0' in (
        operator.metrics()
    )
    # Scaling an old violator is never blocked: only template changes are judged.
    kube.kubectl("scale", "deploy", "-n", ns, "legacy", "--replicas=0")


def test_warn_admits_with_a_warning_and_dry_run_only_reports(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    warn, dry = "mrg-test-warn", "mrg-test-dry"
    cleanup[0].extend([warn, dry])
    cleanup[1].extend(["mrg-warn", "mrg-dry"])
    namespace(kube, "mrg-warn", "warn")
    namespace(kube, "mrg-dry", "dry")
    applied(kube, gate(warn, "warn", "Warn"), gate(dry, "dry", "DryRun"))
    _ready(kube, warn)
    _ready(kube, dry)
    biased = {"bias.demographicParityDifference": "0.3"}

    warned = apply(kube, model("mrg-warn", "biased", evidence(**biased)))
    assert warned.returncode == 0, warned.stderr
    assert "Warning:" in warned.stderr and f"ModelReleaseGate {warn}" in warned.stderr
    assert "[rule Threshold]" in warned.stderr
    tampered = apply(kube, model("mrg-warn", "tampered", evidence(**{"artifact-digest": digest_of(b"x")})))
    assert tampered.returncode == 0 and "[rule Signature]" in tampered.stderr

    quiet = apply(kube, model("mrg-dry", "biased", evidence(**biased)))
    assert quiet.returncode == 0, quiet.stderr
    assert "ModelReleaseGate" not in quiet.stderr
    (reported,) = eventually(lambda: findings(kube, dry, "biased"), timeout=30, what="dry-run finding")
    assert (reported["rule"], reported["value"]) == ("Threshold", "0.3")
    assert kube.get_json("validatingadmissionpolicybinding", f"finops-modelgate-{dry}")["spec"][
        "validationActions"
    ] == ["Audit"]
    assert kube.get_json("validatingadmissionpolicybinding", f"finops-modelgate-{warn}")["spec"][
        "validationActions"
    ] == ["Warn"]

    # Level-triggered but quiet: once nothing changes, the audits write nothing.
    def version() -> str:
        return str(kube.get_json("mrg", dry)["metadata"]["resourceVersion"])

    before = version()
    time.sleep(3 * SAMPLE)
    assert version() == before


def test_admission_policy_rejects_missing_evidence_while_the_operator_is_stopped(
    kube: Kube, tmp_path: Path, signing_key: None, cleanup: tuple[list[str], list[str]]
) -> None:
    name, ns = "mrg-test-offline", "mrg-offline"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    namespace(kube, ns, "offline")
    try:
        with _webhook_operator(kube, tmp_path) as process:
            _wait_for_webhooks(kube)
            applied(kube, gate(name, "offline", "Enforce"))
            _ready(kube, name)
            assert process.terminate() == 0
    finally:
        _drop_webhooks(kube)

    def rejected_by_policy() -> str:
        result = apply(kube, model(ns, "no-sbom", evidence(sbom=None)))
        return (
            result.stderr if result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr else ""
        )

    stderr = eventually(rejected_by_policy, timeout=30, what="rejection by the ValidatingAdmissionPolicy")
    assert f"ModelReleaseGate {name}: Deployment {ns}/no-sbom lacks evidence annotation {P}sbom" in stderr
    assert "[rule RequiredEvidence]" in stderr
    over = apply(kube, model(ns, "biased", evidence(**{"bias.demographicParityDifference": "0.5"})))
    assert over.returncode != 0 and "[rule Threshold]" in over.stderr
    licence = apply(kube, model(ns, "gpl", evidence(**{"card.license": "gpl-3.0"})))
    assert licence.returncode != 0 and "[rule AllowedValue]" in licence.stderr
    # What CEL cannot check gets in while the operator is down (documented), and the audit finds it.
    assert (
        apply(kube, model(ns, "tampered", evidence(**{"artifact-digest": digest_of(b"x")}))).returncode == 0
    )
    restarted = tmp_path / "restarted"
    restarted.mkdir()
    try:
        with _webhook_operator(kube, restarted):
            (found,) = eventually(lambda: findings(kube, name, "tampered"), timeout=30, what="audit")
            assert found["rule"] == "Signature"
    finally:
        _drop_webhooks(kube)


def test_edge_fleet_does_not_start_a_revision_the_gate_refuses(
    kube: Kube, operator: OperatorProcess, cleanup: tuple[list[str], list[str]]
) -> None:
    from tests.integration import test_edgefleet as fleets

    name, ns, group = "mrg-test-fleet", "mrg-fleet", "mrg-gates"
    cleanup[0].append(name)
    cleanup[1].append(ns)
    with fleets.fleet_sites(kube, ns, group, 2):
        kube.kubectl("label", "namespace", ns, f"{BINDING_LABEL}=fleet", "--overwrite")
        applied(kube, gate(name, "fleet", "Enforce"))
        _ready(kube, name)

        def version(model_version: str, annotations: dict[str, str]) -> dict[str, Any]:
            manifest = fleets.fleet(ns, "assistant", group, model_version)
            template = manifest["spec"]["template"]
            template["metadata"]["labels"]["component"] = "model"
            template["metadata"]["annotations"] = annotations
            return manifest

        applied(kube, version("v1", evidence()))
        v1 = fleets.settled(kube, ns, "assistant", 2)["stableRevision"]
        applied(kube, version("v2", evidence(**{"bias.demographicParityDifference": "0.5"})))

        def refused() -> dict[str, Any]:
            found = fleets.condition(fleets.status(kube, ns, "assistant"), "Progressing")
            return found if found.get("reason") == "GateRefused" else {}

        progressing = eventually(refused, timeout=30, what="Progressing=False GateRefused")
        assert f"ModelReleaseGate {name}" in progressing["message"]
        assert "[rule Threshold]" in progressing["message"]
        assert set(fleets.revisions(kube, ns, "assistant").values()) == {v1}
        assert "GateRefused" in fleets.reasons(kube, ns, "assistant")
