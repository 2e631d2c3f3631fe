"""Certificates for the operator's admission webhook and for the local control plane.

Made with ``cryptography`` rather than Kopf's built-in self-signed helper, which relies on oscrypto
and fails against OpenSSL 3.0.x ("Error detecting the version of libcrypto"). Production code (the
webhook server) and the dev cluster both use this module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert_path: Path
    key_path: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_ca(directory: Path, common_name: str = "finops-dev-ca") -> KeyPair:
    """A self-signed CA that signs every other certificate of one cluster."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(directory / f"{common_name}.crt", directory / f"{common_name}.key")
    pair.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key_path)
    return pair


def issue(
    ca: KeyPair,
    directory: Path,
    name: str,
    *,
    common_name: str,
    organization: str | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """Issue a leaf certificate signed by ``ca`` for a server, a client, or both."""
    ca_key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key_path)
    return pair


def make_service_account_keys(directory: Path) -> KeyPair:
    """RSA key pair the API server signs service-account tokens with (cert_path holds the public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    pair.cert_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _write_key(key, pair.key_path)
    return pair


@dataclass(frozen=True)
class WebhookCertificate:
    """The files a webhook server needs: the CA bundle for the API server, its certificate and key."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def make_webhook_certificate(directory: Path, hosts: tuple[str, ...]) -> WebhookCertificate:
    """A serving certificate for the admission webhook, signed by a CA made for it alone, as
    ``ca.crt``, ``tls.crt`` and ``tls.key`` (the names a Kubernetes TLS Secret mounts). The CA's
    private key is discarded once it signed: nothing else may ever be signed with it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "finops-webhook-ca")
    ips = tuple(h for h in hosts if _is_ip(h))
    dns = tuple(h for h in hosts if not _is_ip(h))
    server = issue(ca, directory, "tls", common_name=hosts[0], dns_names=dns, ip_addresses=ips, server=True)
    ca.key_path.unlink()
    ca_path = ca.cert_path.rename(directory / "ca.crt")
    return WebhookCertificate(ca_path, server.cert_path, server.key_path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
