"""Demand forecasting and autoscaling replay for the FinOps operator (pure Python, no Kubernetes)."""

from forecasting.calibration import CalibrationState, CalibrationStateError, observe, seeded
from forecasting.errors import ForecastError, InsufficientHistoryError, NotFittedError
from forecasting.fallback import Fallback, FallbackReason, assess, choose_replicas
from forecasting.forecaster import BacktestScore, Forecast, ForecastConfig, Forecaster, forecast_series
from forecasting.series import load_trace, regularize

__all__ = [
    "BacktestScore",
    "CalibrationState",
    "CalibrationStateError",
    "Fallback",
    "FallbackReason",
    "Forecast",
    "ForecastConfig",
    "ForecastError",
    "Forecaster",
    "InsufficientHistoryError",
    "NotFittedError",
    "assess",
    "choose_replicas",
    "forecast_series",
    "load_trace",
    "observe",
    "regularize",
    "seeded",
]
