"""FinOpsPolicy handlers: index Deployments, StatefulSets, Jobs, CronJobs, GPU pods, nodes and policies
per namespace, and reconcile each policy on a timer (level-triggered) and on spec changes: observe,
plan, apply, report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GPU_PRODUCT_LABEL, GROUP, VERSION, LabelSelector
from finops_operator.api.finopspolicy import FinOpsPolicy, FinOpsPolicySpec, FinOpsPolicyStatus
from finops_operator.handlers.apply import Applied, apply_intents, apply_plan
from finops_operator.handlers.execution import ResultT, read_status, reconcile_in_thread
from finops_operator.handlers.prediction import ForecasterCache, predict
from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.plan import PatchWorkload, spec_error_message
from finops_operator.planners.policy import (
    PeerPolicy,
    PlannedEvent,
    PolicyObservation,
    PolicyPlan,
    WorkloadFacts,
    invalid_policy,
    parse_policy_spec,
    plan_policy,
)
from finops_operator.planners.policy.anomaly import demand_query
from finops_operator.planners.policy.bounds import POLICY_LABEL, HpaFacts
from finops_operator.planners.policy.cadence import seconds_until_exhaustion_sample
from finops_operator.planners.policy.caps import (
    PodTemplateFacts,
    admit_deployment,
    previous_deployment,
    replicas_of,
)
from finops_operator.planners.policy.ledger import LedgerPod, ledger_pod
from finops_operator.planners.policy.observation import SUSPENDABLE_KINDS, DemandReading
from finops_operator.planners.policy.predictive import PredictionInput
from finops_operator.planners.policy.scaleup import budget_position
from finops_operator.planners.policy.window_ledgers import monthly_usage
from finops_operator.planners.policy.writes import plan_deletion, policy_writes
from finops_operator.settings import Settings
from finops_operator.telemetry import prometheus
from finops_operator.telemetry.alerts import Alert, post_alerts
from finops_operator.workloads.owners import owner_key, workload_key
from finops_operator.workloads.resources import gpus_in_pod_spec
from finops_operator.workloads.templates import pod_template

PLURAL = FinOpsPolicy.meta.plural
KIND = "FinOpsPolicy"
OPERATOR_ANNOTATIONS = f"{GROUP}/"
"""The planners read only the operator's own annotations (workloads.annotations): the index keeps
those and drops the rest, e.g. kubectl's last-applied-configuration, a copy of the whole manifest."""


@dataclass(frozen=True)
class NamespaceSnapshot:
    """Copies of the Kopf indexes for one namespace. Indexes change on the event loop, so they are
    copied there, and the copy is what the handler thread works on."""

    workloads: tuple[WorkloadFacts, ...]
    pods: tuple[LedgerPod, ...]
    policies: tuple[PeerPolicy, ...]
    gpu_product_of_node: dict[str, str]
    hpas: tuple[HpaFacts, ...]


def take_snapshot(namespace: str, kwargs: Mapping[str, Any]) -> NamespaceSnapshot:
    products: kopf.Index[str, str] = kwargs["gpu_product_by_node"]
    return NamespaceSnapshot(
        workloads=tuple(
            facts
            for _, plural, _ in WORKLOAD_INDEXES
            for facts in kwargs[f"{plural}_by_namespace"].get(namespace, [])
        ),
        pods=tuple(kwargs["gpu_pods_by_namespace"].get(namespace, [])),
        policies=tuple(kwargs["policies_by_namespace"].get(namespace, [])),
        gpu_product_of_node={node: next(iter(values)) for node, values in products.items()},
        hpas=tuple(kwargs["hpas_by_namespace"].get(namespace, [])),
    )


