"""The forecaster cache's refit rule: a failed periodic refit keeps the last good forecaster; a failure
under new settings has nothing to keep (the policy reports ModelFailed)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from finops_operator.api.finopspolicy import ForecastModel, PredictiveScaling
from finops_operator.handlers.prediction import refit_forecaster
from forecasting import InsufficientHistoryError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test")
SPEC = PredictiveScaling(
    enabled=True,
    demand_query="q",
    target_per_replica=20,
    model=ForecastModel.SEASONAL_NAIVE,
    minimum_history_hours=48,
)


def history(days: float) -> pd.Series:
    stamps = pd.date_range(end=NOW, periods=int(days * 288), freq="5min", tz="UTC")
    values = (
        50
        + 10 * np.sin(np.arange(len(stamps)) * 2 * np.pi / 288)
        + np.random.default_rng(3).normal(0, 2, len(stamps))
    )
    return pd.Series(values, index=stamps)


def test_a_failed_periodic_refit_keeps_the_last_good_forecaster() -> None:
    entry = refit_forecaster(SPEC, "settings", history(3), None, now=NOW, logger=LOG)
    assert entry.history_start == NOW - timedelta(days=3) + timedelta(minutes=5)
    later = NOW + timedelta(hours=6)
    kept = refit_forecaster(SPEC, "settings", history(0.5), entry, now=later, logger=LOG)
    assert kept.forecaster is entry.forecaster and kept.fitted_at == later


def test_a_failure_under_new_settings_has_nothing_to_keep() -> None:
    entry = refit_forecaster(SPEC, "settings", history(3), None, now=NOW, logger=LOG)
    with pytest.raises(InsufficientHistoryError):
        refit_forecaster(SPEC, "changed", history(0.5), entry, now=NOW, logger=LOG)
