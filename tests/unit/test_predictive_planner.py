from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from finops_operator.api.finopspolicy import PredictiveScaling
from finops_operator.planners.policy.predictive import (
    PredictionInput,
    prediction_condition,
    projected_exhaustion,
    recommend,
)
from forecasting import BacktestScore, Forecast

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETTINGS = PredictiveScaling(
    enabled=True,
    demand_query="q",
    target_per_replica=20,
    horizon_minutes=60,
    lead_time_minutes=10,
    quantile=0.9,
)


def forecast(values: list[float], upper: list[float] | None = None) -> Forecast:
    stamps = pd.date_range(NOW, periods=len(values), freq="5min", tz="UTC")
    mean = np.array(values, dtype=float)
    return Forecast(
        stamps,
        mean,
        {0.5: mean, 0.9: np.array(upper or values, dtype=float)},
        "test",
        BacktestScore("test", 1.0, 0.8, (1.0,), 10),
    )


@pytest.mark.parametrize(
    ("upper", "expected"),
    [
        ([10, 10, 10, 10, 200, 200], 1),  # the peak lies beyond lead time + one step: not yet
        ([10, 10, 100, 10, 10, 10], 5),  # within the lead time: covered now
        ([10, 10, 10, 100, 10, 10], 5),  # exactly at lead time + one step
        ([10, 10, 10, 10, 10, 10], 1),
        ([0, 0, 0, 0], 1),  # never below the autoScale minimum
        ([1000, 1000, 1000, 1000], 8),  # never above the maximum
    ],
    ids=["peak-beyond-lead", "peak-within-lead", "peak-at-lead-plus-step", "flat", "zero", "clamped-max"],
)
def test_floor_covers_the_upper_quantile_over_the_lead_time(upper: list[float], expected: int) -> None:
    result = recommend(
        SETTINGS, forecast(upper), bounds=(1, 8), gpus_per_replica=1, remaining_gpu_hours=None, now=NOW
    )
    assert result.replicas == expected and not result.budget_capped


def test_remaining_budget_caps_the_floor_and_says_so() -> None:
    result = recommend(
        SETTINGS, forecast([100] * 12), bounds=(1, 8), gpus_per_replica=2, remaining_gpu_hours=6.0, now=NOW
    )
    assert (result.replicas, result.budget_capped) == (3, True)  # 6 GPU-h / (2 GPUs x 1 h)
    condition = prediction_condition(SETTINGS, PredictionInput(NOW, forecast=forecast([1])), result)
    assert condition is not None and "capped by the remaining GPU-hour budget" in condition.message


def test_forecast_projects_budget_exhaustion_within_the_horizon() -> None:
    rising = forecast([20, 20, 200, 200, 200, 200])
    when = projected_exhaustion(
        rising,
        target_per_replica=20,
        gpus_per_replica=1,
        replicas_floor=1,
        used_gpu_hours=9.0,
        limit_gpu_hours=10.0,
    )
    # 1 replica for two steps (1/6 GPU-h), then 10 replicas (10/12 GPU-h per step): over on step 3.
    assert when == NOW + timedelta(minutes=10)
    assert (
        projected_exhaustion(
            forecast([20] * 6),
            target_per_replica=20,
            gpus_per_replica=1,
            replicas_floor=1,
            used_gpu_hours=0.0,
            limit_gpu_hours=10.0,
        )
        is None
    )


@pytest.mark.parametrize(
    ("prediction", "reason"),
    [
        (None, "MetricsUnavailable"),
        (PredictionInput(NOW, metrics_error="Prometheus at x unreachable"), "MetricsUnavailable"),
        (
            PredictionInput(NOW, insufficient_history="InsufficientHistory: need 2 days, have 5 hours"),
            "InsufficientHistory",
        ),
    ],
    ids=["no-prometheus", "unreachable", "short-history"],
)
def test_prediction_ready_explains_why_not(prediction: PredictionInput | None, reason: str) -> None:
    condition = prediction_condition(SETTINGS, prediction, None)
    assert condition is not None and condition.status == "False" and condition.reason == reason
    assert "autoScale minimum" in condition.message


def test_disabled_prediction_is_reported_not_hidden() -> None:
    disabled = PredictiveScaling(enabled=False)
    condition = prediction_condition(disabled, None, None)
    assert condition is not None and condition.reason == "PredictionDisabled"
    assert prediction_condition(None, None, None) is None
