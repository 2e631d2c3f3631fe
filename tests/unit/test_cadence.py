from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finops_operator.planners.policy.cadence import EXHAUSTION_SLACK, seconds_until_exhaustion_sample

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
NEXT_TICK = NOW + timedelta(seconds=30)


def test_a_budget_running_out_before_the_next_tick_is_sampled_just_after_it_runs_out() -> None:
    wait = seconds_until_exhaustion_sample(NOW + timedelta(seconds=12), NOW, NEXT_TICK)
    assert wait == 12 + EXHAUSTION_SLACK.total_seconds()


def test_the_next_tick_samples_a_budget_running_out_after_it() -> None:
    assert seconds_until_exhaustion_sample(NOW + timedelta(seconds=30), NOW, NEXT_TICK) is None
    assert seconds_until_exhaustion_sample(NOW + timedelta(hours=3), NOW, NEXT_TICK) is None


def test_nothing_projected_or_a_projection_already_past_waits_for_the_tick() -> None:
    assert seconds_until_exhaustion_sample(None, NOW, NEXT_TICK) is None
    assert seconds_until_exhaustion_sample(NOW, NOW, NEXT_TICK) is None
    assert seconds_until_exhaustion_sample(NOW - timedelta(seconds=1), NOW, NEXT_TICK) is None
