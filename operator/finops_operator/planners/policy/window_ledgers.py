"""One GPU-hour ledger per calendar window (daily, weekly, monthly), kept in the policy's status.

Every window is accounted whether or not a budget names it, so month-to-date figures and showback
exist from the policy's first sample and survive restarts: status.windows holds the current and the
previous window of each period (at most six entries, each listing at most 500 workloads). A window
that ends is first accounted up to its reset, from the pods still there (their ledger finalizer keeps
the ones that ended), then kept as the previous one until the next reset drops it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from finops_operator.api.finopspolicy import (
    MAX_LISTED_WORKLOADS,
    BudgetPeriod,
    BudgetWindow,
    FinOpsPolicyStatus,
    Pricing,
    WindowLedger,
    WorkloadUsage,
)
from finops_operator.planners.policy.ledger import Ledger, LedgerAdvance, LedgerPod, Usage, advance_ledger
from finops_operator.planners.policy.window import period_bounds


@dataclass(frozen=True)
class WindowAdvance:
    """The windows after one sample."""

    current: Mapping[BudgetPeriod, tuple[LedgerAdvance, datetime]]
    """Per period, the advanced ledger of the window holding ``now`` and that window's end."""
    closed: Mapping[BudgetPeriod, tuple[Ledger, datetime]]
    """Per period, the previous window (accounted to its end), when there is one."""
    releasable: frozenset[tuple[str, str]]
    """(namespace, name) of ended pods every ledger already covers to their end."""


def ledger_of(entry: WindowLedger) -> Ledger:
    usage = {w.name: Usage(w.gpu_hours, w.cost, w.idle_gpu_hours) for w in entry.workloads}
    return Ledger(
        window_start=entry.start,
        accounted_until=entry.ledger_time,
        gpu_hours=entry.gpu_hours_used,
        cost=entry.cost_used,
        by_workload={name: u.gpu_hours for name, u in usage.items()},
        usage_by_workload=usage,
    )


def _stored(status: FinOpsPolicyStatus, period: BudgetPeriod) -> list[WindowLedger]:
    """The period's stored windows, newest first; a status written before status.windows existed
    still has its daily ledger at the top level."""
    entries = sorted((w for w in status.windows if w.period == period), key=lambda w: w.start, reverse=True)
    if entries or period != BudgetPeriod.DAILY or status.window_start is None or status.ledger_time is None:
        return entries
    return [
        WindowLedger(
            period=period,
            start=status.window_start,
            end=status.window_end or status.ledger_time,
            ledger_time=status.ledger_time,
            gpu_hours_used=status.gpu_hours_used,
            cost_used=status.cost_used,
            thresholds_notified=status.thresholds_notified,
            workloads=[WorkloadUsage(name=w.name, gpu_hours=w.gpu_hours) for w in status.workloads],
        )
    ]


def _moved(stored: Sequence[WindowLedger], start: datetime, end: datetime) -> WindowLedger | None:
    """An open window that overlaps [start, end) without starting at ``start``: budgetWindow changed
    (time zone, reset time, week start). Its figures carry over, so a month-to-date is not lost."""
    return next((w for w in stored if w.ledger_time < w.end and w.start < end and start < w.end), None)


def notified_in(status: FinOpsPolicyStatus, period: BudgetPeriod, start: datetime) -> list[int]:
    """Thresholds already announced in the window starting at ``start`` (each fires once a window)."""
    stored = next((w for w in _stored(status, period) if w.start == start), None)
    return list(stored.thresholds_notified) if stored else []


