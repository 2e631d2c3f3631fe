"""The wave state machine: which revision every site runs, when a wave passes, when to roll back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from finops_operator.api.conditions import ConditionType, find
from finops_operator.api.edgefleet import EdgeFleetSpec
from finops_operator.planners.fleet.observation import RolloutObservation
from finops_operator.planners.fleet.reasons import (
    MAX_LISTED_SITES,
    FleetEvent,
    FleetEventReason,
    FleetReason,
    listed,
    seconds,
)
from finops_operator.planners.fleet.revisions import RevisionContent


def wave_steps(percents: Sequence[int]) -> list[int]:
    """Increasing cumulative wave percentages ending at 100 (the CRD validates this; repeat it here so
    a bad object can never leave sites behind)."""
    steps = sorted({min(max(p, 1), 100) for p in percents})
    return steps if steps and steps[-1] == 100 else [*steps, 100]


def wave_size(percent: int, total: int) -> int:
    """Sites on the new revision by the end of a wave: ceil(percent% of total), at least one."""
    if total == 0:
        return 0
    return min(total, max(1, math.ceil(percent * total / 100)))


@dataclass
class Rollout:
    """Working state of one planning pass (mutable scratch, never returned)."""

    spec: EdgeFleetSpec
    observed: RolloutObservation
    now: datetime
    target: str
    stable: str | None
    contents: dict[str, RevisionContent]
    names: list[str]
    failing: dict[str, str]
    desired: dict[str, str] = field(default_factory=dict)
    wave: int = 0
    current: str = ""
    blockers: list[str] = field(default_factory=list)
    events: list[FleetEvent] = field(default_factory=list)
    rollback_reason: str | None = None
    rollback_unavailable: str | None = None
    failed_revision: str | None = None
    state: str = FleetReason.ROLLOUT_COMPLETE

    def revision_at(self, site: str) -> str | None:
        workload = self.observed.site_workloads.get(site)
        return workload.revision if workload else None

    def online(self, site: str) -> bool:
        return self.observed.sites[site].online


def failing_sites(observed: RolloutObservation, spec: EdgeFleetSpec, now: datetime) -> dict[str, str]:
    """Online sites not Ready ``waveTimeoutSeconds`` after their update, with why. The clock starts
    at the later of the update and the site coming online, so a site returning from an outage gets
    the full timeout to start its pods."""
    timeout = timedelta(seconds=spec.rollout.wave_timeout_seconds)
    failing: dict[str, str] = {}
    for name, site in observed.sites.items():
        workload = observed.site_workloads.get(name)
        if not site.online or workload is None or workload.ready or workload.updated_at is None:
            continue
        started = max(workload.updated_at, site.online_since or workload.updated_at)
        if started + timeout <= now:
            failing[name] = f"not Ready {seconds(now - started)}s after update (timeout {seconds(timeout)}s)"
    return failing


def _soaked(run: Rollout, site: str, soak: timedelta) -> bool:
    workload = run.observed.site_workloads.get(site)
    if workload is None or not workload.ready or workload.ready_since is None:
        return False
    since = max(workload.ready_since, workload.updated_at or workload.ready_since)
    return since + soak <= run.now


def _top_up(run: Rollout, assigned: list[str], size: int) -> list[str]:
    """Assign more sites to the target until ``size`` are on it: sorted by name, online sites first."""
    if len(assigned) >= size:
        return []
    taken = set(assigned)
    candidates = sorted((n for n in run.names if n not in taken), key=lambda n: (not run.online(n), n))
    added = candidates[: size - len(assigned)]
    assigned.extend(added)
    return added


def _wave_blockers(run: Rollout, assigned: Sequence[str], size: int) -> list[str]:
    """Why the current wave has not passed yet; empty when it has."""
    spec = run.spec
    blockers: list[str] = []
    if len(assigned) < size:
        blockers.append(f"{size - len(assigned)} more site(s) to update")
    pending = [s for s in assigned if run.revision_at(s) != run.target]
    if pending:
        blockers.append(f"update of {listed(pending)} to be applied")
    soak = timedelta(seconds=spec.rollout.soak_seconds)
    # Failing sites within maxFailedSitesPercent are tolerated (and reported as Degraded), not waited for.
    unsoaked = [
        s
        for s in assigned
        if s not in pending and s not in run.failing and run.online(s) and not _soaked(run, s, soak)
    ]
    updated_online = [s for s in assigned if s not in pending and run.online(s)]
    if updated_online and all(s in run.failing for s in updated_online):
        blockers.append("at least one updated site to be Ready")  # tolerating failures needs a success
    if unsoaked:
        blockers.append(f"{listed(unsoaked)} to be Ready for {spec.rollout.soak_seconds}s")
    offline = [s for s in assigned if not run.online(s)]
    tolerance = spec.offline_tolerance.max_offline_sites_percent
    if offline and len(offline) * 100 > tolerance * len(assigned):
        blockers.append(
            f"offline sites {listed(offline)} ({len(offline)} of {len(assigned)}) exceed {tolerance}%"
        )
    if run.observed.health_ok is False:
        blockers.append("the health query to pass")
    elif run.observed.health_error is not None:
        blockers.append(f"the health query to be evaluable ({run.observed.health_error})")
    return blockers


def _health_timed_out(run: Rollout, assigned: Sequence[str]) -> bool:
    """The health query has failed although every wave site was updated more than the timeout ago."""
    if run.observed.health_ok is not False or not assigned:
        return False
    updates = [
        run.observed.site_workloads[s].updated_at for s in assigned if run.revision_at(s) == run.target
    ]
    if len(updates) < len(assigned) or any(u is None for u in updates):
        return False
    latest = max(u for u in updates if u is not None)
    return latest + timedelta(seconds=run.spec.rollout.wave_timeout_seconds) <= run.now


def _roll_back(run: Rollout, waves: Sequence[int], assigned: Sequence[str], why: str) -> None:
    stable = run.stable
    if stable is None or stable not in run.contents:
        run.rollback_unavailable = (
            f"revision {run.target} must be rolled back ({why}) but the content of stable revision "
            f"{stable} is not available; holding the rollout"
        )
        degraded = find(run.observed.current_status.conditions, ConditionType.DEGRADED)
        if degraded is None or degraded.reason != FleetReason.ROLLBACK_UNAVAILABLE:
            run.events.append(
                FleetEvent("Warning", FleetEventReason.ROLLBACK_UNAVAILABLE, run.rollback_unavailable)
            )
        run.state = FleetReason.ROLLBACK_UNAVAILABLE
        return
    run.rollback_reason = (
        f"revision {run.target} (wave {run.wave}/{len(waves)}, {len(assigned)} site(s)) rolled back to "
        f"{stable}: {why}"
    )
    run.events.append(FleetEvent("Warning", FleetEventReason.ROLLED_BACK, run.rollback_reason))
    run.failed_revision = run.target
    run.desired = dict.fromkeys(run.names, stable)
    run.current, run.wave, run.state = stable, 0, FleetReason.ROLLED_BACK


def _fallback_revision(run: Rollout, site: str) -> str:
    """What a site outside the rollout's waves runs: what it runs now (a superseded rollout's sites
    are not disturbed twice), else the stable revision, else the target. Never nothing: a rollout
    must not leave a site without a workload."""
    running = run.revision_at(site)
    if running is not None and running != run.observed.failed_revision:
        return running
    if run.stable is not None and run.stable in run.contents:
        return run.stable
    return run.target


def advance(run: Rollout) -> None:
    """One pass of the wave state machine for a rollout from ``stable`` to ``target``."""
    spec, previous = run.spec, run.observed.current_status
    waves = wave_steps(spec.rollout.wave_percents)
    paused = spec.rollout.paused
    starting = previous.current_revision != run.target or previous.current_wave < 1
    run.wave = 1 if starting else min(previous.current_wave, len(waves))
    run.current = run.target
    if previous.current_revision != run.target:
        run.events.append(
            FleetEvent(
                "Normal",
                FleetEventReason.ROLLOUT_STARTED,
                f"rolling out revision {run.target} (model {spec.model_version}) from {run.stable} "
                f"in waves of {'/'.join(map(str, waves))}%" + (" (paused)" if paused else ""),
            )
        )
    total = len(run.names)
    assigned = [s for s in run.names if run.revision_at(s) == run.target]
    if not paused:
        _top_up(run, assigned, wave_size(waves[run.wave - 1], total))

    failed = [s for s in assigned if s in run.failing and run.revision_at(s) == run.target]
    limit = spec.rollout.max_failed_sites_percent
    if failed and len(failed) * 100 > limit * len(assigned):
        why = f"{len(failed)} of {len(assigned)} site(s) failed (more than {limit}%): " + "; ".join(
            f"{s} {run.failing[s]}" for s in failed[:MAX_LISTED_SITES]
        )
        _roll_back(run, waves, assigned, why)
    elif _health_timed_out(run, assigned):
        why = (
            f"the health query kept failing for {spec.rollout.wave_timeout_seconds}s after the wave's updates"
        )
        _roll_back(run, waves, assigned, why)
    if run.state == FleetReason.ROLLED_BACK:
        return

    if run.state != FleetReason.ROLLBACK_UNAVAILABLE:
        run.state = FleetReason.PAUSED if paused else FleetReason.WAVE_IN_PROGRESS
        while True:
            run.blockers = _wave_blockers(run, assigned, wave_size(waves[run.wave - 1], total))
            if run.blockers or paused:
                break
            if run.wave == len(waves):
                run.stable, run.wave, run.state = run.target, 0, FleetReason.ROLLOUT_COMPLETE
                run.events.append(
                    FleetEvent(
                        "Normal",
                        FleetEventReason.ROLLOUT_COMPLETE,
                        f"revision {run.target} (model {spec.model_version}) runs on all {total} site(s)",
                    )
                )
                break
            run.wave += 1
            added = _top_up(run, assigned, wave_size(waves[run.wave - 1], total))
            run.events.append(
                FleetEvent(
                    "Normal",
                    FleetEventReason.WAVE_STARTED,
                    f"wave {run.wave}/{len(waves)} ({waves[run.wave - 1]}%): updating {listed(added)}"
                    if added
                    else f"wave {run.wave}/{len(waves)} ({waves[run.wave - 1]}%): no further sites needed",
                )
            )
    on_target = set(assigned)
    run.desired = {s: run.target if s in on_target else _fallback_revision(run, s) for s in run.names}


def first_deployment(run: Rollout) -> None:
    """No stable revision yet: nothing runs that a wave could protect, so every site gets the target
    at once; it becomes stable when every online site is Ready on it."""
    run.desired = dict.fromkeys(run.names, run.target)
    settled = all(
        run.revision_at(s) == run.target and run.observed.site_workloads[s].ready
        for s in run.names
        if run.online(s)
    )
    run.state = FleetReason.ROLLOUT_COMPLETE if settled else FleetReason.DEPLOYING
    if settled:
        run.stable = run.target
        message = (
            f"revision {run.target} (model {run.spec.model_version}) deployed to {len(run.names)} site(s)"
        )
        run.events.append(FleetEvent("Normal", FleetEventReason.ROLLOUT_COMPLETE, message))
