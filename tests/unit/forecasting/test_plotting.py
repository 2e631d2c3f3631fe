from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecasting import ForecastConfig, forecast_series
from forecasting.plotting import plot_forecast
from forecasting.synthetic import synthetic_demand


def test_plot_forecast_writes_a_png(tmp_path: Path) -> None:
    series = synthetic_demand(5, pd.Timedelta(hours=1), seed=1)
    result = forecast_series(series, 24, (0.05, 0.25, 0.75, 0.95), ForecastConfig(weekly=False))
    out = plot_forecast(series, result, tmp_path / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
