"""The writes a rollout decision needs, as plan intents: revision contents to store, site Deployments
to apply (only those that would change), and what to delete. Decides from the observation; writes
nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from finops_operator.api.common import GROUP, VERSION
from finops_operator.api.edgefleet import EdgeFleetSpec
from finops_operator.planners.fleet.decision import RolloutPlan, WorkloadApply
from finops_operator.planners.fleet.manifest import desired_deployment
from finops_operator.planners.fleet.names import (
    FLEET_LABEL,
    REVISION_LABEL,
    UPDATED_AT_ANNOTATION,
    deployment_name,
    label_value,
    revision_object_name,
)
from finops_operator.planners.fleet.observation import AppliedWrite, FleetObservation
from finops_operator.planners.fleet.revisions import RevisionContent, revision_content
from finops_operator.planners.fleet.sites import SiteDeployment, SiteFacts, timestamp
from finops_operator.planners.plan import ApplyManifest, CreateObject, DeleteObject, Intent, ObjectRef
from finops_operator.workloads.annotations import POLICY_SCALING_ANNOTATIONS

KIND = "EdgeFleet"
APPLIED_HASH_ANNOTATION = "finops.dev/applied-hash"
"""Hash of the manifest the operator last applied: a removed field changes it, so drift is seen."""


def owner_reference(fleet: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": fleet,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def revision_manifests(observed: FleetObservation, rollout: RolloutPlan) -> tuple[dict[str, Any], ...]:
    """One ControllerRevision per new revision content, numbered after the fleet's highest one."""
    number = max((r.number for r in observed.revisions if observed.uid in r.owners), default=0)
    manifests = []
    for revision, content in sorted(rollout.revisions_to_store.items()):
        number += 1
        manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": revision_object_name(observed.name, revision),
                    "namespace": observed.namespace,
                    "labels": {FLEET_LABEL: label_value(observed.name), REVISION_LABEL: revision},
                    "ownerReferences": [owner_reference(observed.name, observed.uid)],
                },
                "data": content.to_data(),
                "revision": number,
            }
        )
    return tuple(manifests)


def scaled_by_policy(deployment: SiteDeployment | None) -> bool:
    """A FinOpsPolicy scaled or capped this workload: its replica count is the policy's to decide."""
    return deployment is not None and any(a in deployment.annotations for a in POLICY_SCALING_ANNOTATIONS)


def up_to_date(
    deployment: SiteDeployment | None, manifest: Mapping[str, Any], applied: AppliedWrite | None
) -> bool:
    """True when applying ``manifest`` would change nothing the operator manages: labels,
    annotations (the applied hash among them) and replicas as sent, and no edit since our own
    apply of this revision (a manual edit of the template bumps the generation)."""
    if deployment is None:
        return False
    meta = manifest["metadata"]
    replicas = manifest["spec"].get("replicas")
    return (
        all(deployment.labels.get(k) == v for k, v in meta["labels"].items())
        and all(deployment.annotations.get(k) == v for k, v in meta["annotations"].items())
        and (replicas is None or deployment.replicas == replicas)
        and (
            applied is None
            or applied.revision != meta["labels"][REVISION_LABEL]
            or applied.generation == deployment.generation
        )
    )


def _manifest_hash(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def site_manifest(
    spec: EdgeFleetSpec,
    observed: FleetObservation,
    site: SiteFacts,
    *,
    revision: str,
    content: RevisionContent,
    updated_at: datetime,
    deployment: SiteDeployment | None,
) -> dict[str, Any]:
    """The site's Deployment as it is applied: owned by the fleet, replicas left to a FinOpsPolicy
    that scaled it, and the hash of all that recorded on it."""
    manifest = desired_deployment(
        observed.name,
        observed.namespace,
        spec,
        site,
        revision=revision,
        content=content,
        policy_labels=observed.policy_labels or {},
        updated_at=updated_at,
    )
    if scaled_by_policy(deployment):
        del manifest["spec"]["replicas"]
    manifest["metadata"]["ownerReferences"] = [owner_reference(observed.name, observed.uid)]
    manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = _manifest_hash(manifest)
    return manifest


def _content(
    spec: EdgeFleetSpec, rollout: RolloutPlan, contents: Mapping[str, RevisionContent], revision: str
) -> RevisionContent | None:
    """Content a revision renders from: the spec's own, just planned for storage, or stored."""
    own = revision_content(spec)
    if own.revision == revision:
        return own
    return rollout.revisions_to_store.get(revision) or contents.get(revision)


def _updated_at(
    apply: WorkloadApply, deployment: SiteDeployment | None, applied: AppliedWrite | None
) -> datetime:
    """Our own write of this revision is not in the index yet: keep its clock."""
    if (
        applied is not None
        and applied.revision == apply.revision
        and (deployment is None or deployment.workload.revision != apply.revision)
    ):
        return applied.updated_at
    return apply.updated_at


def plan_writes(
    spec: EdgeFleetSpec,
    observed: FleetObservation,
    *,
    sites: Mapping[str, SiteFacts],
    owned: Sequence[SiteDeployment],
    contents: Mapping[str, RevisionContent],
    rollout: RolloutPlan,
) -> tuple[Intent, ...]:
    """Every write the rollout decision needs, in order: revisions first (a workload may use them and
    the next rollback needs them), then the Deployments that would change, then deletions."""
    by_site = {d.site: d for d in owned}
    applies: list[Intent] = []
    for apply in rollout.workloads_to_apply:
        site = sites.get(apply.site)
        content = _content(spec, rollout, contents, apply.revision)
        if site is None or content is None:
            continue
        deployment = by_site.get(apply.site)
        applied = observed.applied.get(deployment_name(observed.name, site.name))
        manifest = site_manifest(
            spec,
            observed,
            site,
            revision=apply.revision,
            content=content,
            updated_at=_updated_at(apply, deployment, applied),
            deployment=deployment,
        )
        if not up_to_date(deployment, manifest, applied):
            applies.append(ApplyManifest(manifest))
    gone = [by_site[site].name for site in rollout.workloads_to_delete if site in by_site]
    pruned = [
        r.name
        for r in observed.revisions
        if observed.uid in r.owners and r.revision not in rollout.revisions_to_keep
    ]
    return (
        *(CreateObject(manifest) for manifest in revision_manifests(observed, rollout)),
        *applies,
        *(DeleteObject(ObjectRef("apps/v1", "Deployment", name, observed.namespace)) for name in gone),
        *(DeleteObject(ObjectRef("apps/v1", "ControllerRevision", n, observed.namespace)) for n in pruned),
    )


def remembered(manifest: Mapping[str, Any], result: Mapping[str, Any]) -> AppliedWrite | None:
    """What to remember of a site Deployment just applied (None for anything else)."""
    metadata = manifest.get("metadata") or {}
    revision = (metadata.get("labels") or {}).get(REVISION_LABEL)
    updated_at = timestamp((metadata.get("annotations") or {}).get(UPDATED_AT_ANNOTATION))
    if manifest.get("kind") != "Deployment" or revision is None or updated_at is None:
        return None
    generation = int((result.get("metadata") or {}).get("generation") or 0)
    return AppliedWrite(revision, updated_at, generation)
