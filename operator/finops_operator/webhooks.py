"""The admission webhook server: TLS from files we make with ``cryptography`` (Kopf's own
self-signed helper needs oscrypto, which fails on OpenSSL 3.0.x), reached by the API server either
by URL (a local control plane) or through a Service (in a cluster).

Kopf serves the requests; the configurations that tell the API server when to call are the
operator's own (``planners.admission``, ``handlers.admission``), not Kopf's managed ones: those have
a 30-second timeout and no namespace scoping."""

from __future__ import annotations

import base64
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import kopf

from finops_operator.certificates import WebhookCertificate, make_webhook_certificate
from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.admission import Endpoint, Scope
from finops_operator.settings import Settings

CERTIFICATE_KEYS = ("ca.crt", "tls.crt", "tls.key")
"""The keys of the shared Secret, as cert-manager names them (the files a mounted TLS Secret has)."""

SCOPES: tuple[tuple[str, Scope], ...] = (
    ("sovereignty-", Scope.REGION_BOUND),
    ("finopspolicy-caps", Scope.POLICY_NAMESPACES),
    ("modelgate-", Scope.GATED_NAMESPACES),
)
"""Handler id prefix -> the namespaces that webhook is needed in. A webhook not listed here is a
start-up error: it would otherwise be registered for no namespace, or for all of them."""


def certificate_files(
    settings: Settings, hosts: tuple[str, ...], scratch: contextlib.ExitStack
) -> WebhookCertificate:
    """The files in webhook_cert_dir when present (tls.crt, tls.key, and ca.crt if there), else the
    shared Secret's (webhook_cert_secret, made by the first replica), else a fresh certificate:
    written into webhook_cert_dir, where the next start finds it again, or, with no directory
    configured, into a private temporary directory that ``scratch`` removes when the operator exits."""
    directory = settings.webhook_cert_dir
    if directory is not None and (directory / "tls.crt").is_file() and (directory / "tls.key").is_file():
        ca = directory / "ca.crt"
        return WebhookCertificate(
            ca if ca.is_file() else directory / "tls.crt", directory / "tls.crt", directory / "tls.key"
        )
    if directory is None or settings.webhook_cert_secret:
        directory = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="finops-webhook-")))
    if settings.webhook_cert_secret and settings.own_namespace:
        return shared_certificate(
            KubeClient.from_environment(),
            settings.own_namespace,
            settings.webhook_cert_secret,
            hosts,
            directory,
        )
    return make_webhook_certificate(directory, hosts)


def shared_certificate(
    kube: KubeClient, namespace: str, name: str, hosts: tuple[str, ...], directory: Path
) -> WebhookCertificate:
    """The certificate in Secret ``namespace/name``, written into ``directory``; made and created there
    first when there is none. Creating is the election: of replicas starting together exactly one
    create succeeds and the others (409) read what it stored, so all of them serve one CA and the
    caBundle is the same whichever replica writes the configurations."""
    secret = kube.get("v1", "Secret", namespace, name)
    if secret is None:
        made = make_webhook_certificate(directory, hosts)
        try:
            kube.create(tls_secret(namespace, name, made))
            return made
        except ApiException as error:
            if error.status != 409:
                raise
        secret = kube.get("v1", "Secret", namespace, name)
    data = (secret or {}).get("data") or {}
    missing = [key for key in CERTIFICATE_KEYS if key not in data]
    if missing:
        raise ValueError(f"Secret {namespace}/{name} lacks {', '.join(missing)}")
    directory.mkdir(parents=True, exist_ok=True)
    for key in CERTIFICATE_KEYS:
        path = directory / key
        path.write_bytes(base64.b64decode(data[key]))
        path.chmod(0o600)
    return WebhookCertificate(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")


def tls_secret(namespace: str, name: str, files: WebhookCertificate) -> dict[str, Any]:
    """A kubernetes.io/tls Secret holding ``files`` (and the CA, as ca.crt)."""
    paths = dict(zip(CERTIFICATE_KEYS, (files.ca_path, files.cert_path, files.key_path), strict=True))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "finops-operator"},
        },
        "data": {key: base64.b64encode(path.read_bytes()).decode() for key, path in paths.items()},
    }


def build_server(
    settings: Settings, scratch: contextlib.ExitStack
) -> tuple[kopf.WebhookServer, dict[str, Any]]:
    """The webhook server, and how the API server reaches it (``url`` or ``service``, ``caBundle``;
    each webhook appends its handler id as the path). Temporary certificate files live as long as
    ``scratch``."""
    if settings.webhook_service:
        name, namespace = settings.webhook_service.split(".", 1)
        hosts = (f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", name)
        files = certificate_files(settings, hosts, scratch)
        route: dict[str, Any] = {"service": {"name": name, "namespace": namespace, "port": 443}}
    else:
        host = "127.0.0.1" if settings.webhook_host in ("0.0.0.0", "") else settings.webhook_host
        files = certificate_files(settings, (host,), scratch)
        route = {"url": f"https://{host}:{settings.webhook_port}"}
    server = kopf.WebhookServer(
        addr=settings.webhook_host,
        port=settings.webhook_port,
        cafile=str(files.ca_path),
        certfile=str(files.cert_path),
        pkeyfile=str(files.key_path),
    )
    return server, {**route, "caBundle": base64.b64encode(files.ca_path.read_bytes()).decode()}


def endpoints(registry: kopf.OperatorRegistry) -> tuple[Endpoint, ...]:
    """Every admission handler registered, as the configurations must route it: read from Kopf's
    registry (as Kopf's own managed mode does), so the registrations stay the one source of truth."""
    found = []
    for handler in registry._webhooks.get_all_handlers():  # Kopf has no public accessor
        selector = handler.selector
        plural = (selector.plural or selector.any_name) if selector is not None else None
        if selector is None or not selector.version or not isinstance(plural, str):
            raise ValueError(f"admission handler {handler.id!r} must name group, version and plural")
        scope = next((s for prefix, s in SCOPES if str(handler.id).startswith(prefix)), None)
        if scope is None:
            raise ValueError(f"admission handler {handler.id!r} has no namespace scope (webhooks.SCOPES)")
        found.append(
            Endpoint(
                id=str(handler.id),
                mutating=str(handler.reason) == "mutating",
                group=selector.group or "",
                version=selector.version,
                plural=plural,
                operations=tuple(handler.operations or ("CREATE", "UPDATE")),
                scope=scope,
                ignore_failures=bool(handler.ignore_failures),
                side_effects=bool(handler.side_effects),
            )
        )
    return tuple(sorted(found, key=lambda e: e.id))
