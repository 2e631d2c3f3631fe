"""Budget windows: which [start, end) a moment falls in, for a daily, weekly or monthly period, in the
policy's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from finops_operator.api.finopspolicy import BudgetPeriod, BudgetWindow, Weekday

WEEKDAYS = tuple(Weekday)
"""Monday first, as ``date.weekday()`` counts."""


class InvalidTimeZoneError(ValueError):
    """The window's time zone is not a known IANA name."""


def zone_of(window: BudgetWindow) -> ZoneInfo:
    try:
        return ZoneInfo(window.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZoneError(
            f"budgetWindow.timeZone {window.time_zone!r} is not an IANA time zone (e.g. Europe/Paris)"
        ) from None


def window_bounds(window: BudgetWindow, now: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the daily window containing ``now``."""
    return period_bounds(window, BudgetPeriod.DAILY, now)


def period_bounds(window: BudgetWindow, period: BudgetPeriod, now: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the ``period`` window containing ``now``.

    Resets happen at ``resetTime`` local wall-clock time: a day is 23 or 25 hours long on
    daylight-saving days, a week starts on ``weekStart``, and a month on its 1st and lasts as many days
    as the calendar gives it, as people reading a bill expect.
    """
    zone = zone_of(window)
    local_now = now.astimezone(zone)
    hour, minute = (int(part) for part in window.reset_time.split(":"))
    reset = time(hour, minute)
    today = local_now.date() if local_now.time() >= reset else local_now.date() - timedelta(days=1)
    start_day, end_day = _calendar_days(period, today, WEEKDAYS.index(window.week_start))
    start = datetime.combine(start_day, reset, tzinfo=zone)
    end = datetime.combine(end_day, reset, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _calendar_days(period: BudgetPeriod, day: date, week_start: int) -> tuple[date, date]:
    """First day of the window holding ``day`` and first day of the next one."""
    if period == BudgetPeriod.DAILY:
        return day, day + timedelta(days=1)
    if period == BudgetPeriod.WEEKLY:
        first = day - timedelta(days=(day.weekday() - week_start) % 7)
        return first, first + timedelta(days=7)
    first = day.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following
