"""FinOpsPolicy planner: from the policy, the Deployments of its namespace and the other policies
there, decide what the policy governs and what its status should say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from finops_operator.api.common import ConditionStatus, LabelSelector
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.finopspolicy import (
    FinOpsPolicySpec,
    FinOpsPolicyStatus,
    WorkloadState,
    WorkloadStatus,
)
from finops_operator.planners.selectors import selector_matches
from finops_operator.planners.window import InvalidTimeZoneError, window_bounds

GPU_RESOURCE = "nvidia.com/gpu"
MAX_LISTED_WORKLOADS = 500


@dataclass(frozen=True)
class DeploymentFacts:
    """What the planners need to know about one Deployment (taken from a Kopf index)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 0
    ready_replicas: int = 0
    gpus_per_pod: int = 0


@dataclass(frozen=True)
class PeerPolicy:
    """Another FinOpsPolicy in the same namespace, for overlap detection."""

    name: str
    selector: LabelSelector


@dataclass(frozen=True)
class PolicyObservation:
    generation: int
    current_status: FinOpsPolicyStatus
    deployments: Sequence[DeploymentFacts]
    peers: Sequence[PeerPolicy] = ()


@dataclass(frozen=True)
class PolicyPlan:
    status: FinOpsPolicyStatus
    governed: tuple[str, ...] = ()
    conflicted: tuple[str, ...] = ()


def parse_spec(raw: Mapping[str, Any]) -> FinOpsPolicySpec:
    """Validate a spec as stored; the API server's schema already rejected most bad input."""
    return FinOpsPolicySpec.model_validate(dict(raw))


def gpus_in_pod_spec(pod_spec: Mapping[str, Any]) -> int:
    """GPUs a pod asks for: per container the limit (else the request), summed; init containers
    run before the others, so the pod needs the larger of their maximum and that sum."""

    def gpus(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(
            GPU_RESOURCE
        )
        try:
            return int(str(value)) if value is not None else 0
        except ValueError:
            return 0

    regular = sum(gpus(c) for c in pod_spec.get("containers") or [])
    init = max((gpus(c) for c in pod_spec.get("initContainers") or []), default=0)
    return max(regular, init)


def _invalid(observation: PolicyObservation, now: datetime, reason: str, message: str) -> PolicyPlan:
    status = observation.current_status.model_copy(deep=True)
    status.conditions = apply_conditions(
        status.conditions,
        [ConditionUpdate(ConditionType.READY, ConditionStatus.FALSE, reason, message)],
        observation.generation,
        now,
    )
    status.observed_generation = observation.generation
    return PolicyPlan(status=status)


def plan_policy(raw_spec: Mapping[str, Any], observation: PolicyObservation, now: datetime) -> PolicyPlan:
    """Decide governed workloads, overlaps and conditions. Pure: same inputs, same plan."""
    try:
        spec = parse_spec(raw_spec)
        window_start, window_end = window_bounds(spec.budget_window, now)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return _invalid(observation, now, Reason.INVALID_SPEC, f"spec.{where}: {first['msg']}")
    except InvalidTimeZoneError as error:
        return _invalid(observation, now, Reason.INVALID_TIME_ZONE, str(error))

    selected = sorted(
        (d for d in observation.deployments if selector_matches(spec.target_workload_selector, d.labels)),
        key=lambda d: d.name,
    )
    overlaps = {
        d.name: sorted(p.name for p in observation.peers if selector_matches(p.selector, d.labels))
        for d in selected
    }
    conflicted = tuple(name for name, peers in overlaps.items() if peers)
    governed = tuple(d.name for d in selected if d.name not in conflicted)

    status = observation.current_status.model_copy(deep=True)
    status.observed_generation = observation.generation
    status.window_start, status.window_end = window_start, window_end
    status.governed_workloads = len(governed)
    status.workloads = [
        WorkloadStatus(
            name=d.name,
            state=WorkloadState.CONFLICT if d.name in conflicted else WorkloadState.ACTIVE,
            gpus_per_pod=d.gpus_per_pod,
        )
        for d in selected[:MAX_LISTED_WORKLOADS]
    ]
    updates = [
        ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.TRUE,
            Reason.RECONCILED if selected else Reason.NO_MATCHING_WORKLOADS,
            f"governing {len(governed)} Deployment(s)" if selected else "no Deployment matches the selector",
        ),
        ConditionUpdate(
            ConditionType.CONFLICT,
            ConditionStatus.TRUE,
            Reason.SELECTOR_OVERLAP,
            "; ".join(f"{name} is also selected by {', '.join(overlaps[name])}" for name in conflicted)
            + "; neither policy acts on these",
        )
        if conflicted
        else ConditionUpdate(
            ConditionType.CONFLICT,
            ConditionStatus.FALSE,
            Reason.NO_OVERLAP,
            "no governed Deployment is selected by another policy",
        ),
    ]
    status.conditions = apply_conditions(status.conditions, updates, observation.generation, now)
    return PolicyPlan(status=status, governed=governed, conflicted=conflicted)
