"""FinOpsPolicy handlers: index Deployments, GPU pods, nodes and policies per namespace, and
reconcile each policy on a timer (level-triggered) and on spec changes: observe, plan, apply, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GPU_PRODUCT_LABEL, GROUP, VERSION, LabelSelector
from finops_operator.api.finopspolicy import FinOpsPolicy, FinOpsPolicyStatus
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.prediction import ForecasterCache, predict
from finops_operator.handlers.status import RecentWrites, write_status
from finops_operator.kube import ApiException, KubeClient
from finops_operator.planners.bounds import POLICY_LABEL, HpaFacts
from finops_operator.planners.budget import WorkloadFacts, restore
from finops_operator.planners.caps import PodTemplateFacts, admit_deployment
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.ledger import LEDGER_FINALIZER, PodFacts
from finops_operator.planners.policy import (
    DeploymentFacts,
    PeerPolicy,
    PlannedEvent,
    PolicyObservation,
    PolicyPlan,
    parse_spec,
    plan_policy,
)
from finops_operator.planners.predictive import PredictionInput
from finops_operator.settings import Settings
from finops_operator.telemetry import prometheus
from finops_operator.telemetry.alerts import Alert, post_alerts
from finops_operator.workloads.owners import workload_owner
from finops_operator.workloads.resources import gpus_in_pod_spec

PLURAL = FinOpsPolicy.meta.plural
KIND = "FinOpsPolicy"


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def pod_facts(
    *,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> PodFacts:
    """Running interval of a pod from its status: containers' start and finish, else deletion."""
    states = [cs.get("state") or {} for cs in status.get("containerStatuses") or []]
    starts = [_time(s[k].get("startedAt")) for s in states for k in ("running", "terminated") if k in s]
    started = min((t for t in starts if t), default=None)
    if started is None and status.get("phase") == "Running":
        started = _time(status.get("startTime"))
    finished = [_time(s["terminated"].get("finishedAt")) for s in states if "terminated" in s]
    ended: datetime | None = None
    if status.get("phase") in ("Succeeded", "Failed"):
        ended = max((t for t in finished if t), default=None) or _time(meta.get("deletionTimestamp"))
    elif meta.get("deletionTimestamp"):
        ended = _time(meta.get("deletionTimestamp"))
    return PodFacts(
        namespace=namespace,
        name=name,
        labels=dict(labels),
        gpus=gpus_in_pod_spec(spec),
        node_name=spec.get("nodeName"),
        running_since=started,
        ended_at=ended,
        has_finalizer=LEDGER_FINALIZER in (meta.get("finalizers") or []),
        owner_deployment=owner_deployment(meta, labels),
    )


