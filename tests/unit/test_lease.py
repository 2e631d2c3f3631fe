"""Leader election decisions: take a free or expired Lease, renew ours, wait for a live holder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from finops_operator.planners.lease import plan_lease

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def lease(holder: str | None, renewed: datetime, transitions: int = 0) -> dict[str, object]:
    return {
        "metadata": {"name": "finops-operator", "namespace": "ops", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-01T11:00:00Z",
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseTransitions": transitions,
        },
    }


def decide(current: dict[str, object] | None, me: str = "a") -> object:
    return plan_lease(
        current, name="finops-operator", namespace="ops", identity=me, duration_seconds=15, now=NOW
    )


def test_no_lease_is_created_without_a_resource_version() -> None:
    decision = decide(None)
    assert decision.leader and decision.write is not None  # type: ignore[attr-defined]
    assert "resourceVersion" not in decision.write["metadata"]  # type: ignore[attr-defined]


def test_a_live_holder_is_waited_for() -> None:
    decision = decide(lease("b", NOW - timedelta(seconds=5)))
    assert not decision.leader and decision.write is None and decision.holder == "b"  # type: ignore[attr-defined]


def test_an_expired_lease_is_taken_guarded_by_its_resource_version() -> None:
    decision = decide(lease("b", NOW - timedelta(seconds=16), transitions=2))
    write = decision.write  # type: ignore[attr-defined]
    assert decision.leader and write["metadata"]["resourceVersion"] == "7"  # type: ignore[attr-defined]
    assert write["spec"]["holderIdentity"] == "a" and write["spec"]["leaseTransitions"] == 3


def test_our_lease_is_renewed_keeping_its_acquire_time() -> None:
    write = decide(lease("a", NOW - timedelta(seconds=5), transitions=2)).write  # type: ignore[attr-defined]
    assert write["spec"]["acquireTime"] == "2026-01-01T11:00:00Z" and write["spec"]["leaseTransitions"] == 2
