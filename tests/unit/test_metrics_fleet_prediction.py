"""EdgeFleet and prediction series: every site state gets a series, a rollback counts once, a missing
forecast leaves no stale value, and deleted objects leave no series."""

from __future__ import annotations

from prometheus_client import REGISTRY

from finops_operator import metrics


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


def test_reconcile_errors_count_per_kind_namespace_and_reason() -> None:
    before = value(
        "finops_reconcile_errors_total", kind="EdgeFleet", namespace="err-m", reason="WriteRefused"
    )
    metrics.record_reconcile_error("EdgeFleet", "err-m", "WriteRefused")
    after = value("finops_reconcile_errors_total", kind="EdgeFleet", namespace="err-m", reason="WriteRefused")
    assert after == (before or 0) + 1