def owner_deployment(meta: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    """The Deployment behind a pod's ReplicaSet, if a Deployment owns the pod."""
    owner = workload_owner(meta.get("ownerReferences"), labels)
    return owner[1] if owner is not None and owner[0] == "Deployment" else None


@dataclass(frozen=True)
class NamespaceSnapshot:
    """Copies of the Kopf indexes for one namespace. Indexes change on the event loop, so they are
    copied there, and the copy is what the handler thread works on."""

    deployments: tuple[DeploymentFacts, ...]
    pods: tuple[PodFacts, ...]
    policies: tuple[PeerPolicy, ...]
    gpu_product_of_node: dict[str, str]
    hpas: tuple[HpaFacts, ...]


def take_snapshot(namespace: str, kwargs: Mapping[str, Any]) -> NamespaceSnapshot:
    products: kopf.Index[str, str] = kwargs["gpu_product_by_node"]
    return NamespaceSnapshot(
        deployments=tuple(kwargs["deployments_by_namespace"].get(namespace, [])),
        pods=tuple(kwargs["gpu_pods_by_namespace"].get(namespace, [])),
        policies=tuple(kwargs["policies_by_namespace"].get(namespace, [])),
        gpu_product_of_node={node: next(iter(values)) for node, values in products.items()},
        hpas=tuple(kwargs["hpas_by_namespace"].get(namespace, [])),
    )


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    namespace = kwargs.get("namespace") or ""
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(namespace, kwargs))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the FinOpsPolicy handlers on ``registry``."""
    _register_indexes(registry)
    _register_reconcilers(registry, settings)


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    """In-memory views kept current by watch streams, so a sample never LISTs the cluster."""

    @kopf.index("apps", "v1", "deployments", id="deployments_by_namespace", registry=registry)
    def deployments_by_namespace(
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        uid: str,
        **_: Any,
    ) -> dict[str, DeploymentFacts]:
        template = PodTemplateFacts.from_template(spec.get("template") or {})
        try:
            selector = LabelSelector.model_validate(dict(spec.get("selector") or {}))
        except ValidationError:
            selector = None
        namespace = namespace or ""
        return {
            namespace: DeploymentFacts(
                namespace=namespace,
                name=name,
                uid=uid,
                labels=dict(labels),
                annotations=dict(annotations),
                replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
                ready_replicas=int(status.get("readyReplicas", 0) or 0),
                gpus_per_pod=template.gpus,
                pod_selector=selector,
                template=template,
            )
        }

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
    ) -> dict[str, PodFacts]:
        return {
            namespace or "": pod_facts(
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
        *, namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
    ) -> dict[str, PeerPolicy] | None:
        try:
            parsed = parse_spec(spec)
        except ValidationError:
            return None
        return {namespace or "": PeerPolicy(name=name, selector=parsed.target_workload_selector, spec=parsed)}


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
    ) -> None:
        started = time.perf_counter()
        now = datetime.now(UTC)  # read once: every decision of this sample uses the same instant
        utilization, metrics_error = _pod_utilization(settings, namespace, logger)
        prediction = _prediction(
            settings=settings, spec=spec, key=(namespace, name), memo=memo, now=now, logger=logger
        )
        observation = PolicyObservation(
            name=name,
            generation=int(meta.get("generation", 0)),
            current_status=read_status(FinOpsPolicyStatus, status),
            deployments=snapshot.deployments,
            peers=[peer for peer in snapshot.policies if peer.name != name],
            pods=snapshot.pods,
            gpu_product_of_node=snapshot.gpu_product_of_node,
            namespace=namespace,
            uid=str(meta.get("uid", "")),
            hpas=snapshot.hpas,
            pod_utilization=utilization,
            metrics_error=metrics_error,
            prediction=prediction,
        )
        plan = plan_policy(spec, observation, now)
        kube: KubeClient = memo.kube
        _apply(
            kube=kube,
            namespace=namespace,
            policy=name,
            body=body,
            plan=plan,
            observation=observation,
            memo=memo,
            logger=logger,
        )
        write_status(KIND, status, plan.status.to_wire(), patch)
        _notify(
            kube=kube,
            namespace=namespace,
            policy=name,
            spec=spec,
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
        )
        metrics.record_reconcile(KIND, time.perf_counter() - started)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="reconcile_on_timer",
        interval=settings.sample_interval_seconds,
        registry=registry,
    )
    async def reconcile_on_timer(**kwargs: Any) -> None:
        await _in_thread(reconcile, kwargs)

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
    if operation == "UPDATE" and old is not None and (old.get("spec") or {}).get("template") == template:
        return
    policies = [
        (p.name, p.spec) for p in policies_by_namespace.get(namespace or "", []) if p.spec is not None
    ]
    if not policies:
        return
    labels = (body.get("metadata") or {}).get("labels") or {}
    deployment = name or (body.get("metadata") or {}).get("generateName") or "<unnamed>"
    verdict = admit_deployment(policies, deployment, labels, PodTemplateFacts.from_template(template))
    warnings.extend(verdict.warnings)
    if not verdict.allowed:
        raise kopf.AdmissionError(verdict.message, code=403)


def _restore_on_delete(
    *,
    namespace: str | None,
    name: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    snapshot: NamespaceSnapshot,
    **_: Any,
) -> None:
    """Deleting a policy undoes everything it did: replicas restored, ledger finalizers released."""
    namespace = namespace or ""
    kube: KubeClient = memo.kube
    ours = [d for d in snapshot.deployments if d.as_workload().marked_by(name)]
    for deployment in ours:
        change = restore(
            WorkloadFacts(deployment.name, deployment.replicas, deployment.annotations),
            "PolicyDeleted",
            f"FinOpsPolicy {name} deleted",
        )
        kube.patch_deployment(namespace, deployment.name, change.replicas, change.annotations)
        _post(deployment, namespace, "Normal", "PolicyDeleted", change.message)
        logger.info(change.message)
    try:
        spec = parse_spec(body.get("spec") or {})
    except ValidationError:
        spec = None
    for pod in snapshot.pods:
        if pod.has_finalizer and (
            spec is None or _selected_by(spec.target_workload_selector, pod, snapshot.deployments)
        ):
            kube.remove_pod_finalizer(namespace, pod.name, LEDGER_FINALIZER)
    metrics.forget_policy(namespace, name)
    memo.forecasters.forget((namespace, name))


def _selected_by(selector: LabelSelector, pod: PodFacts, deployments: Sequence[DeploymentFacts]) -> bool:
    return any(selector_matches(selector, d.labels) and d.owns(pod) for d in deployments)


def _prediction(
    *,
    settings: Settings,
    spec: Mapping[str, Any],
    key: tuple[str, str],
    memo: kopf.Memo,
    now: datetime,
    logger: logging.Logger,
) -> PredictionInput | None:
    try:
        predictive = parse_spec(spec).predictive_scaling
    except ValidationError:
        return None  # the planner reports the invalid spec
    cache: ForecasterCache = memo.forecasters
    if predictive is None or not predictive.enabled:
        cache.forget(key)
        return None
    return predict(operator_settings=settings, spec=predictive, key=key, cache=cache, now=now, logger=logger)


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


def _apply(
    *,
    kube: KubeClient,
    namespace: str,
    policy: str,
    body: kopf.Body,
    plan: PolicyPlan,
    observation: PolicyObservation,
    memo: kopf.Memo,
    logger: logging.Logger,
) -> None:
    """Make the plan real. Every change is a patch of a field the plan computed, so a crash halfway
    is repaired by the next sample."""
    for pod in plan.pods_to_track:
        kube.add_pod_finalizer(namespace, pod.name, LEDGER_FINALIZER)
    for pod in plan.pods_to_release:
        kube.remove_pod_finalizer(namespace, pod.name, LEDGER_FINALIZER)
    by_name = {d.name: d for d in observation.deployments}
    recent: RecentWrites = memo.recent_writes
    for manifest in plan.hpas.apply:
        try:
            kube.apply_hpa(manifest)
        except ApiException as error:
            logger.warning("could not apply HPA %s: %s", manifest["metadata"]["name"], error.reason)
    for hpa in plan.hpas.delete:
        kube.delete_hpa(namespace, hpa)
    for change in plan.changes:
        if not recent.first(
            (namespace, change.workload), (change.replicas, sorted(change.annotations.items()))
        ):
            continue
        try:
            kube.patch_deployment(namespace, change.workload, change.replicas, change.annotations)
        except ApiException as error:
            logger.warning("could not change %s: %s", change.workload, error.reason)
            continue
        metrics.record_action(namespace, policy, change.reason)
        logger.info(change.message)
    for event in plan.events:
        if not recent.first((namespace, policy, event.reason), event.message):
            continue
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        deployment = by_name.get(event.workload or "")
        if deployment is not None:
            _post(deployment, namespace, event.type, event.reason, event.message)


def _post(deployment: DeploymentFacts, namespace: str, type_: str, reason: str, message: str) -> None:
    reference = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment.name, "namespace": namespace, "uid": deployment.uid},
    }
    kopf.event(cast("kopf.Body", reference), type=type_, reason=reason, message=message)


def _notify(
    *,
    kube: KubeClient,
    namespace: str,
    policy: str,
    spec: Mapping[str, Any],
    events: tuple[PlannedEvent, ...],
    now: datetime,
    allow_private: bool,
    logger: logging.Logger,
) -> None:
    """Send alert-worthy events to the policy's Alertmanager-format webhook, if it has one."""
    alerts = [e for e in events if e.alert]
    reference = ((spec.get("alerting") or {}).get("webhookSecretRef")) or None
    if not alerts or not reference:
        return
    try:
        url = kube.secret_value(namespace, reference["name"], reference.get("key", "url"))
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
