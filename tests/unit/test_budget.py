"""Daily budgets: use, remaining and projection; thresholds once per window; budget actions per enforcement
mode, their idempotence and their undoing at the next window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.finopspolicy import CostLimits, FinOpsPolicySpec
from finops_operator.planners.policy.budget import (
    BudgetAssessment,
    BudgetPlan,
    GovernedWorkload,
    ReplicaChange,
    assess_budget,
    ceil_percent,
    plan_budget_actions,
    restore,
    scale_down,
    thresholds_to_announce,
)
from finops_operator.planners.policy.ledger import Ledger
from finops_operator.workloads.annotations import (
    ANNOTATION_CAPPED_BY,
    ANNOTATION_PREVIOUS_REPLICAS,
    ANNOTATION_REPLICA_CAP,
    ANNOTATION_SCALED_BY,
)

WINDOW_START = datetime(2026, 11, 22, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=1)
NOW = WINDOW_START + timedelta(hours=10)
H = timedelta(hours=1)
POLICY = "p"
MODES = ["Enforce", "DryRun", "Warn"]
OVER = BudgetAssessment(120.0, 0.0, None, ("dailyGPUHours",))
UNDER = BudgetAssessment(10.0, 9.0, None, ())


def limits(**values: Any) -> CostLimits:
    return CostLimits.model_validate(values)


def ledger(gpu_hours: float = 0.0, cost: float = 0.0) -> Ledger:
    return Ledger(window_start=WINDOW_START, accounted_until=NOW, gpu_hours=gpu_hours, cost=cost)


def assess(
    cost_limits: CostLimits | None,
    *,
    gpu_hours: float = 0.0,
    cost: float = 0.0,
    running_gpus: int = 0,
    cost_per_hour: float = 0.0,
    window_end: datetime = WINDOW_END,
) -> BudgetAssessment:
    return assess_budget(
        limits=cost_limits,
        ledger=ledger(gpu_hours, cost),
        running_gpus=running_gpus,
        cost_per_hour=cost_per_hour,
        window_end=window_end,
        now=NOW,
    )


def spec(action: str = "ScaleToMin", mode: str = "Enforce", **extra: Any) -> FinOpsPolicySpec:
    return FinOpsPolicySpec.model_validate(
        {
            "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
            "enforcementMode": mode,
            "costLimits": {"dailyGPUHours": 10, "budgetAction": action},
            **extra,
        }
    )


def apply(workload: GovernedWorkload, change: ReplicaChange) -> GovernedWorkload:
    """What the handler's patch does: set replicas when given, set or (None) remove annotations."""
    annotations = dict(workload.annotations)
    for key, value in change.annotations.items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    replicas = change.replicas if change.replicas is not None else workload.replicas
    return GovernedWorkload(workload.name, replicas, annotations)


def apply_plan(
    workloads: Sequence[GovernedWorkload], changes: Sequence[ReplicaChange]
) -> list[GovernedWorkload]:
    by_name = {w.name: w for w in workloads}
    for change in changes:
        by_name[change.workload] = apply(by_name[change.workload], change)
    return [by_name[w.name] for w in workloads]


