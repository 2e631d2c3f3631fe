"""EdgeFleet planner: sites from nodes, one Deployment per site, and the wave rollout state machine.

``plan_fleet`` (in ``plan``) is the entry point; the other modules say what each part decides:
``sites`` (nodes to sites, API objects to facts), ``revisions`` (what a rollout protects), ``health``
(the rollout health query), ``decision`` and ``rollout`` (the wave state machine), ``status``
(conditions and counters), ``manifest`` (a site's Deployment), ``writes`` (what to create, apply and
delete), ``names``, ``author`` (a fleet's author must be allowed to create what the fleet makes the
operator create).
"""

from finops_operator.api.edgefleet import AUTHOR_CHECK_NAME
from finops_operator.planners.fleet.author import (
    AuthorCheckObject,
    author_check_object,
    in_force_since,
    spec_written_at,
    stale_author_check,
)
from finops_operator.planners.fleet.decision import RolloutPlan, WorkloadApply, plan_rollout
from finops_operator.planners.fleet.health import HealthAnswer, health_query
from finops_operator.planners.fleet.manifest import desired_deployment
from finops_operator.planners.fleet.names import (
    FLEET_LABEL,
    MODEL_VERSION_ANNOTATION,
    MODEL_VERSION_LABEL,
    PROFILE_ANNOTATION,
    REVISION_LABEL,
    UPDATED_AT_ANNOTATION,
    deployment_name,
    label_value,
    revision_object_name,
)
from finops_operator.planners.fleet.observation import AppliedWrite, FleetObservation, RolloutObservation
from finops_operator.planners.fleet.plan import plan_fleet, policy_events
from finops_operator.planners.fleet.reasons import FleetEvent, FleetEventReason, FleetReason
from finops_operator.planners.fleet.revisions import (
    RevisionContent,
    StoredRevision,
    revision_content,
    revision_of,
    stored_revision,
)
from finops_operator.planners.fleet.rollout import wave_size, wave_steps
from finops_operator.planners.fleet.sites import (
    SiteDeployment,
    SiteFacts,
    SiteNode,
    SiteWorkload,
    discover_sites,
    site_deployment,
    site_node,
    site_workload,
)
from finops_operator.planners.fleet.writes import remembered

__all__ = [
    "AUTHOR_CHECK_NAME",
    "FLEET_LABEL",
    "MODEL_VERSION_ANNOTATION",
    "MODEL_VERSION_LABEL",
    "PROFILE_ANNOTATION",
    "REVISION_LABEL",
    "UPDATED_AT_ANNOTATION",
    "AppliedWrite",
    "AuthorCheckObject",
    "FleetEvent",
    "FleetEventReason",
    "FleetObservation",
    "FleetReason",
    "HealthAnswer",
    "RevisionContent",
    "RolloutObservation",
    "RolloutPlan",
    "SiteDeployment",
    "SiteFacts",
    "SiteNode",
    "SiteWorkload",
    "StoredRevision",
    "WorkloadApply",
    "author_check_object",
    "deployment_name",
    "desired_deployment",
    "discover_sites",
    "health_query",
    "in_force_since",
    "label_value",
    "plan_fleet",
    "plan_rollout",
    "policy_events",
    "remembered",
    "revision_content",
    "revision_object_name",
    "revision_of",
    "site_deployment",
    "site_node",
    "site_workload",
    "spec_written_at",
    "stale_author_check",
    "stored_revision",
    "wave_size",
    "wave_steps",
]
