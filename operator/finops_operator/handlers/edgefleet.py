"""EdgeFleet handlers: index nodes, site Deployments, stored revisions and FinOpsPolicy selectors, and
reconcile each fleet on a timer (level-triggered) and on spec changes: observe, plan, apply.

Decisions live in ``planners/fleet/``; this module only gathers facts and makes the plan real.
Revision contents are stored in apps/v1 ControllerRevisions owned by the fleet (as Deployments and
StatefulSets do), so a rollback re-renders exactly what ran before, even after an operator restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GROUP, VERSION, ConditionStatus
from finops_operator.api.conditions import ConditionType, find
from finops_operator.api.edgefleet import EdgeFleet, EdgeFleetSpec, EdgeFleetStatus
from finops_operator.api.finopspolicy import FinOpsPolicy
from finops_operator.handlers.apply import Applied, apply_intents, apply_plan, post_events
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.modelreleasegate import GateView, gate_view, template_refusal
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import KubeClient
from finops_operator.planners.fleet import (
    AUTHOR_CHECK_NAME,
    FLEET_LABEL,
    AppliedWrite,
    AuthorCheckObject,
    FleetObservation,
    HealthAnswer,
    SiteDeployment,
    SiteNode,
    StoredRevision,
    author_check_object,
    health_query,
    in_force_since,
    label_value,
    plan_fleet,
    remembered,
    site_deployment,
    site_node,
    spec_written_at,
    stale_author_check,
    stored_revision,
)
from finops_operator.planners.plan import ApplyManifest, DeleteObject, Event, invalid_spec, spec_error_message
from finops_operator.settings import Settings
from finops_operator.telemetry import prometheus

PLURAL = EdgeFleet.meta.plural
KIND = "EdgeFleet"


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the EdgeFleet indexes and reconcilers on ``registry``."""
    register_indexes(registry)
    _register_reconcilers(registry, settings)


def register_admission(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """No webhook: the CRD's structural schema and CEL rules validate every EdgeFleet field, and a
    webhook on Deployments would put the fleet's own site workloads behind the operator's uptime."""


def register_indexes(registry: kopf.OperatorRegistry) -> None:
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
        *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], SiteDeployment]:
        return {(namespace or "", labels[FLEET_LABEL]): site_deployment(body)}

    @kopf.index(
        "apps",
        "v1",
        "controllerrevisions",
        id="edgefleet_revisions",
        labels={FLEET_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def edgefleet_revisions(
        *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], StoredRevision]:
        return {(namespace or "", str(labels.get(FLEET_LABEL))): stored_revision(body)}

    for plural, kind in (
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding"),
    ):
        _register_author_check_index(registry, plural, kind)

    @kopf.index(GROUP, VERSION, FinOpsPolicy.meta.plural, id="edgefleet_policy_labels", registry=registry)
    def edgefleet_policy_labels(
        *, namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
    ) -> dict[tuple[str, str], dict[str, str]]:
        selector = spec.get("targetWorkloadSelector") or {}
        return {
            (namespace or "", name): {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
        }


def _register_author_check_index(registry: kopf.OperatorRegistry, plural: str, kind: str) -> None:
    """The author-check admission objects (planners/fleet/author.py), keyed by kind."""

    @kopf.index(
        "admissionregistration.k8s.io",
        "v1",
        plural,
        id=f"edgefleet_author_{plural}",
        when=lambda name, **_: name == AUTHOR_CHECK_NAME,
        registry=registry,
    )
    def index(*, body: kopf.Body, **_: Any) -> dict[str, AuthorCheckObject]:
        return {kind: author_check_object(body)}


@dataclass(frozen=True)
class FleetSnapshot:
    """Copies of the Kopf indexes for one fleet, taken on the event loop for the handler thread."""

    nodes: tuple[SiteNode, ...]
    deployments: tuple[SiteDeployment, ...]
    revisions: tuple[StoredRevision, ...]
    policy_labels: Mapping[str, str] | None
    """matchLabels of the referenced FinOpsPolicy; None when there is no reference or no such policy."""
    gates: GateView
    """The ModelReleaseGates and the fleet namespace's labels: a refused revision is never started."""
    author_check: Mapping[str, AuthorCheckObject]


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
        gates=gate_view(kwargs, namespace),
        author_check={
            kind: next(iter(values))
            for plural in ("validatingadmissionpolicies", "validatingadmissionpolicybindings")
            for kind, values in kwargs[f"edgefleet_author_{plural}"].items()
        },
    )


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    namespace, name = kwargs.get("namespace") or "", kwargs["name"]
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(namespace, name, kwargs))


