from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting import ForecastConfig
from forecasting.calibration import CalibrationState
from forecasting.fallback import FallbackReason
from forecasting.plotting import plot_replay
from forecasting.replay import (
    ReplaySettings,
    run_comparison,
    summarize,
    summarize_validation,
    walk_forward_forecasts,
)
from forecasting.simulate import (
    CapacityModel,
    HpaPolicy,
    HpaSettings,
    PredictivePolicy,
    foresight_run,
    oracle_run,
    simulate,
)
from forecasting.synthetic import synthetic_demand

CAP = CapacityModel(capacity_per_replica=10.0, step_seconds=60.0, startup_steps=1)


def hpa(target: float = 0.5, window: float = 300.0, cap: CapacityModel = CAP) -> HpaPolicy:
    return HpaPolicy(HpaSettings(target_utilization=target, scale_down_window_seconds=window), cap)


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
    assert run.misses.tolist() == [True, True, True, False]
    assert run.gpu_hours == pytest.approx(35 / 60)


def test_a_window_scores_only_its_own_steps() -> None:
    demand = np.array([50.0, 60.0, 60.0, 60.0, 20.0, 20.0])
    run = simulate(demand, hpa(target=1.0, window=0.0), CAP, 1, 6, initial_replicas=5)
    head, tail = run.window(0, demand[1:3], CAP), run.window(2, demand[3:], CAP)
    assert head.replicas.tolist() == run.replicas.tolist()[:2]
    assert tail.replicas.tolist() == run.replicas.tolist()[2:]
    assert head.gpu_hours + tail.gpu_hours == pytest.approx(run.gpu_hours)


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    demand = np.array([100.0] * 3 + [20.0] * 10)
    run = simulate(demand, hpa(target=1.0), CAP, 1, len(demand), initial_replicas=10)
    # Low recommendations start at step 4; the high ones from steps 1-3 stay in the 300 s window until step 8.
    assert run.replicas.tolist() == [10, 10, 10, 10, 10, 10, 10, 2, 2, 2, 2, 2]
    no_window = simulate(demand, hpa(target=1.0, window=0.0), CAP, 1, len(demand), initial_replicas=10)
    assert no_window.replicas.tolist()[3] == 2


def test_oracle_accounting() -> None:
    demand = np.array([5.0, 15.0, 25.0, 0.0])
    oracle = oracle_run(demand, CAP, 0, 4)
    assert oracle.replicas.tolist() == [1, 2, 3, 1]
    assert oracle.under_intervals == 0.0


# Demand in replicas (capacity 10 per replica); start-up 2 steps.
@pytest.mark.parametrize(
    ("need", "totals", "ready", "extra_before_window"),
    [
        ([2, 2, 2], [2, 2, 2], [2, 2, 2], 0),  # provisioned at the window start: no start-up paid
        ([1, 1, 1, 1, 2, 2], [1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 2, 2], 0),  # first run pays 2 steps ahead
        ([1, 2, 1, 1, 2, 1], [2, 2, 2, 2, 2, 1], [1, 2, 2, 2, 2, 1], 1),  # gap of 2 <= start-up: kept
        (
            [1, 2, 1, 1, 1, 2],
            [2, 2, 1, 2, 2, 2],
            [1, 2, 1, 1, 1, 2],
            1,
        ),  # gap of 3 > start-up: released, re-created 2 steps ahead (cost 2, not 3)
        ([1, 2, 2, 1], [2, 2, 2, 1], [1, 2, 2, 1], 1),  # start-up partly before the window: still paid
    ],
    ids=["at-window-start", "first-run", "short-gap-kept", "long-gap-released", "before-window"],
)
def test_foresight(need: list[int], totals: list[int], ready: list[int], extra_before_window: int) -> None:
    cap = CapacityModel(capacity_per_replica=10.0, step_seconds=3600.0, startup_steps=2)
    demand = np.array(need, dtype=np.float64) * 10.0
    run = foresight_run(demand, cap, 0, len(demand))
    assert run.replicas.tolist() == totals
    assert run.ready.tolist() == ready
    assert run.under_intervals == 0.0
    assert run.gpu_hours == pytest.approx(sum(totals) + extra_before_window)


