"""EdgeFleet handlers: index nodes, site Deployments, stored revisions and FinOpsPolicy selectors, and
reconcile each fleet on a timer (level-triggered) and on spec changes: observe, plan, apply, report.

Decisions live in ``planners/fleet/``; this module only gathers facts and makes the plan real.
Revision contents are stored in apps/v1 ControllerRevisions owned by the fleet (as Deployments and
StatefulSets do), so a rollback re-renders exactly what ran before, even after an operator restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GROUP, VERSION, ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.edgefleet import EdgeFleet, EdgeFleetSpec, EdgeFleetStatus
from finops_operator.api.finopspolicy import FinOpsPolicy
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.status import RecentWrites, write_status
from finops_operator.kube import KubeClient
from finops_operator.planners.fleet import (
    FLEET_LABEL,
    REVISION_LABEL,
    FleetEvent,
    FleetObservation,
    FleetPlan,
    RevisionContent,
    SiteNode,
    SiteWorkload,
    deployment_name,
    desired_deployment,
    discover_sites,
    label_value,
    plan_fleet,
    revision_content,
    revision_object_name,
    revision_of,
    site_node,
    site_workload,
)
from finops_operator.settings import Settings
from finops_operator.telemetry import prometheus
from finops_operator.workloads.annotations import POLICY_SCALING_ANNOTATIONS

PLURAL = EdgeFleet.meta.plural
KIND = "EdgeFleet"
FIELD_MANAGER = "finops-operator-edgefleet"
"""Own field manager for server-side apply: a FinOpsPolicy's replica patches (manager
``finops-operator``) and the fleet's manifests never take each other's fields by accident."""
"""Stand-in for a ``status.failedRevision`` field: the revision rolled back, not retried while the
spec still asks for it (an annotation, because the status schema prunes unknown fields)."""
APPLIED_HASH_ANNOTATION = "finops.dev/applied-hash"
"""Hash of the manifest the operator last applied: a removed field changes it, so drift is seen."""
SITE_LABEL_ON_WORKLOAD = "finops.dev/site"


# --- what the indexes hold ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteDeployment:
    """A site Deployment as the index saw it: enough to plan and to tell whether it needs an apply."""

    name: str
    site: str
    owners: frozenset[str]
    workload: SiteWorkload
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    replicas: int
    generation: int


@dataclass(frozen=True)
class StoredRevision:
    """A ControllerRevision holding one revision's content."""

    name: str
    revision: str
    number: int
    owners: frozenset[str]
    content: RevisionContent | None
    """None when the stored data is unreadable or does not hash to its label (never trusted)."""


def _owners(meta: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(o.get("uid")) for o in meta.get("ownerReferences") or [])


def _stored_revision(name: str, meta: Mapping[str, Any], body: Mapping[str, Any]) -> StoredRevision:
    revision = str((meta.get("labels") or {}).get(REVISION_LABEL, ""))
    try:
        content: RevisionContent | None = RevisionContent.from_data(body.get("data") or {})
    except (KeyError, TypeError, ValidationError):
        content = None
    if content is not None and content.revision != revision:
        content = None
    return StoredRevision(name, revision, int(body.get("revision") or 0), _owners(meta), content)


# --- registration ------------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the EdgeFleet indexes and reconcilers on ``registry``."""
    _register_indexes(registry)
    _register_reconcilers(registry, settings)


