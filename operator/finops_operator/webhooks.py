"""The admission webhook server: TLS from files we make with ``cryptography`` (Kopf's own
self-signed helper needs oscrypto, which fails on OpenSSL 3.0.x), reached by the API server either
by URL (a local control plane) or through a Service (in a cluster)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf

from finops_operator.certificates import WebhookCertificate, make_webhook_certificate
from finops_operator.settings import Settings

MANAGED_CONFIGURATION = "finops.dev"


class ServiceWebhookServer(kopf.WebhookServer):
    """Kopf's HTTPS server, but announced to the API server as a Service reference: in-cluster API
    servers reach Services reliably, while a ``https://name.namespace.svc`` URL needs cluster DNS."""

    def __init__(
        self, *, service_name: str, service_namespace: str, service_port: int = 443, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.service = {"name": service_name, "namespace": service_namespace, "port": service_port}

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            yield {"caBundle": config.get("caBundle"), "service": {**self.service, "path": ""}}


def certificate_files(
    settings: Settings, hosts: tuple[str, ...], scratch: contextlib.ExitStack
) -> WebhookCertificate:
    """The files in webhook_cert_dir when present (tls.crt, tls.key, and ca.crt if there), else a
    fresh certificate: written into webhook_cert_dir, where the next start finds it again, or, with no
    directory configured, into a private temporary directory that ``scratch`` removes when the
    operator exits."""
    directory = settings.webhook_cert_dir
    if directory is not None and (directory / "tls.crt").is_file() and (directory / "tls.key").is_file():
        ca = directory / "ca.crt"
        return WebhookCertificate(
            ca if ca.is_file() else directory / "tls.crt", directory / "tls.crt", directory / "tls.key"
        )
    if directory is None:
        directory = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="finops-webhook-")))
    return make_webhook_certificate(directory, hosts)


def build_server(settings: Settings, scratch: contextlib.ExitStack) -> kopf.WebhookServer:
    """The webhook server; temporary certificate files live as long as ``scratch``."""
    if settings.webhook_service:
        name, namespace = settings.webhook_service.split(".", 1)
        hosts = (f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", name)
        files = certificate_files(settings, hosts, scratch)
        return ServiceWebhookServer(
            service_name=name,
            service_namespace=namespace,
            addr=settings.webhook_host,
            port=settings.webhook_port,
            cafile=str(files.ca_path),
            certfile=str(files.cert_path),
            pkeyfile=str(files.key_path),
        )
    host = "127.0.0.1" if settings.webhook_host in ("0.0.0.0", "") else settings.webhook_host
    files = certificate_files(settings, (host,), scratch)
    return kopf.WebhookServer(
        addr=settings.webhook_host,
        port=settings.webhook_port,
        host=host,
        cafile=str(files.ca_path),
        certfile=str(files.cert_path),
        pkeyfile=str(files.key_path),
    )