def test_foresight_lies_between_the_oracle_and_any_policy() -> None:
    rng = np.random.default_rng(4)
    demand = rng.gamma(4.0, 10.0, 400)
    cap = CapacityModel(capacity_per_replica=10.0, step_seconds=300.0, startup_steps=2)
    oracle, foresight = oracle_run(demand, cap, 50, 400), foresight_run(demand, cap, 50, 400)
    hpa_run = simulate(demand, hpa(0.4, cap=cap), cap, 50, 400, initial_replicas=10)
    assert oracle.gpu_hours < foresight.gpu_hours < hpa_run.gpu_hours


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


def predictive(plans: list[float], *, margin: float = 0.0, substeps: int = 1) -> PredictivePolicy:
    cap = CapacityModel(10.0, 60.0 / substeps, startup_steps=substeps)
    return PredictivePolicy(
        plans=np.array(plans),
        units=np.ones(len(plans)),
        first=0,
        capacity=cap,
        substeps=substeps,
        startup_decisions=1,
        calibration=CalibrationState.start(target=0.01, lead=2, margin=margin, scale=1.0, now=0.0),
        hpa=hpa(0.5, window=0.0, cap=cap),
        min_history_seconds=0.0,
    )


def test_predictive_follows_the_plan_but_never_below_the_last_need() -> None:
    demand = np.array([30.0, 30.0, 10.0, 10.0, 10.0, 50.0])
    run = simulate(demand, predictive([30.0, 20.0, 10.0, 10.0, 50.0, 50.0]), CAP, 1, 6, initial_replicas=3)
    # Steps 1-2 plan 2 then 1 replica but the interval just seen needed 3; then the plan leads the jump.
    assert run.replicas.tolist() == [3, 3, 1, 5, 5]


def test_predictive_falls_back_to_the_hpa_without_a_forecast() -> None:
    demand = np.array([50.0] * 8)
    policy = predictive([np.nan] * 8)
    run = simulate(demand, policy, CAP, 1, 8, initial_replicas=5)
    assert run.replicas.tolist() == [10] * 7  # the HPA at 50 %: 50 / (10 * 0.5)
    assert set(policy.reasons) == {FallbackReason.MODEL_FAILED}


def test_predictive_never_scales_down_on_missing_data() -> None:
    demand = np.array([50.0, 50.0, np.nan, np.nan, 50.0])
    policy = predictive([10.0] * 5)
    run = simulate(demand, policy, CAP, 1, 5, initial_replicas=5)
    assert run.replicas.tolist()[2:4] == [5, 5]  # held while the samples are missing
    assert policy.reasons[2:4] == [FallbackReason.METRICS_UNAVAILABLE] * 2


def test_predictive_decides_per_interval_while_the_hpa_evaluates_every_substep() -> None:
    demand = np.repeat(np.array([20.0, 20.0, 20.0, 20.0]), 4)
    policy = predictive([20.0] * 4, substeps=4)
    simulate(demand, policy, policy.capacity, 0, len(demand), initial_replicas=2)
    assert len(policy.reasons) == 4


def test_a_miss_raises_the_policys_margin() -> None:
    demand = np.array([10.0, 10.0, 10.0, 60.0, 10.0, 10.0])
    policy = predictive([10.0] * 6)
    simulate(demand, policy, CAP, 1, 6, initial_replicas=1)
    assert policy.headrooms[-1] > policy.headrooms[0]


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