class FleetMemory:
    """What this process remembers between reconciles, shared by the handler threads: its last
    write per Deployment (see :class:`~finops_operator.planners.fleet.AppliedWrite`) and the fleets
    whose FinOpsPolicy was missing last time. Memory only: a restart starts afresh, which is safe."""

    def __init__(self) -> None:
        self._applied: dict[tuple[str, str], AppliedWrite] = {}
        self._policy_missing: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def applied_in(self, namespace: str) -> dict[str, AppliedWrite]:
        with self._lock:
            return {name: write for (ns, name), write in self._applied.items() if ns == namespace}

    def put(self, namespace: str, name: str, write: AppliedWrite) -> None:
        with self._lock:
            self._applied[(namespace, name)] = write

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._applied.pop((namespace, name), None)

    def policy_missing_before(self, namespace: str, fleet: str, missing_now: bool) -> bool:
        """Whether the fleet's policy was missing last time; remembers ``missing_now`` for next time."""
        key = (namespace, fleet)
        with self._lock:
            before = key in self._policy_missing
            if missing_now:
                self._policy_missing.add(key)
            else:
                self._policy_missing.discard(key)
            return before


def _register_reconcilers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    @kopf.on.startup(id="edgefleet_memo", registry=registry)
    def edgefleet_memo(memo: kopf.Memo, **_: Any) -> None:
        memo.fleet_memory = FleetMemory()

    @kopf.on.startup(id="edgefleet_author_check", registry=registry)
    def edgefleet_author_check(memo: kopf.Memo, logger: Any, **_: Any) -> None:
        """Put the author check in force before any fleet is reconciled (planners/fleet/author.py);
        Kopf retries until it is, so no fleet is acted on without it."""
        intents = [ApplyManifest(m) for m in stale_author_check({})]
        results = apply_intents(memo.kube, intents, owner={}, recent=memo.recent_writes, logger=logger)
        failed = [done.error for done in results if done.error is not None]
        if failed:
            raise kopf.TemporaryError(f"cannot install the EdgeFleet author check: {failed[0]}", delay=10)
        observed = {
            str(done.result["kind"]): author_check_object(done.result) for done in results if done.result
        }
        since = in_force_since(observed)
        if since is not None:  # freshly created: wait until the API server surely enforces it
            time.sleep(max(0.0, (since - datetime.now(UTC)).total_seconds()))

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

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="edgefleet_forget", optional=True, registry=registry)
    def forget(namespace: str | None, name: str, **_: Any) -> None:
        metrics.forget_fleet(namespace or "", name)  # optional: no finalizer, the site GC is by owner


def observe(
    *,
    settings: Settings,
    spec: EdgeFleetSpec,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    current: EdgeFleetStatus,
    managed_fields: Sequence[Mapping[str, Any]],
    snapshot: FleetSnapshot,
    memory: FleetMemory,
    logger: logging.Logger,
) -> FleetObservation:
    """Everything the planner needs about one fleet: index copies, the health answer, own writes."""
    query = health_query(spec, current, namespace, name)
    missing = spec.fin_ops_policy_ref is not None and snapshot.policy_labels is None
    return FleetObservation(
        namespace=namespace,
        name=name,
        uid=uid,
        generation=generation,
        current_status=current,
        nodes=snapshot.nodes,
        deployments=snapshot.deployments,
        revisions=snapshot.revisions,
        policy_labels=snapshot.policy_labels,
        health=_ask(settings, query, logger) if query is not None else None,
        policy_missing_before=memory.policy_missing_before(namespace, name, missing),
        applied=memory.applied_in(namespace),
        gate_refusal=template_refusal(snapshot.gates, namespace, name, spec.template),
        author_check=snapshot.author_check,
        spec_written=spec_written_at(managed_fields),
    )


