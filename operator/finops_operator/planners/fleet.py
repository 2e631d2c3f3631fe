"""EdgeFleet planner: sites from nodes, one Deployment per site, and the wave rollout state machine.

The handler gathers nodes, the fleet's site Deployments, the stored content of earlier revisions and the
optional health query result; this module decides which revision every site runs, which Deployments
go away, what the status says and which events to post. Pure: ``now`` is an argument, nothing is read
from a cluster or a clock, and the same inputs always give the same plan.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from finops_operator.api.common import ConditionStatus, LabelSelector
from finops_operator.api.conditions import ConditionType, ConditionUpdate, apply_conditions, find
from finops_operator.api.edgefleet import (
    SITE_LABEL,
    EdgeFleetSpec,
    EdgeFleetStatus,
    HardwareProfile,
    RevisionRecord,
)
from finops_operator.planners.labelselectors import selector_matches

FLEET_LABEL = "finops.dev/edgefleet"
REVISION_LABEL = "finops.dev/revision"
MODEL_VERSION_LABEL = "finops.dev/model-version"
MODEL_VERSION_ANNOTATION = "finops.dev/model-version"
PROFILE_ANNOTATION = "finops.dev/hardware-profile"
UPDATED_AT_ANNOTATION = "finops.dev/revision-updated-at"
"""When the operator last moved the Deployment to a new revision: starts the wave timeout clock."""

MAX_NAME_LENGTH = 63
REVISION_HASH_LENGTH = 10
NAME_HASH_LENGTH = 8
MAX_LISTED_SITES = 10
"""Site names quoted in condition messages and events before the list is cut short."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class FleetReason:
    """Condition reasons specific to EdgeFleet (Argo CD health reads Ready, Progressing, Degraded)."""

    ALL_SITES_READY = "AllSitesReady"
    SITES_NOT_READY = "SitesNotReady"
    ALL_SITES_OFFLINE = "AllSitesOffline"
    NO_SITES = "NoSites"
    DEPLOYING = "Deploying"
    WAVE_IN_PROGRESS = "WaveInProgress"
    PAUSED = "Paused"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_UNAVAILABLE = "RollbackUnavailable"
    SITES_FAILING = "SitesFailing"
    HEALTHY = "Healthy"


class FleetEventReason:
    """Reasons of the Kubernetes events the plan asks the handler to post."""

    ROLLOUT_STARTED = "RolloutStarted"
    WAVE_STARTED = "WaveStarted"
    ROLLOUT_COMPLETE = "RolloutComplete"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_UNAVAILABLE = "RollbackUnavailable"
    SITES_ADDED = "SitesAdded"
    SITES_REMOVED = "SitesRemoved"


# --- names and label values ------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def dns_name(*parts: str) -> str:
    """``parts`` joined by dashes when that is already a DNS-1123 label, else a sanitised, truncated
    form with a hash of the original parts, so distinct inputs never collapse onto one name."""
    raw = "-".join(parts)
    if len(raw) <= MAX_NAME_LENGTH and _DNS_LABEL.match(raw):
        return raw
    suffix = _digest(*parts)[:NAME_HASH_LENGTH]
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")
    head = cleaned[: MAX_NAME_LENGTH - NAME_HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def label_value(value: str) -> str:
    """``value`` if it is a valid label value, else a sanitised, truncated form with a hash suffix
    (fleet names may be 253 characters, model versions carry ``+`` or ``/``)."""
    if len(value) <= MAX_NAME_LENGTH and _LABEL_VALUE.match(value):
        return value
    suffix = _digest(value)[:NAME_HASH_LENGTH]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")
    head = cleaned[: MAX_NAME_LENGTH - NAME_HASH_LENGTH - 1].rstrip("-_.")
    return f"{head}-{suffix}" if head else suffix


def deployment_name(fleet_name: str, site: str) -> str:
    """Name of a site's Deployment: deterministic, so a re-created operator finds its workloads."""
    return dns_name(fleet_name, site)


def revision_object_name(fleet_name: str, revision: str) -> str:
    """Name of the object storing a revision's content (proposed: an apps/v1 ControllerRevision)."""
    return dns_name(fleet_name, "rev", revision)


# --- revisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionContent:
    """Everything a revision renders from; stored per revision so a rollback can re-render the old one.

    Replicas, node selection and rollout settings are deliberately not part of it: they are fleet-wide
    operating settings that apply at once, and changing them must not start a wave rollout.
    """

    model_version: str
    template: Mapping[str, Any]
    hardware_profiles: tuple[HardwareProfile, ...] = ()

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form, as the handler stores it (camelCase like the spec)."""
        return {
            "modelVersion": self.model_version,
            "template": copy.deepcopy(dict(self.template)),
            "hardwareProfiles": [profile.to_wire() for profile in self.hardware_profiles],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RevisionContent:
        """Inverse of :meth:`to_data`; raises pydantic's ValidationError or KeyError on foreign data."""
        return cls(
            model_version=str(data["modelVersion"]),
            template=dict(data["template"]),
            hardware_profiles=tuple(
                HardwareProfile.model_validate(profile) for profile in data.get("hardwareProfiles") or []
            ),
        )

    @property
    def revision(self) -> str:
        """Short, stable hash of the canonical JSON form: same content, same revision, on any host."""
        canonical = json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_HASH_LENGTH]


