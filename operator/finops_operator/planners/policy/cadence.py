"""When a policy samples again before its next timer tick: at the instant its budget is projected to
run out. Without this, a budget crossed between ticks is enforced up to one sample interval late,
and GPU time keeps accruing past the budget for all of it."""

from __future__ import annotations

from datetime import datetime, timedelta

EXHAUSTION_SLACK = timedelta(milliseconds=50)
"""Sample this long after the projected instant, so the ledger (rounded to microhours) is past the
budget when it is read rather than a rounding error short of it."""


def seconds_until_exhaustion_sample(
    projected_exhaustion: datetime | None, now: datetime, next_tick: datetime
) -> float | None:
    """Seconds to wait before sampling again at the projected exhaustion, or None when the next timer
    tick comes first (or nothing is projected). A projection already past is left to the next tick:
    the sample that made it did not find the budget exhausted, so sampling at once again would only
    repeat it. Pure."""
    if projected_exhaustion is None or projected_exhaustion <= now:
        return None
    wake = projected_exhaustion + EXHAUSTION_SLACK
    if wake >= next_tick:
        return None
    return (wake - now).total_seconds()
