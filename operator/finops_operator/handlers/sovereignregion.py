"""SovereignRegion handlers: confine the namespaces bound to a region to its nodes, GPU products and data
classifications.

Three paths, so enforcement does not depend on one process being up (see docs/SOVEREIGNTY.md):

* a ValidatingAdmissionPolicy + binding per region, rendered by ``planners.sovereignty.vap`` and owned
  by the SovereignRegion: evaluated inside the API server, it keeps rejecting explicit violations
  while the operator is down;
* a Kopf mutating webhook that judges what the workload asks for and injects the region's required
  node affinity (merged with the workload's own);
* a timer per region (level-triggered) that audits what already runs from Kopf indexes.

This module holds only the indexes, ``observe`` (index snapshot -> SovereigntyObservation) and the
reconcile: observe -> ``plan_sovereignty`` -> ``handlers.apply``. Every decision (what to repair, what
to evict and how many, which Events, the status heartbeat, admission) is in the planner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import kopf
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import GPU_RESOURCE, GROUP, VERSION
from finops_operator.api.sovereignregion import SovereignRegion, SovereignRegionSpec, SovereignRegionStatus
from finops_operator.handlers.apply import apply_plan
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.shared_values import shared
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import KubeClient
from finops_operator.planners import admissionpolicy
from finops_operator.planners.sovereignty import (
    AdmissionReview,
    ClusterNode,
    Inventory,
    PlacedPod,
    PvcFacts,
    PvFacts,
    SovereigntyObservation,
    TemplatedWorkload,
    parse_spec,
    plan_admission,
    plan_sovereignty,
    resolve_namespace_bindings,
)
from finops_operator.settings import Settings
from finops_operator.workloads.owners import workload_owner
from finops_operator.workloads.resources import gpus_in_pod_spec
from finops_operator.workloads.templates import POD_TEMPLATE_PATHS, pod_template

PLURAL = SovereignRegion.meta.plural
KIND = "SovereignRegion"

WORKLOAD_RESOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("batch", "v1", "jobs", "Job"),
    ("batch", "v1", "cronjobs", "CronJob"),
)
ADMITTED_RESOURCES: tuple[tuple[str, str, str, str], ...] = (("", "v1", "pods", "Pod"), *WORKLOAD_RESOURCES)


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
    reduced: dict[str, Any] = {"resources": kept} if kept else {}
    if kept and container.get("restartPolicy"):
        reduced["restartPolicy"] = container["restartPolicy"]  # a sidecar's GPUs count differently
    return reduced


# --------------------------------------------------------------------------------------------------
# Snapshot: copied on the event loop, read in the handler thread


@dataclass(frozen=True)
class Snapshot:
    """What one audit of one region works on: only its bound namespaces' objects are copied."""

    inventory: Inventory
    conflicts: dict[str, tuple[str, ...]]
    nodes: dict[str, ClusterNode]
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
    nodes_index: kopf.Index[str, ClusterNode] = kwargs["sovr_nodes"]
    pvs_index: kopf.Index[str, PvFacts] = kwargs["sovr_pvs"]
    workloads: list[TemplatedWorkload] = []
    pods: list[PlacedPod] = []
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
        inventory=Inventory(governed, tuple(workloads), tuple(pods), tuple(pvcs)),
        conflicts={ns: tuple(regions) for ns, regions in bindings.conflicts.get(name, {}).items()},
        nodes={node: facts for node in nodes_index for facts in nodes_index[node]},
        admission_hashes={key: value for key in hashes for value in hashes[key]},
    )


def bound_namespaces(kwargs: Mapping[str, Any]) -> frozenset[str]:
    """Every namespace some region's namespaceSelector selects (conflicted ones too: admission warns
    there): where the sovereignty webhooks are registered."""
    namespaces_index: kopf.Index[str, Mapping[str, str]] = kwargs["sovr_namespaces"]
    namespaces = {ns: dict(_first(namespaces_index, ns) or {}) for ns in namespaces_index}
    bindings = resolve_namespace_bindings(namespaces, _regions(kwargs["sovr_regions"]))
    governed = {ns for names in bindings.governed.values() for ns in names}
    return frozenset(governed | {ns for shared in bindings.conflicts.values() for ns in shared})


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(kwargs["name"], kwargs))


