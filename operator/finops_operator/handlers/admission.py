"""The operator's webhook configurations, kept current: observe (which namespaces regions bind and
policies live in, what is applied) -> ``plan_webhook_configurations`` -> ``handlers.apply``.

Level-triggered from watch events, not a timer: every change of a SovereignRegion, a FinOpsPolicy, a
Namespace or one of the configurations themselves re-plans from the indexes, and a write happens only
when the planned content's hash differs from the one applied (deleting or re-labeling a
configuration brings it back; a quiet cluster sees no writes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from finops_operator.api.common import GROUP, VERSION
from finops_operator.handlers import modelreleasegate, sovereignregion
from finops_operator.handlers.apply import apply_intents
from finops_operator.handlers.status import RecentWrites
from finops_operator.kube import KubeClient
from finops_operator.planners.admission import (
    HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MUTATING,
    VALIDATING,
    AdmissionObservation,
    Endpoint,
    exempt_namespaces,
    plan_webhook_configurations,
)
from finops_operator.settings import Settings

TRIGGERS: tuple[tuple[str, str, str], ...] = (
    (GROUP, VERSION, "sovereignregions"),
    (GROUP, VERSION, "finopspolicies"),
    (GROUP, VERSION, "modelreleasegates"),
    ("", "v1", "namespaces"),
)
CONFIGURATIONS: tuple[tuple[str, str], ...] = (
    ("mutatingwebhookconfigurations", MUTATING),
    ("validatingwebhookconfigurations", VALIDATING),
)


def register(
    registry: kopf.OperatorRegistry,
    settings: Settings,
    endpoints: tuple[Endpoint, ...],
    client_config: Mapping[str, Any],
) -> None:
    """Index our configurations and re-plan them on every change of what scopes them."""
    exempt = exempt_namespaces(settings.own_namespace, settings.webhook_exempt_namespaces)
    lock = asyncio.Lock()

    async def refresh(kwargs: Mapping[str, Any]) -> None:
        async with lock:  # one plan at a time, each from the indexes as they are when it starts
            observed = observe(kwargs, endpoints, client_config, settings.webhook_timeout_seconds, exempt)
            intents = plan_webhook_configurations(observed)
            if not intents:
                return
            kube: KubeClient = kwargs["memo"].kube
            recent: RecentWrites = kwargs["memo"].recent_writes
            logger: logging.Logger = kwargs["logger"]
            await asyncio.to_thread(apply_intents, kube, intents, owner={}, recent=recent, logger=logger)

    for plural, kind in CONFIGURATIONS:
        _register_configuration_index(registry, plural, kind)
        _register_trigger(registry, "admissionregistration.k8s.io", "v1", plural, refresh, managed=True)
    for group, version, plural in TRIGGERS:
        _register_trigger(registry, group, version, plural, refresh, managed=False)


def _register_configuration_index(registry: kopf.OperatorRegistry, plural: str, kind: str) -> None:
    @kopf.index(
        "admissionregistration.k8s.io",
        "v1",
        plural,
        id=f"admission_{plural}",
        labels={MANAGED_BY_LABEL: MANAGED_BY},
        registry=registry,
    )
    def index(*, annotations: Mapping[str, str], **_: Any) -> dict[str, str]:
        return {kind: annotations.get(HASH_ANNOTATION, "")}


def _register_trigger(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, refresh: Any, *, managed: bool
) -> None:
    labels = {MANAGED_BY_LABEL: MANAGED_BY} if managed else None

    @kopf.on.event(group, version, plural, id=f"admission_on_{plural}", labels=labels, registry=registry)
    async def on_event(**kwargs: Any) -> None:
        await refresh(kwargs)


def observe(
    kwargs: Mapping[str, Any],
    endpoints: tuple[Endpoint, ...],
    client_config: Mapping[str, Any],
    timeout_seconds: int,
    exempt: frozenset[str],
) -> AdmissionObservation:
    """From the live indexes, on the event loop (they change only there); no API calls."""
    policies: kopf.Index[str, Any] = kwargs["policies_by_namespace"]
    applied: dict[str, str] = {}
    for plural, _ in CONFIGURATIONS:
        index: kopf.Index[str, str] = kwargs[f"admission_{plural}"]
        applied.update({kind: value for kind in index for value in index[kind]})
    return AdmissionObservation(
        endpoints=endpoints,
        client_config=client_config,
        timeout_seconds=timeout_seconds,
        region_namespaces=sovereignregion.bound_namespaces(kwargs),
        policy_namespaces=frozenset(ns for ns in policies if list(policies[ns])),
        gated_namespaces=modelreleasegate.namespaces_to_admit(kwargs),
        exempt_namespaces=exempt,
        applied_hashes=applied,
    )
