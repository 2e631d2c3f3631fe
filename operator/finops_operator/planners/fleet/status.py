"""The status a pass of the rollout leaves: counters, history and the three conditions."""

from __future__ import annotations

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, apply_conditions
from finops_operator.api.edgefleet import EdgeFleetStatus
from finops_operator.planners.fleet.reasons import MAX_LISTED_SITES, FleetReason, listed
from finops_operator.planners.fleet.revisions import revision_history
from finops_operator.planners.fleet.rollout import Rollout, wave_steps


def _ready(run: Rollout) -> ConditionUpdate:
    """Ready when every online site's workload is Ready, whatever revision it runs: the fleet serves."""
    workloads = run.observed.site_workloads
    online = [s for s in run.names if run.online(s)]
    not_ready = [s for s in online if not ((w := workloads.get(s)) is not None and w.ready)]
    ready, not_ = ConditionType.READY, ConditionStatus.FALSE
    if not run.names:
        return ConditionUpdate(
            ready, ConditionStatus.TRUE, FleetReason.NO_SITES, "no node of the fleet has a site label"
        )
    if not online:
        return ConditionUpdate(
            ready, not_, FleetReason.ALL_SITES_OFFLINE, f"all {len(run.names)} site(s) are offline"
        )
    if not_ready:
        message = f"{len(not_ready)} of {len(online)} online site(s) not Ready: {listed(not_ready)}"
        return ConditionUpdate(ready, not_, FleetReason.SITES_NOT_READY, message)
    message = f"{len(online)} online site(s) Ready, {len(run.names) - len(online)} offline"
    return ConditionUpdate(ready, ConditionStatus.TRUE, FleetReason.ALL_SITES_READY, message)


def _progressing(run: Rollout, status: EdgeFleetStatus) -> ConditionUpdate:
    waves = len(wave_steps(run.spec.rollout.wave_percents))
    progress = f"{status.sites_updated}/{status.sites_total} site(s) on revision {run.current}"
    progressing, true, false = ConditionType.PROGRESSING, ConditionStatus.TRUE, ConditionStatus.FALSE
    if run.state == FleetReason.WAVE_IN_PROGRESS:
        message = f"wave {run.wave}/{waves}: {progress}; waiting for " + "; ".join(run.blockers)
        return ConditionUpdate(progressing, true, run.state, message)
    if run.state == FleetReason.DEPLOYING:
        return ConditionUpdate(progressing, true, run.state, f"first deployment: {progress}")
    if run.state == FleetReason.PAUSED:
        return ConditionUpdate(
            progressing, false, run.state, f"rollout held at wave {run.wave}/{waves}: {progress}"
        )
    if run.state == FleetReason.ROLLBACK_UNAVAILABLE:
        return ConditionUpdate(progressing, false, run.state, run.rollback_unavailable or "")
    if run.failed_revision is not None:
        message = (
            f"revision {run.failed_revision} was rolled back; {progress}; change the spec to roll out again"
        )
        return ConditionUpdate(progressing, false, FleetReason.ROLLED_BACK, message)
    return ConditionUpdate(progressing, false, run.state, progress)


def _degraded(run: Rollout, status: EdgeFleetStatus) -> ConditionUpdate:
    degraded, true = ConditionType.DEGRADED, ConditionStatus.TRUE
    if run.failed_revision is not None:
        return ConditionUpdate(degraded, true, FleetReason.ROLLED_BACK, status.last_rollback_reason or "")
    if run.rollback_unavailable is not None:
        return ConditionUpdate(degraded, true, FleetReason.ROLLBACK_UNAVAILABLE, run.rollback_unavailable)
    if run.failing:
        failing = sorted(run.failing)
        message = f"{len(failing)} site(s) failing: " + "; ".join(
            f"{s} {run.failing[s]}" for s in failing[:MAX_LISTED_SITES]
        )
        return ConditionUpdate(degraded, true, FleetReason.SITES_FAILING, message)
    return ConditionUpdate(degraded, ConditionStatus.FALSE, FleetReason.HEALTHY, "no site is failing")


def fleet_status(run: Rollout, spec_revision: str) -> EdgeFleetStatus:
    observed, names = run.observed, run.names
    status = observed.current_status.model_copy(deep=True)
    status.observed_generation = observed.generation
    status.current_revision = run.current
    status.stable_revision = run.stable
    status.current_wave = run.wave
    status.sites_total = len(names)
    status.sites_updated = sum(1 for s in names if run.revision_at(s) == run.current)
    status.sites_ready = sum(
        1 for s in names if (w := observed.site_workloads.get(s)) is not None and w.ready
    )
    status.sites_offline = sum(1 for s in names if not run.online(s))
    status.sites_failed = len(run.failing)
    status.revisions = revision_history(
        run.spec, observed.current_status.revisions, run.target, spec_revision, run.now
    )
    if run.rollback_reason is not None:
        status.last_rollback_reason = run.rollback_reason
    updates = [_ready(run), _progressing(run, status), _degraded(run, status)]
    status.conditions = apply_conditions(status.conditions, updates, observed.generation, run.now)
    return status