def test_walk_forward_without_a_model_leaves_rows_empty() -> None:
    series = synthetic_demand(3, pd.Timedelta(hours=1), seed=2, bursts=0)
    config = ForecastConfig(
        step=pd.Timedelta(hours=1), horizon=2, weekly=False, min_history=pd.Timedelta(days=5)
    )
    table = walk_forward_forecasts(series, 30, 40, horizon=2, quantiles=(0.9,), config=config, refit_every=5)
    assert np.isnan(table.mean).all()
    assert set(table.models) == {"failed"}


def write_trace(series: pd.Series, path: Path) -> Path:
    """The traces' CSV format: seconds since the start, value."""
    seconds = (series.index - series.index[0]).total_seconds().astype(int)
    pd.DataFrame({"timestamp": seconds, "value": series.to_numpy()}).to_csv(path, index=False)
    return path


def test_run_comparison_on_a_small_trace(tmp_path: Path) -> None:
    trace = write_trace(synthetic_demand(10, pd.Timedelta(hours=1), seed=5, noise=0.1), tmp_path / "tiny.csv")
    settings = ReplaySettings(
        decision_interval=pd.Timedelta(hours=1),
        history=pd.Timedelta(days=4),
        hpa_targets=(0.3, 0.5, 0.7),
        service_levels=(0.005, 0.02),
        forecast=ForecastConfig(weekly=False),
    )
    report = run_comparison(trace, settings)
    assert [level.service_level for level in report.levels] == [0.005, 0.02]
    assert report.oracle.gpu_hours <= report.foresight.gpu_hours
    for level in report.levels:
        assert level.predictive.gpu_hours >= report.foresight.gpu_hours
        assert len(level.predictive.replicas) == len(report.test_demand)
    table = report.to_table()
    assert "/foresight" in table and "MASE" in table
    assert len(report.accuracy) == settings.accuracy_horizon
    summary = summarize([report, report])
    assert "geometric mean over 2 trace(s)" in summary
    validation = report.validation_window
    for level in report.levels:  # the same run, scored on its warm-up
        steps = len(level.predictive_validation.replicas)
        assert steps == (validation[1] - validation[0]) / report.step + 1
        assert level.predictive_validation.gpu_hours >= report.foresight_validation.gpu_hours
    shown = summarize_validation([report])
    assert "validation geometric mean over 1 trace(s)" in shown and "test" not in shown
    plot = plot_replay(report, tmp_path / "replay.png")  # here, to reuse the replay (seconds of CPU)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_fine_grid_repeats_each_interval_for_the_hpa(tmp_path: Path) -> None:
    trace = write_trace(synthetic_demand(8, pd.Timedelta(hours=1), seed=6, noise=0.1), tmp_path / "fine.csv")
    settings = ReplaySettings(
        decision_interval=pd.Timedelta(hours=1),
        startup_delay=pd.Timedelta(hours=2),
        hpa_sync=pd.Timedelta(minutes=15),
        history=pd.Timedelta(days=4),
        hpa_targets=(0.5, 0.7),
        service_levels=(0.005,),
        forecast=ForecastConfig(weekly=False),
    )
    report = run_comparison(trace, settings)
    assert report.substeps == 4
    assert report.capacity.startup_steps == 8
    assert len(report.test_demand) == len(report.test_timestamps) == 4 * 48


def test_a_forecast_that_keeps_missing_hands_control_to_the_hpa() -> None:
    demand = np.array([10.0, 50.0] * 20)  # the reactive floor, one interval late, misses every burst
    policy = predictive([10.0] * 40)  # and the plan never sees them coming
    run = simulate(demand, policy, CAP, 1, 40, initial_replicas=1)
    lost = policy.reasons.index(FallbackReason.COVERAGE_LOST)
    assert 2 <= lost <= 10  # a few misses at a 1 % target are already implausible
    assert set(policy.reasons[lost:]) == {FallbackReason.COVERAGE_LOST}
    # The HPA's own answers (50 % target, no stabilisation window here): 10 after a burst, 2 after a lull.
    assert set(run.replicas.tolist()[lost + 1 :]) == {2, 10}
