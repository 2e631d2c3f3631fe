"""The operator's own webhook configurations, planned from what is bound: which namespaces the API
server may call the operator for, and for how long it waits.

Kopf's managed configurations cannot do this: they hard-code ``timeoutSeconds: 30`` and have no
``namespaceSelector``, so every pod create in the cluster (kube-system included) would wait on the
operator. Here every webhook names the namespaces it needs, by ``kubernetes.io/metadata.name`` (a
label the API server sets on every namespace and users cannot change), recomputed whenever a region,
a policy or a namespace changes:

* sovereignty webhooks: the namespaces some SovereignRegion binds (conflicted ones too, where
  admission answers with a warning);
* the FinOpsPolicy caps webhook: the namespaces that hold a FinOpsPolicy;
* never: kube-system, kube-node-lease, kube-public, the operator's own namespace, those named in
  FINOPS_WEBHOOK_EXEMPT_NAMESPACES, or a namespace labeled ``finops.dev/admission=disabled``.

A webhook with no namespace to serve keeps its entry with a selector that matches nothing, so the
configuration's shape does not flap as the first region comes and the last goes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from finops_operator.planners.plan import ApplyManifest

CONFIGURATION_NAME = "finops.dev"
"""The name of both configurations (the name Kopf's managed mode used, so an upgrade takes them over)."""
OPT_OUT_LABEL = "finops.dev/admission"
OPT_OUT_VALUE = "disabled"
"""``kubectl label namespace <ns> finops.dev/admission=disabled``: the operator's webhooks are never
called there (the SovereignRegion's ValidatingAdmissionPolicy and the audits still apply)."""
NAME_LABEL = "kubernetes.io/metadata.name"
ALWAYS_EXEMPT: frozenset[str] = frozenset({"kube-system", "kube-node-lease", "kube-public"})
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "finops-operator"
HASH_ANNOTATION = "finops.dev/configuration-hash"
API_VERSION = "admissionregistration.k8s.io/v1"
MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"


class Scope(StrEnum):
    """Which namespaces a webhook is needed in."""

    REGION_BOUND = "RegionBound"
    POLICY_NAMESPACES = "PolicyNamespaces"
    GATED_NAMESPACES = "GatedNamespaces"


@dataclass(frozen=True)
class Endpoint:
    """One admission handler the operator serves, as the webhook server routes it (``/<id>``)."""

    id: str
    mutating: bool
    group: str
    version: str
    plural: str
    operations: tuple[str, ...]
    scope: Scope
    ignore_failures: bool = True
    side_effects: bool = False


@dataclass(frozen=True)
class AdmissionObservation:
    """What the configurations are planned from: the endpoints served, how the API server reaches
    them (``client_config`` without a path: ``url`` or ``service``, and ``caBundle``), and the
    namespaces each scope needs, with the hash of what is applied now per kind."""

    endpoints: tuple[Endpoint, ...]
    client_config: Mapping[str, Any]
    timeout_seconds: int
    region_namespaces: frozenset[str] = frozenset()
    policy_namespaces: frozenset[str] = frozenset()
    gated_namespaces: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = ALWAYS_EXEMPT
    applied_hashes: Mapping[str, str] = field(default_factory=dict)
    """Kind (MUTATING / VALIDATING) -> the hash annotation of our configuration in the cluster."""


def exempt_namespaces(own_namespace: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """Where the webhooks are never called: the kube-* namespaces, the operator's own (its pods must
    never wait on it) and any the installation names."""
    return ALWAYS_EXEMPT | frozenset(extra) | ({own_namespace} if own_namespace else frozenset())


def webhook_name(endpoint_id: str) -> str:
    """A DNS-subdomain name for the webhook entry, as Kopf named it (so an upgrade takes it over)."""
    return f"{endpoint_id.replace('/', '.').replace('_', '-')}.{CONFIGURATION_NAME}"


def namespace_selector(namespaces: Iterable[str], exempt: frozenset[str]) -> dict[str, Any]:
    """Exactly ``namespaces`` minus the exempt ones and those opted out; nothing when none is left."""
    names = sorted(set(namespaces) - exempt)
    opted_out = {"key": OPT_OUT_LABEL, "operator": "NotIn", "values": [OPT_OUT_VALUE]}
    if not names:
        # Exists and DoesNotExist on the same key: a selector no namespace can match.
        return {
            "matchExpressions": [
                {"key": NAME_LABEL, "operator": "Exists"},
                {"key": NAME_LABEL, "operator": "DoesNotExist"},
            ]
        }
    return {"matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": names}, opted_out]}


def _client_config(base: Mapping[str, Any], endpoint_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {"caBundle": base["caBundle"]}
    if "service" in base:
        config["service"] = {**base["service"], "path": f"/{endpoint_id}"}
    else:
        config["url"] = f"{str(base['url']).rstrip('/')}/{endpoint_id}"
    return config


def webhook(endpoint: Endpoint, observed: AdmissionObservation) -> dict[str, Any]:
    """One entry of a webhook configuration."""
    scoped = {
        Scope.REGION_BOUND: observed.region_namespaces,
        Scope.POLICY_NAMESPACES: observed.policy_namespaces,
        Scope.GATED_NAMESPACES: observed.gated_namespaces,
    }[endpoint.scope]
    entry: dict[str, Any] = {
        "name": webhook_name(endpoint.id),
        "admissionReviewVersions": ["v1"],
        "clientConfig": _client_config(observed.client_config, endpoint.id),
        "failurePolicy": "Ignore" if endpoint.ignore_failures else "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": namespace_selector(scoped, observed.exempt_namespaces),
        "rules": [
            {
                "apiGroups": [endpoint.group],
                "apiVersions": [endpoint.version],
                "resources": [endpoint.plural],
                "operations": list(endpoint.operations),
                "scope": "Namespaced",
            }
        ],
        "sideEffects": "NoneOnDryRun" if endpoint.side_effects else "None",
        "timeoutSeconds": observed.timeout_seconds,
    }
    if endpoint.mutating:
        entry["reinvocationPolicy"] = "Never"
    return entry


def configuration(kind: str, webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole configuration, labeled as ours and annotated with the hash of its content."""
    digest = hashlib.sha256(json.dumps(webhooks, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": CONFIGURATION_NAME,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {HASH_ANNOTATION: digest},
        },
        "webhooks": webhooks,
    }


def desired_configurations(observed: AdmissionObservation) -> dict[str, dict[str, Any]]:
    """Kind -> the configuration the cluster should hold (a kind with no endpoint is left alone)."""
    wanted: dict[str, dict[str, Any]] = {}
    for kind, mutating in ((MUTATING, True), (VALIDATING, False)):
        entries = [webhook(e, observed) for e in observed.endpoints if e.mutating is mutating]
        if entries:
            wanted[kind] = configuration(kind, sorted(entries, key=lambda w: str(w["name"])))
    return wanted


def plan_webhook_configurations(observed: AdmissionObservation) -> tuple[ApplyManifest, ...]:
    """Server-side apply of each configuration whose content differs from what is applied; nothing
    when everything is current (a quiet cluster sees no writes)."""
    return tuple(
        ApplyManifest(manifest)
        for kind, manifest in desired_configurations(observed).items()
        if observed.applied_hashes.get(kind) != manifest["metadata"]["annotations"][HASH_ANNOTATION]
    )
