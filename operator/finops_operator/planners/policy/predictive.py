"""Predictive scaling: turn a demand forecast into an HPA floor that meets a stated service level, and
hand back to the reactive HPA whenever the forecast stops being informative.

The forecast itself is made by ``forecasting`` (pure, but CPU-heavy: the handler runs it in a thread).
Each sample this module, pure and with ``now`` given:

1. accounts for the interval that just ended in the calibration state kept in the policy's status
   (``forecasting.calibration.observe``: the demand seen now against the plan the previous decision
   was sized on; a real miss while the forecast was in charge, a would-have-been miss otherwise);
2. sizes the floor on ``plan + margin x unit``: ``plan`` the forecast mean, maximum over the lead
   time, ``unit`` the width of the forecaster's 80 % interval there (as the replay does);
3. asks ``forecasting.fallback.assess`` whether the forecast may drive capacity, and turns the answer
   into each workload's floor with ``choose_replicas``: the forecast floor (never below what the last
   interval needed), the user's ``autoScale.minReplicas`` on fallback (the HPA does the rest), and
   never fewer than the current replicas when demand data is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason
from finops_operator.api.finopspolicy import (
    CalibrationHour,
    CalibrationStatus,
    ForecastModel,
    PredictionStatus,
    PredictiveScaling,
)
from forecasting import (
    CalibrationState,
    CalibrationStateError,
    Fallback,
    FallbackReason,
    assess,
    choose_replicas,
    observe,
    seeded,
)
from forecasting.calibration import STATE_VERSION

if TYPE_CHECKING:
    from forecasting import Forecast

FORECAST_STEP = timedelta(minutes=5)
UNIT_QUANTILES = (0.1, 0.9)  # the unit is the width of the forecaster's 80 % interval
MODEL_NAMES = {
    ForecastModel.AUTO: "auto",
    ForecastModel.HOLT_WINTERS: "hw_damped",
    ForecastModel.SARIMAX: "sarimax_fourier",
    ForecastModel.SEASONAL_NAIVE: "seasonal_naive",
}


@dataclass(frozen=True)
class PredictionInput:
    """What the handler observed when it tried to forecast: a forecast and the current demand, or why
    there is none. Errors are messages; the planner decides what they mean."""

    computed_at: datetime
    interval_seconds: float = 60.0
    """The sample interval: one calibration interval."""
    forecast: Forecast | None = None
    observed_demand: float | None = None
    """Demand now (instant query); None when Prometheus has no current sample."""
    history_seconds: float = 0.0
    """Span of the demand history the forecaster was fitted on."""
    insufficient_history: str | None = None
    metrics_error: str | None = None
    model_error: str | None = None


@dataclass(frozen=True)
class Sizing:
    """What one decision was sized on, kept until the next sample judges it."""

    plan: float
    unit: float


@dataclass(frozen=True)
class PredictiveDecision:
    """One sample's predictive decision. ``replicas`` is the forecast floor (None on fallback);
    ``floor`` turns the decision into one workload's HPA minimum."""

    fallback: Fallback | None
    calibration: CalibrationState | None
    sizing: Sizing | None
    replicas: int | None
    budget_capped: bool = False
    peak: float | None = None
    peak_time: datetime | None = None

    @property
    def in_charge(self) -> bool:
        return self.fallback is None and self.replicas is not None

    def floor(self, *, current: int, minimum: int) -> int:
        """The HPA minimum for a workload running ``current`` replicas (see the module docstring)."""
        return choose_replicas(
            forecast=self.replicas, reactive_need=0, hpa=minimum, current=current, fallback=self.fallback
        )


def horizon_steps(settings: PredictiveScaling) -> int:
    return max(1, math.ceil(timedelta(minutes=settings.horizon_minutes) / FORECAST_STEP))


def lead_intervals(settings: PredictiveScaling, interval_seconds: float) -> int:
    """Decision intervals until a replica asked for now serves: the lead time, plus the interval the
    floor must then last."""
    return math.ceil(settings.lead_time_minutes * 60 / max(interval_seconds, 1.0)) + 1


def target_share(settings: PredictiveScaling) -> float:
    return settings.max_under_provisioned_percent / 100


def tail_quantile(settings: PredictiveScaling) -> float:
    """The forecast quantile a fresh calibration is seeded from: (1 - target)."""
    return round(1.0 - target_share(settings), 6)


def forecast_quantiles(settings: PredictiveScaling) -> tuple[float, ...]:
    return tuple(sorted({*UNIT_QUANTILES, 0.5, tail_quantile(settings)}))