def _ask(settings: Settings, query: str, logger: logging.Logger) -> HealthAnswer:
    if settings.prometheus_url is None:
        return HealthAnswer(error="no Prometheus URL is configured (FINOPS_PROMETHEUS_URL)")
    try:
        samples = prometheus.query(str(settings.prometheus_url), query)
    except prometheus.PrometheusError as error:
        logger.warning("health query failed: %s", error)
        return HealthAnswer(error=f"Prometheus query failed: {error}")
    return HealthAnswer(values=tuple(s.value for s in samples))


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
    """observe -> plan -> apply. The CRD schema should make an invalid spec impossible; if one slips
    through, the status says so and nothing else is touched."""
    started = time.perf_counter()
    now = datetime.now(UTC)  # read once: every decision of this pass uses the same instant
    generation = int(meta.get("generation") or 0)
    current = read_status(EdgeFleetStatus, status)
    memory: FleetMemory = memo.fleet_memory
    try:
        parsed = EdgeFleetSpec.model_validate(dict(spec))
    except ValidationError as error:
        plan = invalid_spec(current, generation=generation, now=now, message=spec_error_message(error))
    else:
        observation = observe(
            settings=settings,
            spec=parsed,
            namespace=namespace,
            name=name,
            uid=uid,
            generation=generation,
            current=current,
            managed_fields=meta.get("managedFields") or [],
            snapshot=snapshot,
            memory=memory,
            logger=logger,
        )
        plan = plan_fleet(parsed, observation, now)
    kube: KubeClient = memo.kube
    results = apply_plan(
        kube, plan, kind=KIND, body=body, status=status, patch=patch, recent=memo.recent_writes, logger=logger
    )
    _after_apply(namespace, results, memory, kube=kube, body=body, recent=memo.recent_writes, logger=logger)
    _record(
        namespace,
        name,
        plan.status,
        rolled_back=plan.status.failed_revision not in (None, current.failed_revision),
    )
    metrics.record_reconcile(KIND, time.perf_counter() - started)


def _record(namespace: str, name: str, status: EdgeFleetStatus, *, rolled_back: bool) -> None:
    """The fleet's series, from the status this reconcile planned."""
    degraded = find(status.conditions, ConditionType.DEGRADED)
    metrics.record_fleet(
        namespace,
        name,
        wave=status.current_wave,
        sites={state: getattr(status, f"sites_{state}") for state in metrics.FLEET_SITE_STATES},
        degraded=degraded is not None and degraded.status == ConditionStatus.TRUE,
        rolled_back=rolled_back,
    )


def _after_apply(
    namespace: str,
    results: Sequence[Applied],
    memory: FleetMemory,
    *,
    kube: KubeClient,
    body: kopf.Body,
    recent: RecentWrites,
    logger: logging.Logger,
) -> None:
    """Keep what this process applied (the index lags our own writes), forget deleted Deployments,
    and warn on the fleet when a site Deployment was refused."""
    for done in results:
        intent = done.intent
        if isinstance(intent, ApplyManifest) and done.result is not None:
            write = remembered(intent.manifest, done.result)
            if write is not None:
                memory.put(namespace, intent.target.name, write)
        elif isinstance(intent, ApplyManifest) and done.error is not None:
            message = (
                f"could not apply Deployment {intent.target.name}: {done.error.reason}: {done.error.body}"
            )
            post_events(
                kube, [Event("Warning", "ApplyFailed", message)], owner=body, recent=recent, logger=logger
            )
        elif isinstance(intent, DeleteObject) and intent.target.kind == "Deployment" and not done.skipped:
            memory.forget(namespace, intent.target.name)
