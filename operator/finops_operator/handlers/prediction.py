"""Fetch demand history from Prometheus and keep one forecaster per policy, off the event loop.

Fits are the expensive part (statsmodels, up to a second per series), so a policy's forecaster is
fitted once and then only updated with new points; it is refitted every few hours, or at once when
the predictive settings change. Runs in the policy's reconcile thread, never on the event loop.

pandas and the forecaster (statsmodels) are imported by the first prediction, not with this module:
an operator whose policies never enable predictive scaling never loads them (~150 MB of RSS).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ParamSpec, cast

from finops_operator import metrics
from finops_operator.api.finopspolicy import PredictiveScaling
from finops_operator.planners.policy.predictive import (
    FORECAST_STEP,
    MODEL_NAMES,
    UNIT_QUANTILES,
    PredictionInput,
    forecast_quantiles,
    horizon_steps,
)
from finops_operator.settings import Settings
from finops_operator.telemetry import prometheus

if TYPE_CHECKING:
    import pandas as pd

    from forecasting import Forecast, Forecaster

P = ParamSpec("P")
REFIT_EVERY = timedelta(hours=6)
HISTORY = timedelta(days=14)


@dataclass
class _Entry:
    fingerprint: str
    forecaster: Forecaster
    fitted_at: datetime
    history_start: datetime
    """First finite demand sample the forecaster was fitted on (how much history there is)."""


class ForecasterCache:
    """Fitted forecasters by (namespace, policy); safe across handler threads."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> _Entry | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry

    def forget(self, key: tuple[str, str]) -> None:
        """The policy no longer forecasts: its forecaster goes, and so do its demand series."""
        with self._lock:
            self._entries.pop(key, None)
        metrics.record_demand(*key, observed=None, forecast=None)


def _fingerprint(settings: PredictiveScaling) -> str:
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


def _series(url: str, query: str, start: datetime, end: datetime) -> pd.Series:
    """The demand history as one series (several returned series are summed)."""
    import pandas as pd  # noqa: PLC0415 - the forecasting stack only once a policy predicts

    result = prometheus.query_range(
        url, query, start=start, end=end, step_seconds=FORECAST_STEP.total_seconds()
    )
    if not result:
        return pd.Series(dtype=float)
    frames = [pd.Series({pd.Timestamp(t, unit="s", tz="UTC"): v for t, v in points}) for _, points in result]
    return pd.concat(frames, axis=1).sum(axis=1, min_count=1).sort_index()


def _current_demand(url: str, query: str) -> float | None:
    """Demand now: what the last interval is judged on (several series are summed); None without a
    current sample."""
    samples = prometheus.query(url, query)
    return sum(s.value for s in samples) if samples else None


def refit_forecaster(
    spec: PredictiveScaling,
    fingerprint: str,
    history: pd.Series,
    entry: _Entry | None,
    *,
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> _Entry:
    """Fit anew on the whole history. A failed periodic refit keeps the last good forecaster (updated,
    retried after REFIT_EVERY), as the replay does; under new settings there is nothing to keep, so
    the failure is the policy's ModelFailed."""
    import pandas as pd  # noqa: PLC0415 - the forecasting stack only once a policy predicts

    from forecasting import ForecastConfig, Forecaster  # noqa: PLC0415

    config = ForecastConfig(
        model=MODEL_NAMES[spec.model],
        step=pd.Timedelta(FORECAST_STEP),
        min_history=pd.Timedelta(hours=spec.minimum_history_hours),
        horizon=horizon_steps(spec),
        select_horizon=min(horizon_steps(spec), 1 + spec.lead_time_minutes // 5),
    )
    try:
        forecaster = Forecaster(config).fit(history, previous=entry.forecaster if entry else None)
    except Exception as error:
        if entry is None or entry.fingerprint != fingerprint:
            raise
        logger.warning("refit failed, keeping the %s forecaster: %r", entry.forecaster.model_name, error)
        entry.forecaster.update(history)
        return replace(entry, fitted_at=now)
    logger.info("fitted %s on %d points of demand history", forecaster.model_name, len(history))
    return _Entry(fingerprint, forecaster, now, history.dropna().index[0].to_pydatetime())


def next_step(forecast: Forecast | None) -> tuple[float, float, float] | None:
    """The forecast's first step as (lower, mean, upper) of its 80 % interval; None without one."""
    if forecast is None or not len(forecast.mean):
        return None
    low, high = (float(forecast.quantiles[q][0]) for q in UNIT_QUANTILES)
    return low, float(forecast.mean[0]), high


def _exported(predictor: Callable[P, PredictionInput]) -> Callable[P, PredictionInput]:
    """Export what each prediction saw (``finops_demand_observed``, ``finops_demand_forecast``), so a
    dashboard can set the forecast beside what happened; nothing stale survives a failed forecast."""

    @functools.wraps(predictor)
    def predict_and_export(*args: P.args, **kwargs: P.kwargs) -> PredictionInput:
        prediction = predictor(*args, **kwargs)
        namespace, policy = cast("tuple[str, str]", kwargs["key"])
        metrics.record_demand(
            namespace, policy, observed=prediction.observed_demand, forecast=next_step(prediction.forecast)
        )
        return prediction

    return predict_and_export


@_exported
def predict(
    *,
    operator_settings: Settings,
    spec: PredictiveScaling,
    key: tuple[str, str],
    cache: ForecasterCache,
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> PredictionInput:
    """A forecast and the current demand for the policy's demand query, or why there are none.

    Prometheus failures are ``metrics_error``; anything the forecaster raises (a refused model, a
    statsmodels failure) is ``model_error``: the planner hands back to the reactive HPA either way.
    """
    from forecasting import ForecastError, InsufficientHistoryError  # noqa: PLC0415 - see the module

    interval = operator_settings.sample_interval_seconds
    if operator_settings.prometheus_url is None or not spec.demand_query:
        return PredictionInput(now, interval, metrics_error="no Prometheus URL configured")
    url = str(operator_settings.prometheus_url)
    fingerprint = _fingerprint(spec)
    entry = cache.get(key)
    refit = entry is None or entry.fingerprint != fingerprint or now - entry.fitted_at >= REFIT_EVERY
    try:
        observed = _current_demand(url, spec.demand_query)
        if entry is None or refit:
            history = _series(url, spec.demand_query, now - HISTORY, now)
        else:
            last = entry.forecaster.last_timestamp
            start = last.to_pydatetime() if last is not None else now - HISTORY
            history = _series(url, spec.demand_query, start, now)
    except prometheus.PrometheusError as error:
        return PredictionInput(now, interval, metrics_error=str(error))
    try:
        if entry is None or refit:
            entry = refit_forecaster(spec, fingerprint, history, entry, now=now, logger=logger)
            cache.put(key, entry)
        elif not history.empty:
            entry.forecaster.update(history)
        forecast = entry.forecaster.forecast(horizon_steps(spec), quantiles=forecast_quantiles(spec))
    except InsufficientHistoryError as error:
        return PredictionInput(now, interval, observed_demand=observed, insufficient_history=str(error))
    except Exception as error:  # any model failure degrades to the reactive HPA, never the reconcile
        logger.warning("forecaster failed: %r", error)
        reason = error.reason if isinstance(error, ForecastError) else f"{type(error).__name__}: {error}"
        return PredictionInput(now, interval, observed_demand=observed, model_error=reason)
    return PredictionInput(
        now,
        interval,
        forecast=forecast,
        observed_demand=observed,
        history_seconds=(now - entry.history_start).total_seconds(),
    )
