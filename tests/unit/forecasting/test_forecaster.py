from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from forecasting import ForecastConfig, Forecaster, InsufficientHistoryError, NotFittedError, forecast_series
from forecasting.models import fit_ar
from forecasting.synthetic import synthetic_demand

HOURLY = pd.Timedelta(hours=1)
CONFIG = ForecastConfig(step=HOURLY, horizon=6, weekly=False)


def test_short_history_is_refused_with_a_reason() -> None:
    series = synthetic_demand(5 / 24, pd.Timedelta(minutes=5), seed=1)
    with pytest.raises(InsufficientHistoryError) as info:
        Forecaster().fit(series)
    assert info.value.reason == "InsufficientHistory: need 2 days, have 5 hours"


def test_nan_only_history_is_refused() -> None:
    series = pd.Series(np.nan, index=pd.date_range("2024-01-01", periods=500, freq="5min"))
    with pytest.raises(InsufficientHistoryError):
        Forecaster().fit(series)


def test_min_history_is_configurable() -> None:
    series = synthetic_demand(1, HOURLY, seed=1)
    with pytest.raises(InsufficientHistoryError, match="need 3 days, have 1 day"):
        Forecaster(ForecastConfig(min_history=pd.Timedelta(days=3))).fit(series)


def test_unfitted_forecaster_says_so() -> None:
    with pytest.raises(NotFittedError):
        Forecaster().forecast(3)


def test_auto_picks_a_seasonal_model_on_seasonal_data(seasonal_hourly: pd.Series) -> None:
    forecaster = Forecaster(CONFIG).fit(seasonal_hourly)
    assert forecaster.model_name in {"seasonal_naive", "hw_additive", "hw_damped", "sarimax_fourier"}
    scores = {s.model_name: s.mase for s in forecaster.scores}
    assert scores[forecaster.model_name] < scores["naive"]


def test_quantiles_are_monotone_and_bracket_the_mean(seasonal_hourly: pd.Series) -> None:
    result = forecast_series(seasonal_hourly, 30, (0.05, 0.25, 0.5, 0.75, 0.95), CONFIG)
    stacked = np.vstack([result.quantiles[q] for q in sorted(result.quantiles)])
    assert np.all(np.diff(stacked, axis=0) >= 0)
    assert np.all(result.quantiles[0.05] <= result.mean) and np.all(result.mean <= result.quantiles[0.95])
    assert len(result.timestamps) == 30 and result.timestamps[0] == seasonal_hourly.index[-1] + HOURLY
    assert result.upper(0.95) == pytest.approx(float(result.quantiles[0.95].max()))


def test_interval_coverage_is_honest_on_seasonal_data() -> None:
    series = synthetic_demand(
        40, HOURLY, seed=7, daily_amplitude=0.5, weekly_amplitude=0.0, noise=0.1, bursts=0
    )
    values = series.to_numpy()
    fit_until = 24 * 20
    forecaster = Forecaster(CONFIG).fit(series.iloc[:fit_until])
    hits = []
    for k in range(fit_until, len(values) - 1):
        result = forecaster.forecast(1, (0.05, 0.95))
        hits.append(result.quantiles[0.05][0] <= values[k] <= result.quantiles[0.95][0])
        forecaster.update_values(values[k : k + 1])
    assert 0.82 <= float(np.mean(hits)) <= 0.97


def test_nan_gaps_and_irregular_timestamps_are_regularised(seasonal_hourly: pd.Series) -> None:
    rng = np.random.default_rng(0)
    jittered = seasonal_hourly.copy()
    jittered.index = jittered.index + pd.to_timedelta(rng.integers(0, 20, len(jittered)), unit="min")
    jittered.iloc[100:130] = np.nan
    dropped = jittered.drop(jittered.index[rng.choice(len(jittered), 40, replace=False)])
    result = forecast_series(dropped, 12, (0.1, 0.9), CONFIG)
    assert np.all(np.isfinite(result.mean)) and np.all(np.isfinite(result.quantiles[0.9]))
    assert result.timestamps.freq == HOURLY