# --- assessment -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost_limits", "kwargs", "percent", "remaining", "projected", "exhausted"),
    [
        pytest.param(None, {"gpu_hours": 50.0, "running_gpus": 4}, 0.0, None, None, (), id="no-limits"),
        pytest.param(limits(maxGPUsPerPod=2), {"gpu_hours": 50.0}, 0.0, None, None, (), id="caps-only"),
        pytest.param(
            limits(dailyGPUHours=10),
            {"gpu_hours": 4.0, "running_gpus": 2},
            40.0,
            6.0,
            NOW + 3 * H,
            (),
            id="gpu-hours-projection",
        ),
        pytest.param(
            limits(dailyGPUHours=10), {"gpu_hours": 4.0}, 40.0, 6.0, None, (), id="burn-zero-no-projection"
        ),
        pytest.param(
            limits(dailyGPUHours=30),
            {"gpu_hours": 4.0, "running_gpus": 1},
            pytest.approx(100 * 4 / 30),
            26.0,
            None,
            (),
            id="projection-beyond-window-end",
        ),
        pytest.param(
            limits(dailyGPUHours=18),
            {"gpu_hours": 4.0, "running_gpus": 1},
            pytest.approx(100 * 4 / 18),
            14.0,
            None,
            (),
            id="projection-exactly-at-window-end",
        ),
        pytest.param(
            limits(dailyGPUHours=18),
            {"gpu_hours": 4.0, "running_gpus": 1, "window_end": WINDOW_END + timedelta(seconds=1)},
            pytest.approx(100 * 4 / 18),
            14.0,
            WINDOW_END,
            (),
            id="projection-just-inside-window",
        ),
        pytest.param(
            limits(dailyGPUHours=10),
            {"gpu_hours": 10.0, "running_gpus": 3},
            100.0,
            0.0,
            None,
            ("dailyGPUHours",),
            id="exactly-used-up",
        ),
        pytest.param(
            limits(dailyGPUHours=10),
            {"gpu_hours": 12.0, "running_gpus": 3},
            120.0,
            0.0,
            None,
            ("dailyGPUHours",),
            id="overspent-remaining-not-negative",
        ),
        pytest.param(
            limits(dailyGPUHours=0),
            {},
            100.0,
            0.0,
            None,
            ("dailyGPUHours",),
            id="zero-budget-is-used-up",
        ),
        pytest.param(
            limits(dailyCost=100),
            {"cost": 25.0, "cost_per_hour": 15.0, "running_gpus": 1},
            25.0,
            None,
            NOW + 5 * H,
            (),
            id="cost-only",
        ),
        pytest.param(
            limits(dailyGPUHours=10, dailyCost=100),
            {"gpu_hours": 5.0, "running_gpus": 1, "cost": 80.0, "cost_per_hour": 10.0},
            80.0,
            5.0,
            NOW + 2 * H,
            (),
            id="both-cost-tighter",
        ),
        pytest.param(
            limits(dailyGPUHours=10, dailyCost=100),
            {"gpu_hours": 9.0, "running_gpus": 1, "cost": 10.0, "cost_per_hour": 10.0},
            90.0,
            1.0,
            NOW + H,
            (),
            id="both-gpu-hours-tighter",
        ),
        pytest.param(
            limits(dailyGPUHours=10, dailyCost=100),
            {"gpu_hours": 1.0, "running_gpus": 4, "cost": 70.0, "cost_per_hour": 1.0},
            70.0,
            9.0,
            NOW + timedelta(minutes=135),
            (),
            id="both-lower-percent-runs-out-first",
        ),
        pytest.param(
            limits(dailyGPUHours=10, dailyCost=100),
            {"gpu_hours": 11.0, "running_gpus": 1, "cost": 50.0, "cost_per_hour": 10.0},
            110.0,
            0.0,
            None,
            ("dailyGPUHours",),
            id="both-one-used-up-no-future-projection",
        ),
        pytest.param(
            limits(dailyGPUHours=10, dailyCost=100),
            {"gpu_hours": 11.0, "cost": 150.0},
            150.0,
            0.0,
            None,
            ("dailyGPUHours", "dailyCost"),
            id="both-used-up",
        ),
    ],
)
def test_assess_budget(
    *,
    cost_limits: CostLimits | None,
    kwargs: dict[str, Any],
    percent: float,
    remaining: float | None,
    projected: datetime | None,
    exhausted: tuple[str, ...],
) -> None:
    result = assess(cost_limits, **kwargs)
    assert result.used_percent == percent
    assert result.gpu_hours_remaining == remaining
    assert result.projected_exhaustion == projected
    assert result.exhausted == exhausted
    assert result.exceeded == bool(exhausted)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(0.0, 0, id="zero"),
        pytest.param(79.99, 79, id="rounds-down"),
        pytest.param(100 * 0.7 / 0.7, 100, id="float-noise-at-100"),
        pytest.param(99.9999, 99, id="just-below-100"),
        pytest.param(150.5, 150, id="over"),
    ],
)
def test_ceil_percent_rounds_down(value: float, shown: int) -> None:
    assert ceil_percent(value) == shown


# --- thresholds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "percent", "already", "expected"),
    [
        pytest.param([80, 100], 79.9, [], (), id="below-all"),
        pytest.param([80, 100], 80.0, [], (80,), id="exactly-at-threshold"),
        pytest.param([80, 100], 85.0, [80], (), id="already-announced"),
        pytest.param([80, 100], 100.0, [80], (100,), id="next-threshold"),
        pytest.param([80, 100], 130.0, [], (80, 100), id="jump-over-both"),
        pytest.param([100, 50, 50], 60.0, [], (50,), id="unsorted-duplicates"),
        pytest.param([80, 100], 130.0, [80, 100], (), id="all-announced"),
    ],
)
def test_thresholds_to_announce(
    thresholds: list[int], percent: float, already: list[int], expected: tuple[int, ...]
) -> None:
    assert thresholds_to_announce(limits(alertThresholdsPercent=thresholds), percent, already) == expected


