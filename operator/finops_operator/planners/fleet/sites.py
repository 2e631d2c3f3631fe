"""Sites from nodes, and the facts of a site's Deployment, read from API objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finops_operator.api.edgefleet import SITE_LABEL, EdgeFleetSpec, HardwareProfile
from finops_operator.planners.fleet.names import REVISION_LABEL, UPDATED_AT_ANNOTATION
from finops_operator.planners.labelselectors import selector_matches


@dataclass(frozen=True)
class SiteNode:
    """What the planner needs to know about one node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True
    ready_since: datetime | None = None
    """lastTransitionTime of the node's Ready condition while it is Ready."""


@dataclass(frozen=True)
class SiteFacts:
    """A site: the fleet's nodes sharing one value of ``spec.siteLabel``."""

    name: str
    nodes: tuple[SiteNode, ...]
    online: bool
    """Any node Ready: pods can run there."""
    online_since: datetime | None = None
    """Earliest Ready-since among Ready nodes: the site has been online at least since then."""
    profile: str | None = None
    """Hardware profile of the current spec that applies to the site."""


def profile_for(profiles: Sequence[HardwareProfile], nodes: Sequence[SiteNode]) -> HardwareProfile | None:
    """First profile whose nodeLabels every node of the site carries (first match wins)."""
    for profile in profiles:
        if all(all(node.labels.get(k) == v for k, v in profile.node_labels.items()) for node in nodes):
            return profile
    return None


def discover_sites(nodes: Sequence[SiteNode], spec: EdgeFleetSpec) -> dict[str, SiteFacts]:
    """Group the selected nodes by site label, sorted by site name. Nodes without the label (or with
    an empty value) belong to no site, so labelling or unlabelling a node adds or removes a site."""
    grouped: dict[str, list[SiteNode]] = {}
    for node in nodes:
        site = node.labels.get(spec.site_label)
        if site and selector_matches(spec.node_selector, node.labels):
            grouped.setdefault(site, []).append(node)
    sites: dict[str, SiteFacts] = {}
    for name in sorted(grouped):
        members = tuple(sorted(grouped[name], key=lambda n: n.name))
        ready_times = [n.ready_since for n in members if n.ready and n.ready_since is not None]
        profile = profile_for(spec.hardware_profiles, members)
        sites[name] = SiteFacts(
            name=name,
            nodes=members,
            online=any(n.ready for n in members),
            online_since=min(ready_times) if ready_times else None,
            profile=profile.name if profile else None,
        )
    return sites


def timestamp(value: Any) -> datetime | None:
    """A timestamp as the API server writes it (RFC 3339), or None when missing or unreadable."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def site_node(node: Mapping[str, Any]) -> SiteNode:
    """SiteNode from a Node object as the API server returns it."""
    metadata = node.get("metadata") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    is_ready = bool(ready and ready.get("status") == "True")
    return SiteNode(
        name=str(metadata.get("name", "")),
        labels=dict(metadata.get("labels") or {}),
        ready=is_ready,
        ready_since=timestamp(ready.get("lastTransitionTime")) if ready and is_ready else None,
    )


@dataclass(frozen=True)
class SiteWorkload:
    """What a site's Deployment runs and whether it is fully rolled out and Ready."""

    revision: str | None
    ready: bool = False
    ready_since: datetime | None = None
    """When the Deployment became fully Ready on its revision; soak is measured from here."""
    updated_at: datetime | None = None
    """When the operator moved it to its revision; the wave timeout is measured from here."""


def site_workload(deployment: Mapping[str, Any]) -> SiteWorkload:
    """SiteWorkload from a site Deployment: Ready means the controller saw the latest generation and
    every replica is updated and available; Ready-since is when the new ReplicaSet became available."""
    metadata = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    ready = (
        int(status.get("observedGeneration", 0)) >= int(metadata.get("generation", 0))
        and int(status.get("updatedReplicas", 0)) >= replicas
        and int(status.get("availableReplicas", 0)) >= replicas
        and int(status.get("replicas", 0)) <= replicas
    )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    available = conditions.get("Available") or {}
    if progressing.get("reason") == "NewReplicaSetAvailable":
        ready_since = timestamp(progressing.get("lastUpdateTime"))
    else:
        ready_since = timestamp(available.get("lastTransitionTime"))
    return SiteWorkload(
        revision=(metadata.get("labels") or {}).get(REVISION_LABEL),
        ready=ready,
        ready_since=ready_since if ready else None,
        updated_at=timestamp((metadata.get("annotations") or {}).get(UPDATED_AT_ANNOTATION)),
    )


def owner_uids(metadata: Mapping[str, Any]) -> frozenset[str]:
    """UIDs of an object's ownerReferences: a fleet acts only on what it owns."""
    return frozenset(str(o.get("uid")) for o in metadata.get("ownerReferences") or [])


@dataclass(frozen=True)
class SiteDeployment:
    """A site Deployment as the index saw it: enough to plan and to tell whether it needs an apply."""

    name: str
    site: str
    owners: frozenset[str]
    workload: SiteWorkload
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    generation: int = 0


def site_deployment(deployment: Mapping[str, Any]) -> SiteDeployment:
    """SiteDeployment from a Deployment carrying the fleet label, as the API server returns it."""
    metadata, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    labels = dict(metadata.get("labels") or {})
    return SiteDeployment(
        name=str(metadata.get("name", "")),
        site=labels.get(SITE_LABEL, ""),
        owners=owner_uids(metadata),
        workload=site_workload(deployment),
        labels=labels,
        annotations=dict(metadata.get("annotations") or {}),
        replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        generation=int(metadata.get("generation") or 0),
    )
