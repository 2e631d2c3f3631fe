"""StatefulSets, Jobs, CronJobs and bare pods under a FinOpsPolicy: who is governed, how each kind is
accounted, suspended, resumed and restored. Pure planners, pinned clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.common import LabelSelector
from finops_operator.api.finopspolicy import FinOpsPolicyStatus, WorkloadState
from finops_operator.handlers.finopspolicy import workload_facts
from finops_operator.planners.plan import ObjectRef, PatchWorkload, RemoveFinalizer
from finops_operator.planners.policy import PolicyObservation, WorkloadFacts, parse_policy_spec, plan_policy
from finops_operator.planners.policy.ledger import LEDGER_FINALIZER, LedgerPod
from finops_operator.planners.policy.writes import plan_deletion, policy_writes
from finops_operator.workloads.annotations import (
    ANNOTATION_PREVIOUS_REPLICAS,
    ANNOTATION_PREVIOUS_SUSPEND,
    ANNOTATION_SCALED_BY,
)

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
SINCE_MIDNIGHT = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
LLM = {"app": "llm"}
SELECTOR = LabelSelector.model_validate({"matchLabels": LLM})
DB_PODS = LabelSelector.model_validate({"matchLabels": {"role": "db"}})


def spec(mode: str = "Enforce", action: str = "ScaleToZero", **extra: Any) -> dict[str, Any]:
    return {
        "targetWorkloadSelector": {"matchLabels": LLM},
        "enforcementMode": mode,
        "costLimits": {"dailyGPUHours": 10, "budgetAction": action},
        **extra,
    }


def pod(name: str, owner: str | None, gpus: int = 1, *, finalizer: bool = True) -> LedgerPod:
    return LedgerPod(
        "ns", name, LLM, gpus, running_since=SINCE_MIDNIGHT, has_finalizer=finalizer, owner=owner
    )


STS = WorkloadFacts(
    "ns",
    "statefulset/db",
    LLM,
    uid="u-db",
    replicas=2,
    gpus_per_pod=1,
    kind="StatefulSet",
    pod_selector=DB_PODS,
)
JOB = WorkloadFacts("ns", "job/train", LLM, uid="u-train", replicas=1, gpus_per_pod=2, kind="Job")
CRON = WorkloadFacts("ns", "cronjob/nightly", LLM, uid="u-cron", gpus_per_pod=1, kind="CronJob")
CRON_RUN = WorkloadFacts(
    "ns",
    "job/nightly-29001",
    {},
    uid="u-run",
    replicas=1,
    gpus_per_pod=1,
    kind="Job",
    parent="cronjob/nightly",
)


def plan(raw: dict[str, Any], workloads: list[WorkloadFacts], pods: list[LedgerPod], **kw: Any) -> Any:
    observation = PolicyObservation(
        "p", 1, kw.pop("status", FinOpsPolicyStatus()), workloads, pods=pods, namespace="ns", uid="u-p", **kw
    )
    return plan_policy(parse_policy_spec(raw), observation, NOW)


def states(decision: Any) -> dict[str, tuple[WorkloadState, float]]:
    return {w.name: (w.state, w.gpu_hours) for w in decision.status.workloads}


def test_every_kind_is_accounted_from_its_pods_under_its_own_name() -> None:
    decision = plan(
        spec(action="AlertOnly"),
        [STS, JOB, CRON, CRON_RUN],
        [
            pod("db-0", "statefulset/db"),
            pod("train-x", "job/train", gpus=2),
            pod("nightly-29001-y", "job/nightly-29001"),
            pod("notebook", None),
        ],
    )
    assert states(decision) == {
        "cronjob/nightly": (WorkloadState.ACTIVE, 10.5),  # its Job's pods, not a workload of its own
        "job/train": (WorkloadState.ACTIVE, 21.0),
        "pod/notebook": (WorkloadState.ACTIVE, 10.5),
        "statefulset/db": (WorkloadState.ACTIVE, 10.5),
    }
    assert decision.status.gpu_hours_used == 52.5
    # The ledger finalizer goes on every pod with a controller; a bare pod is never changed.
    assert {p.name for p in decision.pods_to_track} == set()
    fresh = plan(
        spec(action="AlertOnly"),
        [JOB],
        [pod("train-x", "job/train", finalizer=False), pod("nb", None, finalizer=False)],
    )
    assert [p.name for p in fresh.pods_to_track] == ["train-x"]


def test_enforce_scales_a_statefulset_and_suspends_jobs_and_cronjobs_with_their_runs() -> None:
    decision = plan(
        spec(), [STS, JOB, CRON, CRON_RUN], [pod("train-x", "job/train", gpus=2), pod("nb", None)]
    )
    writes = policy_writes(decision, "ns", [STS, JOB, CRON, CRON_RUN])
    patches = {i.target: i for i in writes.intents if isinstance(i, PatchWorkload)}
    assert patches == {
        ObjectRef("apps/v1", "StatefulSet", "db", "ns", "u-db"): PatchWorkload(
            ObjectRef("apps/v1", "StatefulSet", "db", "ns", "u-db"),
            0,
            {ANNOTATION_PREVIOUS_REPLICAS: "2", ANNOTATION_SCALED_BY: "p:budget"},
        ),
        **{
            ref: PatchWorkload(
                ref,
                None,
                {ANNOTATION_PREVIOUS_SUSPEND: "false", ANNOTATION_SCALED_BY: "p:budget"},
                suspend=True,
            )
            for ref in (
                ObjectRef("batch/v1", "Job", "train", "ns", "u-train"),
                ObjectRef("batch/v1", "CronJob", "nightly", "ns", "u-cron"),
                ObjectRef("batch/v1", "Job", "nightly-29001", "ns", "u-run"),
            )
        },
    }
    assert not any(i.target.kind == "Pod" and isinstance(i, PatchWorkload) for i in writes.intents)
    on_workloads = {e.regarding.text() for e in writes.events if e.regarding is not None}
    assert "Job ns/train" in on_workloads and "StatefulSet ns/db" in on_workloads


@pytest.mark.parametrize("action", ["ScaleToZero", "ScaleToMin", "BlockScaleUp"])
def test_any_action_but_alert_only_suspends_a_job(action: str) -> None:
    decision = plan(spec(action=action), [JOB], [pod("train-x", "job/train", gpus=2)])
    assert [(c.workload, c.suspend) for c in decision.changes] == [("job/train", True)]


def test_suspended_jobs_are_left_alone_twice_and_finished_jobs_are_not_suspended() -> None:
    ours = WorkloadFacts(
        "ns",
        "job/train",
        LLM,
        kind="Job",
        gpus_per_pod=2,
        suspended=True,
        annotations={ANNOTATION_PREVIOUS_SUSPEND: "false", ANNOTATION_SCALED_BY: "p:budget"},
    )
    users = WorkloadFacts("ns", "job/held", LLM, kind="Job", suspended=True)
    done = WorkloadFacts("ns", "job/done", LLM, kind="Job", finished=True)
    decision = plan(spec(), [ours, users, done], [pod("train-x", "job/train", gpus=12)])
    assert decision.changes == ()
    assert states(decision)["job/train"][0] == WorkloadState.BUDGET_SUSPENDED
    assert states(decision)["job/held"][0] == WorkloadState.ACTIVE


@pytest.mark.parametrize(
    ("mode", "reason"), [("DryRun", "BudgetExhaustedDryRun"), ("Warn", "BudgetExhaustedWarn")]
)
def test_dry_run_and_warn_report_the_suspension_and_change_nothing(mode: str, reason: str) -> None:
    decision = plan(spec(mode=mode), [JOB], [pod("train-x", "job/train", gpus=12)])
    assert decision.changes == ()
    reported = [e.message for e in decision.events if e.workload == "job/train" and e.reason == reason]
    assert len(reported) == 1 and reported[0].endswith("suspended job/train")


@pytest.mark.parametrize(("recorded", "resumed_to"), [("false", False), ("true", True)])
def test_a_new_window_resumes_exactly_what_was_recorded(recorded: str, resumed_to: bool) -> None:
    marks = {ANNOTATION_PREVIOUS_SUSPEND: recorded, ANNOTATION_SCALED_BY: "p:budget"}
    job = WorkloadFacts("ns", "job/train", LLM, kind="Job", suspended=True, annotations=marks)
    decision = plan(spec(), [job], [])  # nothing ran yet in today's window
    assert [(c.workload, c.suspend, dict(c.annotations)) for c in decision.changes] == [
        ("job/train", resumed_to, {ANNOTATION_PREVIOUS_SUSPEND: None, ANNOTATION_SCALED_BY: None})
    ]


def test_deleting_the_policy_resumes_jobs_and_cronjobs_and_releases_their_pods() -> None:
    marks = {ANNOTATION_PREVIOUS_SUSPEND: "false", ANNOTATION_SCALED_BY: "p:budget"}
    cron = WorkloadFacts("ns", "cronjob/nightly", LLM, kind="CronJob", suspended=True, annotations=marks)
    run = WorkloadFacts(
        "ns", "job/nightly-1", {}, kind="Job", suspended=True, annotations=marks, parent="cronjob/nightly"
    )
    intents = plan_deletion(
        "p", parse_policy_spec(spec()), [cron, run], [pod("nightly-1-a", "job/nightly-1")]
    )
    assert [(i.target.text(), getattr(i, "suspend", None)) for i in intents] == [
        ("CronJob ns/nightly", False),
        ("Job ns/nightly-1", False),
        ("Pod ns/nightly-1-a", None),  # selected through its CronJob's labels
    ]
    assert isinstance(intents[-1], RemoveFinalizer) and intents[-1].finalizer == LEDGER_FINALIZER


def test_a_statefulset_gets_its_own_hpa_and_idle_shutdown() -> None:
    raw = spec(action="AlertOnly", autoScale={"minReplicas": 1, "maxReplicas": 4})
    decision = plan(raw, [STS], [pod("db-0", "statefulset/db")])
    (hpa,) = decision.hpas.apply
    assert hpa["metadata"]["name"] == "db-statefulset"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}

    idle = {**spec(action="AlertOnly"), "optimizationRules": {"idleShutdownThresholdMinutes": 30}}
    idle_since = NOW - timedelta(hours=1)
    status = FinOpsPolicyStatus.model_validate(
        {"workloads": [{"name": "statefulset/db", "idleSince": idle_since.isoformat()}]}
    )
    decision = plan(
        idle, [STS], [pod("db-0", "statefulset/db")], status=status, pod_utilization={"db-0": 0.0}
    )
    assert [(c.workload, c.replicas, c.reason) for c in decision.changes] == [
        ("statefulset/db", 0, "IdleShutdown")
    ]


def test_a_bare_pod_claimed_by_a_deployment_selector_is_the_deployments() -> None:
    """Its ReplicaSet adopts such an orphan: the ledger books it there already."""
    web = WorkloadFacts("ns", "web", LLM, replicas=1, gpus_per_pod=1, pod_selector=SELECTOR)
    decision = plan(spec(action="AlertOnly"), [web], [pod("stray", None)])
    assert states(decision) == {"web": (WorkloadState.ACTIVE, 10.5)}


def test_indexes_keep_the_facts_of_each_kind() -> None:
    gpu_pod = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}
    job = workload_facts(
        "Job",
        {
            "metadata": {
                "name": "nightly-1",
                "namespace": "ns",
                "uid": "u1",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    ANNOTATION_SCALED_BY: "p:budget",
                },
                "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": True}],
            },
            "spec": {"suspend": True, "parallelism": 3, "template": {"spec": gpu_pod}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]},
        },
    )
    assert (job.name, job.object_name, job.kind, job.gpus_per_pod, job.replicas) == (
        "job/nightly-1",
        "nightly-1",
        "Job",
        2,
        3,
    )
    assert (job.suspended, job.finished, job.parent, dict(job.annotations)) == (
        True,
        True,
        "cronjob/nightly",
        {ANNOTATION_SCALED_BY: "p:budget"},
    )
    cron = workload_facts(
        "CronJob",
        {
            "metadata": {"name": "nightly", "namespace": "ns", "labels": LLM},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": gpu_pod}}}},
        },
    )
    assert (cron.name, cron.gpus_per_pod, cron.suspended, cron.parent) == ("cronjob/nightly", 2, False, None)
    sts = workload_facts(
        "StatefulSet",
        {
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": LLM}, "template": {"spec": gpu_pod}},
            "status": {"readyReplicas": 1},
        },
    )
    assert (sts.name, sts.replicas, sts.ready_replicas, sts.pod_selector) == (
        "statefulset/db",
        1,
        1,
        SELECTOR,
    )
