"""Predictive scaling calibrates itself and degrades to the reactive HPA, on the real control plane with
a real Prometheus and the real operator.

Demand history is seeded with promtool; the demand *now* comes from the simulated DCGM exporter (the
GPU is simulated: no GPU here; its utilisation series stands in for the service's demand), scraped by
Prometheus every second, so a test can make a burst happen. Time passing is the operator's 3-second
sample interval: each one is a calibration interval.

Test seams, both real: the forecaster fails because the policy asks for Holt-Winters on 2.5 days of
history (it needs two full days of training before its one-day backtest, and refuses); the Prometheus
outage is the test's Prometheus process being stopped.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dcgm_exporter import DcgmExporter
from tests.integration.test_finopspolicy_enforcement import condition, deployment, status_of
from tests.integration.test_predictive_scaling import hpa_min, predictive_policy
from tests.kube import Kube, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import HistorySeries, MakePrometheus

pytestmark = [pytest.mark.prometheus]
STEP = 300
DAY = 86400
METRIC = "DCGM_FI_DEV_GPU_UTIL"


def noisy_history(namespace: str, level: float, days: float) -> HistorySeries:
    """``days`` of demand around ``level`` (+-20 %, not periodic: the forecast has real errors), up
    to 5-10 minutes ago; the live exporter carries the series on from now."""
    rng = random.Random(9)
    end = (time.time() // STEP) * STEP - STEP
    samples = []
    t = end - days * DAY
    while t <= end:
        samples.append((t, level * (1 + rng.uniform(-0.2, 0.2))))
        t += STEP
    return HistorySeries(METRIC, {"namespace": namespace, "pod": "history"}, samples)


def calibrated_policy(namespace: str, **predictive: Any) -> dict[str, Any]:
    query = f'sum({METRIC}{{namespace="{namespace}"}})'
    return predictive_policy(namespace, query, horizonMinutes=30, **predictive)


def start(kube: Kube, namespace: str, spec: dict[str, Any]) -> None:
    kube.kubectl("create", "namespace", namespace)
    kube.kubectl(
        "apply", "-f", "-", stdin=yaml.safe_dump_all([deployment(namespace, "chat", 1, gpus=1), spec])
    )


def calibration(kube: Kube, namespace: str) -> dict[str, Any]:
    return dict(status_of(kube, namespace, "forecast").get("calibration") or {})


def deployment_replicas(kube: Kube, namespace: str) -> tuple[int, int]:
    found = kube.get_json("deploy", "-n", namespace, "chat")
    return int(found["spec"]["replicas"]), int(found.get("status", {}).get("readyReplicas") or 0)


def reason(kube: Kube, namespace: str) -> str | None:
    found = condition(kube, namespace, "forecast", "PredictionReady")
    return found["reason"] if found else None


def test_a_missed_burst_raises_the_margin_and_calm_intervals_lower_it(
    kube: Kube, tmp_path: Path, make_prometheus: MakePrometheus, dcgm_exporter: DcgmExporter
) -> None:
    namespace = "pred-calibrate"
    dcgm_exporter.set_utilization(namespace, "chat-demand", 10.0)
    prometheus = make_prometheus(exporters=[dcgm_exporter], history=[noisy_history(namespace, 10.0, 3)])
    # No lead time (one interval per decision) and a 5 % service level, so that one calm interval moves
    # the margin visibly (by step x target); the mechanism is the same at the default 0.5 %.
    start(kube, namespace, calibrated_policy(namespace, leadTimeMinutes=0, maxUnderProvisionedPercent=5))

    with running_operator(kube, tmp_path, "--sample-interval", "3", "--prometheus-url", prometheus.url):
        eventually(
            lambda: deployment_replicas(kube, namespace) == (1, 1), timeout=90, what="one ready replica"
        )
        calm = eventually(
            lambda: (
                (c := calibration(kube, namespace)).get("forecastInCharge")
                and c["intervalsLastDay"] >= 2
                and c
            ),
            timeout=90,
            what="the forecast in charge and calibrating",
        )
        assert reason(kube, namespace) == "Predicted"
        assert calm["missesLastDay"] == 0 and calm["target"] == 0.05 and calm["lead"] == 1
        # Calm intervals (demand 10 against one ready replica serving 20) lower the margin.
        calmer = eventually(
            lambda: (c := calibration(kube, namespace))["intervalsLastDay"] > calm["intervalsLastDay"] and c,
            timeout=30,
            what="another calm interval",
        )
        assert calmer["margin"] < calm["margin"] and calmer["missesLastDay"] == 0

        # A burst the forecast did not see: 100 against 20 served is a miss, and the margin goes up.
        dcgm_exporter.set_utilization(namespace, "chat-demand", 100.0)
        burst = eventually(
            lambda: (c := calibration(kube, namespace))["missesLastDay"] >= 1 and c,
            timeout=30,
            what="the missed burst counted",
        )
        dcgm_exporter.set_utilization(namespace, "chat-demand", 10.0)
        assert burst["margin"] > calmer["margin"]
        assert burst["missRatePercent"] > 0
        # The floor followed the burst (never below what the last interval needed: 100 / 20).
        eventually(lambda: (hpa_min(kube, namespace) or 0) >= 5, timeout=30, what="floor raised by the burst")

        # Calm again: every covered interval lowers the margin from its peak.
        peak = eventually(
            lambda: (c := calibration(kube, namespace))["margin"] >= burst["margin"] and c, timeout=30
        )
        lowered = eventually(
            lambda: (c := calibration(kube, namespace))["margin"] < peak["margin"] and c,
            timeout=30,
            what="the margin lowered by calm intervals",
        )
        assert lowered["missesLastDay"] == peak["missesLastDay"]
        assert lowered["intervalsLastDay"] > peak["intervalsLastDay"]

    # A restart resumes from status: the counters and the margin go on from where they were.
    before = calibration(kube, namespace)
    with running_operator(kube, tmp_path, "--sample-interval", "3", "--prometheus-url", prometheus.url):
        resumed = eventually(
            lambda: (c := calibration(kube, namespace))["updatedAt"] != before["updatedAt"] and c,
            timeout=90,
            what="the first interval after the restart",
        )
        assert resumed["intervalsLastDay"] == before["intervalsLastDay"] + 1
        assert resumed["missesLastDay"] == before["missesLastDay"]
        assert resumed["margin"] < before["margin"]  # one more calm interval, from the stored margin


def test_model_failure_and_prometheus_outage_fall_back_to_the_reactive_hpa(
    kube: Kube, tmp_path: Path, make_prometheus: MakePrometheus, dcgm_exporter: DcgmExporter
) -> None:
    namespace = "pred-fallback"
    dcgm_exporter.set_utilization(namespace, "chat-demand", 60.0)
    prometheus = make_prometheus(exporters=[dcgm_exporter], history=[noisy_history(namespace, 60.0, 2.5)])
    start(kube, namespace, calibrated_policy(namespace, leadTimeMinutes=5))

    def patch_model(model: str) -> None:
        kube.kubectl(
            "patch",
            "fop",
            "-n",
            namespace,
            "forecast",
            "--type=merge",
            "-p",
            f'{{"spec":{{"predictiveScaling":{{"model":"{model}"}}}}}}',
        )

    with running_operator(kube, tmp_path, "--sample-interval", "3", "--prometheus-url", prometheus.url):
        # The forecast in charge: demand 60 at 20 per replica needs at least 3.
        floor = eventually(
            lambda: (
                reason(kube, namespace) == "Predicted" and (m := hpa_min(kube, namespace) or 0) >= 3 and m
            ),
            timeout=90,
            what="the forecast floor",
        )
        eventually(
            lambda: deployment_replicas(kube, namespace)[0] == floor, timeout=60, what="HPA at the floor"
        )

        # The forecaster raises (Holt-Winters refuses 2.5 days): the floor returns to autoScale.minReplicas.
        patch_model("holtWinters")
        eventually(lambda: reason(kube, namespace) == "ModelFailed", timeout=60, what="ModelFailed")
        failed = condition(kube, namespace, "forecast", "PredictionReady")
        assert failed is not None and failed["status"] == "False"
        assert failed["message"].startswith("falling back to the reactive HPA: forecaster failed: ")
        assert "hw_damped" in failed["message"] and "autoScale.minReplicas (1)" in failed["message"]
        eventually(lambda: hpa_min(kube, namespace) == 1, timeout=30, what="floor back at the minimum")
        assert calibration(kube, namespace)["forecastInCharge"] is False  # kept, not dropped

        patch_model("seasonalNaive")
        eventually(
            lambda: reason(kube, namespace) == "Predicted" and hpa_min(kube, namespace) == floor,
            timeout=60,
            what="the forecast back in charge",
        )
        running = deployment_replicas(kube, namespace)[0]

        # Prometheus goes away: no demand data, so nothing is scaled down.
        prometheus.stop()
        eventually(
            lambda: reason(kube, namespace) == "MetricsUnavailable", timeout=60, what="MetricsUnavailable"
        )
        down = condition(kube, namespace, "forecast", "PredictionReady")
        assert down is not None and down["status"] == "False"
        assert down["message"].startswith("falling back to the reactive HPA: no demand data: ")
        assert "never scaled down on missing data" in down["message"]
        kept = calibration(kube, namespace)
        time.sleep(10)  # several samples without Prometheus
        assert (hpa_min(kube, namespace) or 0) >= running
        assert deployment_replicas(kube, namespace)[0] >= running
        assert calibration(kube, namespace)["updatedAt"] == kept["updatedAt"]  # missing data teaches nothing
