"""FinOpsPolicy enforcement against the real control plane, with the real operator process:
admission webhook, GPU-hour ledger across kill -9, budget actions and their undoing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alert_receiver import alert_receiver
from tests.kube import Kube, KubectlError, eventually
from tests.operator_process import OperatorProcess, free_port, running_operator

SAMPLE = 2.0  # seconds between samples in these tests


def deployment(  # noqa: PLR0917 - a test factory reads best positionally
    namespace: str,
    name: str,
    replicas: int,
    gpus: int,
    labels: dict[str, str] | None = None,
    quantization: str = "int8",
) -> dict[str, Any]:
    labels = {"app": name, "tier": "inference", **(labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "finops.dev/model-quantization": quantization}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "example/llm:1",
                            "resources": {
                                "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": str(gpus)}
                            },
                        }
                    ]
                },
            },
        },
    }


def policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "FinOpsPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"targetWorkloadSelector": {"matchLabels": {"tier": "inference"}}, **spec},
    }


def apply(kube: Kube, *objects: dict[str, Any]) -> str:
    return kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


def status_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get_json("fop", "-n", namespace, name).get("status") or {})


def condition(kube: Kube, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    return next(
        (c for c in status_of(kube, namespace, name).get("conditions", []) if c["type"] == kind), None
    )


def replicas(kube: Kube, namespace: str, name: str) -> int:
    return int(kube.get_json("deploy", "-n", namespace, name)["spec"]["replicas"])


def events(kube: Kube, namespace: str, reason: str) -> list[dict[str, Any]]:
    items = kube.get_json("events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    return list(items)


@pytest.fixture
def operator(kube: Kube, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(
        kube,
        tmp_path,
        "--sample-interval",
        str(SAMPLE),
        "--webhook",
        "--webhook-port",
        str(free_port()),
        # The alert receiver of these tests listens on 127.0.0.1 over http, which the outbound guard
        # refuses by default (docs/SECURITY.md).
        env={"FINOPS_ALERT_ALLOW_PRIVATE_URLS": "true"},
    ) as process:
        eventually(
            lambda: kube.kubectl("get", "validatingwebhookconfiguration", "finops.dev", check=False),
            timeout=30,
            what="the managed ValidatingWebhookConfiguration",
        )
        yield process
    kube.kubectl("delete", "validatingwebhookconfiguration", "finops.dev", "--ignore-not-found")


def test_webhook_rejects_in_enforce_warns_in_warn_and_audits_existing_violators(
    kube: Kube, operator: OperatorProcess
) -> None:
    for namespace in ("caps-enforce", "caps-warn"):
        kube.kubectl("create", "namespace", namespace)
    # A violator that predates the policy: admitted, then found by the audit.
    apply(kube, deployment("caps-enforce", "old-giant", 0, gpus=8))
    apply(
        kube,
        policy(
            "caps-enforce",
            "gpu-caps",
            enforcementMode="Enforce",
            costLimits={"maxGPUsPerPod": 2, "maxCPUCores": 8, "maxMemoryGB": 32, "maxHourlyCost": 10},
            optimizationRules={"modelQuantizationRequired": True},
            pricing={"gpuHourlyRate": 2},
        ),
        policy("caps-warn", "gpu-caps", enforcementMode="Warn", costLimits={"maxGPUsPerPod": 2}),
    )
    eventually(lambda: condition(kube, "caps-enforce", "gpu-caps", "Ready"), timeout=30, what="policy Ready")

    with pytest.raises(KubectlError) as rejected:
        apply(kube, deployment("caps-enforce", "too-big", 1, gpus=4))
    assert "FinOpsPolicy gpu-caps: 4 GPUs per pod exceeds maxGPUsPerPod 2" in rejected.value.stderr
    with pytest.raises(KubectlError) as unquantized:
        apply(kube, deployment("caps-enforce", "full-precision", 1, gpus=1, quantization="fp16"))
    assert "FinOpsPolicy gpu-caps: label finops.dev/model-quantization=fp16" in unquantized.value.stderr
    assert "fits" not in kube.kubectl("get", "deploy", "-n", "caps-enforce")
    apply(kube, deployment("caps-enforce", "fits", 1, gpus=2))  # within every cap: admitted
    # The hourly cost (GPUs x replicas x rate) is judged on a change of replicas alone as well.
    with pytest.raises(KubectlError) as costly:
        apply(kube, deployment("caps-enforce", "fits", 3, gpus=2))
    assert (
        "FinOpsPolicy gpu-caps: 2 GPUs per pod x 3 replicas x 2 USD per GPU-hour = 12 USD per hour "
        "exceeds maxHourlyCost 10" in costly.value.stderr
    )

    import subprocess

    from tests.kube import kubectl_binary

    warned = subprocess.run(
        [kubectl_binary(), "apply", "-f", "-"],
        input=yaml.safe_dump(deployment("caps-warn", "big", 1, gpus=4)),
        capture_output=True,
        text=True,
        env=kube.env,
        check=False,
    )
    assert warned.returncode == 0, warned.stderr
    assert "Warning: FinOpsPolicy gpu-caps: 4 GPUs per pod exceeds maxGPUsPerPod 2" in warned.stderr

    def audited() -> list[dict[str, Any]]:
        return [
            v
            for v in status_of(kube, "caps-enforce", "gpu-caps").get("violations", [])
            if v["name"] == "old-giant"
        ]

    found = eventually(audited, timeout=30, what="old-giant listed as a violator")
    assert {"rule": "maxGPUsPerPod", "name": "old-giant"}.items() <= found[0].items()
    # Scaling an existing violator is not blocked: only pod template changes are judged.
    kube.kubectl("scale", "deploy", "-n", "caps-enforce", "old-giant", "--replicas=0")


def test_budget_exhausted_scales_to_zero_and_restores_at_the_window_reset(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace = "budget-reset"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, deployment(namespace, "chat", 3, gpus=1))
    eventually(
        lambda: kube.get_json("deploy", "-n", namespace, "chat")["status"].get("readyReplicas") == 3,
        timeout=60,
        what="3 ready replicas",
    )
    # The window resets two minutes from now (UTC), so the test sees a reset without faking any clock.
    reset = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%H:%M")
    apply(
        kube,
        policy(
            namespace,
            "tiny-budget",
            costLimits={"dailyGPUHours": 0.01, "budgetAction": "ScaleToZero"},
            budgetWindow={"timeZone": "UTC", "resetTime": reset},
            alerting={"budgetExhausted": {"severity": "CRITICAL", "recipientGroup": "finops-team"}},
        ),
    )

    eventually(lambda: replicas(kube, namespace, "chat") == 0, timeout=60, what="scale to zero")
    annotations = kube.get_json("deploy", "-n", namespace, "chat")["metadata"]["annotations"]
    assert annotations["finops.dev/previous-replicas"] == "3"
    assert annotations["finops.dev/scaled-by"] == "tiny-budget:budget"
    exceeded = condition(kube, namespace, "tiny-budget", "BudgetExceeded")
    assert exceeded is not None and exceeded["status"] == "True" and exceeded["reason"] == "BudgetExhausted"
    status = status_of(kube, namespace, "tiny-budget")
    assert status["budgetUsedPercent"] >= 100 and status["thresholdsNotified"] == [80, 100]
    exhausted = events(kube, namespace, "BudgetExhausted")
    assert any("[CRITICAL -> finops-team]" in e["message"] for e in exhausted)
    assert {e["involvedObject"]["kind"] for e in exhausted} == {"FinOpsPolicy", "Deployment"}
    # Thresholds fire once per window, not once per sample.
    time.sleep(3 * SAMPLE)
    assert len(events(kube, namespace, "BudgetThresholdCrossed")) == 2

    restored = eventually(
        lambda: events(kube, namespace, "BudgetRestored"), timeout=180, what="restore at the window reset"
    )
    assert any("restored chat to 3 replicas" in e["message"] for e in restored)


def test_dry_run_reports_but_changes_nothing(kube: Kube, operator: OperatorProcess) -> None:
    namespace = "budget-dry-run"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, deployment(namespace, "chat", 2, gpus=1))
    apply(
        kube,
        policy(
            namespace,
            "tiny-budget",
            enforcementMode="DryRun",
            costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"},
        ),
    )
    eventually(lambda: events(kube, namespace, "BudgetExhaustedDryRun"), timeout=60, what="a DryRun report")
    exceeded = condition(kube, namespace, "tiny-budget", "BudgetExceeded")
    assert exceeded is not None and exceeded["status"] == "True"
    deployment_now = kube.get_json("deploy", "-n", namespace, "chat")
    assert deployment_now["spec"]["replicas"] == 2
    assert "finops.dev/previous-replicas" not in (deployment_now["metadata"].get("annotations") or {})


def test_deleting_the_policy_restores_every_workload(kube: Kube, operator: OperatorProcess) -> None:
    namespace = "budget-delete"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, deployment(namespace, "chat", 2, gpus=1))
    apply(
        kube,
        policy(namespace, "tiny-budget", costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"}),
    )
    eventually(lambda: replicas(kube, namespace, "chat") == 0, timeout=60, what="scale to zero")
    kube.kubectl("delete", "fop", "-n", namespace, "tiny-budget", "--timeout=60s")
    assert replicas(kube, namespace, "chat") == 2
    annotations = kube.get_json("deploy", "-n", namespace, "chat")["metadata"].get("annotations") or {}
    assert not any(key.startswith("finops.dev/") for key in annotations)

    def released() -> bool:
        pods = kube.get_json("pods", "-n", namespace)["items"]
        return len(pods) == 2 and not any(
            "finops.dev/gpu-ledger" in p["metadata"].get("finalizers", []) for p in pods
        )

    eventually(released, timeout=60, what="pods running without the ledger finalizer")


def _started(pod: dict[str, Any]) -> datetime:
    state = pod["status"]["containerStatuses"][0]["state"]["running"]
    return datetime.fromisoformat(state["startedAt"].replace("Z", "+00:00"))


def test_ledger_survives_kill_9_and_pods_deleted_while_down(kube: Kube, tmp_path: Path) -> None:
    namespace = "ledger"
    kube.kubectl("create", "namespace", namespace)
    apply(kube, deployment(namespace, "trainer", 2, gpus=2))
    apply(kube, policy(namespace, "ledger", costLimits={"dailyGPUHours": 1000}))
    timeline: dict[str, tuple[datetime, datetime | None]] = {}
    with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)) as first:

        def tracked() -> list[dict[str, Any]]:
            pods = kube.get_json("pods", "-n", namespace)["items"]
            ok = len(pods) == 2 and all(
                "finops.dev/gpu-ledger" in p["metadata"].get("finalizers", []) for p in pods
            )
            return pods if ok else []

        for pod in eventually(tracked, timeout=60, what="ledger finalizers"):
            timeline[pod["metadata"]["name"]] = (_started(pod), None)
        time.sleep(2 * SAMPLE)
        first.process.kill()  # kill -9: no chance to write anything on the way out
        first.process.wait()
    victim = sorted(timeline)[0]
    kube.kubectl("delete", "pod", "-n", namespace, victim, "--wait=false")
    timeline[victim] = (timeline[victim][0], datetime.now(UTC))
    time.sleep(3)  # the replacement pod starts and runs while the operator is down
    pod_list = kube.get_json("pods", "-n", namespace)["items"]
    held = next(p for p in pod_list if p["metadata"]["name"] == victim)
    assert held["metadata"]["deletionTimestamp"]  # kept by the finalizer, with its end recorded

    with running_operator(kube, tmp_path, "--sample-interval", str(SAMPLE)):
        eventually(
            lambda: victim not in kube.kubectl("get", "pods", "-n", namespace),
            timeout=60,
            what="the deleted pod released after it was accounted",
        )
        time.sleep(2 * SAMPLE)
        status = status_of(kube, namespace, "ledger")
        pods = kube.get_json("pods", "-n", namespace)["items"]
    for pod in pods:
        timeline.setdefault(pod["metadata"]["name"], (_started(pod), None))
    until = datetime.fromisoformat(status["ledgerTime"].replace("Z", "+00:00"))
    truth = sum(2 * ((end or until) - start).total_seconds() / 3600 for start, end in timeline.values())
    one_sample = 4 * SAMPLE / 3600  # all GPUs running for one sampling interval
    assert abs(status["gpuHoursUsed"] - truth) <= one_sample, json.dumps(status, indent=2)


def test_a_budget_crossed_between_samples_is_enforced_when_it_runs_out(kube: Kube, tmp_path: Path) -> None:
    """With a long sample interval the operator samples again at the projected exhaustion instead of
    letting GPU time accrue past the budget until the next tick."""
    namespace = "budget-between-samples"
    interval = 120  # the next timer tick; the budget runs out ~20 s into the interval
    kube.kubectl("create", "namespace", namespace)
    apply(kube, deployment(namespace, "chat", 1, gpus=1))
    pod = eventually(
        lambda: next(
            (
                p
                for p in kube.get_json("pods", "-n", namespace)["items"]
                if p["status"].get("containerStatuses")
            ),
            None,
        ),
        timeout=60,
        what="a running pod",
    )
    with running_operator(kube, tmp_path, "--sample-interval", str(interval)):
        used = (datetime.now(UTC) - _started(pod)).total_seconds()
        budget = (used + 20) / 3600  # one GPU: GPU-hours left for 20 more seconds
        apply(
            kube,
            policy(namespace, "between", costLimits={"dailyGPUHours": budget, "budgetAction": "ScaleToZero"}),
        )
        eventually(
            lambda: replicas(kube, namespace, "chat") == 0,
            timeout=interval - 30,
            what="scale to zero at the projected exhaustion, before the next sample",
        )
        eventually(
            lambda: status_of(kube, namespace, "between").get("thresholdsNotified") == [80, 100],
            timeout=30,
            what="both thresholds in the status",
        )
        assert len(events(kube, namespace, "BudgetThresholdCrossed")) == 2  # each announced once


def test_alerts_reach_a_webhook_in_alertmanager_format(kube: Kube, operator: OperatorProcess) -> None:
    namespace = "alerts"
    with alert_receiver() as receiver:
        kube.kubectl("create", "namespace", namespace)
        kube.kubectl(
            "create", "secret", "generic", "alert-hook", "-n", namespace, f"--from-literal=url={receiver.url}"
        )
        apply(kube, deployment(namespace, "chat", 1, gpus=1))
        apply(
            kube,
            policy(
                namespace,
                "tiny-budget",
                enforcementMode="Warn",
                costLimits={"dailyGPUHours": 0.0005, "budgetAction": "ScaleToZero"},
                alerting={
                    "thresholdExceeded": {"severity": "CRITICAL", "recipientGroup": "finops-team"},
                    "webhookSecretRef": {"name": "alert-hook", "key": "url"},
                },
            ),
        )
        payload = eventually(
            lambda: receiver.received and receiver.received[0], timeout=60, what="an alert POST"
        )
    assert payload["version"] == "4" and payload["status"] == "firing"
    alert = payload["alerts"][0]
    assert alert["status"] == "firing" and alert["startsAt"]
    assert alert["labels"]["alertname"] == "BudgetThresholdCrossed"
    assert alert["labels"]["severity"] == "CRITICAL" and alert["labels"]["recipient_group"] == "finops-team"
    assert alert["labels"]["namespace"] == namespace and alert["labels"]["finopspolicy"] == "tiny-budget"
    assert "daily budget" in alert["annotations"]["summary"]
    # Warn mode warns (Warning events, alerts) but does not act.
    assert replicas(kube, namespace, "chat") == 1
    assert "finops_actions_total" not in operator.metrics() or (
        'namespace="alerts"' not in operator.metrics().split("finops_actions_total")[1]
    )


def test_scale_to_min_pins_the_hpa_and_overlapping_policies_both_report_conflict(
    kube: Kube, operator: OperatorProcess
) -> None:
    namespace = "budget-min"
    kube.kubectl("create", "namespace", namespace)
    apply(
        kube,
        deployment(namespace, "chat", 3, gpus=1),
        deployment(namespace, "shared", 1, gpus=1, labels={"team": "search"}),
    )
    apply(
        kube,
        policy(
            namespace,
            "min-budget",
            costLimits={"dailyGPUHours": 0.001, "budgetAction": "ScaleToMin"},
            autoScale={"minReplicas": 1, "maxReplicas": 4},
        ),
    )
    eventually(
        lambda: replicas(kube, namespace, "chat") == 1, timeout=60, what="scaled to autoScale.minReplicas"
    )
    hpa = kube.get_json("hpa", "-n", namespace, "chat")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 1)  # the HPA cannot undo it
    assert (
        kube.get_json("deploy", "-n", namespace, "chat")["metadata"]["annotations"][
            "finops.dev/previous-replicas"
        ]
        == "3"
    )

    # A second policy selecting `shared` too: both say so, neither acts on it.
    apply(
        kube,
        {
            **policy(
                namespace, "search-team", costLimits={"dailyGPUHours": 0.001, "budgetAction": "ScaleToZero"}
            ),
            "spec": {
                "targetWorkloadSelector": {"matchLabels": {"team": "search"}},
                "costLimits": {"dailyGPUHours": 0.001, "budgetAction": "ScaleToZero"},
            },
        },
    )
    for name in ("min-budget", "search-team"):
        conflict = eventually(
            lambda name=name: (
                (c := condition(kube, namespace, name, "Conflict")) and c["status"] == "True" and c
            ),
            timeout=30,
            what=f"Conflict on {name}",
        )
        assert conflict["reason"] == "SelectorOverlap" and "shared" in conflict["message"]
    time.sleep(3 * SAMPLE)
    assert replicas(kube, namespace, "shared") == 1
    states = {w["name"]: w["state"] for w in status_of(kube, namespace, "search-team")["workloads"]}
    assert states == {"shared": "Conflict"}
