"""An Event the operator posts is posted once: its log line must not become a second one."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from finops_operator.handlers.apply import post_events
from finops_operator.handlers.status import RecentWrites
from finops_operator.planners.plan import Event


class RecordingKube:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    def post_event(self, regarding: dict[str, Any], **event: Any) -> None:
        self.posted.append(event)


def test_a_warning_event_is_posted_once_and_its_log_line_is_not_posted_by_kopf(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = RecordingKube()
    owner = {"kind": "FinOpsPolicy", "metadata": {"namespace": "ai", "name": "budget"}}
    event = Event("Warning", "BudgetExhausted", "scaled llm from 2 to 0 replicas")

    with caplog.at_level(logging.INFO):
        post_events(kube, [event], owner=owner, recent=RecentWrites(60), logger=logging.getLogger("t"))  # type: ignore[arg-type]

    assert [e["reason"] for e in kube.posted] == ["BudgetExhausted"]
    [record] = [r for r in caplog.records if r.getMessage() == event.message]
    assert record.levelno == logging.WARNING
    assert record.k8s_skip is True  # Kopf's posting filter skips it (kopf._core.engines.posting)
