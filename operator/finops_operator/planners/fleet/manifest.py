"""The Deployment of one site at one revision."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from finops_operator.api.common import LabelSelector
from finops_operator.api.edgefleet import SITE_LABEL, EdgeFleetSpec
from finops_operator.planners.fleet.names import (
    FLEET_LABEL,
    MODEL_VERSION_ANNOTATION,
    MODEL_VERSION_LABEL,
    PROFILE_ANNOTATION,
    REVISION_LABEL,
    UPDATED_AT_ANNOTATION,
    deployment_name,
    label_value,
)
from finops_operator.planners.fleet.revisions import RevisionContent
from finops_operator.planners.fleet.sites import SiteFacts, profile_for


def _node_requirements(selector: LabelSelector) -> list[dict[str, Any]]:
    requirements: list[dict[str, Any]] = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(selector.match_labels.items())
    ]
    for requirement in selector.match_expressions:
        entry: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
        if requirement.values:
            entry["values"] = list(requirement.values)
        requirements.append(entry)
    return requirements


def _require_fleet_nodes(pod_spec: dict[str, Any], selector: LabelSelector) -> None:
    """AND the fleet's node selector into every required node-affinity term, so a pod never lands on
    a node of the site that is not part of the fleet."""
    requirements = _node_requirements(selector)
    if not requirements:
        return
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*(term.get("matchExpressions") or []), *requirements]} for term in terms
    ]


def desired_deployment(
    fleet_name: str,
    namespace: str,
    spec: EdgeFleetSpec,
    site: SiteFacts,
    *,
    revision: str,
    content: RevisionContent,
    policy_labels: Mapping[str, str],
    updated_at: datetime,
) -> dict[str, Any]:
    """The apps/v1 Deployment of one site at one revision, without ownerReferences.

    The pod template comes from the revision's content (not the current spec) so rollbacks restore
    exactly what ran before; hardware profiles are resolved against that content too. Replicas and
    node pinning come from the current spec. ``policy_labels`` go on the Deployment only: the
    FinOpsPolicy selects Deployments, and pods must not restart when the policy reference changes.
    """
    template: dict[str, Any] = copy.deepcopy(dict(content.template))
    pod_meta: dict[str, Any] = template.setdefault("metadata", {})
    pod_spec: dict[str, Any] = template.setdefault("spec", {})
    profile = profile_for(content.hardware_profiles, site.nodes)
    containers = pod_spec.get("containers") or []
    if profile is not None and containers:
        if profile.image is not None:
            containers[0]["image"] = profile.image
        if profile.resources is not None:
            containers[0]["resources"] = copy.deepcopy(profile.resources)
    selector_labels = {FLEET_LABEL: label_value(fleet_name), SITE_LABEL: site.name}
    labels = {
        **selector_labels,
        REVISION_LABEL: revision,
        MODEL_VERSION_LABEL: label_value(content.model_version),
    }
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), spec.site_label: site.name}
    _require_fleet_nodes(pod_spec, spec.node_selector)
    annotations = {
        MODEL_VERSION_ANNOTATION: content.model_version,
        UPDATED_AT_ANNOTATION: updated_at.isoformat(),
    }
    if profile is not None:
        annotations[PROFILE_ANNOTATION] = profile.name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(fleet_name, site.name),
            "namespace": namespace,
            "labels": {**policy_labels, **labels},
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.replicas_per_site,
            "selector": {"matchLabels": selector_labels},
            # An edge site has no spare accelerator for a surge pod: with the default 25 % surge a new
            # revision's pod would stay Pending next to the old one forever. Replace in place instead.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": template,
        },
    }
