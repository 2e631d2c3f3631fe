"""Cost anomalies on the real control plane, with a real Prometheus and the real operator.

The GPU is simulated: the DCGM-style test exporter (tests.dcgm_exporter) reports the utilisation the
test sets for the workload's real pods, and one more of its series (pod ``chat-demand``) stands in for
the service's demand (requests per second). Prometheus scrapes it every second and the operator runs
its own PromQL against what Prometheus stored. Time passing is the operator's 2-second sample interval;
the policy learns for 10 s and asks departures to last 10 s, so the test stays short while the
mechanism is the production one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import (
    apply,
    condition,
    deployment,
    events,
    policy,
    replicas,
)
from tests.kube import Kube, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import PrometheusServer

NAMESPACE = "anomalies"
DEMAND_POD = "chat-demand"
pytestmark = [pytest.mark.prometheus]


class AlertInbox:
    """An Alertmanager-format webhook receiver on 127.0.0.1: every POSTed alert, in order."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                inbox.alerts.extend(body["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def inbox() -> Iterator[AlertInbox]:
    receiver = AlertInbox()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
    receiver.thread.join()


def pod_names(kube: Kube) -> list[str]:
    pods = kube.get_json("pods", "-n", NAMESPACE, "-l", "app=chat")["items"]
    return sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))


def gpus_at(exporter: DcgmExporter, kube: Kube, utilization: float) -> None:
    """Every running pod of the workload at ``utilization``; pods that are gone stop being exported."""
    names = pod_names(kube)
    for gpu in exporter.gpus():
        if gpu.namespace == NAMESPACE and gpu.pod not in (*names, DEMAND_POD) and gpu.pod is not None:
            exporter.remove_pod(NAMESPACE, gpu.pod)
    for name in names:
        exporter.set_utilization(NAMESPACE, name, utilization)


def anomaly_flag(metrics: str, kind: str) -> float | None:
    """finops_anomalies of the chat workload for ``kind``, as the operator exports it."""
    wanted = {"namespace": NAMESPACE, "policy": "anomalies", "workload": "chat", "kind": kind}
    return next(
        (
            sample.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "finops_anomalies"
            for sample in family.samples
            if sample.labels == wanted
        ),
        None,
    )


def anomaly_condition(kube: Kube) -> dict[str, Any]:
    return condition(kube, NAMESPACE, "anomalies", "AnomalyDetected") or {}


