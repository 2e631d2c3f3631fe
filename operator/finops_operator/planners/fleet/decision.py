"""The rollout decision: from the spec, the sites, their workloads and ``now``, which revision every
site runs, which Deployments go away, what the status says and which events to post. Pure: nothing is
read from a cluster or a clock, and the same inputs always give the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet.observation import RolloutObservation
from finops_operator.planners.fleet.reasons import FleetEvent, FleetEventReason, listed
from finops_operator.planners.fleet.revisions import RevisionContent, revision_content
from finops_operator.planners.fleet.rollout import Rollout, advance, failing_sites, first_deployment
from finops_operator.planners.fleet.status import fleet_status


@dataclass(frozen=True)
class WorkloadApply:
    """One site's desired Deployment: render with :func:`desired_deployment` and apply."""

    site: str
    revision: str
    updated_at: datetime
    """Kept from the observed Deployment when its revision does not change, else ``now``."""


@dataclass(frozen=True)
class RolloutPlan:
    status: EdgeFleetStatus
    workloads_to_apply: tuple[WorkloadApply, ...] = ()
    """Every existing site, sorted by name (applying an unchanged manifest is a no-op); only a site
    whose revision's stored content was lost is left out, and left as it is."""
    workloads_to_delete: tuple[str, ...] = ()
    """Sites whose Deployment must go: the site no longer exists."""
    events: tuple[FleetEvent, ...] = ()
    revisions_to_store: Mapping[str, RevisionContent] = field(default_factory=dict)
    """Content to persist before applying any workload: the rollback target of the next rollout."""
    revisions_to_keep: frozenset[str] = frozenset()
    """Stored revisions still needed (history, stable, in use); the handler may delete the rest."""
    failed_revision: str | None = None
    """See :attr:`RolloutObservation.failed_revision`."""


def _site_events(
    observed: RolloutObservation, names: Sequence[str], removed: Sequence[str]
) -> list[FleetEvent]:
    added = [s for s in names if s not in observed.site_workloads]
    events: list[FleetEvent] = []
    if added:
        events.append(
            FleetEvent("Normal", FleetEventReason.SITES_ADDED, f"{len(added)} new site(s): {listed(added)}")
        )
    if removed:
        events.append(
            FleetEvent(
                "Normal", FleetEventReason.SITES_REMOVED, f"{len(removed)} site(s) gone: {listed(removed)}"
            )
        )
    return events


def _applies(run: Rollout, spec_revision: str) -> tuple[WorkloadApply, ...]:
    """Every site's desired Deployment. A revision whose stored content was lost cannot be rendered:
    a site already running something is then left as it is, a site without a workload gets the
    spec's revision (unless that is the one rolled back)."""
    applies = []
    for site in run.names:
        revision = run.desired[site]
        workload = run.observed.site_workloads.get(site)
        if revision not in run.contents:
            if workload is not None or spec_revision == run.failed_revision:
                continue
            revision = spec_revision
        updated_at = run.now
        if workload is not None and workload.revision == revision and workload.updated_at is not None:
            updated_at = workload.updated_at
        applies.append(WorkloadApply(site, revision, updated_at))
    return tuple(applies)


def plan_rollout(spec: EdgeFleetSpec, observed: RolloutObservation, now: datetime) -> RolloutPlan:
    """Decide every site's revision, the wave, rollback and status. Pure: same inputs, same plan.

    - No stable revision yet (first deployment): see :func:`first_deployment`.
    - Stable equals target: every site (new ones too) runs it.
    - Otherwise a rollout in waves; see :func:`advance`. While paused, no site is moved forward and
      no wave passes, but automatic rollback still happens: pausing must never make a failing
      rollout less safe (set maxFailedSitesPercent to 100 to keep failing sites for debugging).
    - A revision rolled back is not retried while the spec still asks for it: the fleet stays on
      the stable revision, Degraded=True RolledBack, until the spec changes.
    """
    spec_content = revision_content(spec)
    spec_revision = spec_content.revision
    contents = {**observed.revision_contents, spec_revision: spec_content}
    stable = observed.current_status.stable_revision
    failed_revision = observed.failed_revision if observed.failed_revision == spec_revision else None
    if stable is None:
        failed_revision = None  # nothing to hold on to: keep deploying the spec
    target = stable if stable is not None and failed_revision is not None else spec_revision
    run = Rollout(
        spec=spec,
        observed=observed,
        now=now,
        target=target,
        stable=stable,
        contents=contents,
        names=sorted(observed.sites),
        failing=failing_sites(observed, spec, now),
        current=target,
        failed_revision=failed_revision,
    )
    if stable is None:
        first_deployment(run)
    elif stable == target:
        run.desired = dict.fromkeys(run.names, target)
    else:
        advance(run)

    removed = sorted(s for s in observed.site_workloads if s not in observed.sites)
    status = fleet_status(run, spec_revision)
    in_use = {run.current, *(r for r in (run.stable, target) if r is not None), *run.desired.values()}
    store = {spec_revision: spec_content} if spec_revision in in_use - set(observed.revision_contents) else {}
    return RolloutPlan(
        status=status,
        workloads_to_apply=_applies(run, spec_revision),
        workloads_to_delete=tuple(removed),
        events=(*_site_events(observed, run.names, removed), *run.events),
        revisions_to_store=store,
        revisions_to_keep=frozenset(in_use | {r.revision for r in status.revisions}),
        failed_revision=run.failed_revision,
    )