def test_all_zeros_and_constant_series_do_not_crash() -> None:
    index = pd.date_range("2024-01-01", periods=24 * 4, freq="h")
    zeros = forecast_series(pd.Series(0.0, index=index), 5, (0.1, 0.9), CONFIG)
    assert np.allclose(zeros.mean, 0) and np.allclose(zeros.quantiles[0.9], 0)
    constant = forecast_series(pd.Series(7.0, index=index), 5, (0.1, 0.9), CONFIG)
    assert np.allclose(constant.mean, 7.0, atol=1e-6)
    assert np.allclose(constant.quantiles[0.1], 7.0, atol=1e-6)


def test_bursts_and_outages_do_not_derail_the_level(seasonal_hourly: pd.Series) -> None:
    damaged = seasonal_hourly.copy()
    damaged.iloc[-40:-36] = 0.0  # outage
    damaged.iloc[-20:-18] *= 4.0  # burst
    clean = forecast_series(seasonal_hourly, 24, (0.5,), CONFIG)
    noisy = forecast_series(damaged, 24, (0.5,), CONFIG)
    assert np.all(noisy.mean >= 0)
    assert float(np.mean(np.abs(noisy.mean - clean.mean))) < 0.25 * float(np.mean(clean.mean))


def test_update_skips_gaps_and_moves_the_clock(seasonal_hourly: pd.Series) -> None:
    forecaster = Forecaster(CONFIG).fit(seasonal_hourly.iloc[:-5])
    tail = seasonal_hourly.iloc[-5:].copy()
    tail.iloc[2] = np.nan
    forecaster.update(tail.drop(tail.index[3]))
    result = forecaster.forecast(3)
    assert result.timestamps[0] == seasonal_hourly.index[-1] + HOURLY
    assert np.all(np.isfinite(result.mean))


def test_update_matches_fit_state_path(seasonal_hourly: pd.Series) -> None:
    """Steady-state updates with frozen parameters stay close to what a refit would forecast."""
    forecaster = Forecaster(ForecastConfig(step=HOURLY, horizon=6, weekly=False, model="hw_damped"))
    forecaster.fit(seasonal_hourly.iloc[:-24])
    forecaster.update(seasonal_hourly.iloc[-24:])
    refit = Forecaster(ForecastConfig(step=HOURLY, horizon=6, weekly=False, model="hw_damped")).fit(
        seasonal_hourly
    )
    a, b = forecaster.forecast(24).mean, refit.forecast(24).mean
    assert float(np.mean(np.abs(a - b))) < 0.1 * float(np.mean(b))


def test_forecaster_pickles_round_trip(seasonal_hourly: pd.Series) -> None:
    forecaster = Forecaster(CONFIG).fit(seasonal_hourly)
    clone = pickle.loads(pickle.dumps(forecaster))
    assert np.allclose(clone.forecast(5).mean, forecaster.forecast(5).mean)


def test_unknown_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        ForecastConfig(model="prophet")


def test_ar_model_recovers_coefficients_and_stays_stationary() -> None:
    rng = np.random.default_rng(4)
    y = np.zeros(3000)
    for t in range(2, len(y)):
        y[t] = 0.6 * y[t - 1] + 0.25 * y[t - 2] + rng.normal()
    model = fit_ar(y + 50.0, 0, (), "ar")
    assert model is not None
    assert model.phi[:2] == pytest.approx([0.6, 0.25], abs=0.06)
    path = model.path(500)
    assert abs(path[-1] - float(np.mean(y + 50.0))) < 1.0  # mean reversion, no explosion


def test_refit_inherits_the_resolved_error_pool(seasonal_hourly: pd.Series) -> None:
    values = seasonal_hourly.to_numpy()
    first = Forecaster(CONFIG).fit(seasonal_hourly.iloc[:-48])
    first.update_values(values[-48:])
    inherited = len(first._errors[0])
    second = Forecaster(CONFIG).fit(seasonal_hourly, previous=first)
    fresh = Forecaster(CONFIG).fit(seasonal_hourly)
    assert len(second._errors[0]) == inherited > len(fresh._errors[0])
    assert np.all(np.isfinite(second.forecast(6, (0.05, 0.95)).quantiles[0.95]))
