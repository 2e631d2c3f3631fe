"""Idle shutdown on real GPU-utilisation metrics: a simulated DCGM exporter (there is no GPU here)
scraped by a real Prometheus, queried by the real operator, acting on the real control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import condition, deployment, events, policy, replicas
from tests.kube import Kube, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import PrometheusServer

NAMESPACE = "idle"
pytestmark = [pytest.mark.prometheus]


def pod_names(kube: Kube, app: str) -> list[str]:
    pods = kube.get_json("pods", "-n", NAMESPACE, "-l", f"app={app}")["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_idle_workload_is_scaled_to_zero_and_woken(
    kube: Kube, tmp_path: Path, dcgm_exporter: DcgmExporter, gpu_prometheus: PrometheusServer
) -> None:
    kube.kubectl("create", "namespace", NAMESPACE)
    objects: list[dict[str, Any]] = [
        deployment(NAMESPACE, "sleepy", 2, gpus=1),
        deployment(NAMESPACE, "busy", 1, gpus=1),
        deployment(NAMESPACE, "unmetered", 1, gpus=1),
        policy(
            NAMESPACE,
            "idle-rules",
            optimizationRules={"idleShutdownThresholdMinutes": 1, "idleGPUUtilizationPercent": 5},
            alerting={"idleShutdown": {"severity": "INFO", "recipientGroup": "mlops-team"}},
        ),
    ]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    for app, count in (("sleepy", 2), ("busy", 1), ("unmetered", 1)):
        eventually(lambda app=app, count=count: len(pod_names(kube, app)) == count, timeout=60, what=app)
    for pod in pod_names(kube, "sleepy"):
        dcgm_exporter.set_utilization(NAMESPACE, pod, 2)
    for pod in pod_names(kube, "busy"):
        dcgm_exporter.set_utilization(NAMESPACE, pod, 85)
    gpu_prometheus.wait_for_scrape()

    with running_operator(kube, tmp_path, "--sample-interval", "2", "--prometheus-url", gpu_prometheus.url):
        idle = eventually(
            lambda: (c := condition(kube, NAMESPACE, "idle-rules", "Idle")) and c["status"] == "True" and c,
            timeout=30,
            what="Idle condition",
        )
        assert "sleepy" in idle["message"] and "busy" not in idle["message"]
        missing = condition(kube, NAMESPACE, "idle-rules", "MetricsAvailable")
        assert missing is not None and missing["status"] == "False" and "unmetered" in missing["message"]

        eventually(lambda: replicas(kube, NAMESPACE, "sleepy") == 0, timeout=120, what="idle shutdown")
        annotations = kube.get_json("deploy", "-n", NAMESPACE, "sleepy")["metadata"]["annotations"]
        assert annotations["finops.dev/previous-replicas"] == "2"
        assert annotations["finops.dev/scaled-by"] == "idle-rules:idle"
        shutdown = events(kube, NAMESPACE, "IdleShutdown")
        assert any("[INFO -> mlops-team]" in e["message"] and "below 5%" in e["message"] for e in shutdown)
        # Missing metrics never shut anything down; busy GPUs are left alone.
        assert replicas(kube, NAMESPACE, "unmetered") == 1
        assert replicas(kube, NAMESPACE, "busy") == 1

        kube.kubectl("annotate", "deploy", "-n", NAMESPACE, "sleepy", "finops.dev/wake=now")
        eventually(lambda: replicas(kube, NAMESPACE, "sleepy") == 2, timeout=30, what="woken up")
        woken = kube.get_json("deploy", "-n", NAMESPACE, "sleepy")["metadata"].get("annotations") or {}
        assert not any(key.startswith("finops.dev/") for key in woken)
        assert events(kube, NAMESPACE, "WokenUp")
