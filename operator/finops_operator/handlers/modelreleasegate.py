"""ModelReleaseGate handlers: model workloads in the bound namespaces must carry their release evidence.

Three paths, so the gate does not depend on one process being up (see docs/MODELGATES.md):

* a ValidatingAdmissionPolicy + binding per gate (``planners.releasegate.vap``), owned by the gate:
  the static rules (evidence present, thresholds, allowed values) hold inside the API server;
* a Kopf validating webhook that judges every rule, the signature of the artifact digest included;
* a timer per gate that audits what already exists from Kopf indexes into status.

This module holds only the indexes, ``observe`` and the reconcile (observe -> ``plan_release_gate``
-> ``handlers.apply``) and the webhook's lookup of gates and keys; every decision is in the planner.
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
from finops_operator.api.common import GROUP, VERSION
from finops_operator.api.modelreleasegate import (
    SIGNING_KEY_LABEL,
    ModelReleaseGate,
    ModelReleaseGateSpec,
    ModelReleaseGateStatus,
    SignatureRule,
)
from finops_operator.handlers.apply import apply_plan
from finops_operator.handlers.execution import read_status, reconcile_in_thread
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import KubeClient
from finops_operator.planners.admissionpolicy import HASH_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL
from finops_operator.planners.releasegate import (
    AdmissionReview,
    GateObservation,
    GateState,
    KeyMaterial,
    ModelWorkload,
    gated_namespaces,
    parse_spec,
    plan_admission,
    plan_release_gate,
    verification_key,
    workload_of,
)
from finops_operator.planners.releasegate.vap import GATE_OBJECT_LABEL
from finops_operator.settings import Settings

PLURAL = ModelReleaseGate.meta.plural
KIND = "ModelReleaseGate"

WORKLOAD_RESOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("batch", "v1", "jobs", "Job"),
    ("batch", "v1", "cronjobs", "CronJob"),
)
ADMITTED_RESOURCES = (("", "v1", "pods", "Pod"), *WORKLOAD_RESOURCES)

KeyIndex = kopf.Index[tuple[str, str], Mapping[str, str]]


@dataclass(frozen=True)
class GateFacts:
    name: str
    spec: ModelReleaseGateSpec | None


def _first(index: kopf.Index[Any, Any], key: Any) -> Any:
    return next(iter(index.get(key, [])), None)


def key_material(rule: SignatureRule, configmaps: KeyIndex) -> KeyMaterial:
    """The PEM text where the gate points, read from the watched (labelled) ConfigMaps."""
    ref = rule.public_key.config_map
    data = _first(configmaps, (ref.namespace, ref.name))
    if data is None:
        return KeyMaterial(None, f"ConfigMap not found, or not labelled {SIGNING_KEY_LABEL}")
    if ref.key not in data:
        return KeyMaterial(None, f"ConfigMap has no key {ref.key}")
    return KeyMaterial(data[ref.key])


# --------------------------------------------------------------------------------------------------
# Registration


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """The indexes, the audit timer and the change handlers of ModelReleaseGates."""
    register_indexes(registry)
    _register_reconcilers(registry, settings)


def register_indexes(registry: kopf.OperatorRegistry) -> None:
    """What admission reads: enough for a standby replica, which serves admission and never writes."""

    @kopf.index(GROUP, VERSION, PLURAL, id="mrg_gates", registry=registry)
    def mrg_gates(*, name: str, spec: Mapping[str, Any], **_: Any) -> dict[str, GateFacts]:
        try:
            parsed: ModelReleaseGateSpec | None = parse_spec(spec)
        except ValidationError:
            parsed = None
        return {name: GateFacts(name, parsed)}

    @kopf.index("", "v1", "namespaces", id="mrg_namespaces", registry=registry)
    def mrg_namespaces(*, name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    # Only ConfigMaps labelled as signing keys are watched: never every ConfigMap, never Secrets.
    @kopf.index(
        "",
        "v1",
        "configmaps",
        id="mrg_configmaps",
        labels={SIGNING_KEY_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def mrg_configmaps(
        *, namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], dict[str, str]]:
        return {(namespace or "", name): {str(k): str(v) for k, v in (body.get("data") or {}).items()}}

    for group, version, plural, kind in WORKLOAD_RESOURCES:
        _register_workload_index(registry, group, version, plural, kind)

    for plural, kind in (
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding"),
    ):
        _register_admission_policy_index(registry, plural, kind)


def _register_workload_index(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
    @kopf.index(group, version, plural, id=f"mrg_{plural}", registry=registry)
    def index(*, namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, ModelWorkload] | None:
        workload = workload_of(kind, body)
        return None if workload is None else {namespace or "": workload}


def _register_admission_policy_index(registry: kopf.OperatorRegistry, plural: str, kind: str) -> None:
    @kopf.index(
        "admissionregistration.k8s.io",
        "v1",
        plural,
        id=f"mrg_{plural}",
        labels={MANAGED_BY_LABEL: MANAGED_BY, GATE_OBJECT_LABEL: kopf.PRESENT},
        registry=registry,
    )
    def index(*, name: str, annotations: Mapping[str, str], **_: Any) -> dict[tuple[str, str], str]:
        return {(kind, name): annotations.get(HASH_ANNOTATION, "")}


def _register_reconcilers(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="audit_on_timer",
        interval=settings.sample_interval_seconds,
        registry=registry,
    )
    async def audit_on_timer(**kwargs: Any) -> None:
        await _in_thread(_reconcile, kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="audit_on_create", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="audit_on_update", field="spec", registry=registry)
    async def audit_on_change(**kwargs: Any) -> None:
        await _in_thread(_reconcile, kwargs)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="forget_on_delete", optional=True, registry=registry)
    def forget_on_delete(*, name: str, **_: Any) -> None:
        # The ValidatingAdmissionPolicy and its binding go with the gate (ownerReferences).
        metrics.forget_model_gate(name)


# --------------------------------------------------------------------------------------------------
# The audit: snapshot (on the loop) -> observe -> plan -> apply (in a thread)


@dataclass(frozen=True)
class Snapshot:
    namespaces: dict[str, dict[str, str]]
    workloads: tuple[ModelWorkload, ...]
    key: KeyMaterial | None
    admission_hashes: dict[tuple[str, str], str]


def take_snapshot(spec: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Snapshot:
    namespaces_index: kopf.Index[str, Mapping[str, str]] = kwargs["mrg_namespaces"]
    namespaces = {ns: dict(_first(namespaces_index, ns) or {}) for ns in namespaces_index}
    workloads: list[ModelWorkload] = []
    for _, _, plural, _ in WORKLOAD_RESOURCES:
        index: kopf.Index[str, ModelWorkload] = kwargs[f"mrg_{plural}"]
        for ns in index:
            workloads.extend(index[ns])
    key: KeyMaterial | None = None
    try:
        rule = parse_spec(spec).signature
    except ValidationError:
        rule = None
    if rule is not None:
        key = key_material(rule, kwargs["mrg_configmaps"])
    hashes: dict[tuple[str, str], str] = {}
    for plural in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
        stored: kopf.Index[tuple[str, str], str] = kwargs[f"mrg_{plural}"]
        hashes.update({k: v for k in stored for v in stored[k]})
    return Snapshot(namespaces, tuple(workloads), key, hashes)


async def _in_thread(fn: Callable[..., None], kwargs: Mapping[str, Any]) -> None:
    await reconcile_in_thread(KIND, fn, kwargs, lambda: take_snapshot(kwargs["spec"], kwargs))


def observe(
    *, name: str, uid: str, meta: Mapping[str, Any], status: Mapping[str, Any], snapshot: Snapshot
) -> GateObservation:
    """Everything the planner needs, from the object and the index snapshot; no API calls."""
    return GateObservation(
        name=name,
        uid=uid,
        generation=int(meta.get("generation", 0)),
        current_status=read_status(ModelReleaseGateStatus, status),
        namespaces=snapshot.namespaces,
        workloads=snapshot.workloads,
        key=snapshot.key,
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
    plan = plan_release_gate(
        spec, observe(name=name, uid=uid, meta=meta, status=status, snapshot=snapshot), datetime.now(UTC)
    )
    kube: KubeClient = memo.kube
    recent: RecentWrites = memo.recent_writes
    apply_plan(kube, plan, kind=KIND, body=body, status=status, patch=patch, recent=recent, logger=logger)
    if plan.counts is not None:
        metrics.record_model_gate(name, dict(plan.counts))
    metrics.record_reconcile(KIND, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------------
# Admission


def namespaces_to_admit(kwargs: Mapping[str, Any]) -> frozenset[str]:
    """Every namespace some gate's namespaceSelector selects: where the gate webhooks are registered."""
    gates: kopf.Index[str, GateFacts] = kwargs["mrg_gates"]
    namespaces: kopf.Index[str, Mapping[str, str]] = kwargs["mrg_namespaces"]
    specs = [facts.spec for name in gates for facts in gates[name] if facts.spec is not None]
    return gated_namespaces(specs, {ns: dict(_first(namespaces, ns) or {}) for ns in namespaces})


