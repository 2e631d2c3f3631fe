"""Daily, weekly and monthly budget windows: calendar bounds in a time zone, one ledger per window
kept across resets and restarts, every window's budget acting and restoring at its own reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.conditions import find
from finops_operator.api.finopspolicy import BudgetPeriod, BudgetWindow, FinOpsPolicyStatus
from finops_operator.planners.policy import PolicyObservation, WorkloadFacts, parse_policy_spec, plan_policy
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.planners.policy.plan import PolicyPlan
from finops_operator.planners.policy.window import period_bounds
from finops_operator.workloads.annotations import ANNOTATION_PREVIOUS_REPLICAS, ANNOTATION_SCALED_BY

H = timedelta(hours=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- calendar bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "now", "expected"),
    [
        (
            BudgetPeriod.WEEKLY,
            utc(2026, 11, 26, 12),
            (utc(2026, 11, 23), utc(2026, 11, 30)),
        ),  # Thu in Mon week
        (BudgetPeriod.WEEKLY, utc(2026, 11, 23), (utc(2026, 11, 23), utc(2026, 11, 30))),
        (BudgetPeriod.MONTHLY, utc(2026, 2, 14), (utc(2026, 2, 1), utc(2026, 3, 1))),  # 28 days
        (BudgetPeriod.MONTHLY, utc(2028, 2, 29, 23), (utc(2028, 2, 1), utc(2028, 3, 1))),  # leap year
        (BudgetPeriod.MONTHLY, utc(2026, 12, 31, 23), (utc(2026, 12, 1), utc(2027, 1, 1))),  # year end
    ],
)
def test_utc_calendar_windows(
    period: BudgetPeriod, now: datetime, expected: tuple[datetime, datetime]
) -> None:
    assert period_bounds(BudgetWindow(), period, now) == expected


def test_week_start_day_and_reset_time_in_a_time_zone() -> None:
    window = BudgetWindow(time_zone="America/New_York", reset_time="06:00", week_start="Sunday")
    # Sunday 2026-11-29 05:59 local (10:59 UTC) still belongs to the week that began Sunday the 22nd.
    assert period_bounds(window, BudgetPeriod.WEEKLY, utc(2026, 11, 29, 10, 59)) == (
        utc(2026, 11, 22, 11),
        utc(2026, 11, 29, 11),
    )
    assert period_bounds(window, BudgetPeriod.WEEKLY, utc(2026, 11, 29, 11))[0] == utc(2026, 11, 29, 11)


def test_a_month_has_its_real_length_across_daylight_saving() -> None:
    window = BudgetWindow(time_zone="Europe/Paris")
    start, end = period_bounds(window, BudgetPeriod.MONTHLY, utc(2026, 3, 15))
    assert (start, end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert end - start == timedelta(days=31) - H  # the spring-forward hour is missing
    # Before the reset time on the 1st, the moment still belongs to the previous month.
    late = BudgetWindow(reset_time="06:00")
    assert period_bounds(late, BudgetPeriod.MONTHLY, utc(2026, 4, 1, 5)) == (
        utc(2026, 3, 1, 6),
        utc(2026, 4, 1, 6),
    )


# --- the planner over days ------------------------------------------------------------------------

SPEC: dict[str, Any] = {
    "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
    "costLimits": {"dailyGPUHours": 18, "budgetAction": "ScaleToZero"},
    "budgets": [{"period": "monthly", "gpuHours": 40}],
    "pricing": {"gpuHourlyRate": 2.0},
}
DEPLOYMENT = WorkloadFacts("ns", "llm", {"app": "llm"}, replicas=1, gpus_per_pod=1)


def gpu_pod(since: datetime) -> LedgerPod:
    """One GPU running since ``since``, with the ledger finalizer, owned by the Deployment."""
    return LedgerPod(
        "ns", "llm-1", {"app": "llm"}, gpus=1, running_since=since, has_finalizer=True, owner="llm"
    )


def sample(
    status: FinOpsPolicyStatus,
    now: datetime,
    *,
    spec: dict[str, Any] | None = None,
    deployment: WorkloadFacts = DEPLOYMENT,
    pods: tuple[LedgerPod, ...] = (),
    utilization: dict[str, float] | None = None,
) -> PolicyPlan:
    observation = PolicyObservation(
        name="p",
        generation=1,
        current_status=status,
        workloads=[deployment],
        pods=pods,
        pod_utilization=utilization,
    )
    return plan_policy(parse_policy_spec(spec or SPEC), observation, now)


def restarted(status: FinOpsPolicyStatus) -> FinOpsPolicyStatus:
    """The status as a new operator process reads it back from the API server."""
    return FinOpsPolicyStatus.model_validate(status.to_wire())


def window(status: FinOpsPolicyStatus, period: str, start: datetime) -> Any:
    return next(w for w in status.windows if w.period == period and w.start == start)


def test_month_to_date_survives_daily_resets_and_restarts() -> None:
    """A GPU busy 10 h a day: each day is under 18, the month reaches 40 on day 4 and scales the
    workload to zero; the next day does not restore it (the month still is used up), the next month
    does."""
    status = FinOpsPolicyStatus()
    for day in range(1, 4):  # 10 GPU-hours on each of Nov 1-3, sampled hourly, restarting each night
        since = utc(2026, 11, day, 8)
        for hour in range(11):
            status = restarted(sample(status, since + hour * H, pods=(gpu_pod(since),)).status)
        status = restarted(sample(status, since + 12 * H, pods=()).status)
    month = window(status, "monthly", utc(2026, 11, 1))
    assert month.gpu_hours_used == pytest.approx(30.0)
    assert month.cost_used == pytest.approx(60.0)
    assert status.gpu_hours_used == pytest.approx(10.0)  # today's, as before
    assert find(status.conditions, "BudgetExceeded").status == "False"  # type: ignore[union-attr]

    since = utc(2026, 11, 4, 8)
    plan = sample(status, since + 10 * H, pods=(gpu_pod(since),))
    assert plan.status.gpu_hours_used == pytest.approx(10.0) and plan.status.budget_used_percent == 100
    exceeded = find(plan.status.conditions, "BudgetExceeded")
    assert (
        exceeded is not None and exceeded.status == "True" and exceeded.message.startswith("monthlyGPUHours")
    )
    assert [(c.workload, c.replicas) for c in plan.changes] == [("llm", 0)]

    scaled = WorkloadFacts(
        "ns",
        "llm",
        {"app": "llm"},
        replicas=0,
        gpus_per_pod=1,
        annotations={ANNOTATION_PREVIOUS_REPLICAS: "1", ANNOTATION_SCALED_BY: "p:budget"},
    )
    next_day = sample(restarted(plan.status), utc(2026, 11, 5, 9), deployment=scaled)
    assert next_day.changes == ()  # the daily window reset, the monthly one did not
    assert next_day.status.gpu_hours_used == 0.0
    next_month = sample(restarted(next_day.status), utc(2026, 12, 1, 0, 1), deployment=scaled)
    assert [(c.workload, c.replicas, c.reason) for c in next_month.changes] == [("llm", 1, "BudgetRestored")]
    # November is kept, closed, as the previous monthly window.
    assert window(next_month.status, "monthly", utc(2026, 11, 1)).gpu_hours_used == pytest.approx(40.0)
    assert len(next_month.status.windows) <= 6


def test_a_closing_window_is_accounted_up_to_its_reset() -> None:
    since = utc(2026, 11, 22, 20)
    before = sample(FinOpsPolicyStatus(), utc(2026, 11, 22, 23), pods=(gpu_pod(since),)).status
    after = sample(restarted(before), utc(2026, 11, 23, 2), pods=(gpu_pod(since),)).status
    yesterday = window(after, "daily", utc(2026, 11, 22))
    assert yesterday.gpu_hours_used == pytest.approx(4.0) and yesterday.ledger_time == utc(2026, 11, 23)
    assert after.gpu_hours_used == pytest.approx(2.0)
    assert window(after, "weekly", utc(2026, 11, 16)).gpu_hours_used == pytest.approx(4.0)  # Sunday ends
    assert window(after, "weekly", utc(2026, 11, 23)).gpu_hours_used == pytest.approx(2.0)
    assert window(after, "monthly", utc(2026, 11, 1)).gpu_hours_used == pytest.approx(6.0)


def test_a_status_written_before_windows_existed_keeps_its_daily_ledger() -> None:
    legacy = FinOpsPolicyStatus.model_validate(
        {
            "windowStart": "2026-11-22T00:00:00Z",
            "windowEnd": "2026-11-23T00:00:00Z",
            "ledgerTime": "2026-11-22T10:00:00Z",
            "gpuHoursUsed": 7.5,
            "thresholdsNotified": [80],
            "workloads": [{"name": "llm", "gpuHours": 7.5}],
        }
    )
    plan = sample(legacy, utc(2026, 11, 22, 11), pods=(gpu_pod(utc(2026, 11, 22, 10)),))
    assert plan.status.gpu_hours_used == pytest.approx(8.5)
    assert window(plan.status, "daily", utc(2026, 11, 22)).thresholds_notified == [80]


def test_thresholds_fire_once_per_window_and_name_the_window() -> None:
    spec = {
        **SPEC,
        "costLimits": {"budgetAction": "AlertOnly"},
        "budgets": [{"period": "weekly", "gpuHours": 10}],
    }
    since = utc(2026, 11, 23, 0)
    first = sample(FinOpsPolicyStatus(), since + 9 * H, spec=spec, pods=(gpu_pod(since),))
    assert [e.message for e in first.events if e.reason == "BudgetThresholdCrossed"] == [
        "[WARNING] p used 90% of its weekly budget (threshold 80%)"
    ]
    again = sample(restarted(first.status), since + 9.5 * H, spec=spec, pods=(gpu_pod(since),))
    assert [e for e in again.events if e.reason == "BudgetThresholdCrossed"] == []
    assert window(again.status, "weekly", since).thresholds_notified == [80]


def test_idle_gpu_hours_come_from_utilisation_and_are_shown_apart() -> None:
    since = utc(2026, 11, 22, 8)
    plan = sample(FinOpsPolicyStatus(), since + 4 * H, pods=(gpu_pod(since),), utilization={"llm-1": 25.0})
    day = window(plan.status, "daily", utc(2026, 11, 22))
    assert day.gpu_hours_used == pytest.approx(4.0) and day.idle_gpu_hours == pytest.approx(3.0)
    assert [(w.name, w.gpu_hours, w.cost, w.idle_gpu_hours) for w in day.workloads] == [
        ("llm", 4.0, 8.0, 3.0)
    ]


def test_planning_twice_changes_nothing_with_windows() -> None:
    since = utc(2026, 11, 22, 8)
    first = sample(FinOpsPolicyStatus(), since + 4 * H, pods=(gpu_pod(since),))
    second = sample(restarted(first.status), since + 4 * H, pods=(gpu_pod(since),))
    assert second.status.to_wire() == first.status.to_wire()


def test_a_changed_time_zone_keeps_the_month_to_date() -> None:
    since = utc(2026, 11, 10, 8)
    spec = {**SPEC, "budgetWindow": {"timeZone": "UTC"}}
    before = sample(FinOpsPolicyStatus(), since + 10 * H, spec=spec, pods=(gpu_pod(since),)).status
    for zone in ("Asia/Tokyo", "America/New_York"):  # the month starts earlier, then later, than in UTC
        moved = {**SPEC, "budgetWindow": {"timeZone": zone}}
        after = sample(restarted(before), since + 11 * H, spec=moved, pods=(gpu_pod(since),)).status
        month = next(w for w in after.windows if w.period == "monthly" and w.start <= since < w.end)
        assert month.gpu_hours_used == pytest.approx(11.0), zone
        assert len([w for w in after.windows if w.period == "monthly"]) == 1, zone
