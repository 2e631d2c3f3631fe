"""Predictive decisions with pinned clocks: the calibrated floor, the calibration update, the restart
from status, and the fallback to the reactive HPA for every reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from finops_operator.api.finopspolicy import (
    CalibrationHour,
    CalibrationStatus,
    FinOpsPolicySpec,
    FinOpsPolicyStatus,
    PredictiveScaling,
)
from finops_operator.planners.policy import (
    PolicyObservation,
    PolicyPlan,
    WorkloadFacts,
    parse_policy_spec,
    plan_policy,
)
from finops_operator.planners.policy.predictive import (
    PredictionInput,
    PredictiveDecision,
    calibration_status,
    decide,
    prediction_condition,
    projected_exhaustion,
    restore_calibration,
)
from forecasting import BacktestScore, Forecast

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INTERVAL = 60.0
SETTINGS = PredictiveScaling(
    enabled=True,
    demand_query="q",
    target_per_replica=20,
    horizon_minutes=60,
    lead_time_minutes=10,
    max_under_provisioned_percent=0.5,
    minimum_history_hours=48,
)
LEAD = 11  # 10 min at 60 s per interval, plus the interval the floor must last
TWO_DAYS = 2 * 86400.0


def forecast(mean: list[float], width: float = 4.0) -> Forecast:
    """A forecast with an 80 % interval ``width`` wide and a tail one width above the mean."""
    stamps = pd.date_range(NOW, periods=len(mean), freq="5min", tz="UTC")
    values = np.array(mean, dtype=float)
    return Forecast(
        stamps,
        values,
        {
            0.1: values - width / 2,
            0.5: values,
            0.9: values + width / 2,
            0.995: values + width,
        },
        "test",
        BacktestScore("test", 1.0, 0.8, (1.0,), 10),
    )


def observed(
    demand: float | None = 20.0, *, mean: list[float] | None = None, now: datetime = NOW, **errors: str
) -> PredictionInput:
    return PredictionInput(
        computed_at=now,
        interval_seconds=INTERVAL,
        forecast=forecast(mean if mean is not None else [20.0] * 12) if not errors else None,
        observed_demand=demand,
        history_seconds=TWO_DAYS,
        **errors,  # type: ignore[arg-type]
    )


def stored(
    *,
    margin: float = 1.0,
    plan: float | None = 20.0,
    unit: float | None = 4.0,
    in_charge: bool = True,
    updated_at: datetime = NOW - timedelta(seconds=INTERVAL),
    hours: list[CalibrationHour] | None = None,
) -> CalibrationStatus:
    return CalibrationStatus(
        margin=margin,
        plan=plan,
        unit=unit,
        forecast_in_charge=in_charge,
        target=0.005,
        lead=LEAD,
        scale=0.5,
        updated_at=updated_at,
        hours=hours or [],
    )


def run(
    prediction: PredictionInput | None,
    calibration: CalibrationStatus | None = None,
    *,
    ready: int | None = 2,
    remaining: float | None = None,
    now: datetime = NOW,
) -> PredictiveDecision:
    return decide(
        SETTINGS,
        prediction,
        calibration,
        bounds=(1, 8),
        ready_replicas=ready,
        gpus_per_replica=1,
        remaining_gpu_hours=remaining,
        now=now,
    )


@pytest.mark.parametrize(
    ("mean", "demand", "expected"),
    [
        ([10, 10, 10, 10, 200, 200], 10, 1),  # the peak lies beyond lead time + one step: not yet
        ([10, 10, 96, 10, 10, 10], 10, 5),  # within the lead time: (96 + 0 x 4) / 20 -> 5
        ([10, 10, 10, 96, 10, 10], 10, 5),  # exactly at lead time + one step
        ([10] * 6, 10, 1),
        ([0] * 4, 0, 1),  # never below the autoScale minimum
        ([1000] * 4, 10, 8),  # never above the maximum
        ([10] * 6, 90, 5),  # never below what the last interval needed (90 / 20)
    ],
    ids=[
        "peak-beyond-lead",
        "peak-within-lead",
        "peak-at-lead-plus-step",
        "flat",
        "zero",
        "clamped-max",
        "reactive-need",
    ],
)
def test_floor_covers_the_plan_over_the_lead_time(mean: list[float], demand: float, expected: int) -> None:
    decision = run(observed(demand, mean=mean), stored(margin=0.0, plan=None, unit=None))
    assert decision.fallback is None and decision.replicas == expected and not decision.budget_capped


def test_the_calibrated_headroom_sits_above_the_plan() -> None:
    # plan 20 + margin 2.5 x unit 4 = 30 -> 2 replicas; with margin 0 it would be 1.
    decision = run(observed(10.0), stored(margin=2.5, plan=None, unit=None))
    assert decision.replicas == 2
    assert decision.sizing is not None and (decision.sizing.plan, decision.sizing.unit) == (20.0, 4.0)


@pytest.mark.parametrize(
    ("demand", "ready", "in_charge", "missed"),
    [
        (100.0, 2, True, True),  # demand 100 against 2 ready x 20: a real miss
        (30.0, 2, True, False),  # 30 <= 40 served: calm
        (25.0, 0, False, True),  # fallback: judged on plan + headroom = 20 + 1 x 4 = 24 ... 25 misses
        (23.0, 0, False, False),  # ... 23 would have been covered
        (25.0, None, True, True),  # no governed workload: judged on plan + headroom as well
    ],
    ids=["miss-raises", "calm-lowers", "fallback-would-miss", "fallback-would-cover", "nothing-ready-known"],
)
def test_each_interval_moves_the_margin_towards_the_service_level(
    demand: float, ready: int | None, in_charge: bool, missed: bool
) -> None:
    before = stored(in_charge=in_charge)
    decision = run(observed(demand), before, ready=ready)
    assert decision.calibration is not None
    after = decision.calibration
    assert (after.margin > before.margin) is missed
    assert after.last_day(NOW.timestamp()) == (1, int(missed))
    assert after.updated_at == NOW.timestamp()


@pytest.mark.parametrize(
    "later",
    [timedelta(0), timedelta(seconds=INTERVAL * 0.4)],
    ids=["same-instant", "spec-change-within-the-interval"],
)
def test_reconciling_again_within_the_interval_counts_it_once(later: timedelta) -> None:
    first = run(observed(100.0), stored())
    again = calibration_status(first, NOW)
    second = run(observed(100.0, now=NOW + later), again, now=NOW + later)
    assert second.calibration == first.calibration


def test_missing_demand_teaches_nothing() -> None:
    before = stored()
    decision = run(observed(None), before)
    assert decision.calibration == restore_calibration(before, SETTINGS, LEAD)


def test_calibration_survives_a_restart_through_the_status() -> None:
    """JSON through the API server and back gives the same state, so the next sample continues."""
    decision = run(observed(100.0), stored())
    wire = calibration_status(decision, NOW)
    assert wire is not None
    reread = CalibrationStatus.model_validate(wire.model_dump(by_alias=True, mode="json"))
    assert restore_calibration(reread, SETTINGS, LEAD) == decision.calibration
    later = NOW + timedelta(seconds=INTERVAL)
    resumed = run(observed(10.0, now=later), reread, now=later)
    uninterrupted = run(observed(10.0, now=later), wire, now=later)
    assert resumed.calibration == uninterrupted.calibration
    assert wire.intervals_last_day == 1 and wire.misses_last_day == 1 and wire.miss_rate_percent == 100.0
    assert wire.headroom is not None and wire.plan == 20.0


def test_a_fresh_policy_seeds_its_margin_from_the_forecast_tail() -> None:
    decision = run(observed(10.0), None)
    assert decision.calibration is not None
    assert decision.calibration.margin == pytest.approx(1.0)  # the tail lies one interval width above
    assert decision.calibration.lead == LEAD and decision.calibration.target == 0.005


def test_a_changed_service_level_keeps_the_learned_margin() -> None:
    state = restore_calibration(
        stored(margin=3.0), SETTINGS.model_copy(update={"max_under_provisioned_percent": 2}), 4
    )
    assert state is not None and (state.margin, state.target, state.lead) == (3.0, 0.02, 4)


def test_an_unreadable_calibration_is_reseeded() -> None:
    broken = stored().model_copy(update={"lead": 0})
    assert restore_calibration(broken, SETTINGS, LEAD) is None


def _coverage_lost() -> CalibrationStatus:
    hour = int(NOW.timestamp() // 3600)
    return stored(hours=[CalibrationHour(hour=hour, intervals=60, misses=12)])


@pytest.mark.parametrize(
    ("prediction", "calibration", "reason", "floor"),
    [
        (None, None, "MetricsUnavailable", 5),
        (observed(metrics_error="Prometheus at x unreachable"), stored(), "MetricsUnavailable", 5),
        (observed(None), stored(), "MetricsUnavailable", 5),
        (observed(model_error="ModelUnavailable: hw_damped needs more history"), stored(), "ModelFailed", 1),
        (
            PredictionInput(NOW, INTERVAL, forecast=forecast([float("nan")] * 12), observed_demand=10.0),
            stored(),
            "ModelFailed",
            1,
        ),
        (
            observed(insufficient_history="InsufficientHistory: need 2 days, have 5 hours"),
            None,
            "InsufficientHistory",
            1,
        ),
        (
            PredictionInput(
                NOW, INTERVAL, forecast=forecast([20.0] * 12), observed_demand=10.0, history_seconds=3600
            ),
            None,
            "InsufficientHistory",
            1,
        ),
        (observed(10.0), _coverage_lost(), "CoverageLost", 1),
    ],
    ids=[
        "no-prometheus",
        "prometheus-down",
        "no-current-sample",
        "model-refused",
        "forecast-not-finite",
        "forecaster-short-history",
        "short-history",
        "coverage-lost",
    ],
)
def test_fallback_hands_back_to_the_reactive_hpa_and_says_why(
    prediction: PredictionInput | None, calibration: CalibrationStatus | None, reason: str, floor: int
) -> None:
    """Running 5 replicas with autoScale.minReplicas 1: missing data holds the 5 (never scaled down on
    missing data), any other reason returns the floor to the minimum and the HPA does the rest."""
    decision = run(prediction, calibration)
    assert decision.fallback is not None and decision.fallback.reason == reason
    assert decision.replicas is None and not decision.in_charge
    assert decision.floor(current=5, minimum=1) == floor
    condition = prediction_condition(SETTINGS, decision, minimum=1, now=NOW)
    assert condition is not None and condition.status == "False" and condition.reason == reason
    assert condition.message.startswith("falling back to the reactive HPA: ")
    assert ("never scaled down" in condition.message) is (reason == "MetricsUnavailable")


def test_coverage_lost_keeps_learning_while_the_hpa_is_in_charge() -> None:
    decision = run(observed(10.0), _coverage_lost())
    assert decision.sizing is not None
    status = calibration_status(decision, NOW)
    assert status is not None and not status.forecast_in_charge and status.misses_last_day == 12


def test_the_forecast_in_charge_says_so_with_its_calibration() -> None:
    decision = run(observed(10.0), stored(margin=0.0))
    assert decision.in_charge and decision.floor(current=5, minimum=1) == decision.replicas == 1
    condition = prediction_condition(SETTINGS, decision, minimum=1, now=NOW)
    assert condition is not None and condition.status == "True" and condition.reason == "Predicted"
    assert "intervals under-provisioned in the last day" in condition.message


def test_remaining_budget_caps_the_floor_and_says_so() -> None:
    decision = run(observed(10.0, mean=[100.0] * 12), stored(margin=0.0), remaining=3.0)
    assert (decision.replicas, decision.budget_capped) == (3, True)  # 3 GPU-h / (1 GPU x 1 h)
    condition = prediction_condition(SETTINGS, decision, minimum=1, now=NOW)
    assert condition is not None and "capped by the remaining GPU-hour budget" in condition.message


def test_forecast_projects_budget_exhaustion_within_the_horizon() -> None:
    rising = forecast([20, 20, 200, 200, 200, 200])
    when = projected_exhaustion(
        rising,
        target_per_replica=20,
        gpus_per_replica=1,
        replicas_floor=1,
        used_gpu_hours=9.0,
        limit_gpu_hours=10.0,
    )
    # 1 replica for two steps (1/6 GPU-h), then 10 replicas (10/12 GPU-h per step): over on step 3.
    assert when == NOW + timedelta(minutes=10)
    assert (
        projected_exhaustion(
            forecast([20] * 6),
            target_per_replica=20,
            gpus_per_replica=1,
            replicas_floor=1,
            used_gpu_hours=0.0,
            limit_gpu_hours=10.0,
        )
        is None
    )


def test_disabled_prediction_is_reported_not_hidden() -> None:
    disabled = PredictiveScaling(enabled=False)
    condition = prediction_condition(disabled, None, minimum=1, now=NOW)
    assert condition is not None and condition.reason == "PredictionDisabled"
    assert prediction_condition(None, None, minimum=1, now=NOW) is None


def _policy_spec() -> FinOpsPolicySpec:
    return parse_policy_spec(
        {
            "targetWorkloadSelector": {"matchLabels": {"app": "llm"}},
            "autoScale": {"minReplicas": 1, "maxReplicas": 8},
            "predictiveScaling": {"enabled": True, "demandQuery": "q", "targetPerReplica": 20},
        }
    )


def _plan(prediction: PredictionInput, status: FinOpsPolicyStatus, now: datetime = NOW) -> PolicyPlan:
    llm = WorkloadFacts("ns", "llm", {"app": "llm"}, replicas=5, ready_replicas=5, gpus_per_pod=1)
    observation = PolicyObservation("p", 1, status, [llm], namespace="ns", prediction=prediction)
    return plan_policy(_policy_spec(), observation, now)


@pytest.mark.parametrize(
    ("prediction", "floor"),
    [
        (observed(10.0), 2),  # plan 20 + seeded margin ~1 x unit 4 -> 2 replicas
        (observed(metrics_error="Prometheus at x unreachable"), 5),
        (observed(model_error="FitFailed"), 1),
    ],
    ids=["forecast-in-charge", "metrics-unavailable-holds-current", "model-failed-back-to-minimum"],
)
def test_the_policy_plan_sets_each_hpa_floor_and_keeps_the_calibration(
    prediction: PredictionInput, floor: int
) -> None:
    first = _plan(observed(10.0), FinOpsPolicyStatus())
    assert first.status.calibration is not None
    stored_status = FinOpsPolicyStatus.model_validate(first.status.model_dump(by_alias=True, mode="json"))
    later = NOW + timedelta(seconds=INTERVAL)
    plan = _plan(replace(prediction, computed_at=later), stored_status, later)
    assert [hpa["spec"]["minReplicas"] for hpa in plan.hpas.apply] == [floor]
    assert plan.status.calibration is not None  # kept through a fallback, not dropped
    again = _plan(replace(prediction, computed_at=later), plan.status, later)
    assert again.status == plan.status  # reconciling twice changes nothing