def register_admission(registry: kopf.OperatorRegistry) -> None:
    """One Kopf validating webhook per kind: every rule of every gate selecting the workload, the
    signature check included (CEL cannot verify ECDSA).

    failurePolicy Ignore (``ignore_failures=True``): the operator's webhook configurations call it only
    for the namespaces a gate selects (``gated_namespaces``, handlers/admission.py), but failing closed
    would still make an operator outage an outage of workload creation there. While it is down, the
    ValidatingAdmissionPolicy (failurePolicy Fail, scoped to the bound namespaces) still rejects
    missing evidence, thresholds and disallowed values; a bad signature is found by the audit when
    the operator is back. See docs/MODELGATES.md.
    """
    for group, version, plural, kind in ADMITTED_RESOURCES:
        _register_webhook(registry, group, version, plural, kind)


def _register_webhook(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> None:
    operations: list[Literal["CREATE", "UPDATE"]] = (
        ["CREATE"] if kind in ("Pod", "Job") else ["CREATE", "UPDATE"]
    )

    @kopf.on.validate(
        group,
        version,
        plural,
        id=f"modelgate-{plural}",
        operations=operations,
        ignore_failures=True,
        registry=registry,
    )
    def admit(**kwargs: Any) -> None:
        # On the event loop (no I/O; one ECDSA verification per gate): reading live indexes is safe.
        _admit(kind=kind, **kwargs)


def gate_states(gates: kopf.Index[str, GateFacts], configmaps: KeyIndex) -> dict[str, GateState]:
    states: dict[str, GateState] = {}
    for name in gates:
        for facts in gates[name]:
            if facts.spec is None:
                continue
            rule = facts.spec.signature
            key = None if rule is None else verification_key(rule, key_material(rule, configmaps))
            states[name] = GateState(facts.spec, key)
    return states


def _admit(
    *,
    kind: str,
    body: kopf.Body,
    old: Mapping[str, Any] | None,
    operation: str | None,
    warnings: list[str],
    logger: logging.Logger,
    mrg_gates: kopf.Index[str, GateFacts],
    mrg_namespaces: kopf.Index[str, Mapping[str, str]],
    mrg_configmaps: KeyIndex,
    **_: Any,
) -> None:
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    if not namespace or not mrg_gates:
        return
    labels = _first(mrg_namespaces, namespace)
    review = AdmissionReview(
        kind=kind,
        body=body,
        old=old,
        operation=operation,
        namespace_labels=None if labels is None else dict(labels),
        gates=gate_states(mrg_gates, mrg_configmaps),
    )
    answer = plan_admission(review)
    warnings.extend(answer.warnings)
    for message in answer.dry_run_report:
        logger.info("DryRun: %s", message)
    if not answer.allowed:
        raise kopf.AdmissionError(answer.message, code=403)


# --------------------------------------------------------------------------------------------------
# For other kinds that create model workloads (EdgeFleet): what the gates say before they do


@dataclass(frozen=True)
class GateView:
    """The gates and one namespace's labels, copied on the event loop."""

    gates: Mapping[str, GateState]
    namespace_labels: Mapping[str, str] | None


def gate_view(kwargs: Mapping[str, Any], namespace: str) -> GateView:
    gates: kopf.Index[str, GateFacts] | None = kwargs.get("mrg_gates")
    if not gates:
        return GateView({}, None)
    labels = _first(kwargs["mrg_namespaces"], namespace)
    return GateView(
        gate_states(gates, kwargs["mrg_configmaps"]),
        None if labels is None else dict(labels),
    )


def template_refusal(view: GateView, namespace: str, name: str, template: Mapping[str, Any]) -> str:
    """The rejection an Enforce gate would give a Deployment with this pod template; empty if none."""
    body = {
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"template": template},
    }
    review = AdmissionReview("Deployment", body, None, "CREATE", view.namespace_labels, view.gates)
    answer = plan_admission(review)
    return "" if answer.allowed else answer.message