async def _in_thread(fn: Callable[..., ResultT], kwargs: Mapping[str, Any]) -> ResultT:
    namespace = kwargs.get("namespace") or ""
    return await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(namespace, kwargs))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the FinOpsPolicy handlers on ``registry``."""
    register_indexes(registry)
    _register_reconcilers(registry, settings)


def register_indexes(registry: kopf.OperatorRegistry) -> None:
    """In-memory views kept current by watch streams, so a sample never LISTs the cluster."""

    for group, plural, kind in WORKLOAD_INDEXES:
        _register_workload_index(registry, group, plural, kind)

    def _is_gpu_pod(spec: Mapping[str, Any], **_: Any) -> bool:
        return gpus_in_pod_spec(spec) > 0

    @kopf.index("", "v1", "pods", id="gpu_pods_by_namespace", when=_is_gpu_pod, registry=registry)
    def gpu_pods_by_namespace(
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        meta: Mapping[str, Any],
        **_: Any,
    ) -> dict[str, LedgerPod]:
        return {
            namespace or "": ledger_pod(
                namespace=namespace or "", name=name, labels=labels, spec=spec, status=status, meta=meta
            )
        }

    @kopf.index("autoscaling", "v2", "horizontalpodautoscalers", id="hpas_by_namespace", registry=registry)
    def hpas_by_namespace(
        *, namespace: str | None, name: str, labels: Mapping[str, str], spec: Mapping[str, Any], **_: Any
    ) -> dict[str, HpaFacts]:
        target = spec.get("scaleTargetRef") or {}
        owned = {key: spec.get(key) for key in ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics")}
        return {
            namespace or "": HpaFacts(
                name=name,
                target_kind=str(target.get("kind", "")),
                target_name=str(target.get("name", "")),
                owner_policy=labels.get(POLICY_LABEL),
                spec=owned,
            )
        }

    @kopf.index("", "v1", "nodes", id="gpu_product_by_node", registry=registry)
    def gpu_product_by_node(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, str] | None:
        product = labels.get(GPU_PRODUCT_LABEL)
        return {name: product} if product else None

    @kopf.index(GROUP, VERSION, PLURAL, id="policies_by_namespace", registry=registry)
    def policies_by_namespace(
        *, namespace: str | None, name: str, spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any
    ) -> dict[str, PeerPolicy] | None:
        try:
            parsed = parse_policy_spec(spec)
        except ValidationError:
            return None
        limits = parsed.cost_limits
        position = (
            budget_position(status) if limits is not None and limits.refuse_budget_breaking_scale_up else None
        )
        return {
            namespace or "": PeerPolicy(
                name=name, selector=parsed.target_workload_selector, spec=parsed, position=position
            )
        }


WORKLOAD_INDEXES = (
    ("apps", "deployments", "Deployment"),
    ("apps", "statefulsets", "StatefulSet"),
    ("batch", "jobs", "Job"),
    ("batch", "cronjobs", "CronJob"),
)
"""The workload kinds a FinOpsPolicy governs; each index is ``<plural>_by_namespace``."""


def _register_workload_index(registry: kopf.OperatorRegistry, group: str, plural: str, kind: str) -> None:
    """One index per kind, keeping only what the planners read. Jobs and CronJobs without GPUs are left
    out (a batch namespace holds many), unless the operator marked them: those it must restore."""
    suspendable = kind in SUSPENDABLE_KINDS

    def _worth_keeping(body: kopf.Body, annotations: Mapping[str, str], **_: Any) -> bool:
        found = pod_template(kind, body)
        return (
            not suspendable
            or (found is not None and gpus_in_pod_spec(found[1]) > 0)
            or any(k.startswith(OPERATOR_ANNOTATIONS) for k in annotations)
        )

    @kopf.index(group, "v1", plural, id=f"{plural}_by_namespace", when=_worth_keeping, registry=registry)
    def index(*, namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, WorkloadFacts]:
        return {namespace or "": workload_facts(kind, body)}


def workload_facts(kind: str, body: Mapping[str, Any]) -> WorkloadFacts:
    """What an index keeps of one workload object."""
    meta = body.get("metadata") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    spec = body.get("spec") or {}
    template_labels, pod_spec = pod_template(kind, body) or ({}, {})
    common: dict[str, Any] = {
        "namespace": str(meta.get("namespace") or ""),
        "name": workload_key(kind, str(meta.get("name", ""))),
        "kind": kind,
        "uid": str(meta.get("uid", "")),
        "labels": dict(meta.get("labels") or {}),
        "annotations": {k: v for k, v in annotations.items() if k.startswith(OPERATOR_ANNOTATIONS)},
        "gpus_per_pod": gpus_in_pod_spec(pod_spec),
    }
    if kind in SUSPENDABLE_KINDS:
        conditions = (body.get("status") or {}).get("conditions") or []
        parent = owner_key(meta.get("ownerReferences"), None)
        return WorkloadFacts(
            **common,
            replicas=int(spec.get("parallelism", 1) or 0) if kind == "Job" else 0,
            suspended=bool(spec.get("suspend")),
            finished=any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
            ),
            parent=parent if parent is not None and parent.startswith("cronjob/") else None,
        )
    try:
        selector: LabelSelector | None = LabelSelector.model_validate(dict(spec.get("selector") or {}))
    except ValidationError:
        selector = None
    replicas = spec.get("replicas")
    return WorkloadFacts(
        **common,
        replicas=int(replicas if replicas is not None else 1),
        ready_replicas=int((body.get("status") or {}).get("readyReplicas", 0) or 0),
        pod_selector=selector,
        template=PodTemplateFacts.from_template({"metadata": {"labels": template_labels}, "spec": pod_spec}),
    )


def _register_reconcilers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    def reconcile(
        *,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        meta: Mapping[str, Any],
        body: kopf.Body,
        patch: kopf.Patch,
        logger: logging.Logger,
        memo: kopf.Memo,
        snapshot: NamespaceSnapshot,
        **_: Any,
    ) -> PolicyPlan:
        started = time.perf_counter()
        now = datetime.now(UTC)  # read once: every decision of this sample uses the same instant
        try:
            parsed: FinOpsPolicySpec | None = parse_policy_spec(spec)  # the one parse of this sample
        except ValidationError as error:
            parsed, invalid = None, spec_error_message(error)
        utilization, metrics_error = _pod_utilization(settings, namespace, logger)
        prediction = (
            _prediction(
                settings=settings, spec=parsed, key=(namespace, name), memo=memo, now=now, logger=logger
            )
            if parsed is not None
            else None  # the status reports the invalid spec
        )
        observation = PolicyObservation(
            name=name,
            generation=int(meta.get("generation", 0)),
            current_status=read_status(FinOpsPolicyStatus, status),
            workloads=snapshot.workloads,
            peers=[peer for peer in snapshot.policies if peer.name != name],
            pods=snapshot.pods,
            gpu_product_of_node=snapshot.gpu_product_of_node,
            namespace=namespace,
            uid=str(meta.get("uid", "")),
            hpas=snapshot.hpas,
            pod_utilization=utilization,
            metrics_error=metrics_error,
            prediction=prediction,
            anomaly_demand=_anomaly_demand(settings, parsed, logger) if parsed is not None else None,
            sample_interval_seconds=settings.sample_interval_seconds,
        )
        if parsed is None:
            plan = invalid_policy(observation, now, invalid)
        else:
            plan = plan_policy(parsed, observation, now)
        kube: KubeClient = memo.kube
        results = apply_plan(
            kube,
            policy_writes(plan, namespace, snapshot.workloads),
            kind=KIND,
            body=body,
            status=status,
            patch=patch,
            recent=memo.recent_writes,
            logger=logger,
        )
        _count_actions(namespace, name, plan, results, logger)
        _notify(
            kube=kube,
            namespace=namespace,
            policy=name,
            spec=parsed,
            events=plan.events,
            now=now,
            allow_private=settings.alert_allow_private_urls,
            logger=logger,
        )
        metrics.record_policy(
            namespace,
            name,
            governed=len(plan.governed),
            gpu_hours=plan.status.gpu_hours_used,
            cost=plan.status.cost_used,
            budget_percent=plan.status.budget_used_percent,
            idle=plan.status.idle_workloads,
            alerting=spec.get("alerting"),
        )
        metrics.record_usage(namespace, name, monthly_usage(plan.status))
        forecast = plan.status.prediction
        metrics.record_prediction(
            namespace,
            name,
            peak=forecast.next_peak if forecast else None,
            replicas=forecast.recommended_replicas if forecast else None,
            mae=forecast.mae if forecast else None,
        )
        metrics.record_anomalies(namespace, name, plan.anomaly_flags)
        metrics.record_reconcile(KIND, time.perf_counter() - started)
        return plan

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="reconcile_on_timer",
        interval=settings.sample_interval_seconds,
        sharp=True,  # every interval from the tick's start: the handler and its status patch do not
        # stretch the period (non-sharp, 200 policies at 5 s ticked at 0.86 of the due rate)
        registry=registry,
    )
    async def reconcile_on_timer(**kwargs: Any) -> None:
        """A sample; then, if a budget is projected to run out before the next tick, another one at
        that instant. The later sample plans from the first one's status (Kopf writes the staged
        status patch only when the handler returns), so nothing is announced twice."""
        next_tick = datetime.now(UTC) + timedelta(seconds=settings.sample_interval_seconds)
        plan = await _in_thread(reconcile, kwargs)
        while (
            wait := seconds_until_exhaustion_sample(
                plan.status.projected_exhaustion_time, datetime.now(UTC), next_tick
            )
        ) is not None:
            await asyncio.sleep(wait)
            plan = await _in_thread(reconcile, {**kwargs, "status": plan.status.to_wire()})

    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile_on_create", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile_on_update", field="spec", registry=registry)
    async def reconcile_on_change(**kwargs: Any) -> None:
        await _in_thread(reconcile, kwargs)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="restore_on_delete", registry=registry)
    async def restore_on_delete(**kwargs: Any) -> None:
        await _in_thread(_restore_on_delete, kwargs)


def register_admission(registry: kopf.OperatorRegistry) -> None:
    """The validating webhook for per-workload caps.

    failurePolicy Ignore (fail open): a cost cap is not a security boundary, and an operator outage must
    not block every Deployment change in the cluster; what slips through while it is down is found by
    the continuous audit and listed in the policy's status. An UPDATE that leaves the pod template as it
    was is always admitted, so scaling, rollbacks and the operator's own patches never get stuck on a
    workload that broke a cap before the policy existed.
    """

    @kopf.on.validate(
        "apps",
        "v1",
        "deployments",
        id="finopspolicy-caps",
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
        registry=registry,
    )
    def validate_caps(**kwargs: Any) -> None:
        # Runs on the event loop (no I/O, microseconds), so reading the live index is safe here.
        _validate_caps(**kwargs)


def _validate_caps(
    *,
    namespace: str | None,
    name: str | None,
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    operation: str | None,
    warnings: list[str],
    policies_by_namespace: kopf.Index[str, PeerPolicy],
    **_: Any,
) -> None:
    spec = body.get("spec") or {}
    template = spec.get("template") or {}
    before = (old or {}).get("spec") or {}
    if (
        operation == "UPDATE"
        and old is not None
        and all(before.get(k) == spec.get(k) for k in ("template", "replicas"))
    ):
        return
    peers = [p for p in policies_by_namespace.get(namespace or "", []) if p.spec is not None]
    policies = [(p.name, p.spec) for p in peers if p.spec is not None]
    if not policies:
        return
    labels = (body.get("metadata") or {}).get("labels") or {}
    deployment = name or (body.get("metadata") or {}).get("generateName") or "<unnamed>"
    facts = PodTemplateFacts.from_template(template)
    verdict = admit_deployment(
        policies,
        deployment,
        labels,
        facts,
        previous_deployment(old),
        replicas=replicas_of(spec),
        positions={p.name: p.position for p in peers},
        now=datetime.now(UTC),
    )
    warnings.extend(verdict.warnings)
    if not verdict.allowed:
        raise kopf.AdmissionError(verdict.message, code=403)


def _restore_on_delete(
    *,
    namespace: str | None,
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger,
    snapshot: NamespaceSnapshot,
    **_: Any,
) -> None:
    """Deleting a policy undoes everything it did (see ``plan_deletion``). A refused write keeps the
    policy's finalizer: Kopf retries, so nothing the policy changed is left behind."""
    try:
        spec: FinOpsPolicySpec | None = parse_policy_spec(body.get("spec") or {})
    except ValidationError:
        spec = None
    intents = plan_deletion(name, spec, snapshot.workloads, snapshot.pods)
    kube: KubeClient = memo.kube
    results = apply_intents(kube, intents, owner=body, recent=memo.recent_writes, logger=logger)
    refused = [r for r in results if r.error is not None and r.error.status != 404]
    if refused:
        raise kopf.TemporaryError(f"{len(refused)} restore(s) refused; retrying", delay=10)
    metrics.forget_policy(namespace or "", name)
    memo.forecasters.forget((namespace or "", name))


