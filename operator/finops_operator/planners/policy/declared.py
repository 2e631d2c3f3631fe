"""Declared cost: a workload may say what it should cost per hour (``finops.dev/expected-cost-per-hour``,
in the policy's currency); the policy lists those whose measured cost runs over it, posts an Event
when one starts to, and alerts (``alerting.costOverExpected``). A declaration that is not a number is
listed with its reason, never silently dropped. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from finops_operator.api.finopspolicy import CostOverrun, FinOpsPolicySpec
from finops_operator.planners.policy.events import PlannedEvent, policy_event
from finops_operator.planners.policy.ledger import LedgerPod, hourly_rate
from finops_operator.planners.policy.observation import WorkloadFacts
from finops_operator.workloads.annotations import ANNOTATION_EXPECTED_COST

MAX_LISTED = 100


@dataclass(frozen=True)
class DeclaredCostOutcome:
    overruns: list[CostOverrun]
    events: list[PlannedEvent]


def cost_per_hour(
    pods: Sequence[LedgerPod], gpu_product_of_node: Mapping[str, str], spec: FinOpsPolicySpec
) -> float:
    """What a workload's running pods cost per hour now, at the policy's prices."""
    return sum(
        pod.gpus * hourly_rate(spec.pricing, gpu_product_of_node.get(pod.node_name or ""))
        for pod in pods
        if pod.running_since is not None and pod.ended_at is None
    )


def _declared(raw: str) -> float | str:
    """The declared cost, or why it is not one."""
    try:
        value = float(raw.strip())
    except ValueError:
        return f"{ANNOTATION_EXPECTED_COST}={raw!r} is not a number"
    if not math.isfinite(value) or value < 0:
        return f"{ANNOTATION_EXPECTED_COST}={raw!r} must be a number >= 0"
    return value


def plan_declared_costs(
    *,
    policy: str,
    spec: FinOpsPolicySpec,
    governed: Sequence[WorkloadFacts],
    pods_by_workload: Mapping[str, Sequence[LedgerPod]],
    gpu_product_of_node: Mapping[str, str],
    previous: Sequence[CostOverrun],
    now: datetime,
) -> DeclaredCostOutcome:
    """Every governed workload that declares a cost and runs over it (or declares one that cannot be
    read); an Event (and alert) only when a workload joins the list or its declaration changes."""
    before = {o.name: o for o in previous}
    route = spec.alerting.cost_over_expected if spec.alerting else None
    unit = f" {spec.pricing.currency}/h" if spec.pricing and spec.pricing.currency else "/h"
    outcome = DeclaredCostOutcome([], [])
    for workload in sorted(governed, key=lambda w: w.name):
        raw = workload.annotations.get(ANNOTATION_EXPECTED_COST)
        if raw is None:
            continue
        measured = round(cost_per_hour(pods_by_workload.get(workload.name, ()), gpu_product_of_node, spec), 6)
        declared = _declared(raw)
        if isinstance(declared, str):
            entry = CostOverrun(name=workload.name, measured_cost_per_hour=measured, message=declared)
            reason = "InvalidExpectedCost"
        elif measured > declared:
            entry = CostOverrun(
                name=workload.name,
                expected_cost_per_hour=declared,
                measured_cost_per_hour=measured,
                message=f"{workload.name} costs {measured:g}{unit}, over the {declared:g}{unit} it declares "
                f"({ANNOTATION_EXPECTED_COST})",
            )
            reason = "CostOverExpected"
        else:
            continue
        seen = before.get(workload.name)
        same = seen is not None and seen.expected_cost_per_hour == entry.expected_cost_per_hour
        entry = entry.model_copy(update={"since": seen.since if same and seen else now})
        outcome.overruns.append(entry)
        if not same:
            outcome.events.append(
                policy_event(route, reason, f"{entry.message} (FinOpsPolicy {policy})", workload.name)
            )
    del outcome.overruns[MAX_LISTED:]
    return outcome
