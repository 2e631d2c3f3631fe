"""A FinOpsPolicy's decision as plan intents (what the handler used to write itself), and what
deleting a policy undoes. Pure: no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finops_operator.api.common import LabelSelector
from finops_operator.api.finopspolicy import FinOpsPolicyStatus
from finops_operator.planners.plan import (
    AddFinalizer,
    ApplyManifest,
    DeleteObject,
    ObjectRef,
    PatchWorkload,
    RemoveFinalizer,
)
from finops_operator.planners.policy import PlannedEvent, PolicyPlan, WorkloadFacts, parse_policy_spec
from finops_operator.planners.policy.bounds import HpaPlan
from finops_operator.planners.policy.budget import ReplicaChange
from finops_operator.planners.policy.ledger import LEDGER_FINALIZER, LedgerPod
from finops_operator.planners.policy.writes import plan_deletion, policy_writes
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS, ANNOTATION_SCALED_BY

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
SELECTOR = LabelSelector.model_validate({"matchLabels": {"app": "llm"}})
LLM = WorkloadFacts("ns", "llm", {"app": "llm"}, uid="uid-llm", replicas=0, pod_selector=SELECTOR)
WEB = WorkloadFacts("ns", "web", {"app": "web"}, uid="uid-web", replicas=3)
SCALED = WorkloadFacts(
    "ns",
    "llm",
    {"app": "llm"},
    uid="uid-llm",
    replicas=0,
    annotations={ANNOTATION_PREVIOUS_REPLICAS: "2", ANNOTATION_SCALED_BY: "p:budget"},
)


def pod(name: str, owner: str | None, finalizer: bool = True) -> LedgerPod:
    since = NOW - timedelta(hours=1)
    return LedgerPod("ns", name, {"app": "llm"}, 1, None, since, None, finalizer, owner)


def deployment(name: str, uid: str = "") -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", name, "ns", uid=uid)


def test_decision_becomes_intents_in_order_finalizers_hpas_then_replicas() -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}}
    change = ReplicaChange("llm", 0, {ANNOTATION_SCALED_BY: "p:budget"}, "BudgetExhausted", "scaled llm")
    decision = PolicyPlan(
        status=FinOpsPolicyStatus(),
        changes=(change,),
        pods_to_track=(pod("new", "llm", finalizer=False),),
        pods_to_release=(pod("old", "llm"),),
        hpas=HpaPlan(apply=(hpa,), delete=("gone-hpa",)),
    )
    plan = policy_writes(decision, "ns", [LLM, WEB])
    assert plan.intents == (
        AddFinalizer(ObjectRef("v1", "Pod", "new", "ns"), LEDGER_FINALIZER),
        RemoveFinalizer(ObjectRef("v1", "Pod", "old", "ns"), LEDGER_FINALIZER),
        ApplyManifest(hpa),
        DeleteObject(ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", "gone-hpa", "ns")),
        PatchWorkload(deployment("llm", "uid-llm"), 0, {ANNOTATION_SCALED_BY: "p:budget"}),
    )
    assert plan.status is decision.status


@pytest.mark.parametrize(
    ("workload", "posted_on"),
    [
        pytest.param(None, [None], id="policy-only"),
        pytest.param("llm", [None, deployment("llm", "uid-llm")], id="also-on-the-workload"),
        pytest.param("not-indexed", [None], id="unknown-workload-policy-only"),
    ],
)
def test_events_go_on_the_policy_and_on_the_workload_they_name(
    workload: str | None, posted_on: list[ObjectRef | None]
) -> None:
    event = PlannedEvent("Warning", "BudgetExhausted", "scaled llm", workload)
    plan = policy_writes(PolicyPlan(status=FinOpsPolicyStatus(), events=(event,)), "ns", [LLM, WEB])
    assert [e.regarding for e in plan.events] == posted_on
    assert {(e.type, e.reason, e.message) for e in plan.events} == {
        ("Warning", "BudgetExhausted", "scaled llm")
    }


@pytest.mark.parametrize(
    ("spec", "released"),
    [
        pytest.param({"targetWorkloadSelector": {"matchLabels": {"app": "llm"}}}, ["llm-pod"], id="governed"),
        pytest.param(None, ["llm-pod", "web-pod"], id="unreadable-spec-releases-all"),
        pytest.param({"targetWorkloadSelector": {"matchLabels": {"app": "x"}}}, [], id="selects-nothing"),
    ],
)
def test_deletion_restores_replicas_and_releases_the_ledger_finalizers(
    spec: dict[str, object] | None, released: list[str]
) -> None:
    pods = [pod("llm-pod", "llm"), pod("web-pod", "web"), pod("untracked", "llm", finalizer=False)]
    parsed = parse_policy_spec(spec) if spec is not None else None
    intents = plan_deletion("p", parsed, [SCALED, WEB], pods)
    restores = [i for i in intents if isinstance(i, PatchWorkload)]
    assert [(i.target, i.replicas) for i in restores] == [(deployment("llm", "uid-llm"), 2)]
    assert restores[0].annotations[ANNOTATION_SCALED_BY] is None
    assert restores[0].event is not None and restores[0].event.reason == "PolicyDeleted"
    assert restores[0].event.regarding == deployment("llm", "uid-llm")
    assert [i.target.name for i in intents if isinstance(i, RemoveFinalizer)] == released


def test_deleting_a_policy_that_changed_nothing_writes_nothing_to_workloads() -> None:
    assert plan_deletion("other", None, [SCALED, WEB], []) == ()


def test_one_action_on_many_workloads_is_one_event_on_the_policy_and_one_on_each_workload() -> None:
    many = [WorkloadFacts("ns", f"w{i:02d}", {"app": "llm"}, uid=f"uid-{i}") for i in range(13)]
    events = tuple(PlannedEvent("Warning", "BudgetExhausted", f"scaled {w.name} to 0", w.name) for w in many)
    plan = policy_writes(PolicyPlan(status=FinOpsPolicyStatus(), events=events), "ns", many)
    on_policy = [e for e in plan.events if e.regarding is None]
    assert len(on_policy) == 1 and len(plan.events) == 14
    assert on_policy[0].message == (
        "scaled w00 to 0; the same for 12 more workload(s): "
        "w01, w02, w03, w04, w05, w06, w07, w08, w09, w10 and 2 more"
    )
    assert [e.regarding.name for e in plan.events if e.regarding is not None] == [w.name for w in many]
