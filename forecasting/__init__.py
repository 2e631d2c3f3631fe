"""Demand forecasting and autoscaling replay for the FinOps operator (pure Python, no Kubernetes)."""

from forecasting.errors import ForecastError, InsufficientHistoryError, NotFittedError
from forecasting.forecaster import BacktestScore, Forecast, ForecastConfig, Forecaster, forecast_series
from forecasting.series import load_trace, regularize

__all__ = [
    "BacktestScore",
    "Forecast",
    "ForecastConfig",
    "ForecastError",
    "Forecaster",
    "InsufficientHistoryError",
    "NotFittedError",
    "forecast_series",
    "load_trace",
    "regularize",
]
