"""``plan_fleet``: one EdgeFleet reconcile decided from the spec, the observation and ``now``: the
rollout, the writes it needs, the status and the events. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, apply_conditions
from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet.author import author_unchecked, in_force_since, stale_author_check
from finops_operator.planners.fleet.decision import plan_rollout
from finops_operator.planners.fleet.health import health_verdict
from finops_operator.planners.fleet.observation import FleetObservation, RolloutObservation
from finops_operator.planners.fleet.reasons import FleetEventReason, FleetReason
from finops_operator.planners.fleet.revisions import revision_of
from finops_operator.planners.fleet.sites import discover_sites
from finops_operator.planners.fleet.writes import plan_writes
from finops_operator.planners.plan import ApplyManifest, Event, Plan, invalid_spec


def policy_events(spec: EdgeFleetSpec, observed: FleetObservation) -> tuple[Event, ...]:
    """A warning when the referenced FinOpsPolicy does not exist, and has not on the previous
    reconcile either: a first absence may be a policy the index has not loaded yet."""
    reference = spec.fin_ops_policy_ref
    if reference is None or observed.policy_labels is not None or not observed.policy_missing_before:
        return ()
    message = f"FinOpsPolicy {reference.name} not found in namespace {observed.namespace}"
    return (Event("Warning", FleetEventReason.POLICY_NOT_FOUND, message),)


def plan_fleet(spec: EdgeFleetSpec, observed: FleetObservation, now: datetime) -> Plan[EdgeFleetStatus]:
    """Everything one reconcile of a fleet does. Only what the fleet owns is acted on: Deployments
    and stored revisions are matched by owner UID. Nothing is rolled out for a fleet whose author
    was not checked (``author.py``): its existing Deployments are left as they are. A revision a
    ModelReleaseGate refuses is never started (see :func:`gate_refused`)."""
    author_check = tuple(ApplyManifest(m) for m in stale_author_check(observed.author_check))
    unchecked = author_unchecked(observed.spec_written, in_force_since(observed.author_check), now)
    if unchecked is not None:
        held = invalid_spec(
            observed.current_status,
            generation=observed.generation,
            now=now,
            message=unchecked,
            reason=FleetReason.AUTHOR_UNCHECKED,
        )
        return Plan(status=held.status, intents=author_check)
    if observed.gate_refusal and revision_of(spec) != observed.current_status.stable_revision:
        plan = gate_refused(spec, observed, now)
    else:
        plan = _plan(spec, observed, now)
    return replace(plan, intents=(*author_check, *plan.intents))


def gate_refused(spec: EdgeFleetSpec, observed: FleetObservation, now: datetime) -> Plan[EdgeFleetStatus]:
    """The spec's revision fails a release gate: the fleet stays on its stable revision (planned as
    if that revision had been rolled back, without recording it as failed, so fixing the gate or the
    evidence resumes the rollout), or deploys nothing when it has none; Progressing=False and
    Degraded=True with the gate's message, and a Warning Event when that message is new."""
    message = f"revision {revision_of(spec)} refused by a release gate: {observed.gate_refusal}"
    current = observed.current_status
    if current.stable_revision is None:
        plan: Plan[EdgeFleetStatus] = Plan(
            status=current.model_copy(update={"observed_generation": observed.generation})
        )
    else:
        held = replace(
            observed, current_status=current.model_copy(update={"failed_revision": revision_of(spec)})
        )
        plan = _plan(spec, held, now)
    conditions = [
        ConditionUpdate(ConditionType.PROGRESSING, ConditionStatus.FALSE, FleetReason.GATE_REFUSED, message),
        ConditionUpdate(ConditionType.DEGRADED, ConditionStatus.TRUE, FleetReason.GATE_REFUSED, message),
    ]
    status = plan.status.model_copy(
        update={
            "failed_revision": current.failed_revision,
            "conditions": apply_conditions(plan.status.conditions, conditions, observed.generation, now),
        }
    )
    before = next((c for c in current.conditions if c.type == ConditionType.PROGRESSING), None)
    said = before is not None and before.reason == FleetReason.GATE_REFUSED and before.message == message
    events = plan.events if said else (*plan.events, Event("Warning", FleetEventReason.GATE_REFUSED, message))
    return replace(plan, status=status, events=events)


def _plan(spec: EdgeFleetSpec, observed: FleetObservation, now: datetime) -> Plan[EdgeFleetStatus]:
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
        intents=plan_writes(spec, observed, sites=sites, owned=owned, contents=contents, rollout=rollout),
    )
