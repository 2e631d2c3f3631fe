"""Synthetic-but-realistic demand series for tests and the throughput benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd

FIVE_MINUTES = pd.Timedelta(minutes=5)
EPOCH_2024 = pd.Timestamp("2024-01-01")


def synthetic_demand(
    days: float,
    step: pd.Timedelta = FIVE_MINUTES,
    seed: int = 0,
    *,
    level: float = 100.0,
    daily_amplitude: float = 0.5,
    weekly_amplitude: float = 0.2,
    noise: float = 0.08,
    bursts: int = 3,
    start: pd.Timestamp = EPOCH_2024,
) -> pd.Series:
    """Daily + weekly cycle, multiplicative noise, a few bursts: inference-service RPS."""
    rng = np.random.default_rng(seed)
    n = int(pd.Timedelta(days=days) / step)
    t_days = np.arange(n) * (step / pd.Timedelta(days=1))
    phase = rng.uniform(0, 2 * np.pi)
    daily = 1.0 + daily_amplitude * np.sin(2 * np.pi * t_days + phase)
    weekly = 1.0 + weekly_amplitude * np.sin(2 * np.pi * t_days / 7.0)
    values = level * daily * weekly * rng.lognormal(0.0, noise, n)
    per_day = int(pd.Timedelta(days=1) / step)
    for _ in range(bursts):
        at = int(rng.integers(0, n))
        width = int(rng.integers(2, max(3, per_day // 48)))
        values[at : at + width] *= rng.uniform(1.5, 3.0)
    index = pd.date_range(start, periods=n, freq=step)
    return pd.Series(values, index=index)
