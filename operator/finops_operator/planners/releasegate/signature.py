"""Signature verification of a model's artifact digest, in the format cosign's key-pair mode produces.

``cosign generate-key-pair`` writes ``cosign.pub``, a PEM SubjectPublicKeyInfo (ECDSA P-256), and
``cosign sign-blob --key cosign.key <file>`` prints the base64 of an ASN.1 DER ECDSA signature over
SHA-256 of the file's bytes. The signed blob here is the artifact-digest annotation's exact string
(e.g. ``sha256:4f2a...``, no trailing newline), so ``cosign verify-blob --key cosign.pub`` accepts
the same pair. Verified with ``cryptography`` (OpenSSL); pure, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_SIGNATURE = 1024
"""base64 characters: an ECDSA P-256 DER signature is at most 72 bytes (96 base64 characters)."""


@dataclass(frozen=True)
class PublicKey:
    """A parsed verification key and its fingerprint (SHA-256 of the DER SubjectPublicKeyInfo)."""

    key: ec.EllipticCurvePublicKey
    fingerprint: str


class PublicKeyError(ValueError):
    """The named public key is not a PEM ECDSA P-256 key."""


def load_public_key(pem: str) -> PublicKey:
    """Parse cosign.pub (PEM). Raises PublicKeyError with a readable reason."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as error:
        raise PublicKeyError(f"not a PEM public key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PublicKeyError("not an ECDSA P-256 public key (cosign generate-key-pair makes one)")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(key, "sha256:" + hashlib.sha256(der).hexdigest())


def signature_problem(public_key: PublicKey, digest: str, signature_b64: str) -> str | None:
    """None when ``signature_b64`` is a valid signature of ``digest`` by ``public_key``; else why not."""
    if len(signature_b64) > MAX_SIGNATURE:
        return "the signature is too long to be an ECDSA P-256 signature"
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "the signature is not base64"
    try:
        public_key.key.verify(signature, digest.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return f"the signature does not verify against public key {public_key.fingerprint}"
    return None