def restore_calibration(
    stored: CalibrationStatus | None, settings: PredictiveScaling, lead: int
) -> CalibrationState | None:
    """The calibration state from status, following a changed service level or lead time (the margin
    is in error units, so it stays meaningful); None when absent or unreadable (it is reseeded)."""
    if stored is None:
        return None
    data = {
        "version": STATE_VERSION,
        "target": stored.target,
        "lead": stored.lead,
        "margin": stored.margin,
        "scale": stored.scale,
        "updatedAt": stored.updated_at.timestamp(),
        "hours": [[h.hour, h.intervals, h.misses] for h in stored.hours],
    }
    try:
        state = CalibrationState.from_dict(data)
        return replace(state, target=target_share(settings), lead=lead)
    except CalibrationStateError:
        return None


def calibration_status(decision: PredictiveDecision, now: datetime) -> CalibrationStatus | None:
    state = decision.calibration
    if state is None:
        return None
    epoch = now.timestamp()
    intervals, misses = state.last_day(epoch)
    rate = state.miss_rate(epoch)
    sizing = decision.sizing
    return CalibrationStatus(
        margin=state.margin,
        headroom=round(state.headroom(sizing.unit), 6) if sizing else None,
        miss_rate_percent=round(100 * rate, 4) if rate is not None else None,
        intervals_last_day=intervals,
        misses_last_day=misses,
        plan=sizing.plan if sizing else None,
        unit=sizing.unit if sizing else None,
        forecast_in_charge=decision.in_charge,
        target=state.target,
        lead=state.lead,
        scale=state.scale,
        updated_at=datetime.fromtimestamp(state.updated_at, UTC),
        hours=[CalibrationHour(hour=h, intervals=n, misses=m) for h, n, m in state.hours],
    )


def decide(
    settings: PredictiveScaling,
    prediction: PredictionInput | None,
    stored: CalibrationStatus | None,
    *,
    bounds: tuple[int, int],
    ready_replicas: int | None,
    gpus_per_replica: int,
    remaining_gpu_hours: float | None,
    now: datetime,
) -> PredictiveDecision:
    """Account for the last interval, size this one, and say whether the forecast is in charge.

    ``ready_replicas`` is what served the last interval (the fewest ready replicas of any governed
    workload: each one must carry the demand the policy forecasts; None without a governed workload,
    when a miss can only be judged against plan + headroom).
    """
    assert settings.target_per_replica is not None
    interval = prediction.interval_seconds if prediction else 60.0
    lead = lead_intervals(settings, interval)
    state = restore_calibration(stored, settings, lead)
    epoch = now.timestamp()
    observed = prediction.observed_demand if prediction else None
    if state is not None and stored is not None and stored.plan is not None and stored.unit is not None:
        state = account(
            state,
            observed=observed,
            sizing=Sizing(stored.plan, stored.unit),
            capacity=(
                ready_replicas * settings.target_per_replica
                if stored.forecast_in_charge and ready_replicas is not None
                else None
            ),
            interval_seconds=interval,
            now=epoch,
        )

    forecast = prediction.forecast if prediction else None
    model_error = prediction.model_error if prediction else None
    sizing, peak, peak_time = None, None, None
    if forecast is not None:
        sizing, tail_gap = size(settings, forecast, now)
        if sizing is None:
            model_error = "the forecast is not finite over the lead time"
        elif state is None:
            state = seeded(
                target=target_share(settings),
                lead=lead,
                mean=0.0,
                tail=tail_gap,
                unit=sizing.unit,
                now=epoch,
            )
        peak_index = int(forecast.mean.argmax())
        peak = float(forecast.mean[peak_index])
        peak_time = forecast.timestamps[peak_index].to_pydatetime().astimezone(UTC)

    fallback = judge(settings, prediction, state, model_error=model_error, now=epoch)
    if fallback is not None or sizing is None or state is None:
        return PredictiveDecision(fallback, state, sizing, None, peak=peak, peak_time=peak_time)
    need = sizing.plan + state.headroom(sizing.unit)
    reactive = observed / settings.target_per_replica if observed is not None else 0.0
    low, high = bounds
    replicas = min(max(math.ceil(max(need / settings.target_per_replica, reactive, 0.0)), low), high)
    capped = False
    if remaining_gpu_hours is not None and gpus_per_replica > 0:
        hours = settings.horizon_minutes / 60
        affordable = max(low, math.floor(remaining_gpu_hours / (gpus_per_replica * hours)))
        if affordable < replicas:
            replicas, capped = affordable, True
    return PredictiveDecision(None, state, sizing, replicas, capped, peak, peak_time)


def account(
    state: CalibrationState,
    *,
    observed: float | None,
    sizing: Sizing,
    capacity: float | None,
    interval_seconds: float,
    now: float,
) -> CalibrationState:
    """Feed the interval that just ended to the calibration, at most once per sample interval: a
    reconcile sooner than half an interval after the last one (a spec change, a retry) adds nothing,
    and the library ignores a ``now`` that is not later. Missing demand teaches nothing."""
    if observed is None or now - state.updated_at < interval_seconds / 2:
        return state
    return observe(state, observed=observed, plan=sizing.plan, unit=sizing.unit, now=now, capacity=capacity)