def revision_content(spec: EdgeFleetSpec) -> RevisionContent:
    return RevisionContent(spec.model_version, spec.template, tuple(spec.hardware_profiles))


def revision_of(spec: EdgeFleetSpec) -> str:
    """Revision of the spec: modelVersion + template + hardwareProfiles (not replicasPerSite, see
    :class:`RevisionContent`)."""
    return revision_content(spec).revision


# --- sites -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeFacts:
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
    nodes: tuple[NodeFacts, ...]
    online: bool
    """Any node Ready: pods can run there."""
    online_since: datetime | None = None
    """Earliest Ready-since among Ready nodes: the site has been online at least since then."""
    profile: str | None = None
    """Hardware profile of the current spec that applies to the site."""


def profile_for(profiles: Sequence[HardwareProfile], nodes: Sequence[NodeFacts]) -> HardwareProfile | None:
    """First profile whose nodeLabels every node of the site carries (first match wins)."""
    for profile in profiles:
        if all(all(node.labels.get(k) == v for k, v in profile.node_labels.items()) for node in nodes):
            return profile
    return None


def discover_sites(nodes: Sequence[NodeFacts], spec: EdgeFleetSpec) -> dict[str, SiteFacts]:
    """Group the selected nodes by site label, sorted by site name. Nodes without the label (or with
    an empty value) belong to no site, so labelling or unlabelling a node adds or removes a site."""
    grouped: dict[str, list[NodeFacts]] = {}
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


# --- observation helpers for the handler -----------------------------------------------------------


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def node_facts(node: Mapping[str, Any]) -> NodeFacts:
    """NodeFacts from a Node object as the API server returns it."""
    metadata = node.get("metadata") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    is_ready = bool(ready and ready.get("status") == "True")
    return NodeFacts(
        name=str(metadata.get("name", "")),
        labels=dict(metadata.get("labels") or {}),
        ready=is_ready,
        ready_since=_timestamp(ready.get("lastTransitionTime")) if ready and is_ready else None,
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
        ready_since = _timestamp(progressing.get("lastUpdateTime"))
    else:
        ready_since = _timestamp(available.get("lastTransitionTime"))
    return SiteWorkload(
        revision=(metadata.get("labels") or {}).get(REVISION_LABEL),
        ready=ready,
        ready_since=ready_since if ready else None,
        updated_at=_timestamp((metadata.get("annotations") or {}).get(UPDATED_AT_ANNOTATION)),
    )


# --- the site Deployment ---------------------------------------------------------------------------


def _node_requirements(selector: LabelSelector) -> list[dict[str, Any]]:
    requirements: list[dict[str, Any]] = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(selector.match_labels.items())
    ]
    for requirement in selector.match_expressions:
        entry: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
        if requirement.values:
            entry["values"] = list(requirement.values)
        requirements.append(entry)
    return requirements


def _require_fleet_nodes(pod_spec: dict[str, Any], selector: LabelSelector) -> None:
    """AND the fleet's node selector into every required node-affinity term, so a pod never lands on
    a node of the site that is not part of the fleet."""
    requirements = _node_requirements(selector)
    if not requirements:
        return
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*(term.get("matchExpressions") or []), *requirements]} for term in terms
    ]


