"""Showback (`finops report showback`): the policies' window ledgers grouped by namespace, workload
or label, with pinned clocks; and the usage counters that follow the monthly ledgers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from finops_operator import metrics
from finops_operator.api.finopspolicy import MAX_LISTED_WORKLOADS
from finops_operator.showback import ShowbackWindow, parse_at, showback_report

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


def ledger(period: str, start: str, end: str, *workloads: tuple[str, float, float, float]) -> dict[str, Any]:
    return {
        "period": period,
        "start": start,
        "end": end,
        "ledgerTime": end,
        "gpuHoursUsed": sum(w[1] for w in workloads),
        "costUsed": sum(w[2] for w in workloads),
        "idleGPUHours": sum(w[3] for w in workloads),
        "workloads": [{"name": n, "gpuHours": g, "cost": c, "idleGPUHours": i} for n, g, c, i in workloads],
    }


def policy(namespace: str, name: str, *windows: dict[str, Any], time_zone: str = "UTC") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"pricing": {"gpuHourlyRate": 2, "currency": "EUR"}, "budgetWindow": {"timeZone": time_zone}},
        "status": {"windows": list(windows)},
    }


POLICIES = [
    policy(
        "team-a",
        "budget",
        ledger(
            "monthly", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", ("llm", 30, 60, 6), ("rag", 10, 20, 0)
        ),
        ledger("monthly", "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z", ("llm", 300, 600, 10)),
        ledger("daily", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z", ("llm", 3, 6, 1)),
    ),
    policy(
        "team-b",
        "budget",
        ledger("monthly", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", ("train", 5, 10, 2.5)),
    ),
]
DEPLOYMENTS = [
    {"metadata": {"namespace": "team-a", "name": "llm", "labels": {"cost-center": "research"}}},
    {"metadata": {"namespace": "team-a", "name": "rag", "labels": {"cost-center": "product"}}},
    {"metadata": {"namespace": "team-b", "name": "train", "labels": {"cost-center": "research"}}},
]


def rows(
    by: str, window: ShowbackWindow = ShowbackWindow.MONTH, at: datetime | date = NOW
) -> list[tuple[Any, ...]]:
    report = showback_report(POLICIES, DEPLOYMENTS, window=window, by=by, at=at)
    return [(r.key, r.gpu_hours, r.cost, r.idle_gpu_hours) for r in report.rows]


def test_month_by_namespace_workload_and_label() -> None:
    assert rows("namespace") == [("team-a", 40, 80, 6), ("team-b", 5, 10, 2.5)]
    assert rows("workload") == [
        ("team-a/llm", 30, 60, 6),
        ("team-a/rag", 10, 20, 0),
        ("team-b/train", 5, 10, 2.5),
    ]
    assert rows("label:cost-center") == [("product", 10, 20, 0), ("research", 35, 70, 8.5)]
    assert rows("label:owner") == [("(no label)", 45, 90, 8.5)]


def test_at_picks_the_previous_window_and_says_what_is_not_kept() -> None:
    report = showback_report(
        POLICIES, DEPLOYMENTS, window=ShowbackWindow.MONTH, by="namespace", at=date(2026, 10, 15)
    )
    assert [(r.key, r.gpu_hours) for r in report.rows] == [("team-a", 300)]
    assert report.problems == (
        "team-b/budget: no monthly ledger holds 2026-10-15T12:00:00+00:00 "
        "(status keeps the current and the previous window)",
    )
    assert rows("namespace", ShowbackWindow.DAY) == [("team-a", 3, 6, 1)]


def test_a_date_is_read_in_each_policy_time_zone() -> None:
    tokyo = policy(
        "jp",
        "p",
        ledger("daily", "2026-11-21T15:00:00Z", "2026-11-22T15:00:00Z", ("llm", 2, 4, 0)),
        time_zone="Asia/Tokyo",
    )
    report = showback_report([tokyo], [], window=ShowbackWindow.DAY, by="namespace", at=date(2026, 11, 22))
    assert [(r.key, r.gpu_hours) for r in report.rows] == [("jp", 2)]


def test_unlisted_workloads_keep_the_totals_whole() -> None:
    listed = [(f"w{i:03}", 0.01, 0.02, 0) for i in range(MAX_LISTED_WORKLOADS)]
    entry = ledger("daily", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z", *listed)
    entry["gpuHoursUsed"], entry["costUsed"] = 7, 14
    report = showback_report([policy("a", "p", entry)], [], window=ShowbackWindow.DAY, by="namespace", at=NOW)
    assert [(r.key, r.gpu_hours, r.cost) for r in report.rows] == [("a", 7, 14)]
    report = showback_report([policy("a", "p", entry)], [], window=ShowbackWindow.DAY, by="workload", at=NOW)
    assert (report.rows[0].key, round(report.rows[0].gpu_hours, 6)) == ("a/(unlisted workloads)", 2)


def test_a_complete_list_is_not_padded_with_rounding_residue() -> None:
    """Each figure in status is rounded to 6 decimals: the totals and the sum of the rows may differ
    by that, which is not a workload (it once showed as an "(unlisted workloads)" row of -0.000002)."""
    entry = ledger("daily", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z", ("a", 0.003740, 0.00935, 0))
    entry["gpuHoursUsed"], entry["costUsed"] = 0.003742, 0.009348
    report = showback_report([policy("a", "p", entry)], [], window=ShowbackWindow.DAY, by="workload", at=NOW)
    assert [r.key for r in report.rows] == ["a/a"]


def test_formats() -> None:
    report = showback_report(POLICIES, DEPLOYMENTS, window=ShowbackWindow.MONTH, by="namespace", at=NOW)
    assert report.to_csv().splitlines() == [
        "namespace,gpu_hours,cost,idle_gpu_hours,currency",
        "team-a,40.000000,80.000000,6.000000,EUR",
        "team-b,5.000000,10.000000,2.500000,EUR",
    ]
    parsed = json.loads(report.to_json())
    assert parsed["rows"][0] == {
        "key": "team-a",
        "gpu_hours": 40,
        "cost": 80,
        "idle_gpu_hours": 6,
        "currency": "EUR",
    }
    assert parsed["policies"][0] == {
        "policy": "team-a/budget",
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-12-01T00:00:00+00:00",
        "ledgerTime": "2026-12-01T00:00:00+00:00",
    }
    table = report.to_table().splitlines()
    assert table[0].split() == ["NAMESPACE", "GPU-HOURS", "COST", "IDLE", "GPU-HOURS"]
    assert table[1].split() == ["team-a", "40.00", "80.00", "EUR", "6.00"]


def test_bad_by_and_at_are_refused() -> None:
    with pytest.raises(ValueError, match="label:<key>"):
        showback_report(POLICIES, [], window=ShowbackWindow.DAY, by="team", at=NOW)
    with pytest.raises(ValueError):
        parse_at("yesterday", NOW)
    assert parse_at(None, NOW) == NOW
    assert parse_at("2026-11-02", NOW) == date(2026, 11, 2)
    assert parse_at("2026-11-02T05:00:00Z", NOW) == datetime(2026, 11, 2, 5, tzinfo=UTC)


def counter(name: str, workload: str) -> float:
    value = REGISTRY.get_sample_value(name, {"namespace": "usage-ns", "workload": workload, "policy": "p"})
    return value or 0.0


def test_usage_counters_grow_with_the_ledger_once_and_across_a_new_month() -> None:
    november, december = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    metrics.record_usage("usage-ns", "p", [(november, {"llm": (100.0, 200.0, 10.0)})])  # seen at start
    assert counter("finops_gpu_hours_total", "llm") == 0.0  # what came before this process is not added
    metrics.record_usage("usage-ns", "p", [(november, {"llm": (101.5, 203.0, 10.5)})])
    metrics.record_usage("usage-ns", "p", [(november, {"llm": (101.0, 202.0, 10.0)})])  # a stale status
    metrics.record_usage("usage-ns", "p", [(november, {"llm": (101.5, 203.0, 10.5)})])
    assert counter("finops_gpu_hours_total", "llm") == pytest.approx(1.5)
    metrics.record_usage(
        "usage-ns", "p", [(november, {"llm": (102.0, 204.0, 10.5)}), (december, {"llm": (1.0, 2.0, 0.0)})]
    )
    assert counter("finops_gpu_hours_total", "llm") == pytest.approx(3.0)
    assert counter("finops_cost_total", "llm") == pytest.approx(6.0)
    assert counter("finops_idle_gpu_hours_total", "llm") == pytest.approx(0.5)
    metrics.forget_policy("usage-ns", "p")
    assert (
        REGISTRY.get_sample_value(
            "finops_gpu_hours_total", {"namespace": "usage-ns", "workload": "llm", "policy": "p"}
        )
        is None
    )