def advance_windows(
    *,
    budget_window: BudgetWindow,
    status: FinOpsPolicyStatus,
    pods_by_workload: Mapping[str, Sequence[LedgerPod]],
    gpu_product_of_node: Mapping[str, str],
    pricing: Pricing | None,
    pod_utilization: Mapping[str, float] | None,
    now: datetime,
) -> WindowAdvance:
    """Account every window up to ``now``, closing the ones that ended. Pure."""

    def advance(previous: Ledger | None, start: datetime, until: datetime) -> LedgerAdvance:
        return advance_ledger(
            previous=previous,
            window_start=start,
            pods_by_workload=pods_by_workload,
            gpu_product_of_node=gpu_product_of_node,
            pricing=pricing,
            now=until,
            pod_utilization=pod_utilization,
        )

    current: dict[BudgetPeriod, tuple[LedgerAdvance, datetime]] = {}
    closed: dict[BudgetPeriod, tuple[Ledger, datetime]] = {}
    advances: list[LedgerAdvance] = []
    for period in BudgetPeriod:
        start, end = period_bounds(budget_window, period, now)
        stored = _stored(status, period)
        ongoing = next((w for w in stored if w.start == start), None) or _moved(stored, start, end)
        previous = next((w for w in stored if w.start < start and w is not ongoing), None)
        if previous is not None and previous.ledger_time < previous.end:  # ended since the last sample
            closing = advance(ledger_of(previous), previous.start, min(previous.end, now))
            advances.append(closing)
            closed[period] = (closing.ledger, previous.end)
        elif previous is not None:
            closed[period] = (ledger_of(previous), previous.end)
        now_advance = advance(
            replace(ledger_of(ongoing), window_start=start) if ongoing else None, start, now
        )
        advances.append(now_advance)
        current[period] = (now_advance, end)
    releasable = frozenset.intersection(
        *(frozenset((p.namespace, p.name) for p in a.releasable) for a in advances)
    )
    return WindowAdvance(current, closed, releasable)


def window_entries(
    *,
    advance: WindowAdvance,
    previous: FinOpsPolicyStatus,
    percent_by_period: Mapping[BudgetPeriod, float],
    notified: Mapping[BudgetPeriod, Sequence[int]],
) -> list[WindowLedger]:
    """status.windows: per period the current window, then the previous one. ``ledgerTime`` only
    moves when the stored sum does (no write while no GPU is used; the next sample accounts from the
    older instant and reaches the same sum)."""
    entries: list[WindowLedger] = []
    for period in BudgetPeriod:
        stored = _stored(previous, period)
        step, end = advance.current[period]
        ongoing = next((w for w in stored if w.start == step.ledger.window_start), None)
        used = round(step.ledger.gpu_hours, 6)
        entries.append(
            _entry(
                period,
                step.ledger,
                end,
                percent=round(percent_by_period.get(period, 0.0)),
                ledger_time=ongoing.ledger_time
                if ongoing is not None and ongoing.gpu_hours_used == used
                else step.ledger.accounted_until,
                notified=sorted(set(notified.get(period, ()))),
            )
        )
        if period in advance.closed:
            ledger, closed_end = advance.closed[period]
            old = next((w for w in stored if w.start == ledger.window_start), None)
            entries.append(
                _entry(
                    period,
                    ledger,
                    closed_end,
                    percent=old.used_percent if old else 0,
                    ledger_time=closed_end,
                    notified=list(old.thresholds_notified) if old else [],
                )
            )
    return entries


def _entry(
    period: BudgetPeriod,
    ledger: Ledger,
    end: datetime,
    *,
    percent: int,
    ledger_time: datetime,
    notified: list[int],
) -> WindowLedger:
    usage = ledger.usage_by_workload
    return WindowLedger(
        period=period,
        start=ledger.window_start,
        end=end,
        ledger_time=ledger_time,
        gpu_hours_used=round(ledger.gpu_hours, 6),
        cost_used=round(ledger.cost, 6),
        idle_gpu_hours=round(ledger.idle_gpu_hours, 6),
        used_percent=percent,
        thresholds_notified=notified,
        workloads=[
            WorkloadUsage(
                name=name,
                gpu_hours=round(usage[name].gpu_hours, 6),
                cost=round(usage[name].cost, 6),
                idle_gpu_hours=round(usage[name].idle_gpu_hours, 6),
            )
            for name in sorted(usage)[:MAX_LISTED_WORKLOADS]
        ],
    )


def monthly_usage(status: FinOpsPolicyStatus) -> list[tuple[datetime, dict[str, tuple[float, float, float]]]]:
    """The monthly ledgers, oldest first, as (start, per workload GPU-hours, cost, idle GPU-hours): what
    the usage counters follow."""
    return [
        (w.start, {u.name: (u.gpu_hours, u.cost, u.idle_gpu_hours) for u in w.workloads})
        for w in sorted(status.windows, key=lambda w: w.start)
        if w.period == BudgetPeriod.MONTHLY
    ]
