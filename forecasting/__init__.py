"""Demand forecasting and autoscaling replay for the FinOps operator (pure Python, no Kubernetes)."""

import importlib
from typing import TYPE_CHECKING

from forecasting.anomaly import (
    Anomaly,
    AnomalyConfig,
    AnomalyDecision,
    AnomalyKind,
    AnomalySample,
    AnomalyState,
    AnomalyStateError,
    NotJudged,
    detect,
)
from forecasting.calibration import CalibrationState, CalibrationStateError, observe, seeded
from forecasting.errors import ForecastError, InsufficientHistoryError, NotFittedError
from forecasting.fallback import Fallback, FallbackReason, assess, choose_replicas

if TYPE_CHECKING:
    from forecasting.forecaster import BacktestScore, Forecast, ForecastConfig, Forecaster, forecast_series
    from forecasting.series import load_trace, regularize

_LAZY = {
    "BacktestScore": "forecasting.forecaster",
    "Forecast": "forecasting.forecaster",
    "ForecastConfig": "forecasting.forecaster",
    "Forecaster": "forecasting.forecaster",
    "forecast_series": "forecasting.forecaster",
    "load_trace": "forecasting.series",
    "regularize": "forecasting.series",
}
"""Exports that need numpy, pandas and statsmodels (~150 MB): imported on first use (PEP 562), so the
pure parts (calibration, fallback, anomaly) cost an operator without predictive policies nothing."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'forecasting' has no attribute {name!r}")


__all__ = [
    "Anomaly",
    "AnomalyConfig",
    "AnomalyDecision",
    "AnomalyKind",
    "AnomalySample",
    "AnomalyState",
    "AnomalyStateError",
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
    "NotJudged",
    "assess",
    "choose_replicas",
    "detect",
    "forecast_series",
    "load_trace",
    "observe",
    "regularize",
    "seeded",
]