def _prediction(
    *,
    settings: Settings,
    spec: FinOpsPolicySpec,
    key: tuple[str, str],
    memo: kopf.Memo,
    now: datetime,
    logger: logging.Logger,
) -> PredictionInput | None:
    predictive = spec.predictive_scaling
    cache: ForecasterCache = memo.forecasters
    if predictive is None or not predictive.enabled:
        cache.forget(key)
        return None
    return predict(operator_settings=settings, spec=predictive, key=key, cache=cache, now=now, logger=logger)


def _anomaly_demand(
    settings: Settings, spec: FinOpsPolicySpec, logger: logging.Logger
) -> DemandReading | None:
    """The anomaly detector's demand now (several series are summed); None without a demand query."""
    query = demand_query(spec)
    if query is None:
        return None
    if settings.prometheus_url is None:
        return DemandReading(error="no Prometheus URL configured")
    try:
        samples = prometheus.query(str(settings.prometheus_url), query)
    except prometheus.PrometheusError as error:
        logger.warning("anomaly demand unavailable: %s", error)
        return DemandReading(error=f"demand query failed: {error}")
    return DemandReading(value=sum(s.value for s in samples) if samples else None)


def _pod_utilization(
    settings: Settings, namespace: str, logger: logging.Logger
) -> tuple[dict[str, float] | None, str | None]:
    if settings.prometheus_url is None:
        return None, None
    query = settings.gpu_utilization_query.replace("$namespace", namespace)
    try:
        samples = prometheus.query(str(settings.prometheus_url), query)
    except prometheus.PrometheusError as error:
        logger.warning("GPU utilisation unavailable: %s", error)
        return None, f"GPU utilisation query failed: {error}; idle shutdown is suspended"
    return {s.labels["pod"]: s.value for s in samples if "pod" in s.labels}, None


