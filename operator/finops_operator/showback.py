"""Showback: GPU-hours, cost and idle GPU-hours per namespace, workload or workload label over a day,
week or month, read from the FinOpsPolicy ledgers (status.windows) as the API returns them. Pure: the
CLI fetches, this module only reads and formats, so a report can be rebuilt from an archived dump."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from finops_operator.api.finopspolicy import MAX_LISTED_WORKLOADS, BudgetPeriod, WindowLedger

OTHER_WORKLOADS = "(unlisted workloads)"
"""GPU use a window's totals count beyond the workloads it lists, when the list is truncated."""
NO_LABEL = "(no label)"


class ShowbackWindow(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def period(self) -> BudgetPeriod:
        return {"day": BudgetPeriod.DAILY, "week": BudgetPeriod.WEEKLY, "month": BudgetPeriod.MONTHLY}[
            self.value
        ]


@dataclass(frozen=True)
class ShowbackRow:
    key: str
    gpu_hours: float
    cost: float
    idle_gpu_hours: float
    currency: str


@dataclass(frozen=True)
class ShowbackReport:
    window: ShowbackWindow
    by: str
    rows: tuple[ShowbackRow, ...]
    windows: tuple[tuple[str, str, str, str], ...]
    """(namespace/policy, start, end, accounted until) of every policy window summed."""
    problems: tuple[str, ...] = ()
    """Policies without a ledger for the window asked for (not counted as zero)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.value,
            "by": self.by,
            "rows": [asdict(r) for r in self.rows],
            "policies": [{"policy": p, "start": s, "end": e, "ledgerTime": t} for p, s, e, t in self.windows],
            "problems": list(self.problems),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([self.by, "gpu_hours", "cost", "idle_gpu_hours", "currency"])
        for r in self.rows:
            writer.writerow(
                [r.key, f"{r.gpu_hours:.6f}", f"{r.cost:.6f}", f"{r.idle_gpu_hours:.6f}", r.currency]
            )
        return out.getvalue().rstrip("\n")

    def to_table(self) -> str:
        header = (self.by.upper(), "GPU-HOURS", "COST", "IDLE GPU-HOURS")
        rows = [header] + [
            (r.key, f"{r.gpu_hours:.2f}", f"{r.cost:.2f} {r.currency}", f"{r.idle_gpu_hours:.2f}")
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.extend(f"{p}: {s} .. {e} (accounted until {t})" for p, s, e, t in self.windows)
        lines.extend(f"! {p}" for p in self.problems)
        return "\n".join(lines)


def parse_at(text: str | None, now: datetime) -> datetime | date:
    """--at: a date (the window holding noon of that day in each policy's time zone) or an ISO
    instant; unset means now."""
    if not text:
        return now
    if "T" not in text and " " not in text:
        return date.fromisoformat(text)
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _instant(at: datetime | date, time_zone: object) -> datetime:
    if isinstance(at, datetime):
        return at
    try:
        zone = ZoneInfo(str(time_zone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.combine(at, time(12), tzinfo=zone)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ledgers(status: Mapping[str, Any]) -> list[WindowLedger]:
    result = []
    for raw in status.get("windows") or []:
        try:
            result.append(WindowLedger.model_validate(raw))
        except ValidationError:
            continue  # a hand-edited entry is skipped, never guessed at
    return result


def showback_report(
    policies: Iterable[Mapping[str, Any]],
    deployments: Iterable[Mapping[str, Any]],
    *,
    window: ShowbackWindow,
    by: str,
    at: datetime | date,
) -> ShowbackReport:
    """Sum the ledgers of every policy's window holding ``at``, grouped ``by`` namespace, workload or
    label:<key> (the label of the governed Deployment). Each policy's window is its own calendar (time
    zone, reset time), listed with the report."""
    labels = {
        (
            str(_mapping(d.get("metadata")).get("namespace", "")),
            str(_mapping(d.get("metadata")).get("name", "")),
        ): {str(k): str(v) for k, v in _mapping(_mapping(d.get("metadata")).get("labels")).items()}
        for d in deployments
    }
    label_key = by.removeprefix("label:") if by.startswith("label:") else None
    if by not in ("namespace", "workload") and not label_key:
        raise ValueError(f"--by {by!r}: use namespace, workload or label:<key>")
    totals: dict[tuple[str, str], list[float]] = {}
    spans: list[tuple[str, str, str, str]] = []
    problems: list[str] = []
    for obj in sorted(
        policies,
        key=lambda o: (
            _mapping(o.get("metadata")).get("namespace", ""),
            _mapping(o.get("metadata")).get("name", ""),
        ),
    ):
        meta, spec = _mapping(obj.get("metadata")), _mapping(obj.get("spec"))
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        currency = str(_mapping(spec.get("pricing")).get("currency", "USD"))
        instant = _instant(at, _mapping(spec.get("budgetWindow")).get("timeZone"))
        ledger = next(
            (
                w
                for w in _ledgers(_mapping(obj.get("status")))
                if w.period == window.period and w.start <= instant < w.end
            ),
            None,
        )
        if ledger is None:
            problems.append(
                f"{namespace}/{name}: no {window.period.value} ledger holds {instant.isoformat()} "
                "(status keeps the current and the previous window)"
            )
            continue
        spans.append(
            (
                f"{namespace}/{name}",
                ledger.start.isoformat(),
                ledger.end.isoformat(),
                ledger.ledger_time.isoformat(),
            )
        )
        listed = [(w.name, w.gpu_hours, w.cost, w.idle_gpu_hours) for w in ledger.workloads]
        if len(listed) >= MAX_LISTED_WORKLOADS:  # truncated: the totals hold more than the list
            listed.append(
                (
                    OTHER_WORKLOADS,
                    max(0.0, ledger.gpu_hours_used - sum(w[1] for w in listed)),
                    max(0.0, ledger.cost_used - sum(w[2] for w in listed)),
                    max(0.0, ledger.idle_gpu_hours - sum(w[3] for w in listed)),
                )
            )
        for workload, gpu_hours, cost, idle in listed:
            if by == "namespace":
                key = namespace
            elif label_key is not None:
                key = labels.get((namespace, workload), {}).get(label_key, NO_LABEL)
            else:
                key = f"{namespace}/{workload}"
            sums = totals.setdefault((key, currency), [0.0, 0.0, 0.0])
            sums[0] += gpu_hours
            sums[1] += cost
            sums[2] += max(idle, 0.0)
    rows = tuple(
        ShowbackRow(key, round(g, 6), round(c, 6), round(i, 6), currency)
        for (key, currency), (g, c, i) in sorted(totals.items())
    )
    return ShowbackReport(window, by, rows, tuple(spans), tuple(problems))
