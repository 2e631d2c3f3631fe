"""Webhook certificates: they verify, the CA key is never left behind, and no operator start leaves a
temporary directory (issue 10 item 6)."""

from __future__ import annotations

import base64
import contextlib
import ssl
import tempfile
from pathlib import Path

import pytest

from finops_operator import certificates
from finops_operator.settings import Settings
from finops_operator.webhooks import certificate_files, tls_secret

HOSTS = ("127.0.0.1", "finops-operator.finops-system.svc")


def test_server_certificate_verifies_against_its_ca(tmp_path: Path) -> None:
    files = certificates.make_webhook_certificate(tmp_path, HOSTS)
    context = ssl.create_default_context(cafile=str(files.ca_path))
    context.load_cert_chain(str(files.cert_path), str(files.key_path))  # key matches certificate
    assert oct(files.key_path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]  # no CA key


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's directory, so the test sees every temporary directory made."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_without_a_configured_directory_the_certificates_go_when_the_operator_exits(
    private_tmp: Path,
) -> None:
    with contextlib.ExitStack() as scratch:
        files = certificate_files(Settings(), HOSTS, scratch)
        assert files.cert_path.is_file() and files.key_path.is_file()
        assert [p.name.startswith("finops-webhook-") for p in private_tmp.iterdir()] == [True]
    assert list(private_tmp.iterdir()) == []


def test_a_configured_directory_is_filled_once_and_reused(private_tmp: Path, tmp_path: Path) -> None:
    directory = tmp_path / "webhook-certs"
    settings = Settings(webhook_cert_dir=directory)
    with contextlib.ExitStack() as scratch:
        first = certificate_files(settings, HOSTS, scratch)
    with contextlib.ExitStack() as scratch:
        second = certificate_files(settings, HOSTS, scratch)
    assert first == second and first.cert_path.parent == directory
    assert first.cert_path.read_bytes() == second.cert_path.read_bytes()  # reused, not regenerated
    assert sorted(p.name for p in directory.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert [p for p in private_tmp.iterdir() if p.name.startswith("finops-webhook-")] == []


def test_the_shared_secret_carries_the_files_a_replica_serves(tmp_path: Path) -> None:
    """What the first replica stores is what every other replica writes back out and serves."""
    made = certificates.make_webhook_certificate(tmp_path / "made", HOSTS)
    secret = tls_secret("finops-system", "finops-webhook-tls", made)
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert base64.b64decode(secret["data"]["tls.key"]) == made.key_path.read_bytes()
