"""What the EdgeFleet planner is given: everything ``observe`` gathered for one fleet, and the part of
it the rollout state machine works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from finops_operator.api.edgefleet import EdgeFleetStatus
from finops_operator.planners.fleet.health import HealthAnswer
from finops_operator.planners.fleet.revisions import RevisionContent, StoredRevision
from finops_operator.planners.fleet.sites import SiteDeployment, SiteFacts, SiteNode, SiteWorkload


@dataclass(frozen=True)
class AppliedWrite:
    """What this process last applied to one Deployment. Memory only: after a restart the
    applied-hash annotation alone decides, which is still correct."""

    revision: str
    updated_at: datetime
    """Kept while the index has not caught up, so a stale view does not restart the wave timeout."""
    generation: int
    """The generation the apply produced: a later one means someone edited the Deployment."""


@dataclass(frozen=True)
class FleetObservation:
    """One fleet and what ``observe`` saw around it: index copies, the health answer, own writes."""

    namespace: str
    name: str
    uid: str
    generation: int
    current_status: EdgeFleetStatus
    nodes: tuple[SiteNode, ...] = ()
    deployments: tuple[SiteDeployment, ...] = ()
    """Deployments carrying the fleet's label (owned or not)."""
    revisions: tuple[StoredRevision, ...] = ()
    """ControllerRevisions carrying the fleet's label (owned or not)."""
    policy_labels: Mapping[str, str] | None = None
    """matchLabels of the referenced FinOpsPolicy; None when there is no reference or no such policy."""
    policy_missing_before: bool = False
    """The previous reconcile of this fleet (in this process) found no such policy either. A first
    absence is no evidence: the policy may exist and not be in the index yet (the operator just
    started, or the policy was created with the fleet and its watch event is still on its way)."""
    health: HealthAnswer | None = None
    """The answer to :func:`~finops_operator.planners.fleet.health.health_query`; None when not asked."""
    applied: Mapping[str, AppliedWrite] = field(default_factory=dict)
    """This process's last write per Deployment name."""
    gate_refusal: str = ""
    """Why the Enforce ModelReleaseGates selecting the spec's pod template reject it (the webhook's
    message); empty when none does."""


@dataclass(frozen=True)
class RolloutObservation:
    """The part of the observation the wave state machine works on."""

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
    """The revision last rolled back (``status.failedRevision``), not retried while the spec still
    asks for it."""
