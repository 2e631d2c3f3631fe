"""The calibrated margin: quantile tracking on misses, bounded state that survives a restart."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from forecasting.calibration import (
    DAY_HOURS,
    CalibrationState,
    CalibrationStateError,
    observe,
    seeded,
)

T0 = 1_700_000_000.0  # pinned clock: 2023-11-14T22:13:20Z
STEP = 300.0  # one 5-minute interval


def fresh(margin: float = 2.0, scale: float = 1.0, target: float = 0.005, lead: int = 2) -> CalibrationState:
    return CalibrationState.start(target=target, lead=lead, margin=margin, scale=scale, now=T0)


def feed(
    state: CalibrationState, demands: list[float], *, plan: float = 100.0, start: float = T0
) -> CalibrationState:
    for i, demand in enumerate(demands, start=1):
        state = observe(state, observed=demand, plan=plan, now=start + i * STEP)
    return state


def test_a_burst_the_forecast_missed_raises_the_margin() -> None:
    state = fresh()
    after = feed(state, [100.0, 150.0, 160.0])  # plan 100 + margin 2: the burst is missed twice
    assert after.margin > state.margin + after.step  # two misses, each ~one step up
    assert after.last_day(T0 + 3 * STEP) == (3, 2)


def test_a_calm_day_lowers_the_margin_slowly_and_linearly() -> None:
    state = fresh(margin=3.0)
    after = feed(state, [100.5] * 288)  # a day of 5-minute intervals, all covered
    assert after.margin < state.margin
    # Each covered interval pulls the margin down by step * target: a day moves it by ~1.44 steps.
    assert state.margin - after.margin == pytest.approx(288 * 0.005 * after.step, rel=0.2)
    assert after.miss_rate(T0 + 288 * STEP) == 0.0


def test_misses_at_the_target_rate_keep_the_margin_in_place() -> None:
    state = fresh(target=0.01, scale=1.0)
    demands = [(150.0 if i % 100 == 0 else 100.5) for i in range(1000)]  # exactly 1 % missed
    after = feed(state, demands)
    assert after.margin == pytest.approx(state.margin, abs=2 * after.step)


def test_the_real_capacity_decides_a_miss_when_known() -> None:
    state = fresh(margin=0.0)
    covered = observe(state, observed=120.0, plan=100.0, now=T0 + STEP, capacity=130.0)
    missed = observe(state, observed=120.0, plan=100.0, now=T0 + STEP, capacity=110.0)
    assert covered.margin < state.margin < missed.margin


def test_the_margin_is_in_units_of_the_forecasters_error_size() -> None:
    state = fresh(margin=2.0)
    assert state.headroom(5.0) == 10.0
    # 108 is covered by 100 + 2 * 5 but would be missed by 100 + 2 * 1.
    assert observe(state, observed=108.0, plan=100.0, now=T0 + STEP, unit=5.0).margin < state.margin
    assert observe(state, observed=108.0, plan=100.0, now=T0 + STEP, unit=1.0).margin > state.margin


@pytest.mark.parametrize(
    ("observed", "plan", "unit", "now"),
    [
        (math.nan, 100.0, 1.0, T0 + STEP),
        (120.0, math.nan, 1.0, T0 + STEP),
        (120.0, 100.0, 0.0, T0 + STEP),
        (120.0, 100.0, 1.0, T0),  # not after the last update: a retried reconcile counts nothing
        (120.0, 100.0, 1.0, T0 - STEP),
    ],
    ids=["missing-demand", "missing-plan", "zero-unit", "same-time", "out-of-order"],
)
def test_nothing_is_learnt_without_data(observed: float, plan: float, unit: float, now: float) -> None:
    state = fresh()
    assert observe(state, observed=observed, plan=plan, unit=unit, now=now) is state


def test_observing_the_same_interval_twice_counts_it_once() -> None:
    once = observe(fresh(), observed=150.0, plan=100.0, now=T0 + STEP)
    assert observe(once, observed=150.0, plan=100.0, now=T0 + STEP) == once


def test_state_round_trips_through_json() -> None:
    state = feed(fresh(), [100.0, 180.0, 99.0, 101.0, 250.0])
    data = json.loads(json.dumps(state.to_dict()))
    assert CalibrationState.from_dict(data) == state
    assert set(data) == {"version", "target", "lead", "margin", "scale", "updatedAt", "hours"}


def test_state_stays_bounded_over_weeks() -> None:
    state = feed(fresh(), [100.0 + (60.0 if i % 37 == 0 else 0.0) for i in range(288 * 14)])
    assert len(state.hours) <= DAY_HOURS
    assert len(json.dumps(state.to_dict())) < 1500
    intervals, misses = state.last_day(T0 + 288 * 14 * STEP)
    assert 276 <= intervals <= 288  # the current hour and the 23 before it
    assert misses > 0


def test_the_last_day_forgets_older_hours() -> None:
    state = feed(fresh(margin=0.0), [150.0] * 12)  # an hour of misses
    later = T0 + 12 * STEP + 25 * 3600.0
    assert state.miss_rate(T0 + 12 * STEP) == 1.0
    assert state.miss_rate(later) is None
    assert observe(state, observed=100.0, plan=100.0, now=later).last_day(later) == (1, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2}, "version"),
        ({**fresh().to_dict(), "margin": "wide"}, "malformed"),
        ({**fresh().to_dict(), "hours": [[1, 2]]}, "malformed"),
        ({**fresh().to_dict(), "target": 1.5}, "target"),
        ({**fresh().to_dict(), "hours": [[h, 1, 0] for h in range(25)]}, "at most 24"),
        ({k: v for k, v in fresh().to_dict().items() if k != "scale"}, "malformed"),
    ],
    ids=["version", "not-a-number", "short-counter", "target-out-of-range", "too-many-hours", "missing"],
)
def test_unreadable_state_is_refused_with_a_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(CalibrationStateError, match=message):
        CalibrationState.from_dict(data)


def test_the_margin_cannot_wind_up_without_bound() -> None:
    state = replace(fresh(margin=0.0, scale=1.0), target=0.5)
    after = feed(state, [1e6] * 2000, plan=100.0)
    assert after.margin <= 50.0 * after.scale


@pytest.mark.parametrize(
    ("mean", "tail", "unit", "margin"),
    [
        (100.0, 130.0, 20.0, 1.5),
        (100.0, 130.0, 0.0, 0.0),
        (math.nan, 130.0, 20.0, 0.0),
        (100.0, 90.0, 20.0, -0.5),
    ],
    ids=["from-the-tail", "zero-width", "no-forecast", "tail-below-mean"],
)
def test_seeded_from_one_forecast(mean: float, tail: float, unit: float, margin: float) -> None:
    state = seeded(target=0.005, lead=2, mean=mean, tail=tail, unit=unit, now=T0)
    assert state.margin == pytest.approx(margin)
    assert state.updated_at == T0
    assert state.hours == ()


def test_a_restart_through_the_status_loses_nothing() -> None:
    demands = [100.0 + (80.0 if i % 29 == 0 else 0.0) for i in range(600)]
    straight = feed(fresh(), demands)
    halfway = feed(fresh(), demands[:300])
    restored = CalibrationState.from_dict(json.loads(json.dumps(halfway.to_dict())))
    resumed = feed(restored, demands[300:], start=T0 + 300 * STEP)
    assert resumed == straight
