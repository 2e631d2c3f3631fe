from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import ConditionUpdate, apply_conditions, find

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_transition_time_moves_only_when_status_flips() -> None:
    first = apply_conditions([], [ConditionUpdate("Ready", ConditionStatus.TRUE, "Reconciled", "a")], 1, T0)
    same = apply_conditions(first, [ConditionUpdate("Ready", ConditionStatus.TRUE, "Reconciled", "b")], 2, T1)
    ready = find(same, "Ready")
    assert ready is not None
    assert ready.last_transition_time == T0
    assert (ready.message, ready.observed_generation) == ("b", 2)
    flipped = apply_conditions(same, [ConditionUpdate("Ready", ConditionStatus.FALSE, "InvalidSpec")], 3, T1)
    assert find(flipped, "Ready").last_transition_time == T1  # type: ignore[union-attr]


def test_other_conditions_are_kept_in_order() -> None:
    base = apply_conditions(
        [],
        [
            ConditionUpdate("Ready", ConditionStatus.TRUE, "R"),
            ConditionUpdate("Idle", ConditionStatus.FALSE, "I"),
        ],
        1,
        T0,
    )
    updated = apply_conditions(base, [ConditionUpdate("Idle", ConditionStatus.TRUE, "I2")], 1, T1)
    assert [c.type for c in updated] == ["Ready", "Idle"]
    assert find(updated, "Ready") == find(base, "Ready")
