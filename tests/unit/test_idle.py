"""Idle shutdown: tracking idle_since, scaling to zero after the threshold, never without metrics, waking
on request and restoring when idle shutdown is no longer enforced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.finopspolicy import FinOpsPolicySpec
from finops_operator.planners.policy.budget import GovernedWorkload, ReplicaChange
from finops_operator.planners.policy.idle import IdleDecision, plan_idle
from finops_operator.workloads.annotations import (
    ANNOTATION_PREVIOUS_REPLICAS,
    ANNOTATION_REPLICA_CAP,
    ANNOTATION_SCALED_BY,
    ANNOTATION_WAKE,
)

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
M = timedelta(minutes=1)
POLICY = "p"
RULES = {"idleShutdownThresholdMinutes": 30, "idleGPUUtilizationPercent": 5}
RUNNING = GovernedWorkload("llm", 3)
ASLEEP = GovernedWorkload("llm", 0, {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:idle"})
NOTHING = IdleDecision(None, None, None, idle=False)


def spec(mode: str = "Enforce", rules: dict[str, Any] | None = RULES) -> FinOpsPolicySpec:
    raw: dict[str, Any] = {"targetWorkloadSelector": {"matchLabels": {"app": "llm"}}, "enforcementMode": mode}
    if rules is not None:
        raw["optimizationRules"] = rules
    return FinOpsPolicySpec.model_validate(raw)


def decide(
    workload: GovernedWorkload = RUNNING,
    utilization: float | None = 1.0,
    idle_since: datetime | None = None,
    *,
    policy_spec: FinOpsPolicySpec | None = None,
    now: datetime = NOW,
) -> IdleDecision:
    return plan_idle(
        policy=POLICY,
        spec=policy_spec or spec(),
        workload=workload,
        utilization=utilization,
        idle_since=idle_since,
        now=now,
    )


def apply(workload: GovernedWorkload, change: ReplicaChange) -> GovernedWorkload:
    annotations = dict(workload.annotations)
    for key, value in change.annotations.items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    replicas = change.replicas if change.replicas is not None else workload.replicas
    return GovernedWorkload(workload.name, replicas, annotations)


# --- when a workload is idle ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy_spec", "workload", "utilization"),
    [
        pytest.param(spec(rules=None), RUNNING, 0.0, id="no-rules"),
        pytest.param(spec(rules={"modelQuantizationRequired": True}), RUNNING, 0.0, id="rules-without-idle"),
        pytest.param(spec(), RUNNING, None, id="metrics-missing"),
        pytest.param(spec(), RUNNING, 5.0, id="exactly-at-threshold"),
        pytest.param(spec(), RUNNING, 80.0, id="busy"),
        pytest.param(spec(), GovernedWorkload("llm", 0), 0.0, id="already-at-zero"),
        pytest.param(
            spec(),
            GovernedWorkload("llm", 0, {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:budget"}),
            0.0,
            id="budget-scaled-to-zero",
        ),
        pytest.param(
            spec(),
            GovernedWorkload(
                "llm", 0, {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "other:idle"}
            ),
            0.0,
            id="other-policys-idle-shutdown",
        ),
    ],
)
@pytest.mark.parametrize("since", [None, NOW - 10 * 60 * M], ids=["fresh", "long-idle-before"])
def test_not_idle(
    policy_spec: FinOpsPolicySpec,
    workload: GovernedWorkload,
    utilization: float | None,
    since: datetime | None,
) -> None:
    assert decide(workload, utilization, since, policy_spec=policy_spec) == NOTHING


@pytest.mark.parametrize(
    ("idle_since", "expected_since"),
    [
        pytest.param(None, NOW, id="starts-now"),
        pytest.param(NOW - 10 * M, NOW - 10 * M, id="persists"),
        pytest.param(
            NOW - 30 * M + timedelta(seconds=1), NOW - 30 * M + timedelta(seconds=1), id="one-second-short"
        ),
    ],
)
def test_idle_since_starts_and_persists(idle_since: datetime | None, expected_since: datetime) -> None:
    assert decide(utilization=4.9, idle_since=idle_since) == IdleDecision(
        expected_since, None, None, idle=True
    )


@pytest.mark.parametrize(
    ("idle_for", "shut"),
    [
        pytest.param(29 * M, False, id="29min"),
        pytest.param(30 * M - timedelta(microseconds=1), False, id="just-before-30min"),
        pytest.param(30 * M, True, id="exactly-30min"),
        pytest.param(31 * M, True, id="31min"),
        pytest.param(24 * 60 * M, True, id="a-day"),
    ],
)
def test_shutdown_at_the_threshold_minute(idle_for: timedelta, shut: bool) -> None:
    decision = decide(utilization=0.0, idle_since=NOW - idle_for)
    assert decision.idle and decision.idle_since == NOW - idle_for and decision.would is None
    if not shut:
        assert decision.change is None
        return
    change = decision.change
    assert change is not None
    assert change.replicas == 0
    assert change.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:idle"}
    assert change.reason == "IdleShutdown"
    assert "0.0% below 5% for 30 min" in change.message


@pytest.mark.parametrize("mode", ["DryRun", "Warn"])
def test_dry_run_and_warn_only_report(mode: str) -> None:
    decision = decide(utilization=0.0, idle_since=NOW - 30 * M, policy_spec=spec(mode))
    assert decision.change is None and decision.idle and decision.idle_since == NOW - 30 * M
    assert decision.would is not None and decision.would.replicas == 0
    assert decision.would.reason == "IdleShutdown"
    # Nothing changed, so the same report comes again on the next sample.
    again = decide(utilization=0.0, idle_since=decision.idle_since, policy_spec=spec(mode), now=NOW + M)
    assert again.would is not None and again.change is None


def test_minute_by_minute_timeline() -> None:
    """Samples every minute; a busy spike restarts the clock, a gap in metrics too, and the workload is
    shut down exactly 30 minutes after the start of its last idle streak."""
    start = NOW
    utilization: list[float | None] = [50.0] * 3 + [1.0] * 10 + [70.0] + [2.0] * 5 + [None] + [0.0] * 40
    workload, since = RUNNING, None
    shut_at = None
    for minute, value in enumerate(utilization):
        now = start + minute * M
        decision = decide(workload, value, since, now=now)
        since = decision.idle_since
        if decision.change is not None:
            assert shut_at is None, "shut down twice"
            shut_at = minute
            workload = apply(workload, decision.change)
    streak_start = len(utilization) - 40
    assert shut_at == streak_start + 30
    assert workload.replicas == 0
    assert workload.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:idle"}


# --- after the shutdown ---------------------------------------------------------------------------


@pytest.mark.parametrize("utilization", [None, 0.0, 90.0], ids=["no-metrics", "idle", "busy"])
def test_asleep_stays_asleep_and_planning_again_changes_nothing(utilization: float | None) -> None:
    shut = decide(utilization=0.0, idle_since=NOW - 30 * M).change
    assert shut is not None
    asleep = apply(RUNNING, shut)
    since = NOW - 30 * M
    assert decide(asleep, utilization, since, now=NOW + M) == IdleDecision(since, None, None, idle=True)


@pytest.mark.parametrize("mode", ["Enforce", "DryRun", "Warn"])
@pytest.mark.parametrize("rules", [RULES, None], ids=["rules", "no-rules"])
def test_wake_annotation_restores_and_clears_itself(mode: str, rules: dict[str, Any] | None) -> None:
    woken = GovernedWorkload("llm", 0, {**ASLEEP.annotations, ANNOTATION_WAKE: "please", "other": "kept"})
    decision = decide(woken, 0.0, NOW - 60 * M, policy_spec=spec(mode, rules))
    assert decision.idle is False and decision.idle_since is None and decision.would is None
    change = decision.change
    assert change is not None
    assert change.reason == "WokenUp"
    assert change.replicas == 3
    after = apply(woken, change)
    assert after == GovernedWorkload("llm", 3, {"other": "kept"})
    # Awake again: idle tracking starts from scratch, and the wake is not repeated.
    assert decide(after, 0.0, None, policy_spec=spec(mode, rules), now=NOW + M).change is None


def test_wake_also_lifts_a_budget_cap() -> None:
    woken = GovernedWorkload(
        "llm", 0, {**ASLEEP.annotations, ANNOTATION_REPLICA_CAP: "0", ANNOTATION_WAKE: ""}
    )
    change = decide(woken).change
    assert change is not None
    assert apply(woken, change) == GovernedWorkload("llm", 3, {})


@pytest.mark.parametrize(
    "workload",
    [
        pytest.param(GovernedWorkload("llm", 3, {ANNOTATION_WAKE: "1"}), id="running"),
        pytest.param(
            GovernedWorkload(
                "llm",
                1,
                {ANNOTATION_WAKE: "1", ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:budget"},
            ),
            id="budget-scaled",
        ),
    ],
)
def test_wake_on_a_workload_not_idle_shut_just_clears_it(workload: GovernedWorkload) -> None:
    decision = decide(workload, 0.0, NOW - 60 * M)
    assert decision.idle is False and decision.idle_since is None and decision.would is None
    change = decision.change
    assert change is not None
    assert change.replicas is None
    assert change.annotations == {ANNOTATION_WAKE: None}
    assert change.reason == "WakeCleared"
    after = apply(workload, change)
    assert ANNOTATION_WAKE not in after.annotations
    assert after.replicas == workload.replicas


@pytest.mark.parametrize(
    "policy_spec",
    [
        pytest.param(spec(rules=None), id="rules-removed"),
        pytest.param(spec(rules={"idleGPUUtilizationPercent": 5}), id="threshold-minutes-removed"),
        pytest.param(spec("DryRun"), id="mode-DryRun"),
        pytest.param(spec("Warn"), id="mode-Warn"),
    ],
)
def test_restore_when_idle_shutdown_is_no_longer_enforced(policy_spec: FinOpsPolicySpec) -> None:
    decision = decide(ASLEEP, 0.0, NOW - 60 * M, policy_spec=policy_spec)
    assert decision.idle is False and decision.idle_since is None and decision.would is None
    change = decision.change
    assert change is not None
    assert change.reason == "WokenUp"
    assert change.replicas == 3
    after = apply(ASLEEP, change)
    assert after == GovernedWorkload("llm", 3, {})
    assert decide(after, None, None, policy_spec=policy_spec) == NOTHING


def test_a_workload_at_zero_is_not_idle_shut_again() -> None:
    shut = decide(utilization=0.0, idle_since=NOW - 30 * M).change
    assert shut is not None
    asleep = apply(RUNNING, shut)
    for minute in range(1, 120, 7):
        decision = decide(asleep, 0.0, NOW - 30 * M, now=NOW + minute * M)
        assert decision.change is None and decision.would is None
    # Manually scaled to zero, never marked: not idle, no mark added.
    assert decide(GovernedWorkload("llm", 0), 0.0, NOW - 60 * M) == NOTHING


def test_idle_shutdown_keeps_an_earlier_replica_record() -> None:
    budget_scaled = GovernedWorkload(
        "llm", 1, {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:budget"}
    )
    change = decide(budget_scaled, 0.0, NOW - 30 * M).change
    assert change is not None
    assert change.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:idle"}
    asleep = apply(budget_scaled, change)
    woken = GovernedWorkload("llm", 0, {**asleep.annotations, ANNOTATION_WAKE: "1"})
    wake = decide(woken).change
    assert wake is not None and wake.replicas == 4
