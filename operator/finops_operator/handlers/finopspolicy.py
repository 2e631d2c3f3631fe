"""FinOpsPolicy handlers: index Deployments and policies per namespace, and reconcile each policy on
a timer (level-triggered) and on spec changes."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from finops_operator import metrics
from finops_operator.api.common import LabelSelector
from finops_operator.api.finopspolicy import FinOpsPolicyStatus
from finops_operator.handlers.status import write_status
from finops_operator.planners.policy import (
    DeploymentFacts,
    PeerPolicy,
    PolicyObservation,
    gpus_in_pod_spec,
    plan_policy,
)
from finops_operator.settings import Settings

GROUP, VERSION, PLURAL = "finops.dev", "v1alpha1", "finopspolicies"
KIND = "FinOpsPolicy"


def _current_status(raw: Mapping[str, Any]) -> FinOpsPolicyStatus:
    try:
        return FinOpsPolicyStatus.model_validate(dict(raw))
    except ValidationError:
        return FinOpsPolicyStatus()  # an unreadable status is rebuilt, never trusted


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the FinOpsPolicy handlers on ``registry``."""

    @kopf.index("apps", "v1", "deployments", id="deployments_by_namespace", registry=registry)
    def deployments_by_namespace(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        **_: Any,
    ) -> dict[str, DeploymentFacts]:
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        namespace = namespace or ""
        return {
            namespace: DeploymentFacts(
                namespace=namespace,
                name=name,
                labels=dict(labels),
                replicas=int(spec.get("replicas", 1) or 0),
                ready_replicas=int(status.get("readyReplicas", 0) or 0),
                gpus_per_pod=gpus_in_pod_spec(pod_spec),
            )
        }

    @kopf.index(GROUP, VERSION, PLURAL, id="policies_by_namespace", registry=registry)
    def policies_by_namespace(
        namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
    ) -> dict[str, PeerPolicy] | None:
        try:
            selector = LabelSelector.model_validate(dict(spec.get("targetWorkloadSelector") or {}))
        except ValidationError:
            return None
        return {namespace or "": PeerPolicy(name=name, selector=selector)}

    def reconcile(
        *,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        meta: Mapping[str, Any],
        patch: kopf.Patch,
        logger: logging.Logger,
        deployments_by_namespace: kopf.Index[str, DeploymentFacts],
        policies_by_namespace: kopf.Index[str, PeerPolicy],
    ) -> None:
        started = time.perf_counter()
        observation = PolicyObservation(
            generation=int(meta.get("generation", 0)),
            current_status=_current_status(status),
            deployments=list(deployments_by_namespace.get(namespace, [])),
            peers=[peer for peer in policies_by_namespace.get(namespace, []) if peer.name != name],
        )
        plan = plan_policy(spec, observation, datetime.now(UTC))
        if write_status(KIND, status, plan.status.to_wire(), patch):
            logger.debug("status updated")
        metrics.record_policy(namespace, name, len(plan.governed))
        metrics.record_reconcile(KIND, time.perf_counter() - started)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="reconcile_on_timer",
        interval=settings.sample_interval_seconds,
        registry=registry,
    )
    def reconcile_on_timer(**kwargs: Any) -> None:
        reconcile(**_reconcile_arguments(kwargs))

    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile_on_create", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile_on_update", field="spec", registry=registry)
    def reconcile_on_change(**kwargs: Any) -> None:
        reconcile(**_reconcile_arguments(kwargs))

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="forget_metrics", registry=registry, optional=True)
    def forget(namespace: str | None, name: str, **_: Any) -> None:
        metrics.forget_policy(namespace or "", name)


_RECONCILE_ARGUMENTS = (
    "namespace",
    "name",
    "spec",
    "status",
    "meta",
    "patch",
    "logger",
    "deployments_by_namespace",
    "policies_by_namespace",
)


def _reconcile_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: kwargs[key] for key in _RECONCILE_ARGUMENTS}
