"""The real cosign produces what the gate verifies: ``cosign generate-key-pair`` and
``cosign sign-blob --key`` over a digest string, checked by the operator's verifier. Runs where a
``cosign`` binary is on PATH (or FINOPS_COSIGN names one), skipped otherwise: cosign v2 builds through
the Go module proxy (``go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5``, no replace
directives) but needs ~300 modules and took ~40 minutes on two shared cores, past the CI budget. So
the fixtures elsewhere are made with ``cryptography`` in the same format (tests/signing.py), and this
module checks both directions against the real tool where it exists."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from finops_operator.planners.releasegate.signature import load_public_key, signature_problem
from tests.signing import SigningKey, digest_of


def cosign() -> str:
    found = os.environ.get("FINOPS_COSIGN") or shutil.which("cosign")
    if not found:
        pytest.skip("cosign not on PATH (set FINOPS_COSIGN to a cosign binary to run this test)")
    return found


def test_a_cosign_sign_blob_signature_verifies_and_a_tampered_digest_does_not(tmp_path: Path) -> None:
    binary = cosign()

    def run(*args: str) -> str:
        env = {**os.environ, "COSIGN_PASSWORD": ""}
        done = subprocess.run(
            [binary, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout

    run("generate-key-pair")
    digest = digest_of(b"model weights")
    (tmp_path / "digest.txt").write_text(digest)  # no trailing newline: the annotation's exact string
    signature = run("sign-blob", "--yes", "--tlog-upload=false", "--key", "cosign.key", "digest.txt")
    signature = signature.strip().splitlines()[-1]
    key = load_public_key((tmp_path / "cosign.pub").read_text())
    assert signature_problem(key, digest, signature) is None
    assert signature_problem(key, digest_of(b"other weights"), signature) is not None


def test_the_test_fixtures_verify_with_cosign_verify_blob(tmp_path: Path) -> None:
    """The other direction: signatures made by tests/signing.py are what cosign itself accepts."""
    binary = cosign()
    key = SigningKey.generate()
    digest = digest_of(b"model weights")
    (tmp_path / "cosign.pub").write_text(key.public_pem)
    (tmp_path / "digest.txt").write_text(digest)
    (tmp_path / "digest.sig").write_text(key.sign(digest))
    verify = [binary, "verify-blob", "--insecure-ignore-tlog", "--key", "cosign.pub", "--signature"]
    ok = subprocess.run([*verify, "digest.sig", "digest.txt"], cwd=tmp_path, capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "digest.txt").write_text(digest_of(b"tampered"))
    bad = subprocess.run([*verify, "digest.sig", "digest.txt"], cwd=tmp_path, capture_output=True, timeout=60)
    assert bad.returncode != 0
