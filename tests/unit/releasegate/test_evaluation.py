"""Judging evidence against a gate: one row per rule and per way evidence goes wrong. Signatures are
real (ECDSA P-256 over the digest string, cosign's key-pair format)."""

from __future__ import annotations

import pytest

from finops_operator.planners.releasegate import Rule, evaluate
from finops_operator.planners.releasegate.gate import VerificationKey
from finops_operator.planners.releasegate.signature import PublicKeyError, load_public_key
from tests.signing import digest_of
from tests.unit.releasegate.helpers import DIGEST, KEY, OTHER_KEY, P, evidence, key, spec

BIAS = "bias.demographicParityDifference"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, [], id="signed-compliant-model"),
        pytest.param({"sbom": None}, [(Rule.REQUIRED_EVIDENCE, P + "sbom")], id="missing-sbom"),
        pytest.param(
            {"artifact-digest": digest_of(b"tampered weights")},
            [(Rule.SIGNATURE, P + "signature")],
            id="tampered-digest",
        ),
        pytest.param(
            {"signature": OTHER_KEY.sign(DIGEST)}, [(Rule.SIGNATURE, P + "signature")], id="wrong-key"
        ),
        pytest.param(
            {"signature": "not base64!"}, [(Rule.SIGNATURE, P + "signature")], id="garbage-signature"
        ),
        pytest.param({"signature": "x" * 5000}, [(Rule.SIGNATURE, P + "signature")], id="huge-signature"),
        pytest.param(
            {"signature": None},
            [(Rule.REQUIRED_EVIDENCE, P + "signature")],
            id="unsigned-is-missing-not-a-bad-signature",
        ),
        pytest.param({BIAS: "0.2"}, [(Rule.THRESHOLD, P + BIAS)], id="bias-over-threshold"),
        pytest.param({BIAS: "0.1"}, [], id="bias-at-threshold"),
        pytest.param({BIAS: "1e-3"}, [], id="bias-exponent"),
        pytest.param({BIAS: "nan"}, [(Rule.THRESHOLD, P + BIAS)], id="bias-nan"),
        pytest.param({BIAS: "low"}, [(Rule.THRESHOLD, P + BIAS)], id="bias-not-a-number"),
        pytest.param({BIAS: None}, [(Rule.REQUIRED_EVIDENCE, P + BIAS)], id="bias-missing"),
        pytest.param(
            {"card.license": "proprietary"}, [(Rule.ALLOWED_VALUE, P + "card.license")], id="licence"
        ),
        pytest.param(
            {"sbom": None, BIAS: "0.5", "card.license": "gpl-3.0"},
            [
                (Rule.REQUIRED_EVIDENCE, P + "sbom"),
                (Rule.THRESHOLD, P + BIAS),
                (Rule.ALLOWED_VALUE, P + "card.license"),
            ],
            id="every-failure-reported",
        ),
    ],
)
def test_rules(overrides: dict[str, str | None], expected: list[tuple[str, str]]) -> None:
    found = evaluate(spec(), evidence(**overrides), key())
    assert [(f.rule, f.evidence) for f in found] == expected


def test_messages_name_the_annotation_the_value_and_the_requirement() -> None:
    (bias,) = evaluate(spec(), evidence(**{BIAS: "0.2"}), key())
    assert bias.message == f"{P}{BIAS}=0.2 is outside the threshold (required <= 0.1)" and bias.value == "0.2"
    (wrong,) = evaluate(spec(), evidence(signature=OTHER_KEY.sign(DIGEST)), key())
    assert "does not verify against public key sha256:" in wrong.message and wrong.value == DIGEST


def test_min_and_max_bounds() -> None:
    gate = spec(thresholds=[{"evidence": "fairness.equalOpportunity", "min": 0.8, "max": 1.0}])
    low = {P + "fairness.equalOpportunity": "0.7"}
    (found,) = [f for f in evaluate(gate, {**evidence(), **low}, key()) if f.rule == Rule.THRESHOLD]
    assert "(required >= 0.8 and <= 1)" in found.message


def test_an_unusable_key_fails_every_signature_and_says_why() -> None:
    (found,) = evaluate(spec(), evidence(), key(pem=None))
    assert found.rule == Rule.SIGNATURE
    assert "public key ConfigMap keys/signing key cosign.pub: not found" in found.message
    (bad,) = evaluate(
        spec(), evidence(), key(pem="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
    )
    assert "not a PEM public key" in bad.message


def test_signature_not_checked_without_a_key_state() -> None:
    """The static rules alone (what the ValidatingAdmissionPolicy also holds)."""
    assert evaluate(spec(), evidence(signature=OTHER_KEY.sign(DIGEST)), None) == []


def test_keys_other_than_ecdsa_p256_are_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(PublicKeyError, match="P-256"):
        load_public_key(pem.decode())
    assert load_public_key(KEY.public_pem).fingerprint.startswith("sha256:")
    assert isinstance(key(), VerificationKey) and key().key is not None