def register_admission(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """No webhook: the CRD's structural schema and CEL rules validate every EdgeFleet field, and a
    webhook on Deployments would put the fleet's own site workloads behind the operator's uptime."""


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    """Watch-fed views, so a reconcile never LISTs nodes or Deployments."""

    @kopf.index("", "v1", "nodes", id="edgefleet_nodes", registry=registry)
    def edgefleet_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, SiteNode]:
        return {name: site_node(body)}

    @kopf.index(
        "apps",
        "v1",
        "deployments",
        id="edgefleet_deployments",
        labels={FLEET_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def edgefleet_deployments(
        *, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], SiteDeployment]:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        labels = dict(meta.get("labels") or {})
        return {
            (namespace or "", labels[FLEET_LABEL]): SiteDeployment(
                name=name,
                site=labels.get(SITE_LABEL_ON_WORKLOAD, ""),
                owners=_owners(meta),
                workload=site_workload(body),
                labels=labels,
                annotations=dict(meta.get("annotations") or {}),
                replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
                generation=int(meta.get("generation") or 0),
            )
        }

    @kopf.index(
        "apps",
        "v1",
        "controllerrevisions",
        id="edgefleet_revisions",
        labels={FLEET_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def edgefleet_revisions(
        *, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], StoredRevision]:
        meta = body.get("metadata") or {}
        fleet = str((meta.get("labels") or {}).get(FLEET_LABEL))
        return {(namespace or "", fleet): _stored_revision(name, meta, body)}

    @kopf.index(GROUP, VERSION, FinOpsPolicy.meta.plural, id="edgefleet_policy_labels", registry=registry)
    def edgefleet_policy_labels(
        *, namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str, str], dict[str, str]]:
        selector = spec.get("targetWorkloadSelector") or {}
        return {
            (namespace or "", name): {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
        }


@dataclass(frozen=True)
class FleetSnapshot:
    """Copies of the Kopf indexes for one fleet, taken on the event loop for the handler thread."""

    nodes: tuple[SiteNode, ...]
    deployments: tuple[SiteDeployment, ...]
    revisions: tuple[StoredRevision, ...]
    policy_labels: Mapping[str, str] | None
    """matchLabels of the referenced FinOpsPolicy; None when there is no reference or no such policy."""


def take_snapshot(namespace: str, name: str, kwargs: Mapping[str, Any]) -> FleetSnapshot:
    key = (namespace, label_value(name))
    nodes: kopf.Index[str, SiteNode] = kwargs["edgefleet_nodes"]
    reference = (kwargs.get("spec") or {}).get("finOpsPolicyRef") or {}
    policies = kwargs["edgefleet_policy_labels"].get((namespace, reference.get("name", "")), [])
    return FleetSnapshot(
        nodes=tuple(next(iter(values)) for values in nodes.values()),
        deployments=tuple(kwargs["edgefleet_deployments"].get(key, [])),
        revisions=tuple(kwargs["edgefleet_revisions"].get(key, [])),
        policy_labels=dict(next(iter(policies))) if policies else None,
    )


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    namespace, name = kwargs.get("namespace") or "", kwargs["name"]
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(namespace, name, kwargs))


class AppliedWrites:
    """What this process last applied per Deployment: the revision and its update time (so a stale
    index does not restart a site's wave timeout) and the generation the apply produced (so a manual
    edit of the template, which bumps the generation, is repaired). Memory only: after a restart the
    applied-hash annotation alone decides, which is still correct."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, datetime, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[str, datetime, int] | None:
        with self._lock:
            return self._seen.get(key)

    def put(self, key: tuple[str, str], revision: str, updated_at: datetime, generation: int) -> None:
        with self._lock:
            self._seen[key] = (revision, updated_at, generation)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._seen.pop(key, None)


def _register_reconcilers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    @kopf.on.startup(id="edgefleet_memo", registry=registry)
    def edgefleet_memo(memo: kopf.Memo, **_: Any) -> None:
        memo.fleet_applied = AppliedWrites()

    def reconcile(**kwargs: Any) -> None:
        _reconcile(settings=settings, **kwargs)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="edgefleet_reconcile_on_timer",
        interval=settings.sample_interval_seconds,
        registry=registry,
    )
    async def reconcile_on_timer(**kwargs: Any) -> None:
        await _in_thread(reconcile, kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="edgefleet_reconcile_on_create", registry=registry)
    @kopf.on.update(
        GROUP, VERSION, PLURAL, id="edgefleet_reconcile_on_update", field="spec", registry=registry
    )
    async def reconcile_on_change(**kwargs: Any) -> None:
        await _in_thread(reconcile, kwargs)


# --- one reconcile -----------------------------------------------------------------------------------


def _reconcile(
    *,
    settings: Settings,
    namespace: str,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger,
    memo: kopf.Memo,
    snapshot: FleetSnapshot,
    **_: Any,
) -> None:
    started = time.perf_counter()
    now = datetime.now(UTC)  # read once: every decision of this pass uses the same instant
    generation = int(meta.get("generation") or 0)
    current = read_status(EdgeFleetStatus, status)
    try:
        parsed = EdgeFleetSpec.model_validate(dict(spec))
    except ValidationError as error:
        _report_invalid(
            current=current,
            generation=generation,
            now=now,
            message=str(error).splitlines()[0],
            status=status,
            patch=patch,
        )
        return
    revisions = {
        r.revision: r.content for r in snapshot.revisions if uid in r.owners and r.content is not None
    }
    ours = [d for d in snapshot.deployments if uid in d.owners and d.site]
    health_ok, health_error = _health(
        settings=settings, spec=parsed, current=current, namespace=namespace, name=name, logger=logger
    )
    observation = FleetObservation(
        generation=generation,
        current_status=current,
        sites=discover_sites(snapshot.nodes, parsed),
        site_workloads={d.site: d.workload for d in ours},
        revision_contents=revisions,
        health_ok=health_ok,
        health_error=health_error,
        failed_revision=current.failed_revision,
    )
    plan = plan_fleet(parsed, observation, now)
    target = _Target(namespace=namespace, name=name, uid=uid, body=body, memo=memo, logger=logger)
    if parsed.fin_ops_policy_ref is not None and snapshot.policy_labels is None:
        _warn_once(target, "PolicyNotFound", f"FinOpsPolicy {parsed.fin_ops_policy_ref.name} not found")
    _store_revisions(target, plan, snapshot.revisions)
    _apply_workloads(
        target,
        spec=parsed,
        plan=plan,
        observation=observation,
        ours=ours,
        policy_labels=snapshot.policy_labels or {},
    )
    _delete_workloads(target, plan, ours)
    _prune_revisions(target, plan, snapshot.revisions)
    desired = plan.status.model_copy(update={"failed_revision": plan.failed_revision})
    write_status(KIND, status, desired.to_wire(), patch)  # one write: rollback and its memory together
    _post_events(target, plan.events)
    metrics.record_reconcile(KIND, time.perf_counter() - started)


def _report_invalid(
    *,
    current: EdgeFleetStatus,
    generation: int,
    now: datetime,
    message: str,
    status: Mapping[str, Any],
    patch: kopf.Patch,
) -> None:
    """The CRD schema should make this impossible; if an object slips through, say so and touch nothing."""
    desired = current.model_copy(deep=True)
    desired.observed_generation = generation
    update = ConditionUpdate(ConditionType.READY, ConditionStatus.FALSE, Reason.INVALID_SPEC, message)
    desired.conditions = apply_conditions(current.conditions, [update], generation, now)
    write_status(KIND, status, desired.to_wire(), patch)


def _health(
    *,
    settings: Settings,
    spec: EdgeFleetSpec,
    current: EdgeFleetStatus,
    namespace: str,
    name: str,
    logger: logging.Logger,
) -> tuple[bool | None, str | None]:
    """Evaluate spec.rollout.healthQuery while a rollout is under way (non-zero everywhere = healthy;
    no samples = no evidence = not healthy). ``$namespace``, ``$fleet`` and ``$revision`` (the
    revision being rolled out) are substituted."""
    query = spec.rollout.health_query
    if query is None or current.stable_revision in (None, revision_of(spec)):
        return None, None
    if settings.prometheus_url is None:
        return None, "no Prometheus URL is configured (FINOPS_PROMETHEUS_URL)"
    promql = (
        query.replace("$namespace", namespace).replace("$fleet", name).replace("$revision", revision_of(spec))
    )
    try:
        samples = prometheus.query(str(settings.prometheus_url), promql)
    except prometheus.PrometheusError as error:
        logger.warning("health query failed: %s", error)
        return None, f"Prometheus query failed: {error}"
    return bool(samples) and all(s.value != 0 for s in samples), None


@dataclass(frozen=True)
class _Target:
    """The fleet being reconciled and the plumbing every apply step needs."""

    namespace: str
    name: str
    uid: str
    body: kopf.Body
    memo: kopf.Memo
    logger: logging.Logger

    @property
    def kube(self) -> KubeClient:
        kube: KubeClient = self.memo.kube
        return kube

    @property
    def recent(self) -> RecentWrites:
        recent: RecentWrites = self.memo.recent_writes
        return recent

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def _warn_once(target: _Target, reason: str, message: str) -> None:
    if target.recent.first((KIND, target.namespace, target.name, reason), message):
        target.logger.warning(message)
        kopf.event(target.body, type="Warning", reason=reason, message=message)


def _post_events(target: _Target, events: Sequence[FleetEvent]) -> None:
    for event in events:
        if not target.recent.first((KIND, target.namespace, target.name, event.reason), event.message):
            continue  # a stale body planned the same transition again
        kopf.event(target.body, type=event.type, reason=event.reason, message=event.message)
        target.logger.info("%s: %s", event.reason, event.message)


# --- applying the plan -------------------------------------------------------------------------------


def _store_revisions(target: _Target, plan: FleetPlan, stored: Sequence[StoredRevision]) -> None:
    """Persist new revision contents before any workload uses them: the next rollback needs them."""
    number = max((r.number for r in stored if target.uid in r.owners), default=0)
    for revision, content in sorted(plan.revisions_to_store.items()):
        number += 1
        name = revision_object_name(target.name, revision)
        if not target.recent.first((KIND, target.namespace, "revision", name), revision):
            continue
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": target.namespace,
                "labels": {FLEET_LABEL: label_value(target.name), REVISION_LABEL: revision},
                "ownerReferences": [target.owner_reference()],
            },
            "data": content.to_data(),
            "revision": number,
        }
        try:
            target.kube.apps.create_namespaced_controller_revision(target.namespace, cast(Any, manifest))
        except ApiException as error:
            if error.status != 409:  # already stored (the index had not caught up): fine
                target.logger.warning("could not store revision %s: %s", revision, error.reason)


def _prune_revisions(target: _Target, plan: FleetPlan, stored: Sequence[StoredRevision]) -> None:
    """Delete stored revisions beyond the history the plan keeps (bounded by revisionHistoryLimit)."""
    for revision in stored:
        if target.uid not in revision.owners or revision.revision in plan.revisions_to_keep:
            continue
        if not target.recent.first((KIND, target.namespace, "prune", revision.name), revision.revision):
            continue
        try:
            target.kube.apps.delete_namespaced_controller_revision(revision.name, target.namespace)
        except ApiException as error:
            if error.status != 404:
                target.logger.warning("could not prune revision %s: %s", revision.name, error.reason)


def _manifest_hash(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def _scaled_by_policy(observed: SiteDeployment | None) -> bool:
    """A FinOpsPolicy scaled or capped this workload: its replica count is the policy's to decide."""
    return observed is not None and any(a in observed.annotations for a in POLICY_SCALING_ANNOTATIONS)


def _up_to_date(
    observed: SiteDeployment | None, manifest: Mapping[str, Any], applied: tuple[str, datetime, int] | None
) -> bool:
    """True when applying ``manifest`` would change nothing the operator manages."""
    if observed is None:
        return False
    meta = manifest["metadata"]
    replicas = manifest["spec"].get("replicas")
    return (
        all(observed.labels.get(k) == v for k, v in meta["labels"].items())
        and all(observed.annotations.get(k) == v for k, v in meta["annotations"].items())
        and (replicas is None or observed.replicas == replicas)
        and (
            applied is None
            or applied[0] != meta["labels"][REVISION_LABEL]
            or applied[2] == observed.generation
        )
    )


def _apply_workloads(
    target: _Target,
    *,
    spec: EdgeFleetSpec,
    plan: FleetPlan,
    observation: FleetObservation,
    ours: Sequence[SiteDeployment],
    policy_labels: Mapping[str, str],
) -> None:
    """Server-side apply every site Deployment that differs from the plan; unchanged ones cost nothing."""
    by_site = {d.site: d for d in ours}
    applied_writes: AppliedWrites = target.memo.fleet_applied
    for apply in plan.workloads_to_apply:
        site = observation.sites.get(apply.site)
        content = _content(spec, plan, observation, apply.revision)
        if site is None or content is None:
            continue
        observed = by_site.get(apply.site)
        name = deployment_name(target.name, site.name)
        key = (target.namespace, name)
        applied = applied_writes.get(key)
        updated_at = apply.updated_at
        if (
            applied is not None
            and applied[0] == apply.revision
            and (observed is None or observed.workload.revision != apply.revision)
        ):
            updated_at = applied[1]  # our own write is not in the index yet: keep its clock
        manifest = desired_deployment(
            target.name,
            target.namespace,
            spec,
            site,
            revision=apply.revision,
            content=content,
            policy_labels=policy_labels,
            updated_at=updated_at,
        )
        if _scaled_by_policy(observed):
            del manifest["spec"]["replicas"]
        manifest["metadata"]["ownerReferences"] = [target.owner_reference()]
        manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = _manifest_hash(manifest)
        if _up_to_date(observed, manifest, applied):
            continue
        if not target.recent.first(
            (KIND, *key), manifest["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        ):
            continue
        try:
            result = target.kube.apps.patch_namespaced_deployment(
                name,
                target.namespace,
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        except ApiException as error:
            _warn_once(
                target, "ApplyFailed", f"could not apply Deployment {name}: {error.reason}: {error.body}"
            )
            continue
        generation = result.metadata.generation if result.metadata else None
        applied_writes.put(key, apply.revision, updated_at, int(generation or 0))


def _content(
    spec: EdgeFleetSpec, plan: FleetPlan, observation: FleetObservation, revision: str
) -> RevisionContent | None:
    """Content a revision renders from: the spec's own, just planned for storage, or stored."""
    own = revision_content(spec)
    if own.revision == revision:
        return own
    return plan.revisions_to_store.get(revision) or observation.revision_contents.get(revision)


def _delete_workloads(target: _Target, plan: FleetPlan, ours: Sequence[SiteDeployment]) -> None:
    """Remove the Deployments of sites that no longer exist (only ones this fleet owns)."""
    by_site = {d.site: d for d in ours}
    for site in plan.workloads_to_delete:
        deployment = by_site.get(site)
        if deployment is None:
            continue
        if not target.recent.first((KIND, target.namespace, "delete", deployment.name), site):
            continue
        try:
            target.kube.apps.delete_namespaced_deployment(deployment.name, target.namespace)
        except ApiException as error:
            if error.status != 404:
                target.logger.warning("could not delete %s: %s", deployment.name, error.reason)
        target.memo.fleet_applied.forget((target.namespace, deployment.name))
