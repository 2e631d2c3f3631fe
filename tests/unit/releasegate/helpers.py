"""A gate spec and the evidence of a signed, compliant model, for the release-gate unit tests."""

from __future__ import annotations

from typing import Any

from finops_operator.api.modelreleasegate import ModelReleaseGateSpec
from finops_operator.planners.releasegate import KeyMaterial, parse_spec, verification_key
from finops_operator.planners.releasegate.gate import VerificationKey
from tests.signing import SigningKey, digest_of, model_evidence

KEY = SigningKey.generate()
OTHER_KEY = SigningKey.generate()
DIGEST = digest_of(b"model weights v1")
P = "model.finops.dev/"


def raw_spec(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"release-gate": "prod"}},
        "workloadSelector": {"matchLabels": {"component": "model"}},
        "requiredEvidence": ["sbom", "sbom-digest", "xai-report"],
        "thresholds": [{"evidence": "bias.demographicParityDifference", "max": 0.1}],
        "allowedValues": [{"evidence": "card.license", "values": ["apache-2.0", "mit"]}],
        "signature": {"publicKey": {"configMap": {"namespace": "keys", "name": "signing"}}},
    }
    raw.update(overrides)
    return raw


def spec(**overrides: Any) -> ModelReleaseGateSpec:
    return parse_spec(raw_spec(**overrides))


def key(pem: str | None = KEY.public_pem) -> VerificationKey:
    rule = spec().signature
    assert rule is not None
    return verification_key(rule, KeyMaterial(pem))


def evidence(**overrides: str | None) -> dict[str, str]:
    """Annotations of a signed model that passes every rule; a None override removes one."""
    return model_evidence(KEY, DIGEST, **overrides)
