"""``plan_fleet``: one EdgeFleet reconcile decided from the spec, the observation and ``now``: the
rollout, the writes it needs, the status and the events. Pure."""

from __future__ import annotations

from datetime import datetime

from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet.author import author_unchecked, in_force_since, stale_author_check
from finops_operator.planners.fleet.decision import plan_rollout
from finops_operator.planners.fleet.health import health_verdict
from finops_operator.planners.fleet.observation import FleetObservation, RolloutObservation
from finops_operator.planners.fleet.reasons import FleetEventReason, FleetReason
from finops_operator.planners.fleet.sites import discover_sites
from finops_operator.planners.fleet.writes import plan_writes
from finops_operator.planners.plan import ApplyManifest, Event, Plan, invalid_spec


def policy_events(spec: EdgeFleetSpec, observed: FleetObservation) -> tuple[Event, ...]:
    """A warning when the referenced FinOpsPolicy does not exist, and has not on the previous
    reconcile either: a first absence may be a policy the index has not loaded yet."""
    reference = spec.fin_ops_policy_ref
    if reference is None or observed.policy_labels is not None or not observed.policy_missing_before:
        return ()
    message = f"FinOpsPolicy {reference.name} not found"
    return (Event("Warning", FleetEventReason.POLICY_NOT_FOUND, message),)


def plan_fleet(spec: EdgeFleetSpec, observed: FleetObservation, now: datetime) -> Plan[EdgeFleetStatus]:
    """Everything one reconcile of a fleet does. Only what the fleet owns is acted on: Deployments
    and stored revisions are matched by owner UID. Nothing is rolled out for a fleet whose author
    was not checked (``author.py``): its existing Deployments are left as they are."""
    author_check = tuple(ApplyManifest(m) for m in stale_author_check(observed.author_check))
    unchecked = author_unchecked(observed.spec_written, in_force_since(observed.author_check))
    if unchecked is not None:
        held = invalid_spec(
            observed.current_status,
            generation=observed.generation,
            now=now,
            message=unchecked,
            reason=FleetReason.AUTHOR_UNCHECKED,
        )
        return Plan(status=held.status, intents=author_check)
    status = observed.current_status
    owned = [d for d in observed.deployments if observed.uid in d.owners and d.site]
    contents = {
        r.revision: r.content
        for r in observed.revisions
        if observed.uid in r.owners and r.content is not None
    }
    sites = discover_sites(observed.nodes, spec)
    health_ok, health_error = health_verdict(observed.health)
    rollout = plan_rollout(
        spec,
        RolloutObservation(
            generation=observed.generation,
            current_status=status,
            sites=sites,
            site_workloads={d.site: d.workload for d in owned},
            revision_contents=contents,
            health_ok=health_ok,
            health_error=health_error,
            failed_revision=status.failed_revision,
        ),
        now,
    )
    return Plan(
        status=rollout.status.model_copy(update={"failed_revision": rollout.failed_revision}),
        events=(
            *policy_events(spec, observed),
            *(Event(e.type, e.reason, e.message) for e in rollout.events),
        ),
        intents=(
            *author_check,
            *plan_writes(spec, observed, sites=sites, owned=owned, contents=contents, rollout=rollout),
        ),
    )
