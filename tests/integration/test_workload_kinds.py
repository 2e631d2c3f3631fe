"""StatefulSets, Jobs, CronJobs and bare pods under a FinOpsPolicy, on the real control plane (its Job,
CronJob and StatefulSet controllers; kwok plays the kubelets, and a Job's pod runs for the time its
pod-complete.stage.kwok.x-k8s.io/delay annotation says): scaled, suspended, resumed at the window
reset, restored on policy deletion after a kill -9, reported in DryRun; bare pods never touched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_finopspolicy_enforcement import apply, deployment, events, status_of
from tests.kube import Kube, KubectlError, eventually
from tests.operator_process import OperatorProcess, free_port, running_operator

SAMPLE = 2.0
TEAM = {"team": "ml"}
RUNS_LONG = {"pod-complete.stage.kwok.x-k8s.io/delay": "1h"}  # a training run outlasting the test


def pod_spec(gpus: int = 1, restart: str = "Never") -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "containers": [
            {
                "name": "trainer",
                "image": "example/train:1",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }


def job_spec(name: str) -> dict[str, Any]:
    return {
        "backoffLimit": 0,
        "template": {"metadata": {"labels": {"run": name}, "annotations": RUNS_LONG}, "spec": pod_spec()},
    }


def job(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": TEAM},
        "spec": job_spec(name),
    }


def cronjob(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": TEAM},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": job_spec(name)},
        },
    }


def statefulset(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "labels": TEAM},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(restart="Always")},
        },
    }


def bare_pod(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": TEAM},
        "spec": pod_spec(restart="Always"),
    }


def policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"targetWorkloadSelector": {"matchLabels": TEAM}, **spec},
    }


def obj(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get_json(kind, "-n", namespace, name))


def marks(body: dict[str, Any]) -> dict[str, str]:
    annotations = body["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k.startswith("finops.dev/")}


def running_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = kube.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture
def operator(kube: Kube, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as process:
        yield process


def test_budget_scales_statefulsets_suspends_jobs_and_resumes_them_at_the_reset(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace = "kinds-reset"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, statefulset(namespace, "db", 2), job(namespace, "train"), bare_pod(namespace, "notebook"))
    eventually(
        lambda: len(running_pods(kube, namespace, "job-name=train")) == 1,
        timeout=60,
        what="a running Job pod",
    )
    eventually(
        lambda: obj(kube, "sts", namespace, "db")["status"].get("readyReplicas") == 2,
        timeout=90,
        what="2 ready",
    )
    reset = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%H:%M")
    apply(
        kube,
        policy(
            namespace,
            "tiny",
            costLimits={"dailyGPUHours": 0.01, "budgetAction": "ScaleToZero"},
            budgetWindow={"timeZone": "UTC", "resetTime": reset},
        ),
    )

    eventually(
        lambda: obj(kube, "job", namespace, "train")["spec"].get("suspend") is True,
        timeout=60,
        what="suspend",
    )
    assert marks(obj(kube, "job", namespace, "train")) == {
        "finops.dev/previous-suspend": "false",
        "finops.dev/scaled-by": "tiny:budget",
    }
    eventually(
        lambda: obj(kube, "sts", namespace, "db")["spec"]["replicas"] == 0, timeout=30, what="sts to 0"
    )
    assert marks(obj(kube, "sts", namespace, "db")) == {
        "finops.dev/previous-replicas": "2",
        "finops.dev/scaled-by": "tiny:budget",
    }
    # The Job controller removes a suspended Job's pods; the ledger finalizer lets them go once booked.
    eventually(
        lambda: not kube.get_json("pods", "-n", namespace, "-l", "job-name=train")["items"],
        timeout=60,
        what="pods gone",
    )
    notebook = obj(kube, "pod", namespace, "notebook")
    assert notebook["status"]["phase"] == "Running" and not notebook["metadata"].get("finalizers")
    assert not marks(notebook)
    workloads = {w["name"]: w for w in status_of(kube, namespace, "tiny")["workloads"]}
    assert workloads["job/train"]["state"] == "BudgetSuspended"
    assert workloads["statefulset/db"]["state"] == "BudgetScaledDown"
    assert workloads["pod/notebook"]["state"] == "Active" and workloads["pod/notebook"]["gpuHours"] > 0
    suspended = [
        e for e in events(kube, namespace, "BudgetExhausted") if e["involvedObject"]["kind"] == "Job"
    ]
    assert suspended and suspended[0]["message"].endswith("suspended job/train")

    def both_restored() -> dict[str, str] | None:
        found = {e["involvedObject"]["kind"]: e["message"] for e in events(kube, namespace, "BudgetRestored")}
        return found if {"Job", "StatefulSet"} <= set(found) else None

    restored = eventually(both_restored, timeout=200, what="Job and StatefulSet restored at the reset")
    assert restored["Job"].endswith("resumed job/train (new budget window)")
    assert restored["StatefulSet"].endswith("restored statefulset/db to 2 replicas (new budget window)")


def test_dry_run_reports_the_suspension_and_changes_nothing(kube: Kube, operator: OperatorProcess) -> None:
    namespace = "kinds-dry-run"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, job(namespace, "train"))
    apply(
        kube,
        policy(
            namespace,
            "tiny",
            enforcementMode="DryRun",
            costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"},
        ),
    )
    reported = eventually(
        lambda: [
            e
            for e in events(kube, namespace, "BudgetExhaustedDryRun")
            if e["involvedObject"]["kind"] == "Job"
        ],
        timeout=60,
        what="a DryRun report on the Job",
    )
    assert reported[0]["message"].endswith("suspended job/train")
    now = obj(kube, "job", namespace, "train")
    assert not now["spec"].get("suspend") and not marks(now)


def test_deleting_the_policy_after_kill_9_resumes_the_cronjob_and_its_run(kube: Kube, tmp_path: Path) -> None:
    namespace = "kinds-delete"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, cronjob(namespace, "nightly"))
    first_run = eventually(
        lambda: [j["metadata"]["name"] for j in kube.get_json("jobs", "-n", namespace)["items"]],
        timeout=90,
        what="the CronJob's first Job",
    )[0]
    eventually(
        lambda: running_pods(kube, namespace, f"job-name={first_run}"), timeout=60, what="its pod running"
    )
    apply(
        kube, policy(namespace, "tiny", costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"})
    )
    with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as first:

        def suspended() -> bool:
            return all(
                obj(kube, kind, namespace, name)["spec"].get("suspend") is True
                for kind, name in (("cronjob", "nightly"), ("job", first_run))
            )

        eventually(suspended, timeout=60, what="the CronJob and its running Job suspended")
        first.process.kill()  # kill -9: what to restore is on the objects, not in the operator
        first.process.wait()
    assert marks(obj(kube, "job", namespace, first_run))["finops.dev/scaled-by"] == "tiny:budget"
    with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)):
        kube.kubectl("delete", "fop", "-n", namespace, "tiny", "--timeout=60s")
    for kind, name in (("cronjob", "nightly"), ("job", first_run)):
        body = obj(kube, kind, namespace, name)
        assert body["spec"].get("suspend") is False and not marks(body), (kind, body)
    resumed = {e["involvedObject"]["name"] for e in events(kube, namespace, "PolicyDeleted")}
    assert {"nightly", first_run} <= resumed


def test_a_workload_over_its_declared_cost_is_listed_with_an_event(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace = "kinds-declared"
    kube.kubectl("create", "namespace", namespace)
    chat = deployment(namespace, "chat", 2, gpus=1, labels=TEAM)
    chat["metadata"]["annotations"] = {"finops.dev/expected-cost-per-hour": "4"}
    apply(kube, chat, policy(namespace, "declared", pricing={"gpuHourlyRate": 2.5, "currency": "EUR"}))

    def listed() -> list[dict[str, Any]]:
        return list(status_of(kube, namespace, "declared").get("costOverruns") or [])

    (overrun,) = eventually(listed, timeout=90, what="chat listed over its declared cost")
    assert (overrun["name"], overrun["expectedCostPerHour"], overrun["measuredCostPerHour"]) == ("chat", 4, 5)
    announced = eventually(lambda: events(kube, namespace, "CostOverExpected"), timeout=30, what="the Event")
    assert {e["involvedObject"]["kind"] for e in announced} == {"FinOpsPolicy", "Deployment"}
    assert "chat costs 5 EUR/h, over the 4 EUR/h it declares" in announced[0]["message"]
    kube.kubectl(
        "annotate", "deploy", "-n", namespace, "chat", "finops.dev/expected-cost-per-hour=6", "--overwrite"
    )
    eventually(lambda: not listed(), timeout=60, what="chat off the list once it declares enough")


def test_webhook_refuses_a_scale_up_that_would_run_the_budget_out(kube: Kube, tmp_path: Path) -> None:
    """costLimits.refuseBudgetBreakingScaleUp: with about 2 hours to the reset and a 3 GPU-hour budget, one
    GPU fits and two do not."""
    namespace = "kinds-scale-up"
    kube.kubectl("create", "namespace", namespace)
    reset = (datetime.now(UTC) + timedelta(hours=2)).strftime("%H:%M")
    chat = deployment(namespace, "chat", 1, gpus=1, labels=TEAM)
    limits = {"dailyGPUHours": 3, "budgetAction": "AlertOnly", "refuseBudgetBreakingScaleUp": True}
    guarded = policy(
        namespace, "guard", costLimits=limits, budgetWindow={"timeZone": "UTC", "resetTime": reset}
    )
    args = ("--sample-interval", str(SAMPLE), "--webhook", "--webhook-port", str(free_port()))
    try:
        with running_operator(kube, tmp_path, *args):
            eventually(
                lambda: kube.kubectl("get", "validatingwebhookconfiguration", "finops.dev", check=False),
                timeout=30,
                what="the managed ValidatingWebhookConfiguration",
            )
            apply(kube, chat, guarded)
            eventually(
                lambda: status_of(kube, namespace, "guard").get("gpusRunning") == 1,
                timeout=60,
                what="1 GPU running",
            )
            chat["spec"]["replicas"] = 2
            with pytest.raises(KubectlError) as refused:
                apply(kube, chat)
            assert "FinOpsPolicy guard: adding 1 GPU(s) makes the burn 2 GPUs" in str(refused.value)
            assert obj(kube, "deploy", namespace, "chat")["spec"]["replicas"] == 1
    finally:
        kube.kubectl("delete", "validatingwebhookconfiguration", "finops.dev", "--ignore-not-found")