def _count_actions(
    namespace: str, policy: str, plan: PolicyPlan, results: Sequence[Applied], logger: logging.Logger
) -> None:
    """Each replica change or suspension the API server accepted counts as an action of its reason."""
    changes = {c.workload: c for c in plan.changes}
    for done in results:
        change = changes.get(workload_key(done.intent.target.kind, done.intent.target.name))
        if isinstance(done.intent, PatchWorkload) and done.result is not None and change is not None:
            metrics.record_action(namespace, policy, change.reason)
            logger.info(change.message)


def _notify(
    *,
    kube: KubeClient,
    namespace: str,
    policy: str,
    spec: FinOpsPolicySpec | None,
    events: tuple[PlannedEvent, ...],
    now: datetime,
    allow_private: bool,
    logger: logging.Logger,
) -> None:
    """Send alert-worthy events to the policy's Alertmanager-format webhook, if it has one."""
    alerts = [e for e in events if e.alert]
    reference = spec.alerting.webhook_secret_ref if spec is not None and spec.alerting else None
    if not alerts or reference is None:
        return
    try:
        url = kube.secret_value(namespace, reference.name, reference.key)
        post_alerts(
            url,
            [
                Alert(
                    name=e.reason,
                    severity=e.route.severity.value if e.route else "WARNING",
                    recipient_group=e.route.recipient_group if e.route else "",
                    namespace=namespace,
                    policy=policy,
                    message=e.message,
                    workload=e.workload,
                )
                for e in alerts
            ],
            now,
            allow_private=allow_private,
        )
    except (ApiException, KeyError, OSError) as error:
        logger.warning("alert webhook delivery failed: %s", error)
