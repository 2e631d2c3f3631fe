"""The daily budget window: which [start, end) a moment falls in, in the policy's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from finops_operator.api.finopspolicy import BudgetWindow


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
    """Start and end (UTC) of the window containing ``now``.

    Resets happen at ``resetTime`` local wall-clock time, so a window is 23 or 25 hours long on
    daylight-saving days, as people reading a daily bill expect.
    """
    zone = zone_of(window)
    local_now = now.astimezone(zone)
    hour, minute = (int(part) for part in window.reset_time.split(":"))
    reset = time(hour, minute)
    start_day = local_now.date() if local_now.time() >= reset else local_now.date() - timedelta(days=1)
    start = datetime.combine(start_day, reset, tzinfo=zone)
    end = datetime.combine(start_day + timedelta(days=1), reset, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
