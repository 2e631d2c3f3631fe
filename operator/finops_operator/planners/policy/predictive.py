"""Predictive scaling: turn a demand forecast into an HPA floor and a budget projection.

The forecast itself is made by ``forecasting`` (pure, but CPU-heavy: the handler runs it in a
thread); this module only decides what the forecast means for replicas and for the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason
from finops_operator.api.finopspolicy import ForecastModel, PredictionStatus, PredictiveScaling
from forecasting import Forecast

FORECAST_STEP = timedelta(minutes=5)
MODEL_NAMES = {
    ForecastModel.AUTO: "auto",
    ForecastModel.HOLT_WINTERS: "hw_damped",
    ForecastModel.SARIMAX: "sarimax_fourier",
    ForecastModel.SEASONAL_NAIVE: "seasonal_naive",
}


@dataclass(frozen=True)
class PredictionInput:
    """What the handler got when it tried to forecast: a forecast, or why there is none."""

    computed_at: datetime
    forecast: Forecast | None = None
    insufficient_history: str | None = None
    metrics_error: str | None = None


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    budget_capped: bool
    peak: float
    peak_time: datetime


def horizon_steps(settings: PredictiveScaling) -> int:
    return max(1, math.ceil(timedelta(minutes=settings.horizon_minutes) / FORECAST_STEP))


def recommend(
    settings: PredictiveScaling,
    forecast: Forecast,
    *,
    bounds: tuple[int, int],
    gpus_per_replica: int,
    remaining_gpu_hours: float | None,
    now: datetime,
) -> Recommendation:
    """Replicas needed to serve the forecast's upper quantile over the whole lead time.

    A replica asked for now only serves after the lead time (model loading), and the floor holds
    until the next decision, so the need is the maximum over [now, now + lead time + one step].
    The result stays within ``bounds`` and never commits, over the forecast horizon, more GPU-hours
    than the budget has left.
    """
    assert settings.target_per_replica is not None
    upper = forecast.quantiles[settings.quantile]
    stamps = [t.to_pydatetime().astimezone(UTC) for t in forecast.timestamps]
    reach = now + timedelta(minutes=settings.lead_time_minutes) + FORECAST_STEP
    window = [i for i, t in enumerate(stamps) if t <= reach] or [0]
    need = max(float(upper[i]) for i in window)
    low, high = bounds
    replicas = min(max(math.ceil(max(need, 0.0) / settings.target_per_replica), low), high)
    capped = False
    if remaining_gpu_hours is not None and gpus_per_replica > 0:
        hours = settings.horizon_minutes / 60
        affordable = max(low, math.floor(remaining_gpu_hours / (gpus_per_replica * hours)))
        if affordable < replicas:
            replicas, capped = affordable, True
    peak_index = int(np.argmax(upper))
    return Recommendation(replicas, capped, float(upper[peak_index]), stamps[peak_index])


def projected_exhaustion(
    forecast: Forecast,
    *,
    target_per_replica: float,
    gpus_per_replica: int,
    replicas_floor: int,
    used_gpu_hours: float,
    limit_gpu_hours: float,
) -> datetime | None:
    """When the GPU-hour budget runs out if replicas follow the forecast mean, within the horizon."""
    used = used_gpu_hours
    step_hours = FORECAST_STEP.total_seconds() / 3600
    for stamp, demand in zip(forecast.timestamps, forecast.mean, strict=True):
        replicas = max(replicas_floor, math.ceil(max(float(demand), 0.0) / target_per_replica))
        used += replicas * gpus_per_replica * step_hours
        if used >= limit_gpu_hours:
            moment: datetime = stamp.to_pydatetime().astimezone(UTC)
            return moment
    return None


def prediction_status(
    prediction: PredictionInput, recommendation: Recommendation | None, model: str | None
) -> PredictionStatus | None:
    forecast = prediction.forecast
    if forecast is None or recommendation is None:
        return None
    score = forecast.backtest
    return PredictionStatus(
        model=model or forecast.model_name,
        mae=_finite(score.mae),
        mase=_finite(score.mase),
        next_peak=round(recommendation.peak, 6),
        next_peak_time=recommendation.peak_time,
        recommended_replicas=recommendation.replicas,
        budget_capped=recommendation.budget_capped,
        computed_at=prediction.computed_at,
    )


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def prediction_condition(
    settings: PredictiveScaling | None,
    prediction: PredictionInput | None,
    recommendation: Recommendation | None,
) -> ConditionUpdate | None:
    """PredictionReady, when the policy has a predictiveScaling section."""
    if settings is None:
        return None
    false = ConditionStatus.FALSE
    if not settings.enabled:
        return ConditionUpdate(
            ConditionType.PREDICTION_READY,
            false,
            Reason.PREDICTION_DISABLED,
            "predictiveScaling.enabled is false",
        )
    if prediction is None or prediction.metrics_error:
        message = prediction.metrics_error if prediction else "no Prometheus URL configured"
        return ConditionUpdate(
            ConditionType.PREDICTION_READY,
            false,
            Reason.METRICS_UNAVAILABLE,
            f"{message}; the HPA keeps the autoScale minimum",
        )
    if prediction.insufficient_history:
        return ConditionUpdate(
            ConditionType.PREDICTION_READY,
            false,
            Reason.INSUFFICIENT_HISTORY,
            f"{prediction.insufficient_history}; the HPA keeps the autoScale minimum",
        )
    assert recommendation is not None
    capped = " (capped by the remaining GPU-hour budget)" if recommendation.budget_capped else ""
    return ConditionUpdate(
        ConditionType.PREDICTION_READY,
        ConditionStatus.TRUE,
        Reason.PREDICTED,
        f"recommending at least {recommendation.replicas} replica(s) for the next "
        f"{settings.lead_time_minutes} min{capped}",
    )
