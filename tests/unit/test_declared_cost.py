"""Declared cost (finops.dev/expected-cost-per-hour): who runs over it, when it is announced, and what
an unreadable declaration becomes. Pure planner, pinned clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.finopspolicy import CostOverrun, FinOpsPolicyStatus
from finops_operator.planners.policy import PolicyObservation, WorkloadFacts, parse_policy_spec, plan_policy
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.workloads.annotations import ANNOTATION_EXPECTED_COST

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
    "pricing": {"gpuHourlyRate": 2.5, "gpuProductRates": {"H100": 4.0}},
    "alerting": {"costOverExpected": {"severity": "CRITICAL", "recipientGroup": "owners"}},
}


def chat(expected: str | None, kind: str = "Deployment") -> WorkloadFacts:
    annotations = {ANNOTATION_EXPECTED_COST: expected} if expected is not None else {}
    name = "chat" if kind == "Deployment" else f"{kind.lower()}/chat"
    return WorkloadFacts(
        "ns", name, {"app": "llm"}, replicas=2, gpus_per_pod=1, annotations=annotations, kind=kind
    )


def pods(owner: str = "chat") -> list[LedgerPod]:
    since = NOW - timedelta(minutes=10)
    return [
        LedgerPod("ns", "chat-a", {}, 1, "node-h100", since, owner=owner),  # 4.0/h
        LedgerPod("ns", "chat-b", {}, 1, "node-other", since, owner=owner),  # 2.5/h
        LedgerPod(
            "ns", "chat-c", {}, 1, "node-other", since, ended_at=NOW - timedelta(minutes=1), owner=owner
        ),
    ]


def plan(workload: WorkloadFacts, previous: list[CostOverrun] | None = None, owner: str = "chat") -> Any:
    status = FinOpsPolicyStatus(cost_overruns=previous or [])
    observation = PolicyObservation(
        "p",
        1,
        status,
        [workload],
        pods=pods(owner),
        gpu_product_of_node={"node-h100": "H100"},
        namespace="ns",
    )
    return plan_policy(parse_policy_spec(SPEC), observation, NOW)


def test_a_workload_over_its_declared_cost_is_listed_announced_and_alerted() -> None:
    decision = plan(chat("5"))
    (overrun,) = decision.status.cost_overruns
    assert (overrun.name, overrun.expected_cost_per_hour, overrun.measured_cost_per_hour, overrun.since) == (
        "chat",
        5.0,
        6.5,  # running pods only: 4.0 + 2.5
        NOW,
    )
    (event,) = [e for e in decision.events if e.reason == "CostOverExpected"]
    assert event.alert and event.workload == "chat" and event.type == "Warning"
    assert event.message == (
        "[CRITICAL -> owners] chat costs 6.5 USD/h, over the 5 USD/h it declares "
        "(finops.dev/expected-cost-per-hour) (FinOpsPolicy p)"
    )
    assert decision.status.to_wire()["costOverruns"][0]["measuredCostPerHour"] == 6.5


def test_announced_once_while_it_stays_over_and_dropped_when_back_under() -> None:
    first = plan(chat("5"))
    again = plan(chat("5"), previous=first.status.cost_overruns)
    assert [e for e in again.events if e.reason == "CostOverExpected"] == []
    assert again.status.cost_overruns == first.status.cost_overruns  # since kept
    raised = plan(chat("6"), previous=first.status.cost_overruns)
    assert [e.reason for e in raised.events] == ["CostOverExpected"]  # a new declaration is judged anew
    assert plan(chat("6.5"), previous=first.status.cost_overruns).status.cost_overruns == []  # not over


@pytest.mark.parametrize(
    ("raw", "why"), [("cheap", "is not a number"), ("-1", "must be a number >= 0"), ("nan", ">= 0")]
)
def test_an_unreadable_declaration_is_listed_with_its_reason(raw: str, why: str) -> None:
    decision = plan(chat(raw))
    (entry,) = decision.status.cost_overruns
    assert entry.expected_cost_per_hour is None and why in entry.message
    assert [e.reason for e in decision.events] == ["InvalidExpectedCost"]


def test_without_the_annotation_nothing_is_listed_and_other_kinds_declare_too() -> None:
    assert plan(chat(None)).status.cost_overruns == []
    job = plan(chat("1", kind="Job"), owner="job/chat")
    assert [o.name for o in job.status.cost_overruns] == ["job/chat"]
