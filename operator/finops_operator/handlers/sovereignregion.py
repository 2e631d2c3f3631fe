"""SovereignRegion handlers: confine the namespaces bound to a region to its nodes, GPU products and data
classifications.

Three paths, so enforcement does not depend on one process being up (see docs/SOVEREIGNTY.md):

* a ValidatingAdmissionPolicy + binding per region, rendered by ``planners.vap`` and owned by the
  SovereignRegion: evaluated inside the API server, it keeps rejecting explicit violations while the
  operator is down;
* Kopf webhooks: a mutating one injects the region's required node affinity (merged with the
  workload's own), a validating one judges what CEL cannot (node pins, NotIn/DoesNotExist terms);
* a timer per region (level-triggered) that audits what already runs from Kopf indexes, reports it in
  status, Events and ``finops_sovereignty_violations``, repairs removed affinity (Enforce) and evicts
  out-of-region pods (Enforce + evictOutOfRegionPods, throttled).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GPU_PRODUCT_LABEL, GPU_RESOURCE, GROUP, VERSION, EnforcementMode
from finops_operator.api.sovereignregion import (
    REGION_LABEL,
    SovereignRegion,
    SovereignRegionSpec,
    SovereignRegionStatus,
    SovereigntyViolation,
)
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.status import RecentWrites, write_status
from finops_operator.kube import FIELD_MANAGER, KubeClient
from finops_operator.planners import vap
from finops_operator.planners.sovereignty import (
    LEGACY_REGION_LABEL,
    AuditResult,
    Finding,
    NodeFacts,
    PodFacts,
    PvcFacts,
    PvFacts,
    WorkloadFacts,
    admission_decision,
    audit,
    bound_regions,
    evaluate_pod_template,
    matching_node_names,
    merge_required_affinity,
    namespace_conflict_decision,
    parse_spec,
    plan_region_status,
    resolve_namespace_bindings,
)
from finops_operator.settings import Settings
from finops_operator.workloads.owners import workload_owner
from finops_operator.workloads.resources import gpus_in_pod_spec
from finops_operator.workloads.templates import MUTABLE_TEMPLATE_KINDS, POD_TEMPLATE_PATHS, pod_template

PLURAL = SovereignRegion.meta.plural
KIND = "SovereignRegion"
MAX_EVICTIONS_PER_AUDIT = 5
"""Evictions per region per audit: a wrong node selector must not drain a namespace in one tick."""
MAX_REPAIRS_PER_AUDIT = 10
"""Affinity repairs per region per audit: each one starts a rollout."""
MAX_EVENTS_PER_AUDIT = 10
AUDIT_HEARTBEAT = timedelta(minutes=5)
"""lastAuditTime alone is rewritten at most this often, so a quiet cluster sees no status writes."""

WORKLOAD_RESOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("batch", "v1", "jobs", "Job"),
    ("batch", "v1", "cronjobs", "CronJob"),
)
ADMITTED_RESOURCES: tuple[tuple[str, str, str, str], ...] = (("", "v1", "pods", "Pod"), *WORKLOAD_RESOURCES)
PLACEMENT_LABELS = frozenset({REGION_LABEL, LEGACY_REGION_LABEL, GPU_PRODUCT_LABEL})


# --------------------------------------------------------------------------------------------------
# Index facts: small frozen records, never whole bodies


@dataclass(frozen=True)
class RegionFacts:
    name: str
    uid: str
    spec: SovereignRegionSpec | None


@dataclass(frozen=True)
class PvcRow:
    namespace: str
    name: str
    labels: Mapping[str, str]
    volume_name: str | None


def placement_spec(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Only what the sovereignty rules read from a pod spec: node selector, required node affinity,
    node name and GPU requests. Keeps the indexes small however large the real specs are."""
    node_affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity")) or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    reduced: dict[str, Any] = {}
    if pod_spec.get("nodeSelector"):
        reduced["nodeSelector"] = dict(pod_spec["nodeSelector"])
    if pod_spec.get("nodeName"):
        reduced["nodeName"] = pod_spec["nodeName"]
    if required:
        reduced["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    for field in ("containers", "initContainers"):
        gpus = [_gpu_resources(c) for c in pod_spec.get(field) or [] if isinstance(c, Mapping)]
        if any(gpus):
            reduced[field] = gpus
    return reduced


def _gpu_resources(container: Mapping[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    kept = {
        kind: {GPU_RESOURCE: (resources.get(kind) or {})[GPU_RESOURCE]}
        for kind in ("limits", "requests")
        if GPU_RESOURCE in (resources.get(kind) or {})
    }
    return {"resources": kept} if kept else {}


# --------------------------------------------------------------------------------------------------
# Snapshot: copied on the event loop, read in the handler thread


@dataclass(frozen=True)
class Snapshot:
    """What one audit of one region works on: only its bound namespaces' objects are copied."""

    governed: Mapping[str, Mapping[str, str]]
    conflicts: dict[str, tuple[str, ...]]
    nodes: dict[str, NodeFacts]
    workloads: tuple[WorkloadFacts, ...]
    pods: tuple[PodFacts, ...]
    pvcs: tuple[PvcFacts, ...]
    admission_hashes: dict[tuple[str, str], str]


def _first(index: kopf.Index[Any, Any], key: Any) -> Any:
    return next(iter(index.get(key, [])), None)


def _regions(index: kopf.Index[str, RegionFacts]) -> dict[str, SovereignRegionSpec]:
    return {name: facts.spec for name in index for facts in index[name] if facts.spec is not None}


def take_snapshot(name: str, kwargs: Mapping[str, Any]) -> Snapshot:
    namespaces_index: kopf.Index[str, Mapping[str, str]] = kwargs["sovr_namespaces"]
    namespaces = {ns: dict(_first(namespaces_index, ns) or {}) for ns in namespaces_index}
    bindings = resolve_namespace_bindings(namespaces, _regions(kwargs["sovr_regions"]))
    governed = {ns: namespaces[ns] for ns in bindings.governed.get(name, ())}
    nodes_index: kopf.Index[str, NodeFacts] = kwargs["sovr_nodes"]
    pvs_index: kopf.Index[str, PvFacts] = kwargs["sovr_pvs"]
    workloads: list[WorkloadFacts] = []
    pods: list[PodFacts] = []
    pvcs: list[PvcFacts] = []
    for namespace in governed:
        for _, _, plural, _ in WORKLOAD_RESOURCES:
            workloads.extend(kwargs[f"sovr_{plural}"].get(namespace, []))
        pods.extend(kwargs["sovr_pods"].get(namespace, []))
        for row in kwargs["sovr_pvcs"].get(namespace, []):
            pv = _first(pvs_index, row.volume_name) if row.volume_name else None
            pvcs.append(PvcFacts(row.namespace, row.name, row.labels, pv))
    hashes: kopf.Index[tuple[str, str], str] = kwargs["sovr_admission_policies"]
    return Snapshot(
        governed=governed,
        conflicts={ns: tuple(regions) for ns, regions in bindings.conflicts.get(name, {}).items()},
        nodes={node: facts for node in nodes_index for facts in nodes_index[node]},
        workloads=tuple(workloads),
        pods=tuple(pods),
        pvcs=tuple(pvcs),
        admission_hashes={key: value for key in hashes for value in hashes[key]},
    )


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(kwargs["name"], kwargs))


# --------------------------------------------------------------------------------------------------
# Registration


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the indexes, the audit timer and the change handlers of SovereignRegions."""
    _register_indexes(registry)
    _register_reconcilers(registry, settings)


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    @kopf.index(GROUP, VERSION, PLURAL, id="sovr_regions", registry=registry)
    def sovr_regions(*, name: str, uid: str, spec: Mapping[str, Any], **_: Any) -> dict[str, RegionFacts]:
        try:
            parsed: SovereignRegionSpec | None = parse_spec(spec)
        except ValidationError:
            parsed = None
        return {name: RegionFacts(name, uid, parsed)}

    @kopf.index("", "v1", "namespaces", id="sovr_namespaces", registry=registry)
    def sovr_namespaces(*, name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    @kopf.index("", "v1", "nodes", id="sovr_nodes", registry=registry)
    def sovr_nodes(*, name: str, labels: Mapping[str, str], **_: Any) -> dict[str, NodeFacts]:
        return {name: NodeFacts(name, dict(labels))}

    @kopf.index("", "v1", "pods", id="sovr_pods", registry=registry)
    def sovr_pods(
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        meta: Mapping[str, Any],
        **_: Any,
    ) -> dict[str, PodFacts] | None:
        phase = str(status.get("phase") or "Pending")
        if phase in ("Succeeded", "Failed"):
            return None
        return {
            namespace or "": PodFacts(
                namespace=namespace or "",
                name=name,
                node_name=spec.get("nodeName"),
                phase=phase,
                gpus=gpus_in_pod_spec(spec),
                workload=workload_owner(meta.get("ownerReferences"), labels),
                terminating=bool(meta.get("deletionTimestamp")),
            )
        }

    for group, version, plural, kind in WORKLOAD_RESOURCES:
        _register_workload_index(registry, group, version, plural, kind)

    @kopf.index("", "v1", "persistentvolumeclaims", id="sovr_pvcs", registry=registry)
    def sovr_pvcs(
        *, namespace: str | None, name: str, labels: Mapping[str, str], spec: Mapping[str, Any], **_: Any
    ) -> dict[str, PvcRow]:
        ns = namespace or ""
        return {ns: PvcRow(ns, name, dict(labels), spec.get("volumeName") or None)}

    @kopf.index("", "v1", "persistentvolumes", id="sovr_pvs", registry=registry)
    def sovr_pvs(
        *, name: str, labels: Mapping[str, str], spec: Mapping[str, Any], **_: Any
    ) -> dict[str, PvFacts]:
        topology = {k: v for k, v in labels.items() if k.endswith(("/region", "/zone", "/hostname"))}
        return {name: PvFacts(name, topology, spec.get("nodeAffinity"))}

    managed = {vap.MANAGED_BY_LABEL: vap.MANAGED_BY}
    for plural, kind in (
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding"),
    ):
        _register_admission_policy_index(registry, plural, kind, managed)


def _register_workload_index(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
    @kopf.index(group, version, plural, id=f"sovr_{plural}", registry=registry)
    def index(
        *, namespace: str | None, name: str, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[str, WorkloadFacts] | None:
        found = pod_template(kind, body)
        if found is None:
            return None
        template_labels, pod_spec = found
        ns = namespace or ""
        return {
            ns: WorkloadFacts(
                namespace=ns,
                kind=kind,
                name=name,
                labels=dict(labels),
                template_labels=dict(template_labels),
                pod_spec=placement_spec(pod_spec),
            )
        }


def _register_admission_policy_index(
    registry: kopf.OperatorRegistry, plural: str, kind: str, managed: Mapping[str, str]
) -> None:
    @kopf.index(
        "admissionregistration.k8s.io",
        "v1",
        plural,
        id=f"sovr_{plural}",
        labels=dict(managed),
        registry=registry,
    )
    def index(*, name: str, annotations: Mapping[str, str], **_: Any) -> dict[tuple[str, str], str]:
        return {(kind, name): annotations.get(vap.HASH_ANNOTATION, "")}


def _register_reconcilers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    # The audit reads only Kopf indexes (no LIST), so it runs at the sampling cadence; writes happen
    # only when something changed.
    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="audit_on_timer",
        interval=settings.sample_interval_seconds,
        registry=registry,
    )
    async def audit_on_timer(**kwargs: Any) -> None:
        await _in_thread(_reconcile, _with_admission_hashes(kwargs))

    @kopf.on.create(GROUP, VERSION, PLURAL, id="audit_on_create", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="audit_on_update", field="spec", registry=registry)
    async def audit_on_change(**kwargs: Any) -> None:
        await _in_thread(_reconcile, _with_admission_hashes(kwargs))

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="forget_on_delete", optional=True, registry=registry)
    def forget_on_delete(*, name: str, **_: Any) -> None:
        # The ValidatingAdmissionPolicy and its binding go with the region (ownerReferences).
        metrics.forget_sovereignty(name)


def _with_admission_hashes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The two admission-object indexes, seen as one (kind, name) -> hash index by the snapshot."""
    merged: dict[tuple[str, str], list[str]] = {}
    for plural in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
        index: kopf.Index[tuple[str, str], str] = kwargs[f"sovr_{plural}"]
        for key in index:
            merged[key] = list(index[key])
    return {**kwargs, "sovr_admission_policies": merged}


# --------------------------------------------------------------------------------------------------
# The audit


def _reconcile(
    *,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    body: kopf.Body,
    patch: kopf.Patch,
    logger: logging.Logger,
    memo: kopf.Memo,
    snapshot: Snapshot,
    **_: Any,
) -> None:
    started = time.perf_counter()
    now = datetime.now(UTC)
    try:
        region = parse_spec(spec)
    except ValidationError as error:
        logger.warning("invalid SovereignRegion spec: %s", error)
        return  # the CRD schema rejects almost everything this catches; nothing safe to enforce
    current = read_status(SovereignRegionStatus, status)
    result = audit(
        region,
        bound_namespaces=snapshot.governed,
        workloads=snapshot.workloads,
        pods=snapshot.pods,
        pvcs=snapshot.pvcs,
        nodes=snapshot.nodes,
        previous_violations=current.violations,
        now=now,
        cap=1_000_000,  # the full list for metrics and Events; the status keeps the first 100
        region_name=name,
    )
    desired = plan_region_status(
        region,
        generation=int(meta.get("generation", 0)),
        current_status=current,
        audit_result=result,
        namespace_conflicts=snapshot.conflicts,
        matching_nodes=len(matching_node_names(region, snapshot.nodes)),
        now=now,
        region_name=name,
    )
    apis = _Apis.of(memo)
    recent: RecentWrites = memo.recent_writes
    _apply_admission_policy(
        apis, region=region, name=name, uid=uid, snapshot=snapshot, recent=recent, logger=logger
    )
    if region.enforcement_mode == EnforcementMode.ENFORCE:
        _repair(apis, region=region, name=name, snapshot=snapshot, recent=recent, logger=logger)
        _evict(apis, name, result, recent, logger)
    _report(body, name, current.violations, result.violations, recent)
    for note in result.notes[:MAX_EVENTS_PER_AUDIT]:
        if recent.first((KIND, name, "note", note), note):
            logger.info(note)
    write_status(KIND, status, _quiet(status, desired.to_wire(), now), patch)
    metrics.record_sovereignty(name, dict(Counter(v.rule for v in result.violations)))
    metrics.record_reconcile(KIND, time.perf_counter() - started)


def _quiet(current: Mapping[str, Any], desired: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Keep the previous lastAuditTime when nothing else changed and it is recent enough, so a quiet
    period writes nothing."""
    previous = current.get("lastAuditTime")
    if not previous:
        return desired
    others_same = all(current.get(k) == v for k, v in desired.items() if k != "lastAuditTime")
    try:
        age = now - datetime.fromisoformat(str(previous).replace("Z", "+00:00"))
    except ValueError:
        return desired
    if others_same and age < AUDIT_HEARTBEAT:
        return {**desired, "lastAuditTime": previous}
    return desired


@dataclass(frozen=True)
class _Apis:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    batch: client.BatchV1Api
    admission: client.AdmissionregistrationV1Api

    @classmethod
    def of(cls, memo: kopf.Memo) -> _Apis:
        kube: KubeClient = memo.kube
        api = kube.core.api_client
        return cls(kube.core, kube.apps, client.BatchV1Api(api), client.AdmissionregistrationV1Api(api))


def _apply_admission_policy(
    apis: _Apis,
    *,
    region: SovereignRegionSpec,
    name: str,
    uid: str,
    snapshot: Snapshot,
    recent: RecentWrites,
    logger: logging.Logger,
) -> None:
    """Server-side apply the region's ValidatingAdmissionPolicy and binding when missing or changed
    (their spec hash is watched through an index, so an unchanged region makes no API call)."""
    policy = vap.validating_admission_policy(region, region_name=name, uid=uid, nodes=snapshot.nodes)
    binding = vap.validating_admission_policy_binding(
        region, region_name=name, uid=uid, excluded_namespaces=sorted(snapshot.conflicts)
    )
    calls = (
        (policy, apis.admission.patch_validating_admission_policy),
        (binding, apis.admission.patch_validating_admission_policy_binding),
    )
    for obj, call in calls:
        key = (obj["kind"], obj["metadata"]["name"])
        digest = obj["metadata"]["annotations"][vap.HASH_ANNOTATION]
        if snapshot.admission_hashes.get(key) == digest or not recent.first(("apply", *key), digest):
            continue  # unchanged, or applied moments ago and the watch has not caught up yet
        metrics.record_api_request("apply", _PLURALS[obj["kind"]])
        try:
            call(
                obj["metadata"]["name"],
                obj,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
            logger.info("applied %s %s", *key)
        except ApiException as error:
            logger.warning("could not apply %s %s: %s", key[0], key[1], error.reason)


_PLURALS = {
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


def _repair(
    apis: _Apis,
    *,
    region: SovereignRegionSpec,
    name: str,
    snapshot: Snapshot,
    recent: RecentWrites,
    logger: logging.Logger,
) -> None:
    """Re-apply the region's required node affinity to governed workloads that lost it. Only
    workloads that ask for nothing outside the region: confining an explicit violator would only
    leave its new pods unschedulable (and the ValidatingAdmissionPolicy rejects that patch anyway);
    those stay listed as violations for a human to fix. Each repair changes the pod template, which
    starts a rollout: that is the point, the running pods are replaced by confined ones."""
    patches = {
        "Deployment": apis.apps.patch_namespaced_deployment,
        "StatefulSet": apis.apps.patch_namespaced_stateful_set,
        "DaemonSet": apis.apps.patch_namespaced_daemon_set,
        "CronJob": apis.batch.patch_namespaced_cron_job,
    }
    repaired = 0
    for workload in snapshot.workloads:
        if workload.kind not in MUTABLE_TEMPLATE_KINDS or repaired >= MAX_REPAIRS_PER_AUDIT:
            continue
        merged, changed = merge_required_affinity(workload.pod_spec, region)
        if not changed or _findings(workload, region, name, snapshot):
            continue
        required = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        affinity = {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
        }
        template: dict[str, Any] = {"template": {"spec": affinity}}
        if workload.kind == "CronJob":
            template = {"jobTemplate": {"spec": template}}
        if not recent.first((workload.namespace, workload.kind, workload.name, "affinity"), required):
            continue
        metrics.record_api_request("patch", workload.kind.lower() + "s")
        try:
            patches[workload.kind](
                workload.name,
                workload.namespace,
                {"spec": template},
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            logger.warning(
                "could not repair %s %s/%s: %s",
                workload.kind,
                workload.namespace,
                workload.name,
                error.reason,
            )
            continue
        repaired += 1
        message = (
            f"SovereignRegion {name}: restored the required node affinity of {workload.kind} "
            f"{workload.namespace}/{workload.name} (region {region.region})"
        )
        logger.info(message)
        _post(workload.namespace, workload.kind, workload.name, "SovereigntyAffinityRestored", message)


def _findings(
    workload: WorkloadFacts, region: SovereignRegionSpec, name: str, snapshot: Snapshot
) -> list[Finding]:
    return evaluate_pod_template(
        workload.namespace,
        workload.kind,
        workload.name,
        labels=workload.labels,
        pod_spec=workload.pod_spec,
        namespace_labels=snapshot.governed.get(workload.namespace),
        region_spec=region,
        nodes_by_name=snapshot.nodes,
        template_labels=workload.template_labels,
        region_name=name,
    )


def _evict(apis: _Apis, name: str, result: AuditResult, recent: RecentWrites, logger: logging.Logger) -> None:
    """policy/v1 Evictions (PodDisruptionBudgets are respected), at most MAX_EVICTIONS_PER_AUDIT."""
    evicted = 0
    for pod in result.evictions:
        if evicted >= MAX_EVICTIONS_PER_AUDIT:
            logger.info("eviction throttled: %d more pod(s) next audit", len(result.evictions) - evicted)
            break
        if not recent.first(("evict", pod.namespace, pod.name), name):
            continue
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.name, namespace=pod.namespace))
        metrics.record_api_request("create", "pods/eviction")
        try:
            apis.core.create_namespaced_pod_eviction(pod.name, pod.namespace, body)
        except ApiException as error:
            # 429: a PodDisruptionBudget forbids it now; 404: gone. Either way, the next audit decides.
            logger.info("eviction of %s/%s refused: %s", pod.namespace, pod.name, error.reason)
            continue
        evicted += 1
        message = (
            f"SovereignRegion {name}: evicted Pod {pod.namespace}/{pod.name}, running outside the region"
        )
        logger.info(message)
        _post(pod.namespace, "Pod", pod.name, "SovereigntyEviction", message)


def _report(
    body: kopf.Body,
    name: str,
    previous: Sequence[SovereigntyViolation],
    violations: Sequence[SovereigntyViolation],
    recent: RecentWrites,
) -> None:
    """One Warning Event per newly found violation (capped), on the region."""
    known = {(v.namespace, v.kind, v.name, v.rule) for v in previous}
    new = [v for v in violations if (v.namespace, v.kind, v.name, v.rule) not in known]
    for violation in new[:MAX_EVENTS_PER_AUDIT]:
        key = (KIND, name, violation.namespace, violation.kind, violation.name, violation.rule)
        if recent.first(key, violation.message):
            kopf.event(body, type="Warning", reason="SovereigntyViolation", message=violation.message)
    if len(new) > MAX_EVENTS_PER_AUDIT and recent.first((KIND, name, "more"), len(new)):
        kopf.event(
            body,
            type="Warning",
            reason="SovereigntyViolation",
            message=f"SovereignRegion {name}: {len(new) - MAX_EVENTS_PER_AUDIT} more new violation(s); "
            "see status.violations",
        )


def _post(namespace: str, kind: str, name: str, reason: str, message: str) -> None:
    api_version = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    reference = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    kopf.event(cast("kopf.Body", reference), type="Normal", reason=reason, message=message)


# --------------------------------------------------------------------------------------------------
# Admission


def register_admission(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """One Kopf mutating webhook per kind, for pods and pod templates in bound namespaces: it judges
    what the workload asks for and, if admitted, injects the region's required node affinity.

    Judging happens here, on the object as the user sent it, not in a validating webhook after the
    injection: once the region's requirement is merged into a term that excludes the region, the term
    matches no node at all and no longer reads as "asks for another region". The final object, after
    every mutating webhook of the cluster, is validated by the generated ValidatingAdmissionPolicy.

    failurePolicy Ignore (``ignore_failures=True``): Kopf cannot scope a webhook to the bound
    namespaces, so this one sees every pod in the cluster, the operator's own included; failing closed
    would make the operator a single point of failure for all scheduling and would keep its own pod
    from coming back. While it is down, the ValidatingAdmissionPolicy (failurePolicy Fail, evaluated in
    the API server, scoped to the bound namespaces) keeps rejecting explicit violations, and the audit
    repairs and reports the rest when it returns. See docs/SOVEREIGNTY.md.
    """
    for group, version, plural, kind in ADMITTED_RESOURCES:
        _register_webhook(registry, group, version, plural, kind)


def _register_webhook(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
    # A pod's affinity and a Job's template are immutable: those are only seen on CREATE.
    operations: list[Literal["CREATE", "UPDATE"]] = (
        ["CREATE"] if kind in ("Pod", "Job") else ["CREATE", "UPDATE"]
    )

    @kopf.on.mutate(
        group,
        version,
        plural,
        id=f"sovereignty-{plural}",
        operations=operations,
        ignore_failures=True,
        registry=registry,
    )
    def admit(**kwargs: Any) -> None:
        # On the event loop (no I/O, microseconds): reading the live indexes is safe here.
        _admit(kind=kind, **kwargs)


@dataclass(frozen=True)
class _Review:
    """What admission needs to know about one request: the region governing its namespace (if exactly
    one), the object's pod template, and whether this request changes it."""

    namespace: str
    name: str
    region_name: str
    region: SovereignRegionSpec
    namespace_labels: Mapping[str, str]
    labels: Mapping[str, str]
    template_labels: Mapping[str, str] | None
    pod_spec: Mapping[str, Any]


def _review(
    kind: str,
    *,
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    operation: str | None,
    warnings: list[str],
    sovr_regions: kopf.Index[str, RegionFacts],
    sovr_namespaces: kopf.Index[str, Mapping[str, str]],
    **_: Any,
) -> _Review | None:
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    found = pod_template(kind, body)
    if not namespace or found is None:
        return None
    if operation == "UPDATE" and old is not None:
        old_labels = (old.get("metadata") or {}).get("labels")
        if pod_template(kind, old) == found and old_labels == metadata.get("labels"):
            return None  # scaling, rollbacks, status-like edits: never judged, never mutated
    namespace_labels = dict(_first(sovr_namespaces, namespace) or {})
    regions = _regions(sovr_regions)
    names = bound_regions(namespace_labels, regions)
    if not names:
        return None
    if len(names) > 1:
        warnings.extend(namespace_conflict_decision(namespace, names).warnings)
        return None
    template_labels, pod_spec = found
    return _Review(
        namespace=namespace,
        name=str(metadata.get("name") or metadata.get("generateName") or "<unnamed>"),
        region_name=names[0],
        region=regions[names[0]],
        namespace_labels=namespace_labels,
        labels=dict(metadata.get("labels") or {}),
        template_labels=dict(template_labels) if kind != "Pod" else None,
        pod_spec=pod_spec,
    )


def _admit(
    *, kind: str, patch: kopf.Patch, warnings: list[str], logger: logging.Logger, **kwargs: Any
) -> None:
    """Enforce rejects naming the SovereignRegion and the rule; Warn admits with warnings; DryRun only
    logs and changes nothing. Enforce and Warn then merge the region's required node affinity into
    the pod template, returned through Kopf's ``patch`` (the review's JSON patch)."""
    review = _review(kind, warnings=warnings, **kwargs)
    if review is None:
        return
    nodes_index: kopf.Index[str, NodeFacts] = kwargs["sovr_nodes"]
    findings = evaluate_pod_template(
        review.namespace,
        kind,
        review.name,
        labels=review.labels,
        pod_spec=review.pod_spec,
        namespace_labels=review.namespace_labels,
        region_spec=review.region,
        nodes_by_name={n: facts for n in nodes_index for facts in nodes_index[n]},
        template_labels=review.template_labels,
        region_name=review.region_name,
    )
    decision = admission_decision(
        review.region.enforcement_mode,
        [dataclasses.replace(f, message=f"{f.message} [rule {f.rule}]") for f in findings],
    )
    if not decision.allowed:
        raise kopf.AdmissionError(decision.message, code=403)
    warnings.extend(decision.warnings)
    for finding in decision.dry_run_report:
        logger.info("DryRun: %s", finding.message)
    if review.region.enforcement_mode == EnforcementMode.DRY_RUN:
        return
    merged, changed = merge_required_affinity(review.pod_spec, review.region)
    if not changed:
        return
    target: Any = patch
    for part in (*POD_TEMPLATE_PATHS[kind], "spec"):
        target = target.setdefault(part, {})
    target["affinity"] = merged["affinity"]