def size(settings: PredictiveScaling, forecast: Forecast, now: datetime) -> tuple[Sizing | None, float]:
    """The plan (forecast mean, maximum over [now, now + lead time + one step]), the unit at the end
    of that window, and the seed tail: how far the (1 - target) quantile lies above the mean there.

    A replica asked for now only serves after the lead time (model loading), and the floor holds until
    the next decision, hence the window.
    """
    stamps = [t.to_pydatetime().astimezone(UTC) for t in forecast.timestamps]
    reach = now + timedelta(minutes=settings.lead_time_minutes) + FORECAST_STEP
    window = [i for i, t in enumerate(stamps) if t <= reach] or [0]
    at = window[-1]
    low, high = (forecast.quantiles[q] for q in UNIT_QUANTILES)
    plan = max(float(forecast.mean[i]) for i in window)
    unit = float(high[at] - low[at])
    tail = float(forecast.quantiles[tail_quantile(settings)][at] - forecast.mean[at])
    if not (math.isfinite(plan) and math.isfinite(unit)):
        return None, tail
    return Sizing(plan, max(unit, 0.0)), tail


def judge(
    settings: PredictiveScaling,
    prediction: PredictionInput | None,
    state: CalibrationState | None,
    *,
    model_error: str | None,
    now: float,
) -> Fallback | None:
    """Whether the forecast may drive capacity; the most basic failing check first."""
    if prediction is None:
        return Fallback(FallbackReason.METRICS_UNAVAILABLE, "no demand data: no Prometheus URL configured")
    metrics_error = prediction.metrics_error
    if metrics_error is None and prediction.observed_demand is None:
        metrics_error = "Prometheus has no current sample of demandQuery"
    if metrics_error is None and model_error is None and prediction.insufficient_history:
        return Fallback(FallbackReason.INSUFFICIENT_HISTORY, prediction.insufficient_history)
    if metrics_error is None and model_error is None and prediction.forecast is None:
        model_error = "no forecast"
    return assess(
        now=now,
        history_seconds=prediction.history_seconds,
        min_history_seconds=settings.minimum_history_hours * 3600.0,
        calibration=state,
        model_error=model_error,
        metrics_error=metrics_error,
    )


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


def prediction_status(prediction: PredictionInput, decision: PredictiveDecision) -> PredictionStatus | None:
    forecast = prediction.forecast
    if forecast is None:
        return None
    score = forecast.backtest
    return PredictionStatus(
        model=forecast.model_name,
        mae=_finite(score.mae),
        mase=_finite(score.mase),
        next_peak=round(decision.peak, 6) if decision.peak is not None else None,
        next_peak_time=decision.peak_time,
        recommended_replicas=decision.replicas,
        budget_capped=decision.budget_capped,
        computed_at=prediction.computed_at,
    )


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def prediction_condition(
    settings: PredictiveScaling | None, decision: PredictiveDecision | None, *, minimum: int, now: datetime
) -> ConditionUpdate | None:
    """PredictionReady, when the policy has a predictiveScaling section: what is in charge, and why."""
    if settings is None:
        return None
    if not settings.enabled or decision is None:
        return ConditionUpdate(
            ConditionType.PREDICTION_READY,
            ConditionStatus.FALSE,
            Reason.PREDICTION_DISABLED,
            "predictiveScaling.enabled is false",
        )
    fallback = decision.fallback
    if fallback is not None:
        if fallback.reason is FallbackReason.METRICS_UNAVAILABLE:
            then = "minReplicas holds at least the current replicas (never scaled down on missing data)"
        else:
            then = f"minReplicas back to autoScale.minReplicas ({minimum})"
        return ConditionUpdate(
            ConditionType.PREDICTION_READY,
            ConditionStatus.FALSE,
            fallback.reason.value,
            f"falling back to the reactive HPA: {fallback.message}; {then}",
        )
    capped = " (capped by the remaining GPU-hour budget)" if decision.budget_capped else ""
    return ConditionUpdate(
        ConditionType.PREDICTION_READY,
        ConditionStatus.TRUE,
        Reason.PREDICTED,
        f"recommending at least {decision.replicas} replica(s) for the next "
        f"{settings.lead_time_minutes} min{capped}; {_calibration_summary(decision, now)}",
    )


def _calibration_summary(decision: PredictiveDecision, now: datetime) -> str:
    state, sizing = decision.calibration, decision.sizing
    if state is None or sizing is None:
        return "not calibrated yet"
    intervals, misses = state.last_day(now.timestamp())
    return (
        f"forecast {sizing.plan:.4g} + headroom {state.headroom(sizing.unit):.4g} (margin "
        f"{state.margin:.3g}); {misses} of {intervals} intervals under-provisioned in the last day, "
        f"target {state.target:.2%}"
    )
