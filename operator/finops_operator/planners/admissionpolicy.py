"""What every kind's generated ValidatingAdmissionPolicy shares: the workload kinds it matches, the
validation actions of each enforcement mode, CEL literals, the owned-object metadata and the spec hash
that makes applying it idempotent. Pure.

Used by ``releasegate.vap``; ``sovereignty.vap`` holds an equal copy of some of it and can move here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from finops_operator.api.common import API_VERSION as FINOPS_API_VERSION
from finops_operator.api.common import EnforcementMode

API_VERSION = "admissionregistration.k8s.io/v1"
MAX_NAME = 253
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "finops-operator"
HASH_ANNOTATION = "finops.dev/spec-hash"

VALIDATION_ACTIONS: Mapping[EnforcementMode, tuple[str, ...]] = {
    EnforcementMode.ENFORCE: ("Deny",),
    EnforcementMode.WARN: ("Warn",),
    EnforcementMode.DRY_RUN: ("Audit",),
}
"""Enforce denies, Warn returns a warning to the client, DryRun only writes audit annotations."""

RESOURCE_RULES: tuple[dict[str, Any], ...] = (
    # A pod's spec and annotations are fixed once created: judged on CREATE only.
    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]},
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments", "statefulsets", "daemonsets"],
        "operations": ["CREATE", "UPDATE"],
    },
    {
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "resources": ["jobs", "cronjobs"],
        "operations": ["CREATE", "UPDATE"],
    },
)
"""Pods and every workload kind with a pod template."""

TEMPLATE_VARIABLE = {
    "name": "tmpl",
    "expression": "request.kind.kind == 'Pod' ? object : (request.kind.kind == 'CronJob' ? "
    "object.spec.jobTemplate.spec.template : object.spec.template)",
}
"""``variables.tmpl``: the pod template of the object (a Pod is its own)."""

TEMPLATE_CHANGED = (
    "(request.operation == 'CREATE' || oldObject == null || (request.kind.kind == 'CronJob' ? "
    "object.spec.jobTemplate != oldObject.spec.jobTemplate : "
    "object.spec.template != oldObject.spec.template))"
)
"""CEL: the request creates the object or changes its pod template (scaling is never judged)."""


def cel_string(value: str) -> str:
    """A CEL string literal: JSON's double-quoted form (CEL accepts the same escapes)."""
    return json.dumps(value, ensure_ascii=False)


def cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(cel_string(v) for v in values) + "]"


def object_name(prefix: str, name: str) -> str:
    """<prefix><name>, shortened with a hash when it would be too long for an object name."""
    full = prefix + name
    if len(full) <= MAX_NAME:
        return full
    return f"{full[: MAX_NAME - 11]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def label_value(value: str) -> str:
    """Label values are at most 63 characters; longer names are cut and hashed."""
    return value if len(value) <= 63 else value[:52] + "-" + hashlib.sha256(value.encode()).hexdigest()[:10]


def owned_metadata(name: str, *, owner_kind: str, owner_name: str, uid: str, label: str) -> dict[str, Any]:
    """Labels (managed-by, and ``label`` naming the owner) and the controller ownerReference: deleting
    the owner garbage-collects the object."""
    owner = {
        "apiVersion": FINOPS_API_VERSION,
        "kind": owner_kind,
        "name": owner_name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }
    return {
        "name": name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, label: label_value(owner_name)},
        "ownerReferences": [owner],
    }


def with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """Annotate the object with a hash of its spec: it is applied only when the stored hash differs."""
    digest = hashlib.sha256(json.dumps(obj["spec"], sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"]["annotations"] = {HASH_ANNOTATION: digest}
    return obj


def message_expression(prefix: str, suffix: str) -> str:
    """A message naming the object; CEL builds it, the static message is the fallback."""
    return (
        f"{cel_string(prefix)} + request.kind.kind + ' ' + request.namespace + '/' + "
        "(request.name != '' ? request.name : (has(object.metadata.generateName) ? "
        f"object.metadata.generateName : '')) + {cel_string(suffix)}"
    )