def desired_deployment(
    fleet_name: str,
    namespace: str,
    spec: EdgeFleetSpec,
    site: SiteFacts,
    *,
    revision: str,
    content: RevisionContent,
    policy_labels: Mapping[str, str],
    updated_at: datetime,
) -> dict[str, Any]:
    """The apps/v1 Deployment of one site at one revision, without ownerReferences.

    The pod template comes from the revision's content (not the current spec) so rollbacks restore
    exactly what ran before; hardware profiles are resolved against that content too. Replicas and
    node pinning come from the current spec. ``policy_labels`` go on the Deployment only: the
    FinOpsPolicy selects Deployments, and pods must not restart when the policy reference changes.
    """
    template: dict[str, Any] = copy.deepcopy(dict(content.template))
    pod_meta: dict[str, Any] = template.setdefault("metadata", {})
    pod_spec: dict[str, Any] = template.setdefault("spec", {})
    profile = profile_for(content.hardware_profiles, site.nodes)
    containers = pod_spec.get("containers") or []
    if profile is not None and containers:
        if profile.image is not None:
            containers[0]["image"] = profile.image
        if profile.resources is not None:
            containers[0]["resources"] = copy.deepcopy(profile.resources)
    selector_labels = {FLEET_LABEL: label_value(fleet_name), SITE_LABEL: site.name}
    labels = {
        **selector_labels,
        REVISION_LABEL: revision,
        MODEL_VERSION_LABEL: label_value(content.model_version),
    }
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), spec.site_label: site.name}
    _require_fleet_nodes(pod_spec, spec.node_selector)
    annotations = {
        MODEL_VERSION_ANNOTATION: content.model_version,
        UPDATED_AT_ANNOTATION: updated_at.isoformat(),
    }
    if profile is not None:
        annotations[PROFILE_ANNOTATION] = profile.name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(fleet_name, site.name),
            "namespace": namespace,
            "labels": {**policy_labels, **labels},
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.replicas_per_site,
            "selector": {"matchLabels": selector_labels},
            # An edge site has no spare accelerator for a surge pod: with the default 25 % surge a new
            # revision's pod would stay Pending next to the old one forever. Replace in place instead.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": template,
        },
    }


# --- the rollout state machine ---------------------------------------------------------------------


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


class FleetEvent(NamedTuple):
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class WorkloadApply:
    """One site's desired Deployment: render with :func:`desired_deployment` and apply."""

    site: str
    revision: str
    updated_at: datetime
    """Kept from the observed Deployment when its revision does not change, else ``now``."""


@dataclass(frozen=True)
class FleetPlan:
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
    """See :attr:`FleetObservation.failed_revision`."""


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


def _listed(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:MAX_LISTED_SITES])
    return shown + (f" (+{len(items) - MAX_LISTED_SITES} more)" if len(items) > MAX_LISTED_SITES else "")


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


@dataclass
class _Rollout:
    """Working state of one planning pass (mutable scratch, never returned)."""

    spec: EdgeFleetSpec
    observed: FleetObservation
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


def _failing_sites(observed: FleetObservation, spec: EdgeFleetSpec, now: datetime) -> dict[str, str]:
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
            failing[name] = (
                f"not Ready {_seconds(now - started)}s after update (timeout {_seconds(timeout)}s)"
            )
    return failing


def _soaked(run: _Rollout, site: str, soak: timedelta) -> bool:
    workload = run.observed.site_workloads.get(site)
    if workload is None or not workload.ready or workload.ready_since is None:
        return False
    since = max(workload.ready_since, workload.updated_at or workload.ready_since)
    return since + soak <= run.now


def _top_up(run: _Rollout, assigned: list[str], size: int) -> list[str]:
    """Assign more sites to the target until ``size`` are on it: sorted by name, online sites first."""
    if len(assigned) >= size:
        return []
    taken = set(assigned)
    candidates = sorted((n for n in run.names if n not in taken), key=lambda n: (not run.online(n), n))
    added = candidates[: size - len(assigned)]
    assigned.extend(added)
    return added


def _wave_blockers(run: _Rollout, assigned: Sequence[str], size: int) -> list[str]:
    """Why the current wave has not passed yet; empty when it has."""
    spec = run.spec
    blockers: list[str] = []
    if len(assigned) < size:
        blockers.append(f"{size - len(assigned)} more site(s) to update")
    pending = [s for s in assigned if run.revision_at(s) != run.target]
    if pending:
        blockers.append(f"update of {_listed(pending)} to be applied")
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
        blockers.append(f"{_listed(unsoaked)} to be Ready for {spec.rollout.soak_seconds}s")
    offline = [s for s in assigned if not run.online(s)]
    tolerance = spec.offline_tolerance.max_offline_sites_percent
    if offline and len(offline) * 100 > tolerance * len(assigned):
        blockers.append(
            f"offline sites {_listed(offline)} ({len(offline)} of {len(assigned)}) exceed {tolerance}%"
        )
    if run.observed.health_ok is False:
        blockers.append("the health query to pass")
    elif run.observed.health_error is not None:
        blockers.append(f"the health query to be evaluable ({run.observed.health_error})")
    return blockers


def _health_timed_out(run: _Rollout, assigned: Sequence[str]) -> bool:
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


def _roll_back(run: _Rollout, waves: Sequence[int], assigned: Sequence[str], why: str) -> None:
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


def _fallback_revision(run: _Rollout, site: str) -> str:
    """What a site outside the rollout's waves runs: what it runs now (a superseded rollout's sites
    are not disturbed twice), else the stable revision, else the target. Never nothing: a rollout
    must not leave a site without a workload."""
    running = run.revision_at(site)
    if running is not None and running != run.observed.failed_revision:
        return running
    if run.stable is not None and run.stable in run.contents:
        return run.stable
    return run.target


