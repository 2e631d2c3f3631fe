"""EdgeFleet planner: sites from nodes, one Deployment per site, and the wave rollout state machine.

``plan_fleet`` is the entry point; the modules say what each part decides: ``sites`` (nodes to sites,
API objects to facts), ``revisions`` (what a rollout protects), ``rollout`` (the wave state machine),
``status`` (conditions and counters), ``manifest`` (a site's Deployment), ``names``.
"""

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
from finops_operator.planners.fleet.observation import FleetObservation
from finops_operator.planners.fleet.plan import FleetPlan, WorkloadApply, plan_fleet
from finops_operator.planners.fleet.reasons import FleetEvent, FleetEventReason, FleetReason
from finops_operator.planners.fleet.revisions import RevisionContent, revision_content, revision_of
from finops_operator.planners.fleet.rollout import wave_size, wave_steps
from finops_operator.planners.fleet.sites import (
    SiteFacts,
    SiteNode,
    SiteWorkload,
    discover_sites,
    site_node,
    site_workload,
)

__all__ = [
    "FLEET_LABEL",
    "MODEL_VERSION_ANNOTATION",
    "MODEL_VERSION_LABEL",
    "PROFILE_ANNOTATION",
    "REVISION_LABEL",
    "UPDATED_AT_ANNOTATION",
    "FleetEvent",
    "FleetEventReason",
    "FleetObservation",
    "FleetPlan",
    "FleetReason",
    "RevisionContent",
    "SiteFacts",
    "SiteNode",
    "SiteWorkload",
    "WorkloadApply",
    "deployment_name",
    "desired_deployment",
    "discover_sites",
    "label_value",
    "plan_fleet",
    "revision_content",
    "revision_object_name",
    "revision_of",
    "site_node",
    "site_workload",
    "wave_size",
    "wave_steps",
]
