"""Predictive scaling end to end: seeded demand history in a real Prometheus, the real operator
forecasting it, and the real HPA controller acting on the floor the operator sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_finopspolicy_enforcement import condition, deployment, policy, status_of
from tests.kube import Kube, eventually
from tests.operator_process import running_operator
from tests.prometheus_harness import HistorySeries, MakePrometheus

pytestmark = [pytest.mark.prometheus]
STEP = 300
DAY = 86400
TROUGH, PEAK = 10.0, 100.0  # requests/s; one replica serves 20


def daily_history(service: str, peak_offset: float, days: float) -> HistorySeries:
    """A daily hour-long peak starting ``peak_offset`` seconds from now (negative: already past today)."""
    now = time.time()
    end = (now // STEP) * STEP - STEP
    start = end - days * DAY
    peak_start = now + peak_offset
    samples = []

    def level(t: float) -> float:
        return PEAK if (t - peak_start) % DAY < 3600 else TROUGH

    t = start
    while t <= end:
        samples.append((t, level(t)))
        t += STEP
    # The demand now: the operator judges the last interval (and holds replicas without it), and a test
    # lasts well within Prometheus's 5-minute lookback of this sample.
    samples.append((now - 1, level(now - 1)))
    return HistorySeries("demand_rps", {"service": service}, samples)


def predictive_policy(namespace: str, demand_query: str, **predictive: Any) -> dict[str, Any]:
    return policy(
        namespace,
        "forecast",
        autoScale={"minReplicas": 1, "maxReplicas": 10, "cpuUtilizationPercentage": 70},
        predictiveScaling={
            "enabled": True,
            "demandQuery": demand_query,
            "targetPerReplica": 20,
            "horizonMinutes": 60,
            "leadTimeMinutes": 10,
            "model": "seasonalNaive",
            "minimumHistoryHours": 48,
            **predictive,
        },
    )


def hpa_min(kube: Kube, namespace: str) -> int | None:
    found = kube.get_json("hpa", "-n", namespace)["items"]
    return int(found[0]["spec"]["minReplicas"]) if found else None


def test_floor_rises_before_the_predicted_peak_and_falls_after_it(
    kube: Kube, tmp_path: Path, make_prometheus: MakePrometheus
) -> None:
    prometheus = make_prometheus(
        history=[
            daily_history("ahead", peak_offset=10 * 60, days=3),  # the daily peak begins in 10 minutes
            daily_history("passed", peak_offset=-70 * 60, days=3),  # today's peak ended 10 minutes ago
            daily_history("young", peak_offset=0, days=0.25),  # 6 hours: not enough to forecast
        ]
    )
    cases = {"pred-ahead": "ahead", "pred-young": "young"}
    for namespace, service in cases.items():
        kube.kubectl("create", "namespace", namespace)
        kube.kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(
                [
                    deployment(namespace, "chat", 1, gpus=1),
                    predictive_policy(namespace, f'sum(demand_rps{{service="{service}"}})'),
                ]
            ),
        )

    with running_operator(kube, tmp_path, "--sample-interval", "3", "--prometheus-url", prometheus.url):
        # Before the peak: the floor covers the peak demand (100 req/s / 20 per replica = 5 replicas).
        eventually(lambda: hpa_min(kube, "pred-ahead") == 5, timeout=90, what="floor raised to 5")
        ready = condition(kube, "pred-ahead", "forecast", "PredictionReady")
        assert ready is not None and ready["status"] == "True" and ready["reason"] == "Predicted"
        prediction = status_of(kube, "pred-ahead", "forecast")["prediction"]
        assert prediction["model"] == "seasonal_naive"
        assert prediction["recommendedReplicas"] == 5
        assert prediction["nextPeak"] == pytest.approx(PEAK, rel=0.05)
        assert prediction["mase"] is not None and prediction["computedAt"]
        # The real HPA controller follows the raised floor.
        eventually(
            lambda: kube.get_json("deploy", "-n", "pred-ahead", "chat")["spec"]["replicas"] == 5,
            timeout=60,
            what="HPA scaled up ahead of the peak",
        )

        # After the peak the same policy lowers the same HPA's floor again. A test cannot wait for the
        # peak to pass, so it points the policy at a series whose daily peak ended ten minutes ago
        # (the spec change also shows a refit: the cached forecaster is dropped when settings change).
        kube.kubectl(
            "patch",
            "fop",
            "-n",
            "pred-ahead",
            "forecast",
            "--type=merge",
            "-p",
            '{"spec":{"predictiveScaling":{"demandQuery":"sum(demand_rps{service=\\"passed\\"})"}}}',
        )
        eventually(lambda: hpa_min(kube, "pred-ahead") == 1, timeout=60, what="floor back at the minimum")
        passed = status_of(kube, "pred-ahead", "forecast")["prediction"]
        assert passed["recommendedReplicas"] == 1

        # Too little history: refuse with a reason, keep the autoScale minimum.
        young = eventually(
            lambda: (c := condition(kube, "pred-young", "forecast", "PredictionReady")) and c,
            timeout=60,
            what="PredictionReady on the young series",
        )
        assert young["status"] == "False" and young["reason"] == "InsufficientHistory"
        assert "need" in young["message"]
        assert hpa_min(kube, "pred-young") == 1
