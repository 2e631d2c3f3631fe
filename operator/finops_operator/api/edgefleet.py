"""EdgeFleet: one model workload per edge site, rolled out in waves with automatic rollback."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, JsonValue

from finops_operator.api.common import (
    GROUP,
    ApiModel,
    ConditionList,
    CustomResource,
    LabelMap,
    LabelSelector,
    ObjectReference,
    PrinterColumn,
    ResourceMeta,
    age_column,
    ready_column,
)

SITE_LABEL = "finops.dev/site"

_PRESERVE: dict[str, JsonValue] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

MAX_TEMPLATE_DEPTH = 64
"""Nesting a template (or profile resources) may have. Real pod templates stay under 15 levels; the
API server accepts 10 000 in a preserve-unknown-fields object, deep enough to exhaust the
recursion of every copy, hash and JSON encoding the operator makes of a template."""
_OBJECT_PATHS = (
    ("metadata",),
    ("metadata", "labels"),
    ("spec",),
    ("spec", "nodeSelector"),
    ("spec", "affinity"),
    ("spec", "affinity", "nodeAffinity"),
    ("spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"),
)
"""Template parts the operator writes into (labels, site pinning), so they must be objects."""


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion (so any depth can be measured)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"nested too deep (at most {MAX_TEMPLATE_DEPTH} levels)")
    return value


def _pod_template(value: dict[str, Any]) -> dict[str, Any]:
    for path in _OBJECT_PATHS:
        parent: Any = value
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent and not isinstance(parent[path[-1]], dict):
            raise ValueError(f"{'.'.join(path)} must be an object")
    spec = value.get("spec") or {}
    containers = spec.get("containers")
    if containers is not None and not (
        isinstance(containers, list) and all(isinstance(c, dict) for c in containers)
    ):
        raise ValueError("spec.containers must be a list of objects")
    terms = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    listed = terms.get("nodeSelectorTerms")
    if listed is not None and not (
        isinstance(listed, list)
        and all(isinstance(t, dict) and isinstance(t.get("matchExpressions") or [], list) for t in listed)
    ):
        raise ValueError("nodeSelectorTerms must be a list of objects with a matchExpressions list")
    return value


BoundedObject = Annotated[dict[str, Any], AfterValidator(_bounded)]
PodTemplate = Annotated[dict[str, Any], AfterValidator(_bounded), AfterValidator(_pod_template)]


class HardwareProfile(ApiModel):
    """Overrides for sites whose nodes carry particular labels (e.g. NPU vs GPU sites)."""

    name: str = Field(min_length=1, max_length=63)
    """Profile name, reported per site."""
    node_labels: LabelMap
    """Labels a site's nodes must all carry for the profile to apply."""
    image: str | None = Field(default=None, min_length=1, max_length=1024)
    """Image for the first container instead of the template's."""
    resources: BoundedObject | None = Field(default=None, json_schema_extra=_PRESERVE)
    """Resources (requests/limits) for the first container instead of the template's."""


class Rollout(ApiModel):
    """How a new revision reaches the sites."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.wavePercents.isSorted()", "message": "wavePercents must be increasing"},
                {
                    "rule": "self.wavePercents[size(self.wavePercents) - 1] == 100",
                    "message": "the last wave must be 100 (every site)",
                },
            ]
        }
    )

    wave_percents: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        min_length=1,
        max_length=20,
        json_schema_extra={
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "x-kubernetes-list-type": "set",
        },
    )
    """Cumulative share of sites updated by the end of each wave; the last must be 100."""
    soak_seconds: int = Field(default=300, ge=0, le=86400)
    """How long updated sites must stay Ready before the next wave starts."""
    wave_timeout_seconds: int = Field(default=1800, ge=30, le=604800)
    """How long a wave's sites may take to become Ready before they count as failed."""
    max_failed_sites_percent: int = Field(default=20, ge=0, le=100)
    """Roll back when more than this share of a wave's sites fail."""
    health_query: str | None = Field(default=None, min_length=1, max_length=4096)
    """Optional PromQL that must return a non-zero value for the wave to pass."""
    paused: bool = False
    """Hold the rollout where it is until set back to false."""


class OfflineTolerance(ApiModel):
    """How sites whose nodes are NotReady are treated."""

    max_offline_sites_percent: int = Field(default=30, ge=0, le=100)
    """Offline sites up to this share of a wave do not block it; they catch up when back."""


class EdgeFleetSpec(ApiModel):
    """The fleet of sites and the model workload every site runs."""

    node_selector: LabelSelector
    """Nodes that belong to the fleet."""
    site_label: str = Field(default=SITE_LABEL, min_length=1, max_length=317)
    """Node label whose value names the site a node belongs to."""
    model_version: str = Field(min_length=1, max_length=128)
    """Version of the model every site should run; changing it starts a rollout."""
    replicas_per_site: int = Field(default=1, ge=0, le=1000)
    """Pods per site."""
    template: PodTemplate = Field(json_schema_extra=_PRESERVE)
    """Pod template (metadata and spec) of the site workload."""
    hardware_profiles: list[HardwareProfile] = Field(default_factory=list, max_length=16)
    """Per-hardware overrides, first match wins."""
    rollout: Rollout = Field(default_factory=Rollout)
    """Wave-based rollout settings."""
    offline_tolerance: OfflineTolerance = Field(default_factory=OfflineTolerance)
    """Offline site handling."""
    revision_history_limit: int = Field(default=10, ge=1, le=100)
    """Number of previous revisions kept for rollback."""
    fin_ops_policy_ref: ObjectReference | None = Field(default=None, alias="finOpsPolicyRef")
    """FinOpsPolicy that should govern the site workloads (they get its selector's labels)."""


