"""When the forecast may drive capacity, and what the policy runs when it may not."""

from __future__ import annotations

import pytest

from forecasting.calibration import CalibrationState
from forecasting.fallback import Fallback, FallbackReason, assess, choose_replicas, poisson_tail

T0 = 1_700_000_000.0
DAY = 86400.0


def calibration(intervals: int, misses: int, target: float = 0.005) -> CalibrationState:
    hour = int(T0 // 3600)
    per_hour = [(hour - i, intervals // 24, 0) for i in range(24)]
    per_hour[0] = (hour, intervals - (intervals // 24) * 23, misses)
    state = CalibrationState.start(target=target, lead=2, margin=1.0, scale=1.0, now=T0 - DAY)
    return CalibrationState(
        target=target, lead=2, margin=1.0, scale=1.0, updated_at=state.updated_at, hours=tuple(per_hour)
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, None),
        ({"metrics_error": "prometheus: connection refused"}, FallbackReason.METRICS_UNAVAILABLE),
        ({"model_error": "FitFailed"}, FallbackReason.MODEL_FAILED),
        ({"history_seconds": 3600.0}, FallbackReason.INSUFFICIENT_HISTORY),
        ({"calibration": calibration(288, 2)}, None),  # 2 of 288 at 0.5 %: chance
        ({"calibration": calibration(288, 6)}, None),  # p = 0.004: still plausible
        ({"calibration": calibration(288, 7)}, FallbackReason.COVERAGE_LOST),  # p < 0.001
        ({"calibration": calibration(1440, 16)}, None),  # 1-minute intervals: more expected
        ({"calibration": calibration(1440, 30)}, FallbackReason.COVERAGE_LOST),
        (
            {"metrics_error": "down", "model_error": "x", "calibration": calibration(288, 50)},
            FallbackReason.METRICS_UNAVAILABLE,
        ),
    ],
    ids=[
        "healthy",
        "prometheus-down",
        "model-failed",
        "short-history",
        "few-misses",
        "borderline-misses",
        "coverage-lost",
        "one-minute-ok",
        "one-minute-lost",
        "most-basic-reason-first",
    ],
)
def test_assess(kwargs: dict[str, object], reason: FallbackReason | None) -> None:
    args: dict[str, object] = {
        "now": T0,
        "history_seconds": 7 * DAY,
        "min_history_seconds": 2 * DAY,
        "calibration": None,
        **kwargs,
    }
    result = assess(**args)  # type: ignore[arg-type]
    assert (result.reason if result else None) == reason
    if result is not None:
        assert result.message


FORECAST_OK = None
LOST = Fallback(FallbackReason.COVERAGE_LOST, "")
NO_METRICS = Fallback(FallbackReason.METRICS_UNAVAILABLE, "")


@pytest.mark.parametrize(
    ("forecast", "reactive_need", "hpa", "current", "fallback", "expected"),
    [
        (5, 3, 9, 6, FORECAST_OK, 5),  # the forecast floor, below the user's HPA
        (2, 4, 9, 6, FORECAST_OK, 4),  # never below what the last interval needed
        (5, 3, 9, 6, LOST, 9),  # coverage lost: exactly the HPA
        (None, 3, 7, 6, FORECAST_OK, 7),  # no forecast: the HPA
        (5, 0, 4, 6, NO_METRICS, 6),  # no metrics: never scale down
        (5, 0, 8, 6, NO_METRICS, 8),  # ... but the HPA may still scale up
    ],
    ids=["forecast", "reactive-floor", "coverage-lost", "no-forecast", "hold-on-missing", "hpa-up"],
)
def test_choose_replicas(
    *,
    forecast: int | None,
    reactive_need: int,
    hpa: int,
    current: int,
    fallback: Fallback | None,
    expected: int,
) -> None:
    chosen = choose_replicas(
        forecast=forecast, reactive_need=reactive_need, hpa=hpa, current=current, fallback=fallback
    )
    assert chosen == expected


@pytest.mark.parametrize(
    ("k", "mean", "expected"),
    [(0, 1.0, 1.0), (1, 1.0, 0.6321206), (3, 1.44, 0.1762), (5, 0.0, 0.0), (20, 7.2, 6.473125e-05)],
    ids=["zero", "one", "day-of-5min", "no-expectation", "far-tail"],  # values from scipy.stats.poisson.sf
)
def test_poisson_tail(k: int, mean: float, expected: float) -> None:
    assert poisson_tail(k, mean) == pytest.approx(expected, rel=1e-3, abs=1e-9)
