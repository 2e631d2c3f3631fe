from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting import ForecastConfig
from forecasting.simulate import (
    CapacityModel,
    HpaPolicy,
    HpaSettings,
    PredictivePolicy,
    ReplaySettings,
    StaticPolicy,
    oracle_run,
    run_comparison,
    simulate,
    walk_forward_forecasts,
)
from forecasting.synthetic import synthetic_demand

CAP = CapacityModel(capacity_per_replica=10.0, step_seconds=60.0, startup_steps=1)


def hpa(target: float = 0.5, window: float = 300.0) -> HpaPolicy:
    return HpaPolicy(HpaSettings(target_utilization=target, scale_down_window_seconds=window), CAP)


def test_hpa_ignores_changes_within_tolerance() -> None:
    demand = np.array([50.0, 52.0, 52.0, 52.0])  # 10 ready replicas at 50 %: ratio 1.04 < 1.1
    run = simulate(demand, hpa(), CAP, 1, 4, initial_replicas=10)
    assert run.replicas.tolist() == [10, 10, 10]
    assert run.scaling_actions == 0


def test_hpa_scales_by_the_ratio_outside_tolerance() -> None:
    demand = np.array([50.0, 60.0, 60.0, 60.0])
    run = simulate(demand, hpa(), CAP, 1, 4, initial_replicas=10)
    assert run.replicas.tolist() == [10, 12, 12]  # ceil(10 * 1.2); decided on the last completed step


def test_start_up_delay_before_new_capacity_counts() -> None:
    demand = np.array([50.0, 100.0, 100.0, 100.0, 100.0])
    run = simulate(
        demand, hpa(target=1.0), CapacityModel(10.0, 60.0, startup_steps=2), 1, 5, initial_replicas=5
    )
    assert run.replicas.tolist() == [5, 10, 10, 10]
    assert run.ready.tolist() == [5, 5, 5, 10]
    assert run.under_intervals == pytest.approx(0.75)
    assert run.gpu_hours == pytest.approx(35 / 60)


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    demand = np.array([100.0] * 3 + [20.0] * 10)
    run = simulate(demand, hpa(target=1.0), CAP, 1, len(demand), initial_replicas=10)
    # Low recommendations start at step 4; the high ones from steps 1-3 stay in the 300 s window until step 8.
    assert run.replicas.tolist() == [10, 10, 10, 10, 10, 10, 10, 2, 2, 2, 2, 2]
    no_window = simulate(demand, hpa(target=1.0, window=0.0), CAP, 1, len(demand), initial_replicas=10)
    assert no_window.replicas.tolist()[3] == 2


def test_predictive_floor_acts_as_min_replicas() -> None:
    demand = np.array([10.0] * 6)
    floors = np.array([1, 1, 4, 4, 1, 1], dtype=np.int64)
    policy = HpaPolicy(HpaSettings(target_utilization=1.0, scale_down_window_seconds=0.0), CAP, floors, 0)
    run = simulate(demand, policy, CAP, 1, 6, initial_replicas=1)
    assert run.replicas.tolist() == [1, 4, 4, 1, 1]


def test_static_and_oracle_accounting() -> None:
    demand = np.array([5.0, 15.0, 25.0, 0.0])
    static = simulate(demand, StaticPolicy(2), CAP, 0, 4, initial_replicas=2)
    assert static.under_intervals == pytest.approx(0.25)
    assert static.under_demand == pytest.approx(5.0 / 45.0)
    oracle = oracle_run(demand, CAP, 0, 4)
    assert oracle.replicas.tolist() == [1, 2, 3, 1]
    assert oracle.under_intervals == 0.0


def test_decisions_do_not_see_the_future() -> None:
    rng = np.random.default_rng(1)
    demand = rng.uniform(10, 100, 60)
    altered = demand.copy()
    altered[30:] *= 5.0
    a = simulate(demand, hpa(), CAP, 5, 60, initial_replicas=5)
    b = simulate(altered, hpa(), CAP, 5, 60, initial_replicas=5)
    # Decision at step 30 sees demand[:30] only, so replicas up to and including step 30 are identical.
    assert a.replicas[: 30 - 5 + 1].tolist() == b.replicas[: 30 - 5 + 1].tolist()
    assert a.replicas.tolist() != b.replicas.tolist()


def test_walk_forward_forecasts_ignore_later_data() -> None:
    series = synthetic_demand(6, pd.Timedelta(hours=1), seed=2, bursts=0)
    altered = series.copy()
    altered.iloc[120:] *= 3.0
    config = ForecastConfig(step=pd.Timedelta(hours=1), horizon=3, weekly=False)
    # Refits every 7 steps: each inherits its predecessor's error pool, which must hold resolved errors only.
    a = walk_forward_forecasts(
        series, 100, 130, horizon=3, quantiles=(0.5, 0.9, 0.99), config=config, refit_every=7
    )
    b = walk_forward_forecasts(
        altered, 100, 130, horizon=3, quantiles=(0.5, 0.9, 0.99), config=config, refit_every=7
    )
    upto = 120 - 100 + 1  # the forecast issued at step 120 has seen demand[:120] only
    assert np.array_equal(a.mean[:upto], b.mean[:upto])
    for q in (0.9, 0.99):
        assert np.array_equal(a.quantiles[q][:upto], b.quantiles[q][:upto])
    assert not np.array_equal(a.mean, b.mean)
    # The predictive policy built on those forecasts decides identically up to step 120 as well.
    cap = CapacityModel(capacity_per_replica=20.0, step_seconds=3600.0)
    runs = []
    for table, demand in ((a, series.to_numpy()), (b, altered.to_numpy())):
        floors = np.ceil(table.quantiles[0.99][:, :2].max(axis=1) / 20.0).astype(np.int64)
        runs.append(simulate(demand, PredictivePolicy(floors, 100), cap, 100, 130, initial_replicas=5))
    assert runs[0].replicas[:upto].tolist() == runs[1].replicas[:upto].tolist()


def test_run_comparison_on_a_small_trace(tmp_path: Path) -> None:
    series = synthetic_demand(10, pd.Timedelta(hours=1), seed=5, noise=0.1)
    trace = tmp_path / "tiny.csv"
    pd.DataFrame(
        {
            "timestamp": (series.index - series.index[0]).total_seconds().astype(int),
            "value": series.to_numpy(),
        }
    ).to_csv(trace, index=False)
    settings = ReplaySettings(
        decision_interval=pd.Timedelta(hours=1),
        history=pd.Timedelta(days=4),
        predictive_quantiles=(0.9, 0.99),
        predictive_floor_targets=(1.0,),
        predictive_targets=(None, 1.0),
        forecast=ForecastConfig(weekly=False),
    )
    report = run_comparison(trace, settings)
    assert set(report.at_service_level) == {"static", "hpa", "predictive", "oracle"}
    oracle = report.at_service_level["oracle"].test.gpu_hours
    assert all(c.test.gpu_hours >= oracle for c in report.at_service_level.values())
    table = report.to_table()
    assert "predictive/hpa" in table and "MASE" in table
    assert len(report.accuracy) == settings.accuracy_horizon