# --------------------------------------------------------------------------------------------------
# Registration


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the indexes, the audit timer and the change handlers of SovereignRegions."""
    register_indexes(registry)
    _register_reconcilers(registry, settings)


def register_indexes(registry: kopf.OperatorRegistry) -> None:
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
    def sovr_nodes(*, name: str, labels: Mapping[str, str], **_: Any) -> dict[str, ClusterNode]:
        return {name: ClusterNode(name, dict(labels))}

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
    ) -> dict[str, PlacedPod] | None:
        phase = str(status.get("phase") or "Pending")
        if phase in ("Succeeded", "Failed"):
            return None
        return {
            namespace or "": PlacedPod(
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

    managed = {admissionpolicy.MANAGED_BY_LABEL: admissionpolicy.MANAGED_BY}
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
    ) -> dict[str, TemplatedWorkload] | None:
        found = pod_template(kind, body)
        if found is None:
            return None
        template_labels, pod_spec = found
        ns = namespace or ""
        return {
            ns: TemplatedWorkload(
                namespace=ns,
                kind=kind,
                name=name,
                labels=dict(labels),
                template_labels=dict(template_labels),
                pod_spec=shared(placement_spec(pod_spec)),
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
        return {(kind, name): annotations.get(admissionpolicy.HASH_ANNOTATION, "")}


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
# The audit: observe -> plan -> apply


def observe(
    *, name: str, uid: str, meta: Mapping[str, Any], status: Mapping[str, Any], snapshot: Snapshot
) -> SovereigntyObservation:
    """Everything the planner needs, from the object itself and the index snapshot; no API calls."""
    return SovereigntyObservation(
        name=name,
        uid=uid,
        generation=int(meta.get("generation", 0)),
        current_status=read_status(SovereignRegionStatus, status),
        nodes=snapshot.nodes,
        inventory=snapshot.inventory,
        conflicts=snapshot.conflicts,
        admission_hashes=snapshot.admission_hashes,
    )


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
    observed = observe(name=name, uid=uid, meta=meta, status=status, snapshot=snapshot)
    plan = plan_sovereignty(spec, observed, datetime.now(UTC))
    kube: KubeClient = memo.kube
    recent: RecentWrites = memo.recent_writes
    apply_plan(kube, plan, kind=KIND, body=body, status=status, patch=patch, recent=recent, logger=logger)
    if plan.counts is not None:
        metrics.record_sovereignty(name, dict(plan.counts))
    metrics.record_reconcile(KIND, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------------
# Admission


def register_admission(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """One Kopf mutating webhook per kind, for pods and pod templates in bound namespaces: it judges
    what the workload asks for and, if admitted, injects the region's required node affinity.

    Judging happens here, on the object as the user sent it, not in a validating webhook after the
    injection: once the region's requirement is merged into a term that excludes the region, the term
    matches no node at all and no longer reads as "asks for another region". The final object, after
    every mutating webhook of the cluster, is validated by the generated ValidatingAdmissionPolicy.

    The API server calls it only for the bound namespaces (``handlers.admission`` keeps its
    namespaceSelector current, never kube-system or the operator's own namespace). failurePolicy
    Ignore (``ignore_failures=True``): failing closed would make the operator a single point of
    failure for scheduling in every bound namespace. While it is down, the ValidatingAdmissionPolicy
    (failurePolicy Fail, evaluated in the API server, scoped to the bound namespaces) keeps rejecting
    explicit violations, and the audit repairs and reports the rest when it returns. See
    docs/SOVEREIGNTY.md.
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


def _admit(
    *,
    kind: str,
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    operation: str | None,
    patch: kopf.Patch,
    warnings: list[str],
    logger: logging.Logger,
    sovr_regions: kopf.Index[str, RegionFacts],
    sovr_namespaces: kopf.Index[str, Mapping[str, str]],
    sovr_nodes: kopf.Index[str, ClusterNode],
    **_: Any,
) -> None:
    """Answer through Kopf: an AdmissionError rejects, ``warnings`` reach the client, and the region's
    required node affinity goes into ``patch`` (the review's JSON patch)."""
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    review = AdmissionReview(
        kind=kind,
        body=body,
        old=old,
        operation=operation,
        namespace_labels=dict(_first(sovr_namespaces, namespace) or {}) if namespace else {},
        regions=_regions(sovr_regions),
        nodes={n: facts for n in sovr_nodes for facts in sovr_nodes[n]},
    )
    answer = plan_admission(review)
    if not answer.allowed:
        raise kopf.AdmissionError(answer.message, code=403)
    warnings.extend(answer.warnings)
    for finding in answer.dry_run_report:
        logger.info("DryRun: %s", finding.message)
    if answer.affinity is None:
        return
    target: Any = patch
    for part in (*POD_TEMPLATE_PATHS[kind], "spec"):
        target = target.setdefault(part, {})
    target["affinity"] = answer.affinity
