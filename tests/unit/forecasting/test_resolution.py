from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.replay import ForecastTable, at_decisions, forecast_grid
from forecasting.resolution import steps_per_bin


def test_the_bin_is_the_start_up_in_whole_data_steps() -> None:
    assert steps_per_bin(300.0, 60.0) == 5
    assert steps_per_bin(600.0, 600.0) == 1
    assert steps_per_bin(420.0, 300.0) == 1  # a bin never reaches past the start-up
    assert steps_per_bin(0.0, 60.0) == 1  # no start-up: the data's own grid
    with pytest.raises(ValueError, match="positive"):
        steps_per_bin(300.0, 0.0)


def test_bins_are_means_on_the_epoch_grid_with_the_first_decision_offset() -> None:
    index = pd.date_range("2026-01-01 00:02", periods=8, freq="1min")
    grid, offset = forecast_grid(pd.Series(np.arange(8.0), index=index), 5)
    assert offset == 2  # 00:02 is the third minute of the bin starting at 00:00
    assert grid.index[0] == pd.Timestamp("2026-01-01 00:00")
    assert grid.tolist() == [1.0, 5.0]  # values 0..2 (minutes 2..4), then 3..7 (minutes 5..9)
    same, none = forecast_grid(pd.Series(np.arange(3.0), index=index[:3]), 1)
    assert none == 0 and same.tolist() == [0.0, 1.0, 2.0]


def test_each_decision_reads_the_forecast_issued_when_its_bin_began() -> None:
    # Bin forecasts: row r issued at the start of bin 10 + r, lead j forecasts bin 10 + r + j.
    mean = np.array([[100.0 * r + j for j in range(3)] for r in range(3)])
    table = ForecastTable(10, mean, {0.9: mean + 1.0}, ("naive",))
    decisions = at_decisions(table, per_bin=5, offset=0, start=52, end=60, horizon=6)
    # Decision 52 lies in bin 10 (decisions 50..54): its leads 1..3 are bin 10, 4..6 bin 11.
    assert decisions.mean[0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    # Decision 55 begins bin 11: the forecast issued then, for bins 11 and 12.
    assert decisions.mean[3].tolist() == [100.0, 100.0, 100.0, 100.0, 100.0, 101.0]
    assert decisions.quantiles[0.9][3].tolist() == [101.0] * 5 + [102.0]
    assert decisions.start == 52 and decisions.mean.shape == (8, 6)


def test_one_decision_per_bin_is_the_table_itself() -> None:
    mean = np.arange(12.0).reshape(4, 3)
    table = ForecastTable(7, mean, {0.5: mean}, ())
    same = at_decisions(table, per_bin=1, offset=0, start=7, end=11, horizon=3)
    assert np.array_equal(same.mean, mean) and np.array_equal(same.quantiles[0.5], mean)
