"""Test signing keys and signatures in exactly cosign's key-pair format: the public key as PEM
SubjectPublicKeyInfo (what ``cosign generate-key-pair`` writes to cosign.pub) and the signature as
the base64 of an ASN.1 DER ECDSA P-256 / SHA-256 signature over the blob's bytes (what
``cosign sign-blob --key cosign.key`` prints). The blob is the artifact digest string."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, blob: str) -> str:
        """``cosign sign-blob --key cosign.key`` output for a file holding exactly ``blob``."""
        return base64.b64encode(self.private.sign(blob.encode(), ec.ECDSA(hashes.SHA256()))).decode()


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


EVIDENCE_PREFIX = "model.finops.dev/"


def model_evidence(key: SigningKey, digest: str, **overrides: str | None) -> dict[str, str]:
    """Pod-template annotations of a signed model that passes the test gates' rules; an override
    replaces one piece of evidence, None removes it."""
    values: dict[str, str | None] = {
        "artifact-digest": digest,
        "signature": key.sign(digest),
        "sbom": "oci://registry.example/models/llm-sbom:v1",
        "sbom-digest": digest_of(b"sbom v1"),
        "xai-report": "s3://reports/llm/v1/shap.html",
        "bias.demographicParityDifference": "0.04",
        "card.license": "apache-2.0",
    }
    values.update(overrides)
    return {EVIDENCE_PREFIX + k: v for k, v in values.items() if v is not None}