class RevisionRecord(ApiModel):
    """A revision the fleet has rolled out."""

    revision: str
    """Hash of the model version and template."""
    model_version: str
    """Model version of that revision."""
    created: datetime
    """When the revision was first seen."""


class EdgeFleetStatus(ApiModel):
    """Rollout progress and site health."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int = 0
    """The .metadata.generation last acted on."""
    conditions: ConditionList
    """Ready, Progressing and Degraded."""
    current_revision: str | None = None
    """Revision every site is meant to run when the rollout completes."""
    stable_revision: str | None = None
    """Last revision that completed on every online site (rollback target)."""
    current_wave: int = 0
    """Index (1-based) of the wave in progress; 0 when idle."""
    sites_total: int = 0
    """Sites discovered."""
    sites_updated: int = 0
    """Sites on currentRevision."""
    sites_ready: int = 0
    """Sites whose workload is Ready."""
    sites_offline: int = 0
    """Sites whose nodes are all NotReady."""
    sites_failed: int = 0
    """Sites that failed the current wave."""
    revisions: list[RevisionRecord] = Field(default_factory=list, max_length=100)
    """Revision history, newest first (bounded by revisionHistoryLimit)."""
    last_rollback_reason: str | None = None
    """Why the last automatic rollback happened."""
    failed_revision: str | None = None
    """Revision that was rolled back; not retried until the spec changes."""


class EdgeFleet(CustomResource):
    """An EdgeFleet object as stored by the API server."""

    meta: ClassVar[ResourceMeta] = ResourceMeta(
        kind="EdgeFleet",
        plural="edgefleets",
        singular="edgefleet",
        short_names=["ef"],
        scope="Namespaced",
        printer_columns=[
            PrinterColumn(name="Model", json_path=".spec.modelVersion"),
            PrinterColumn(name="Sites", json_path=".status.sitesTotal", type="integer"),
            PrinterColumn(name="Updated", json_path=".status.sitesUpdated", type="integer"),
            PrinterColumn(name="Offline", json_path=".status.sitesOffline", type="integer"),
            PrinterColumn(name="Wave", json_path=".status.currentWave", type="integer"),
            ready_column(),
            age_column(),
        ],
    )

    api_version: Literal["finops.dev/v1alpha1"] = "finops.dev/v1alpha1"
    kind: Literal["EdgeFleet"] = "EdgeFleet"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: EdgeFleetSpec
    status: EdgeFleetStatus | None = None


AUTHOR_CHECK_NAME = "finops.dev-edgefleet-author"
"""The ValidatingAdmissionPolicy (and binding) that lets only users who may create Deployments in a
namespace write an EdgeFleet there: the fleet makes the operator create Deployments for them
(docs/SECURITY.md). Part of the API, so it ships with the CRDs (``finops crds``)."""
AUTHOR_CHECK_HASH_ANNOTATION = "finops.dev/spec-hash"
_API = "admissionregistration.k8s.io/v1"
_CHECK = (
    "authorizer.group('apps').resource('deployments').namespace(object.metadata.namespace)"
    ".check('create').allowed()"
)


def _with_spec_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(manifest["spec"], sort_keys=True).encode()).hexdigest()[:16]
    manifest["metadata"]["annotations"] = {AUTHOR_CHECK_HASH_ANNOTATION: digest}
    return manifest


def author_check_policy() -> dict[str, Any]:
    """failurePolicy Fail: if the check cannot be evaluated, the fleet is refused, not trusted."""
    return _with_spec_hash(
        {
            "apiVersion": _API,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {
                "name": AUTHOR_CHECK_NAME,
                "labels": {"app.kubernetes.io/managed-by": "finops-operator"},
            },
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["edgefleets"],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "spec-written",
                        "expression": "oldObject == null || object.spec != oldObject.spec",
                    }
                ],
                "validations": [
                    {
                        "expression": _CHECK,
                        "messageExpression": (
                            "'an EdgeFleet makes the operator create Deployments from its template, so its "
                            "author must be allowed to: ' + request.userInfo.username + "
                            "' cannot create deployments.apps in namespace ' + object.metadata.namespace"
                        ),
                        "reason": "Forbidden",
                    }
                ],
            },
        }
    )


def author_check_binding() -> dict[str, Any]:
    return _with_spec_hash(
        {
            "apiVersion": _API,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {
                "name": AUTHOR_CHECK_NAME,
                "labels": {"app.kubernetes.io/managed-by": "finops-operator"},
            },
            "spec": {"policyName": AUTHOR_CHECK_NAME, "validationActions": ["Deny"]},
        }
    )
