"""Autoscale bounds: the HorizontalPodAutoscaler the operator owns for each governed Deployment.

The HPA does the scaling; the operator only keeps its bounds where the policy wants them: the
policy's autoScale range, tightened while a budget is exhausted (ScaleToMin pins max to min,
BlockScaleUp pins max to the cap, an anomaly held at the minimum pins max to min) and raised
from below by predictive scaling. Writes happen only
when the owned fields differ, so the operator and the HPA controller never fight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finops_operator.api.finopspolicy import BudgetAction, FinOpsPolicySpec
from finops_operator.workloads.annotations import ANNOTATION_REPLICA_CAP

POLICY_LABEL = "finops.dev/policy"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "finops-operator"


@dataclass(frozen=True)
class HpaFacts:
    """An existing HPA, as indexed."""

    name: str
    target_kind: str
    target_name: str
    owner_policy: str | None
    """The policy that owns it (label finops.dev/policy), or None for a user's HPA."""
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundsTarget:
    """What the bounds planner needs of a governed Deployment or StatefulSet."""

    name: str
    """The policy's name for the workload (``workload_key``)."""
    uid_of_policy: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    predicted_min: int | None = None
    pinned_to_minimum: bool = False
    """Held at the minimum by an anomaly action: the HPA may not scale it back up meanwhile."""
    kind: str = "Deployment"
    object_name: str = ""
    """The object's name (defaults to ``name``, a Deployment's)."""

    @property
    def target_name(self) -> str:
        return self.object_name or self.name


@dataclass(frozen=True)
class HpaPlan:
    apply: tuple[dict[str, Any], ...] = ()
    """HPAs to create or patch (full manifests of the fields we own)."""
    delete: tuple[str, ...] = ()
    """Names of our HPAs whose Deployment is no longer governed."""
    foreign: tuple[str, ...] = ()
    """Governed Deployments already scaled by someone else's HPA: left alone, reported."""
    budget_capped: tuple[str, ...] = ()
    """Deployments whose HPA maximum is lowered by an exhausted budget."""


def hpa_name(kind: str, name: str) -> str:
    """One HPA per workload, named after a Deployment as `kubectl autoscale` does; another kind's gets
    the kind as a suffix, so a StatefulSet and a Deployment of the same name keep one each."""
    return name if kind == "Deployment" else f"{name}-{kind.lower()}"


def desired_hpa_spec(
    spec: FinOpsPolicySpec, target: BoundsTarget, budget_exhausted: bool
) -> tuple[dict[str, Any], bool]:
    """The HPA spec for one Deployment, and whether the budget lowered its maximum."""
    assert spec.auto_scale is not None
    low, high = spec.auto_scale.min_replicas, spec.auto_scale.max_replicas
    capped = False
    if budget_exhausted and spec.cost_limits is not None:
        action = spec.cost_limits.budget_action
        if action == BudgetAction.SCALE_TO_MIN:
            high, capped = low, True
        elif action == BudgetAction.BLOCK_SCALE_UP:
            raw = target.annotations.get(ANNOTATION_REPLICA_CAP, "")
            if raw.isdecimal():
                high, capped = max(low, min(high, int(raw))), True
    if target.pinned_to_minimum:
        high = low
    floor = low if target.predicted_min is None else max(low, min(high, target.predicted_min))
    return (
        {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target.kind, "name": target.target_name},
            "minReplicas": floor,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": spec.auto_scale.cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
        capped,
    )


def _owned_fields_differ(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in desired.items())


def plan_hpas(
    policy: str,
    namespace: str,
    spec: FinOpsPolicySpec,
    *,
    targets: Sequence[BoundsTarget],
    existing: Sequence[HpaFacts],
    budget_exhausted: bool,
) -> HpaPlan:
    """Create or correct one HPA per governed Deployment; delete ours that lost their Deployment.

    Pure and idempotent: when every HPA already has the desired owned fields, the plan is empty.
    """
    ours = {h.name: h for h in existing if h.owner_policy == policy}
    if spec.auto_scale is None:
        return HpaPlan(delete=tuple(sorted(ours)))
    scaled_by_others = {(h.target_kind, h.target_name) for h in existing if h.owner_policy != policy}
    apply: list[dict[str, Any]] = []
    foreign: list[str] = []
    capped: list[str] = []
    wanted: set[str] = set()
    for target in sorted(targets, key=lambda t: t.name):
        if (target.kind, target.target_name) in scaled_by_others:
            foreign.append(target.name)
            continue
        name = hpa_name(target.kind, target.target_name)
        wanted.add(name)
        desired, lowered = desired_hpa_spec(spec, target, budget_exhausted)
        if lowered:
            capped.append(target.name)
        current = ours.get(name)
        if current is None or _owned_fields_differ(current.spec, desired):
            apply.append(
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {POLICY_LABEL: policy, MANAGED_BY_LABEL: MANAGED_BY},
                        "ownerReferences": [
                            {
                                "apiVersion": "finops.dev/v1alpha1",
                                "kind": "FinOpsPolicy",
                                "name": policy,
                                "uid": target.uid_of_policy,
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": desired,
                }
            )
    delete = tuple(sorted(name for name in ours if name not in wanted))
    return HpaPlan(tuple(apply), delete, tuple(foreign), tuple(capped))