def test_thresholds_without_limits_announce_nothing() -> None:
    assert thresholds_to_announce(None, 500.0, []) == ()


def test_each_threshold_fires_once_per_window_and_again_in_the_next() -> None:
    cost_limits = limits(dailyGPUHours=10, alertThresholdsPercent=[50, 80, 100])
    samples = [  # (new window?, percent)
        (True, 10.0),
        (False, 55.0),
        (False, 60.0),
        (False, 85.0),
        (False, 120.0),
        (False, 130.0),
        (True, 0.0),
        (False, 90.0),
        (False, 95.0),
    ]
    notified: list[int] = []
    announced = []
    for new_window, percent in samples:
        already = [] if new_window else notified  # as the policy planner keeps them in status
        crossed = thresholds_to_announce(cost_limits, percent, already)
        notified = sorted({*already, *crossed})
        announced.append(crossed)
    assert announced == [(), (50,), (), (80,), (100,), (), (), (50, 80), ()]


# --- budget actions -------------------------------------------------------------------------------

W = GovernedWorkload("llm", 4)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("action", "extra", "replicas", "annotations"),
    [
        pytest.param(
            "ScaleToMin",
            {},
            1,
            {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:budget"},
            id="ScaleToMin-default-1",
        ),
        pytest.param(
            "ScaleToMin",
            {"autoScale": {"minReplicas": 2, "maxReplicas": 8}},
            2,
            {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:budget"},
            id="ScaleToMin-autoscale-min",
        ),
        pytest.param(
            "ScaleToZero",
            {},
            0,
            {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:budget"},
            id="ScaleToZero",
        ),
        pytest.param(
            "BlockScaleUp",
            {},
            None,
            {ANNOTATION_REPLICA_CAP: "4", ANNOTATION_CAPPED_BY: "p"},
            id="BlockScaleUp",
        ),
    ],
)
def test_exhausted_budget_action_per_mode(
    action: str, extra: dict[str, Any], replicas: int | None, annotations: dict[str, str], mode: str
) -> None:
    plan = plan_budget_actions(POLICY, spec(action, mode, **extra), OVER, [W])
    acted = plan.changes if mode == "Enforce" else plan.would
    assert (plan.would if mode == "Enforce" else plan.changes) == ()
    assert len(acted) == 1
    (change,) = acted
    assert change.workload == "llm"
    assert change.replicas == replicas
    assert change.annotations == annotations
    assert change.reason == "BudgetExhausted"


@pytest.mark.parametrize("mode", MODES)
def test_alert_only_never_touches_workloads(mode: str) -> None:
    assert plan_budget_actions(POLICY, spec("AlertOnly", mode), OVER, [W]) == BudgetPlan((), ())


def test_no_cost_limits_means_alert_only() -> None:
    no_limits = FinOpsPolicySpec.model_validate({"targetWorkloadSelector": {}})
    assert plan_budget_actions(POLICY, no_limits, OVER, [W]) == BudgetPlan((), ())


@pytest.mark.parametrize("action", ["ScaleToMin", "ScaleToZero", "BlockScaleUp", "AlertOnly"])
@pytest.mark.parametrize("mode", MODES)
def test_within_budget_changes_nothing_on_unmarked_workloads(action: str, mode: str) -> None:
    assert plan_budget_actions(POLICY, spec(action, mode), UNDER, [W]) == BudgetPlan((), ())


@pytest.mark.parametrize(
    ("replicas", "action", "changed"),
    [
        pytest.param(1, "ScaleToMin", False, id="at-min"),
        pytest.param(0, "ScaleToMin", False, id="below-min-is-not-scaled-up"),
        pytest.param(2, "ScaleToMin", True, id="above-min"),
        pytest.param(0, "ScaleToZero", False, id="at-zero"),
        pytest.param(1, "ScaleToZero", True, id="above-zero"),
    ],
)
def test_scale_down_only_above_the_target(replicas: int, action: str, changed: bool) -> None:
    plan = plan_budget_actions(POLICY, spec(action), OVER, [GovernedWorkload("llm", replicas)])
    assert bool(plan.changes) == changed


@pytest.mark.parametrize("action", ["ScaleToMin", "ScaleToZero", "BlockScaleUp"])
def test_enforced_actions_are_idempotent_and_restored_at_the_next_window(action: str) -> None:
    workloads = [GovernedWorkload("a", 4), GovernedWorkload("b", 1), GovernedWorkload("c", 0)]
    first = plan_budget_actions(POLICY, spec(action), OVER, workloads)
    assert first.changes
    applied = apply_plan(workloads, first.changes)
    assert plan_budget_actions(POLICY, spec(action), OVER, applied) == BudgetPlan((), ())

    # New window: budget no longer exceeded, everything the policy did is undone.
    reset = plan_budget_actions(POLICY, spec(action), UNDER, applied)
    assert reset.changes and all(c.reason == "BudgetRestored" for c in reset.changes)
    restored = apply_plan(applied, reset.changes)
    assert restored == workloads
    assert plan_budget_actions(POLICY, spec(action), UNDER, restored) == BudgetPlan((), ())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param({ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:budget"}, id="scaled"),
        pytest.param({ANNOTATION_REPLICA_CAP: "1"}, id="capped"),
    ],
)
def test_restores_are_allowed_in_every_mode(mode: str, annotations: dict[str, str]) -> None:
    workload = GovernedWorkload("llm", 1, annotations)
    plan = plan_budget_actions(POLICY, spec("ScaleToMin", mode), UNDER, [workload])
    assert plan.would == ()
    (change,) = plan.changes
    assert change.reason == "BudgetRestored"
    assert change.replicas == (4 if ANNOTATION_PREVIOUS_REPLICAS in annotations else None)
    assert apply(workload, change).annotations == {}


@pytest.mark.parametrize(
    "mark",
    [
        pytest.param("other:budget", id="other-policy"),
        pytest.param("p:idle", id="idle-shutdown"),
        pytest.param("garbage", id="malformed-mark"),
    ],
)
def test_the_new_window_only_restores_this_policys_budget_scale_down(mark: str) -> None:
    workload = GovernedWorkload("llm", 0, {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: mark})
    assert plan_budget_actions(POLICY, spec(), UNDER, [workload]) == BudgetPlan((), ())


def test_previous_replicas_kept_when_scaled_by_budget_then_idle() -> None:
    workload = GovernedWorkload("llm", 4)
    (budget,) = plan_budget_actions(POLICY, spec("ScaleToMin"), OVER, [workload]).changes
    workload = apply(workload, budget)
    assert (workload.replicas, workload.annotations[ANNOTATION_PREVIOUS_REPLICAS]) == (1, "4")
    workload = apply(workload, scale_down(POLICY, workload, 0, "idle", "IdleShutdown"))
    assert workload.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "4", ANNOTATION_SCALED_BY: "p:idle"}
    # Still exhausted: nothing more to do. New window: the idle shutdown is not the budget's to undo.
    assert plan_budget_actions(POLICY, spec("ScaleToMin"), OVER, [workload]) == BudgetPlan((), ())
    assert plan_budget_actions(POLICY, spec("ScaleToMin"), UNDER, [workload]) == BudgetPlan((), ())
    # Waking it brings back the replicas from before the first scale-down.
    assert restore(workload, "WokenUp", "wake").replicas == 4


def test_previous_replicas_kept_when_scaled_by_idle_then_budget() -> None:
    workload = GovernedWorkload("llm", 3)
    workload = apply(workload, scale_down(POLICY, workload, 0, "idle", "IdleShutdown"))
    # Budget exhausted on an idle-shut workload: nothing to scale down.
    assert plan_budget_actions(POLICY, spec("ScaleToZero"), OVER, [workload]) == BudgetPlan((), ())
    # Someone scales it back up by hand without waking it; the budget scales it down again.
    workload = GovernedWorkload(workload.name, 2, workload.annotations)
    (change,) = plan_budget_actions(POLICY, spec("ScaleToZero"), OVER, [workload]).changes
    assert change.replicas == 0
    assert change.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:budget"}
    workload = apply(workload, change)
    (back,) = plan_budget_actions(POLICY, spec("ScaleToZero"), UNDER, [workload]).changes
    assert back.replicas == 3


@pytest.mark.parametrize(
    ("replicas", "cap", "new_replicas", "changed"),
    [
        pytest.param(5, "3", 3, True, id="over-cap-scaled-back"),
        pytest.param(3, "3", None, False, id="at-cap"),
        pytest.param(2, "3", None, False, id="below-cap-scale-down-allowed"),
        pytest.param(2, None, None, True, id="uncapped-gets-cap"),
        pytest.param(0, None, None, True, id="zero-replicas-capped-at-zero"),
    ],
)
def test_block_scale_up_caps_and_scales_back(
    replicas: int, cap: str | None, new_replicas: int | None, changed: bool
) -> None:
    annotations = {ANNOTATION_REPLICA_CAP: cap} if cap is not None else {}
    workload = GovernedWorkload("llm", replicas, annotations)
    plan = plan_budget_actions(POLICY, spec("BlockScaleUp"), OVER, [workload])
    assert bool(plan.changes) == changed
    if changed:
        (change,) = plan.changes
        assert change.replicas == new_replicas
        assert change.annotations == {ANNOTATION_REPLICA_CAP: cap or str(replicas), ANNOTATION_CAPPED_BY: "p"}
        after = apply(workload, change)
        assert plan_budget_actions(POLICY, spec("BlockScaleUp"), OVER, [after]) == BudgetPlan((), ())


@pytest.mark.parametrize("mode", ["DryRun", "Warn"])
def test_block_scale_up_scale_back_is_only_reported_outside_enforce(mode: str) -> None:
    workload = GovernedWorkload("llm", 5, {ANNOTATION_REPLICA_CAP: "3"})
    plan = plan_budget_actions(POLICY, spec("BlockScaleUp", mode), OVER, [workload])
    assert plan.changes == ()
    assert [c.replicas for c in plan.would] == [3]


@pytest.mark.parametrize("cap", ["", "three", "-1", "2.5", "\u00b2"])
def test_block_scale_up_survives_a_malformed_cap(cap: str) -> None:
    workload = GovernedWorkload("llm", 4, {ANNOTATION_REPLICA_CAP: cap})
    (change,) = plan_budget_actions(POLICY, spec("BlockScaleUp"), OVER, [workload]).changes
    assert change.replicas is None
    assert change.annotations == {ANNOTATION_REPLICA_CAP: "4", ANNOTATION_CAPPED_BY: "p"}


def test_window_reset_lifts_the_cap_without_waking_an_idle_shut_workload() -> None:
    capped = GovernedWorkload("llm", 3, {ANNOTATION_REPLICA_CAP: "3"})
    asleep = apply(capped, scale_down(POLICY, capped, 0, "idle", "IdleShutdown"))
    assert asleep.annotations[ANNOTATION_REPLICA_CAP] == "3"
    (change,) = plan_budget_actions(POLICY, spec("BlockScaleUp"), UNDER, [asleep]).changes
    assert change.reason == "BudgetRestored"
    after = apply(asleep, change)
    assert after.replicas == 0
    assert after.annotations == {ANNOTATION_PREVIOUS_REPLICAS: "3", ANNOTATION_SCALED_BY: "p:idle"}
    assert plan_budget_actions(POLICY, spec("BlockScaleUp"), UNDER, [after]) == BudgetPlan((), ())


def test_changes_are_sorted_by_workload_name() -> None:
    workloads = [GovernedWorkload(name, 3) for name in ("c", "a", "b")]
    plan = plan_budget_actions(POLICY, spec("ScaleToZero"), OVER, workloads)
    assert [c.workload for c in plan.changes] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("annotations", "mark"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({ANNOTATION_SCALED_BY: ""}, None, id="empty"),
        pytest.param({ANNOTATION_SCALED_BY: "nocolon"}, None, id="no-colon"),
        pytest.param({ANNOTATION_SCALED_BY: "p:budget"}, ("p", "budget"), id="simple"),
        pytest.param({ANNOTATION_SCALED_BY: "a:b:idle"}, ("a:b", "idle"), id="last-colon"),
    ],
)
def test_scaled_by(annotations: dict[str, str], mark: tuple[str, str] | None) -> None:
    assert GovernedWorkload("w", 1, annotations).scaled_by() == mark


@pytest.mark.parametrize(
    ("raw", "replicas"),
    [
        pytest.param("4", 4, id="number"),
        pytest.param("0", 0, id="zero"),
        pytest.param("x", None, id="garbage"),
        pytest.param("\u00b2", None, id="superscript-digit"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_restore_reads_the_recorded_replicas(raw: str | None, replicas: int | None) -> None:
    annotations = {ANNOTATION_SCALED_BY: "p:budget"}
    if raw is not None:
        annotations[ANNOTATION_PREVIOUS_REPLICAS] = raw
    change = restore(GovernedWorkload("w", 1, annotations), "BudgetRestored", "new budget window")
    assert change.replicas == replicas
    assert set(change.annotations) == {
        ANNOTATION_PREVIOUS_REPLICAS,
        ANNOTATION_SCALED_BY,
        ANNOTATION_REPLICA_CAP,
        ANNOTATION_CAPPED_BY,
    }
    assert all(v is None for v in change.annotations.values())
