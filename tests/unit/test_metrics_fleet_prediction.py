"""EdgeFleet and prediction series: every site state gets a series, a rollback counts once, a missing
forecast leaves no stale value, and deleted objects leave no series."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from prometheus_client import REGISTRY

from finops_operator import metrics
from finops_operator.api.finopspolicy import PredictiveScaling
from finops_operator.handlers.prediction import ForecasterCache, next_step, predict
from finops_operator.settings import Settings
from forecasting import BacktestScore, Forecast


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_fleet_series_follow_the_status_and_vanish_with_the_fleet() -> None:
    sites = {"total": 4, "updated": 2, "ready": 3, "offline": 1}
    metrics.record_fleet("edge-m", "f", wave=2, sites=sites, degraded=False, rolled_back=False)
    assert value("finops_edgefleet_current_wave", namespace="edge-m", fleet="f") == 2
    assert value("finops_edgefleet_sites", namespace="edge-m", fleet="f", state="failed") == 0
    assert value("finops_edgefleet_sites", namespace="edge-m", fleet="f", state="offline") == 1
    assert value("finops_edgefleet_rollbacks_total", namespace="edge-m", fleet="f") == 0
    metrics.record_fleet("edge-m", "f", wave=0, sites=sites, degraded=True, rolled_back=True)
    metrics.record_fleet("edge-m", "f", wave=0, sites=sites, degraded=True, rolled_back=False)
    assert value("finops_edgefleet_rollbacks_total", namespace="edge-m", fleet="f") == 1
    assert value("finops_edgefleet_degraded", namespace="edge-m", fleet="f") == 1
    metrics.forget_fleet("edge-m", "f")
    assert value("finops_edgefleet_degraded", namespace="edge-m", fleet="f") is None
    assert value("finops_edgefleet_sites", namespace="edge-m", fleet="f", state="total") is None
    metrics.forget_fleet("edge-m", "f")  # forgetting twice is harmless


def test_prediction_series_vanish_without_a_forecast_and_with_the_policy() -> None:
    metrics.record_prediction("pred-m", "p", peak=12.5, replicas=3, mae=1.5)
    assert value("finops_prediction_demand_peak", namespace="pred-m", policy="p") == 12.5
    metrics.record_prediction("pred-m", "p", peak=12.5, replicas=3, mae=None)
    assert value("finops_prediction_backtest_mae", namespace="pred-m", policy="p") is None
    metrics.forget_policy("pred-m", "p")
    assert value("finops_prediction_recommended_replicas", namespace="pred-m", policy="p") is None


def test_demand_series_carry_the_interval_and_vanish_without_a_forecast() -> None:
    metrics.record_demand("dem-m", "p", observed=40.0, forecast=(30.0, 42.0, 55.0))
    assert value("finops_demand_observed", namespace="dem-m", policy="p") == 40
    bounds = {
        b: value("finops_demand_forecast", namespace="dem-m", policy="p", bound=b)
        for b in metrics.FORECAST_BOUNDS
    }
    assert bounds == {"lower": 30, "plan": 42, "upper": 55}
    metrics.record_demand("dem-m", "p", observed=41.0, forecast=None)  # e.g. the model failed
    assert value("finops_demand_forecast", namespace="dem-m", policy="p", bound="plan") is None
    assert value("finops_demand_observed", namespace="dem-m", policy="p") == 41
    metrics.forget_policy("dem-m", "p")
    assert value("finops_demand_observed", namespace="dem-m", policy="p") is None


def test_reconcile_errors_count_per_kind_namespace_and_reason() -> None:
    before = value(
        "finops_reconcile_errors_total", kind="EdgeFleet", namespace="err-m", reason="WriteRefused"
    )
    metrics.record_reconcile_error("EdgeFleet", "err-m", "WriteRefused")
    after = value("finops_reconcile_errors_total", kind="EdgeFleet", namespace="err-m", reason="WriteRefused")
    assert after == (before or 0) + 1


def test_the_exported_forecast_is_the_next_step_with_its_80_percent_interval() -> None:
    stamps = pd.date_range("2026-11-22 12:05", periods=3, freq="5min", tz="UTC")
    forecast = Forecast(
        timestamps=stamps,
        mean=np.array([42.0, 50.0, 60.0]),
        quantiles={
            0.1: np.array([30.0, 35.0, 40.0]),
            0.5: np.array([41.0, 49.0, 59.0]),
            0.9: np.array([55.0, 66.0, 80.0]),
        },
        model_name="seasonal_naive",
        backtest=BacktestScore("seasonal_naive", mae=1.0, mase=0.5, mae_by_horizon=(1.0,), origins=10),
    )
    assert next_step(forecast) == (30.0, 42.0, 55.0)
    assert next_step(None) is None


def test_a_prediction_without_a_forecast_leaves_no_stale_demand_series() -> None:
    metrics.record_demand("dem-p", "p", observed=40.0, forecast=(30.0, 42.0, 55.0))
    spec = PredictiveScaling(enabled=True, demand_query="q", target_per_replica=20)
    prediction = predict(
        operator_settings=Settings(),  # no Prometheus URL: no observation, no forecast
        spec=spec,
        key=("dem-p", "p"),
        cache=ForecasterCache(),
        now=datetime(2026, 12, 1, tzinfo=UTC),
        logger=logging.getLogger("test"),
    )
    assert prediction.metrics_error
    assert value("finops_demand_observed", namespace="dem-p", policy="p") is None
    assert value("finops_demand_forecast", namespace="dem-p", policy="p", bound="upper") is None
