"""When the forecast stops being informative, fall back to the reactive autoscaler (pure decisions).

Predictive scaling must never be worse than the plain HPA it replaces. ``assess`` says whether the
forecast may drive capacity right now and, if not, why (the reason a PredictionReady=False condition
reports); ``choose_replicas`` turns that into a replica count:

- forecast usable: ``max(forecast floor, reactive need)``; the reactive need is what the last observed
  interval required, so a forecast dip never takes away capacity demand has just used;
- forecast not usable: exactly what the reactive HPA (the user's own target) asks for;
- metrics unavailable: never fewer replicas than now (no scale-down on missing data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from forecasting.calibration import CalibrationState

# A day of misses is judged "coverage lost" when so many misses would happen by chance with probability
# below this under the stated service level (a one-sided Poisson test). A significance level, not a
# fitted threshold: it scales with the target and with how many intervals the day held.
COVERAGE_SIGNIFICANCE = 1e-3


class FallbackReason(StrEnum):
    """Why the reactive autoscaler is in charge instead of the forecast (condition reasons)."""

    METRICS_UNAVAILABLE = "MetricsUnavailable"
    MODEL_FAILED = "ModelFailed"
    INSUFFICIENT_HISTORY = "InsufficientHistory"
    COVERAGE_LOST = "CoverageLost"


@dataclass(frozen=True)
class Fallback:
    reason: FallbackReason
    message: str


def assess(
    *,
    now: float,
    history_seconds: float,
    min_history_seconds: float,
    calibration: CalibrationState | None,
    model_error: str | None = None,
    metrics_error: str | None = None,
) -> Fallback | None:
    """None when the forecast may drive capacity; otherwise the first failing check, most basic first."""
    if metrics_error is not None:
        return Fallback(FallbackReason.METRICS_UNAVAILABLE, f"no demand data: {metrics_error}")
    if model_error is not None:
        return Fallback(FallbackReason.MODEL_FAILED, f"forecaster failed: {model_error}")
    if history_seconds < min_history_seconds:
        return Fallback(
            FallbackReason.INSUFFICIENT_HISTORY,
            f"{history_seconds / 3600:.1f} h of demand history, need {min_history_seconds / 3600:.1f} h",
        )
    if calibration is not None:
        intervals, misses = calibration.last_day(now)
        expected = calibration.target * intervals
        if misses > expected and poisson_tail(misses, expected) < COVERAGE_SIGNIFICANCE:
            return Fallback(
                FallbackReason.COVERAGE_LOST,
                f"{misses} of the last {intervals} intervals missed (target {calibration.target:.2%}, "
                f"{expected:.1f} expected)",
            )
    return None


def choose_replicas(
    *, forecast: int | None, reactive_need: int, hpa: int, current: int, fallback: Fallback | None
) -> int:
    """Replicas to run: see the module docstring. ``hpa`` is the reactive autoscaler's own answer."""
    if fallback is not None and fallback.reason is FallbackReason.METRICS_UNAVAILABLE:
        return max(current, hpa)
    if fallback is not None or forecast is None:
        return hpa
    return max(forecast, reactive_need)


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), summed in log space (stable for a day of 1-minute intervals)."""
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    below = sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - below)