def test_an_injected_anomaly_raises_the_condition_alert_and_action_and_the_clean_period_nothing(
    kube: Kube,
    tmp_path: Path,
    dcgm_exporter: DcgmExporter,
    gpu_prometheus: PrometheusServer,
    inbox: AlertInbox,
) -> None:
    kube.kubectl("create", "namespace", NAMESPACE)
    kube.kubectl(
        "create", "secret", "generic", "alert-hook", "-n", NAMESPACE, f"--from-literal=url={inbox.url}"
    )
    demand = f'sum(DCGM_FI_DEV_GPU_UTIL{{namespace="{NAMESPACE}", pod="{DEMAND_POD}"}})'
    apply(
        kube,
        deployment(NAMESPACE, "chat", 2, gpus=1),
        policy(
            NAMESPACE,
            "anomalies",
            anomalyDetection={
                "demandQuery": demand,
                "sustainedFor": "10s",
                "learningPeriod": "10s",
                "action": "ScaleToMinimum",
            },
            alerting={
                "anomalyDetected": {"severity": "CRITICAL", "recipientGroup": "mlops-team"},
                "webhookSecretRef": {"name": "alert-hook", "key": "url"},
            },
        ),
    )
    eventually(lambda: len(pod_names(kube)) == 2, timeout=60, what="two chat pods")
    dcgm_exporter.set_utilization(NAMESPACE, DEMAND_POD, 30.0)  # 30 requests/s, steady
    gpus_at(dcgm_exporter, kube, 40.0)
    gpu_prometheus.wait_for_scrape()

    with running_operator(
        kube,
        tmp_path,
        "--sample-interval",
        "2",
        "--prometheus-url",
        gpu_prometheus.url,
        env={"FINOPS_ALERT_ALLOW_PRIVATE_URLS": "true"},  # the inbox is plain http on 127.0.0.1
    ) as operator:
        # Learning, then judged clean for longer than sustainedFor: nothing raised, nothing sent.
        eventually(lambda: anomaly_condition(kube).get("reason") == "NoAnomaly", timeout=60, what="judged")
        time.sleep(12)  # a clean period longer than sustainedFor
        clean = anomaly_condition(kube)
        assert clean["status"] == "False" and clean["reason"] == "NoAnomaly"
        assert "explained by its demand" in clean["message"]
        assert events(kube, NAMESPACE, "AnomalyDetected") == [] and inbox.alerts == []
        assert anomaly_flag(operator.metrics(), "BusyWithoutDemand") == 0
        assert replicas(kube, NAMESPACE, "chat") == 2

        # Injected: the GPUs pegged while demand stays where it was (a stuck job on the workload's GPUs).
        gpus_at(dcgm_exporter, kube, 95.0)
        raised = eventually(
            lambda: (c := anomaly_condition(kube)).get("status") == "True" and c, timeout=60, what="raised"
        )
        assert raised["reason"] == "BusyWithoutDemand"
        assert (
            "chat: BusyWithoutDemand: gpuUtilization 0.95 fraction observed, expected 0.4"
            in raised["message"]
        )
        assert "at demand 30" in raised["message"] and " since " in raised["message"]
        status = kube.get_json("fop", "-n", NAMESPACE, "anomalies")["status"]
        evidence = status["anomalies"][0]["anomaly"]
        assert evidence["kind"] == "BusyWithoutDemand" and evidence["observed"] == 0.95
        assert evidence["expectedHigh"] < 0.95 and evidence["sustainedSeconds"] >= 10

        detected = eventually(lambda: events(kube, NAMESPACE, "AnomalyDetected"), timeout=20)
        assert {e["involvedObject"]["kind"] for e in detected} == {"FinOpsPolicy", "Deployment"}
        assert all(e["type"] == "Warning" and "[CRITICAL -> mlops-team]" in e["message"] for e in detected)
        alert = eventually(lambda: inbox.alerts and inbox.alerts[0], timeout=20, what="the alert")
        assert alert["labels"]["alertname"] == "AnomalyDetected"
        assert (
            alert["labels"]["severity"] == "CRITICAL" and alert["labels"]["recipient_group"] == "mlops-team"
        )
        assert (
            alert["labels"]["deployment"] == "chat" and "BusyWithoutDemand" in alert["annotations"]["summary"]
        )
        assert anomaly_flag(operator.metrics(), "BusyWithoutDemand") == 1

        # The action (Enforce): held at its minimum, recorded on the workload for restore.
        eventually(lambda: replicas(kube, NAMESPACE, "chat") == 1, timeout=20, what="scaled to the minimum")
        annotations = kube.get_json("deploy", "-n", NAMESPACE, "chat")["metadata"]["annotations"]
        assert annotations["finops.dev/previous-replicas"] == "2"
        assert annotations["finops.dev/scaled-by"] == "anomalies:anomaly"
        eventually(lambda: len(pod_names(kube)) == 1, timeout=60, what="one pod left")

        # Fixed: once back within its band for sustainedFor, the anomaly clears and the replicas return.
        gpus_at(dcgm_exporter, kube, 40.0)
        eventually(lambda: replicas(kube, NAMESPACE, "chat") == 2, timeout=60, what="restored")
        assert anomaly_condition(kube)["status"] == "False"
        assert events(kube, NAMESPACE, "AnomalyCleared") and events(kube, NAMESPACE, "AnomalyRestored")
        restored = kube.get_json("deploy", "-n", NAMESPACE, "chat")["metadata"].get("annotations") or {}
        assert not any(key.startswith("finops.dev/") for key in restored)
        assert len(inbox.alerts) == 1  # one alert per anomaly, not one per sample
