from __future__ import annotations

from datetime import UTC, datetime

import pytest

from finops_operator.api.finopspolicy import BudgetWindow
from finops_operator.planners.policy.window import InvalidTimeZoneError, window_bounds


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_utc_midnight_window() -> None:
    assert window_bounds(BudgetWindow(), utc(2026, 11, 22, 13, 0)) == (utc(2026, 11, 22), utc(2026, 11, 23))


def test_reset_time_in_local_zone_before_and_after_reset() -> None:
    window = BudgetWindow(time_zone="Europe/Paris", reset_time="06:00")  # UTC+1 in November
    assert window_bounds(window, utc(2026, 11, 22, 4, 59)) == (utc(2026, 11, 21, 5), utc(2026, 11, 22, 5))
    assert window_bounds(window, utc(2026, 11, 22, 5, 0)) == (utc(2026, 11, 22, 5), utc(2026, 11, 23, 5))


def test_daylight_saving_days_are_23_and_25_hours() -> None:
    window = BudgetWindow(time_zone="Europe/Paris")
    spring_start, spring_end = window_bounds(window, utc(2026, 3, 29, 12))
    autumn_start, autumn_end = window_bounds(window, utc(2026, 10, 25, 12))
    assert (spring_end - spring_start).total_seconds() == 23 * 3600
    assert (autumn_end - autumn_start).total_seconds() == 25 * 3600


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(InvalidTimeZoneError, match="Mars/Olympus_Mons"):
        window_bounds(BudgetWindow(time_zone="Mars/Olympus_Mons"), utc(2026, 1, 1))
