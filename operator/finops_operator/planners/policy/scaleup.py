"""The optional scale-up check at admission (costLimits.refuseBudgetBreakingScaleUp): would the GPUs
running now plus those a change adds use up a GPU-hour budget before its window ends? Read from the
policy's status (its window ledgers and gpusRunning), so admission needs no query. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from finops_operator.api.common import parse_timestamp
from finops_operator.api.finopspolicy import BudgetPeriod, FinOpsPolicySpec
from finops_operator.planners.policy.budget import window_limits
from finops_operator.planners.policy.ledger import SECONDS_PER_HOUR


@dataclass(frozen=True)
class WindowPosition:
    period: BudgetPeriod
    end: datetime
    gpu_hours_used: float
    ledger_time: datetime


@dataclass(frozen=True)
class BudgetPosition:
    """Where a policy's budgets stood at its last sample: only what the check reads (kept in an index)."""

    gpus_running: int = 0
    windows: tuple[WindowPosition, ...] = ()


def _instant(value: object) -> datetime:
    instant = parse_timestamp(value)
    if instant is None:
        raise ValueError("unset timestamp")
    return instant


def budget_position(raw_status: Mapping[str, Any] | None) -> BudgetPosition | None:
    """The position from a policy's status as stored (read field by field: the status is rewritten
    every sample and its windows list up to 500 workloads each, none of which the check needs); None
    without an open window that can be read."""
    status = raw_status or {}
    try:
        windows = tuple(
            WindowPosition(
                BudgetPeriod(w["period"]),
                _instant(w["end"]),
                float(w["gpuHoursUsed"]),
                _instant(w["ledgerTime"]),
            )
            for w in status.get("windows") or ()
        )
        running = int(status.get("gpusRunning") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    open_windows = tuple(w for w in windows if w.ledger_time < w.end)
    return BudgetPosition(running, open_windows) if open_windows else None


def scale_up_overrun(
    spec: FinOpsPolicySpec, position: BudgetPosition | None, added_gpus: int, now: datetime
) -> str | None:
    """Why adding ``added_gpus`` would use up a GPU-hour budget before its window ends, or None.

    The budget left is the stored use plus the running GPUs since the ledger time; the burn after the
    change is the running GPUs plus the added ones. Without a position (no sample yet) nothing is
    refused: the budget action still applies once the budget is used up."""
    limits = spec.cost_limits
    if limits is None or not limits.refuse_budget_breaking_scale_up or added_gpus <= 0 or position is None:
        return None
    budgets = window_limits(spec)
    burn = position.gpus_running + added_gpus
    for window in sorted(position.windows, key=lambda w: w.end):
        limit = budgets.get(window.period)
        if limit is None or limit.gpu_hours is None or window.end <= now:
            continue
        since = max((now - window.ledger_time).total_seconds(), 0.0) / SECONDS_PER_HOUR
        left = max(limit.gpu_hours - window.gpu_hours_used - position.gpus_running * since, 0.0)
        hours = (window.end - now).total_seconds() / SECONDS_PER_HOUR
        if burn * hours > left:
            runs_out = now + timedelta(hours=left / burn)
            return (
                f"adding {added_gpus} GPU(s) makes the burn {burn} GPUs, which uses up the "
                f"{left:.2f} GPU-hours left of the {window.period.value} budget ({limit.gpu_hours:g}) "
                f"at {runs_out:%Y-%m-%d %H:%M} UTC, before the window ends at {window.end:%Y-%m-%d %H:%M} UTC"
            )
    return None
