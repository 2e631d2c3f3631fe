"""The anomaly detector: each kind fires after the sustained duration and not before; glitches and
missing data never fire; the state survives a restart through JSON and stays bounded."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from forecasting.anomaly import (
    AnomalyConfig,
    AnomalyDecision,
    AnomalyKind,
    AnomalySample,
    AnomalyState,
    AnomalyStateError,
    NotJudged,
    detect,
)

T0 = 1_700_006_400.0  # pinned clock: 2023-11-15T00:00:00Z, a midnight (the profile's hour 0)
STEP = 300.0  # one 5-minute evaluation interval
SUSTAIN = 1800.0
WITH_DEMAND = AnomalyConfig(sustain_seconds=SUSTAIN, max_sample_seconds=2 * STEP)
NO_DEMAND = replace(WITH_DEMAND, demand_signal=False)
CAPACITY = 10.0  # demand one GPU serves at 100 %


def normal(at: float) -> AnomalySample:
    """A healthy workload: daily demand cycle, GPUs sized for 60 % utilisation, a little jitter."""
    hours = (at - T0) / 3600.0
    demand = 100.0 + 60.0 * math.sin(2 * math.pi * hours / 24.0)
    gpus = float(math.ceil(demand / CAPACITY / 0.6))
    jitter = 0.04 * math.sin(1.7 * hours * 12.0) + 0.03 * math.cos(0.9 * hours * 12.0)
    utilization = demand / CAPACITY / gpus * (1.0 + jitter)
    return AnomalySample(at=at, utilization=utilization, gpus=gpus, demand=demand)


def busy(at: float) -> AnomalySample:  # GPUs pegged whatever the demand
    return replace(normal(at), utilization=0.97)


def cost(at: float) -> AnomalySample:  # GPU per request x1.6, the autoscaler paid for it
    sample = normal(at)
    assert sample.gpus is not None
    return replace(sample, gpus=math.ceil(sample.gpus * 1.6 + 1.0))


def collapse(at: float) -> AnomalySample:  # replicas held, GPUs idle
    return replace(normal(at), utilization=0.01)


Scenario = Callable[[float], AnomalySample]


def feed(
    state: AnomalyState, config: AnomalyConfig, scenario: Scenario, start: float, count: int
) -> tuple[AnomalyState, list[AnomalyDecision]]:
    decisions = []
    for i in range(count):
        decision = detect(state, scenario(start + i * STEP), config)
        state = decision.state
        decisions.append(decision)
    return state, decisions


_WARM: dict[bool, AnomalyState] = {}


def warm(config: AnomalyConfig) -> AnomalyState:
    """Three days of healthy samples (computed once per mode; states are immutable)."""
    if config.demand_signal not in _WARM:
        state, _ = feed(AnomalyState.start(T0 - STEP), config, normal, T0, 3 * 288)
        _WARM[config.demand_signal] = state
    return _WARM[config.demand_signal]


START = T0 + 3 * 86400.0  # the first sample after the warm-up, at midnight again

KINDS = [
    pytest.param(WITH_DEMAND, busy, AnomalyKind.BUSY_WITHOUT_DEMAND, id="busy-without-demand"),
    pytest.param(WITH_DEMAND, cost, AnomalyKind.COST_OUTPACING_DEMAND, id="cost-outpacing-demand"),
    pytest.param(WITH_DEMAND, collapse, AnomalyKind.UTILIZATION_COLLAPSE, id="utilization-collapse"),
    pytest.param(NO_DEMAND, busy, AnomalyKind.ABOVE_PROFILE, id="above-profile"),
    pytest.param(NO_DEMAND, collapse, AnomalyKind.BELOW_PROFILE, id="below-profile"),
]


@pytest.mark.parametrize(("config", "scenario", "kind"), KINDS)
def test_each_kind_fires_once_sustained_and_not_before(
    config: AnomalyConfig, scenario: Scenario, kind: AnomalyKind
) -> None:
    state = warm(config)
    assert state.active is None and state.run is None
    needed = int(SUSTAIN / STEP)  # each sample stands for the 5 minutes since the previous one
    _, decisions = feed(state, config, scenario, START, needed + 3)
    raised = [i for i, d in enumerate(decisions) if d.raised]
    assert raised == [needed - 1]
    assert all(d.anomaly is None for d in decisions[: needed - 1])
    assert decisions[needed - 2].pending is not None and decisions[needed - 2].pending.kind == kind
    anomaly = decisions[needed - 1].anomaly
    assert anomaly is not None and anomaly.kind == kind
    assert anomaly.since == START
    assert anomaly.sustained_seconds == SUSTAIN
    assert not anomaly.expected_low <= anomaly.observed <= anomaly.expected_high
    assert (anomaly.demand is not None) == config.demand_signal
    assert kind.value in anomaly.message()
    assert decisions[-1].anomaly is not None and not decisions[-1].raised  # stays up, raised once


@pytest.mark.parametrize(("config", "scenario", "kind"), KINDS)
def test_a_single_glitch_never_fires(config: AnomalyConfig, scenario: Scenario, kind: AnomalyKind) -> None:
    state = warm(config)
    decision = detect(state, scenario(START), config)
    assert decision.pending is not None and decision.pending.kind == kind
    _, decisions = feed(decision.state, config, normal, START + STEP, 24)
    assert not any(d.raised or d.anomaly for d in decisions)


def test_an_anomaly_cleared_by_a_sustained_return_to_normal() -> None:
    state, decisions = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 12)
    assert decisions[-1].anomaly is not None
    back = START + 12 * STEP
    _, after = feed(state, WITH_DEMAND, normal, back, 12)
    cleared = [i for i, d in enumerate(after) if d.cleared]
    assert cleared == [int(SUSTAIN / STEP) - 1]
    assert after[-1].anomaly is None


def test_one_normal_sample_inside_an_anomaly_does_not_clear_it() -> None:
    state, _ = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 8)
    blip = detect(state, normal(START + 8 * STEP), WITH_DEMAND)
    _, decisions = feed(blip.state, WITH_DEMAND, busy, START + 9 * STEP, 10)
    assert not any(d.cleared or d.raised for d in decisions)
    assert decisions[-1].anomaly is not None and decisions[-1].anomaly.since == START


def missing_utilization(at: float) -> AnomalySample:
    return replace(busy(at), utilization=math.nan)


def missing_gpus(at: float) -> AnomalySample:
    return replace(busy(at), gpus=None)


def missing_demand(at: float) -> AnomalySample:
    return replace(busy(at), demand=math.nan)


def demand_none(at: float) -> AnomalySample:
    return replace(busy(at), demand=None)


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(missing_utilization, id="utilization-nan"),
        pytest.param(missing_gpus, id="gpus-none"),
        pytest.param(missing_demand, id="demand-nan"),
        pytest.param(demand_none, id="demand-none"),
    ],
)
def test_missing_data_never_fires(scenario: Scenario) -> None:
    """GPUs pegged but one value missing for three hours: nothing is judged, nothing is learnt."""
    state = warm(WITH_DEMAND)
    after, decisions = feed(state, WITH_DEMAND, scenario, START, 36)
    assert all(d.not_judged is NotJudged.MISSING_SAMPLE for d in decisions)
    assert not any(d.raised or d.anomaly or d.pending for d in decisions)
    assert after == replace(state, updated_at=START + 35 * STEP)


def test_missing_samples_inside_a_departure_do_not_count_as_sustained() -> None:
    state, decisions = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 3)  # 15 min observed
    state, gap = feed(state, WITH_DEMAND, missing_utilization, START + 3 * STEP, 12)  # an hour missing
    assert not any(d.raised for d in decisions + gap)
    assert gap[-1].pending is not None and gap[-1].pending.sustained_seconds == 3 * STEP
    _, rest = feed(state, WITH_DEMAND, busy, START + 15 * STEP, 4)
    assert [d.raised for d in rest] == [False, False, True, False]  # 15 more observed minutes


def test_one_sample_after_an_outage_stands_for_at_most_max_sample_seconds() -> None:
    state, _ = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 1)
    decision = detect(state, busy(START + 6 * 3600.0), WITH_DEMAND)  # the operator was down 6 h
    assert not decision.raised
    assert decision.pending is not None
    assert decision.pending.sustained_seconds == STEP + WITH_DEMAND.max_sample_seconds


def test_the_same_sample_twice_counts_once() -> None:
    state = warm(WITH_DEMAND)
    first = detect(state, busy(START), WITH_DEMAND)
    again = detect(first.state, busy(START), WITH_DEMAND)
    assert again.not_judged is NotJudged.ALREADY_SEEN
    assert again.state == first.state


def test_nothing_is_judged_while_warming_up() -> None:
    state, decisions = feed(AnomalyState.start(T0 - STEP), WITH_DEMAND, busy, T0, 48)
    assert all(d.not_judged is NotJudged.WARMING_UP for d in decisions)
    assert not any(d.anomaly or d.pending for d in decisions)
    assert state.learned_seconds == 48 * STEP


def test_scaled_to_zero_ends_a_departure() -> None:
    state, _ = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 3)
    decision = detect(state, replace(busy(START + 3 * STEP), gpus=0.0), WITH_DEMAND)
    assert decision.not_judged is NotJudged.NO_GPUS and decision.pending is None


def one_more_replica(at: float) -> AnomalySample:
    sample = normal(at)
    assert sample.gpus is not None
    return replace(sample, gpus=sample.gpus + 1.0)


def test_one_replica_above_the_line_is_rounding_not_evidence() -> None:
    _, decisions = feed(warm(WITH_DEMAND), WITH_DEMAND, one_more_replica, START, 36)
    assert not any(d.raised or d.anomaly for d in decisions)


def test_the_cost_evidence_is_in_gpus_at_the_observed_demand() -> None:
    _, decisions = feed(warm(WITH_DEMAND), WITH_DEMAND, cost, START, 6)
    anomaly = decisions[-1].anomaly
    assert anomaly is not None and anomaly.signal == "allocatedGpus" and anomaly.unit == "GPUs"
    gpus = [cost(START + i * STEP).gpus for i in range(6)]
    demand = [normal(START + i * STEP).demand for i in range(6)]
    assert anomaly.observed == pytest.approx(sum(g or 0.0 for g in gpus) / 6)
    assert anomaly.demand == pytest.approx(sum(d or 0.0 for d in demand) / 6)
    assert anomaly.expected < anomaly.expected_high < anomaly.observed
    assert anomaly.to_dict()["kind"] == "CostOutpacingDemand"


def test_a_sample_needs_a_finite_time() -> None:
    with pytest.raises(ValueError, match="finite time"):
        AnomalySample(at=math.nan, utilization=0.5, gpus=1.0, demand=1.0)


def test_healthy_days_raise_nothing() -> None:
    _, decisions = feed(warm(WITH_DEMAND), WITH_DEMAND, normal, START, 288)
    assert not any(d.raised or d.pending for d in decisions)


@pytest.mark.parametrize(
    ("config", "scenario", "count"),
    [
        pytest.param(WITH_DEMAND, normal, 0, id="learnt-only"),
        pytest.param(WITH_DEMAND, busy, 3, id="with-a-pending-run"),
        pytest.param(WITH_DEMAND, busy, 12, id="with-an-active-anomaly"),
        pytest.param(NO_DEMAND, busy, 12, id="profile-active"),
    ],
)
def test_state_round_trips_through_json(config: AnomalyConfig, scenario: Scenario, count: int) -> None:
    state, _ = feed(warm(config), config, scenario, START, count)
    restored = AnomalyState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    # A restart through the status resumes exactly where an uninterrupted run would be.
    at = START + count * STEP
    assert detect(restored, scenario(at), config) == detect(state, scenario(at), config)


def test_state_stays_bounded() -> None:
    day, _ = feed(warm(WITH_DEMAND), WITH_DEMAND, busy, START, 12)
    week, _ = feed(day, WITH_DEMAND, normal, START + 12 * STEP, 7 * 288)
    sizes = [len(json.dumps(s.to_dict())) for s in (warm(WITH_DEMAND), day, week)]
    assert max(sizes) < 6000
    assert len(json.dumps(week.to_dict())) == pytest.approx(sizes[0], rel=0.1)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: {**d, "version": 99}, id="version"),
        pytest.param(lambda d: {k: v for k, v in d.items() if k != "scales"}, id="missing-key"),
        pytest.param(lambda d: {**d, "profile": {**d["profile"], "w": [1.0]}}, id="short-profile"),
        pytest.param(lambda d: {**d, "relation": ["x"] * 7}, id="not-a-number"),
    ],
)
def test_a_malformed_state_is_a_clear_error(mutate: Callable[[dict[str, object]], dict[str, object]]) -> None:
    data = warm(WITH_DEMAND).to_dict()
    with pytest.raises(AnomalyStateError):
        AnomalyState.from_dict(mutate(data))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"sustain_seconds": 0.0}, id="sustain"),
        pytest.param({"max_sample_seconds": -1.0}, id="max-sample"),
        pytest.param({"warmup_seconds": math.nan}, id="warmup"),
    ],
)
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AnomalyConfig(**kwargs)
