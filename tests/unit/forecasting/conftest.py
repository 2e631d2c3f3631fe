"""Shared fixtures: small synthetic series keep these tests fast and deterministic."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.synthetic import synthetic_demand

HOURLY = pd.Timedelta(hours=1)


@pytest.fixture
def seasonal_hourly() -> pd.Series:
    """Three weeks of hourly demand with a strong daily cycle (24-step season keeps fits cheap)."""
    return synthetic_demand(
        21, HOURLY, seed=3, daily_amplitude=0.6, weekly_amplitude=0.0, noise=0.05, bursts=0
    )
