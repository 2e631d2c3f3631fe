"""What the EdgeFleet planner is given: the fleet's status, its sites and their workloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finops_operator.api.edgefleet import EdgeFleetStatus
from finops_operator.planners.fleet.revisions import RevisionContent
from finops_operator.planners.fleet.sites import SiteFacts, SiteWorkload


@dataclass(frozen=True)
class FleetObservation:
    generation: int
    current_status: EdgeFleetStatus
    sites: Mapping[str, SiteFacts]
    site_workloads: Mapping[str, SiteWorkload] = field(default_factory=dict)
    """Existing site Deployments by site (also those of sites that no longer exist)."""
    revision_contents: Mapping[str, RevisionContent] = field(default_factory=dict)
    """Stored content of earlier revisions; the spec's own revision is always known."""
    health_ok: bool | None = None
    """Result of spec.rollout.healthQuery; None when there is none or it could not be evaluated."""
    health_error: str | None = None
    """Why a configured health query could not be evaluated: holds the wave (an unknown is not a pass)
    but never rolls back (a monitoring outage is not evidence against the revision)."""
    failed_revision: str | None = None
    """LOCAL STAND-IN for a proposed ``status.failedRevision``: the revision last rolled back, which
    is not retried while the spec still asks for it. The handler persists ``FleetPlan.failed_revision``."""