def _advance(run: _Rollout) -> None:
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
                    f"wave {run.wave}/{len(waves)} ({waves[run.wave - 1]}%): updating {_listed(added)}"
                    if added
                    else f"wave {run.wave}/{len(waves)} ({waves[run.wave - 1]}%): no further sites needed",
                )
            )
    on_target = set(assigned)
    run.desired = {s: run.target if s in on_target else _fallback_revision(run, s) for s in run.names}


def _history(
    spec: EdgeFleetSpec, previous: Sequence[RevisionRecord], target: str, spec_revision: str, now: datetime
) -> list[RevisionRecord]:
    """Newest first: a revision moves to the front when the spec asks for it (a revert to an old one
    keeps its first-seen time); rollbacks do not reorder. Bounded by revisionHistoryLimit."""
    history = list(previous)
    if target == spec_revision and (not history or history[0].revision != target):
        record = next((r for r in history if r.revision == target), None) or RevisionRecord(
            revision=target, model_version=spec.model_version, created=now
        )
        history = [record, *(r for r in history if r.revision != target)]
    return history[: spec.revision_history_limit]


def _ready(run: _Rollout) -> ConditionUpdate:
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
        message = f"{len(not_ready)} of {len(online)} online site(s) not Ready: {_listed(not_ready)}"
        return ConditionUpdate(ready, not_, FleetReason.SITES_NOT_READY, message)
    message = f"{len(online)} online site(s) Ready, {len(run.names) - len(online)} offline"
    return ConditionUpdate(ready, ConditionStatus.TRUE, FleetReason.ALL_SITES_READY, message)


def _progressing(run: _Rollout, status: EdgeFleetStatus) -> ConditionUpdate:
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


def _degraded(run: _Rollout, status: EdgeFleetStatus) -> ConditionUpdate:
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


def _site_events(
    observed: FleetObservation, names: Sequence[str], removed: Sequence[str]
) -> list[FleetEvent]:
    added = [s for s in names if s not in observed.site_workloads]
    events: list[FleetEvent] = []
    if added:
        events.append(
            FleetEvent("Normal", FleetEventReason.SITES_ADDED, f"{len(added)} new site(s): {_listed(added)}")
        )
    if removed:
        events.append(
            FleetEvent(
                "Normal", FleetEventReason.SITES_REMOVED, f"{len(removed)} site(s) gone: {_listed(removed)}"
            )
        )
    return events


def _first_deployment(run: _Rollout) -> None:
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


def _status(run: _Rollout, spec_revision: str) -> EdgeFleetStatus:
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
    status.revisions = _history(
        run.spec, observed.current_status.revisions, run.target, spec_revision, run.now
    )
    if run.rollback_reason is not None:
        status.last_rollback_reason = run.rollback_reason
    updates = [_ready(run), _progressing(run, status), _degraded(run, status)]
    status.conditions = apply_conditions(status.conditions, updates, observed.generation, run.now)
    return status


def _applies(run: _Rollout, spec_revision: str) -> tuple[WorkloadApply, ...]:
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


def plan_fleet(spec: EdgeFleetSpec, observed: FleetObservation, now: datetime) -> FleetPlan:
    """Decide every site's revision, the wave, rollback and status. Pure: same inputs, same plan.

    - No stable revision yet (first deployment): see :func:`_first_deployment`.
    - Stable equals target: every site (new ones too) runs it.
    - Otherwise a rollout in waves; see :func:`_advance`. While paused, no site is moved forward and
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
    run = _Rollout(
        spec=spec,
        observed=observed,
        now=now,
        target=target,
        stable=stable,
        contents=contents,
        names=sorted(observed.sites),
        failing=_failing_sites(observed, spec, now),
        current=target,
        failed_revision=failed_revision,
    )
    if stable is None:
        _first_deployment(run)
    elif stable == target:
        run.desired = dict.fromkeys(run.names, target)
    else:
        _advance(run)

    removed = sorted(s for s in observed.site_workloads if s not in observed.sites)
    status = _status(run, spec_revision)
    in_use = {run.current, *(r for r in (run.stable, target) if r is not None), *run.desired.values()}
    store = {spec_revision: spec_content} if spec_revision in in_use - set(observed.revision_contents) else {}
    return FleetPlan(
        status=status,
        workloads_to_apply=_applies(run, spec_revision),
        workloads_to_delete=tuple(removed),
        events=(*_site_events(observed, run.names, removed), *run.events),
        revisions_to_store=store,
        revisions_to_keep=frozenset(in_use | {r.revision for r in status.revisions}),
        failed_revision=run.failed_revision,
    )
