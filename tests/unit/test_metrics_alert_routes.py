"""finops_policy_alert_route: one series per route of a policy's spec.alerting, so alert rules can
carry the policy's recipientGroup; changed and removed routes leave no stale series."""

from __future__ import annotations

from prometheus_client import REGISTRY

from finops_operator import metrics


def routes(namespace: str, policy: str) -> set[tuple[str, str, str]]:
    return {
        (s.labels["event"], s.labels["severity"], s.labels["recipient_group"])
        for m in REGISTRY.collect()
        if m.name == "finops_policy_alert_route"
        for s in m.samples
        if s.labels["namespace"] == namespace and s.labels["policy"] == policy and s.value == 1
    }


def record(alerting: dict[str, object] | None) -> None:
    metrics.record_policy(
        "routes-ns", "p", governed=1, gpu_hours=0, cost=0, budget_percent=0, idle=0, alerting=alerting
    )


def test_routes_follow_the_spec_and_vanish_with_the_policy() -> None:
    record(
        {
            "thresholdExceeded": {"severity": "WARNING", "recipientGroup": "ml-team"},
            "idleShutdown": {"recipientGroup": "mlops-team"},
            "webhookSecretRef": {"name": "hook"},
        }
    )
    assert routes("routes-ns", "p") == {
        ("thresholdExceeded", "WARNING", "ml-team"),
        ("idleShutdown", "WARNING", "mlops-team"),
    }
    record({"thresholdExceeded": {"severity": "CRITICAL", "recipientGroup": "ml-team"}})
    assert routes("routes-ns", "p") == {("thresholdExceeded", "CRITICAL", "ml-team")}
    record(None)
    assert routes("routes-ns", "p") == set()
    record({"budgetExhausted": {"recipientGroup": "finops"}})
    metrics.forget_policy("routes-ns", "p")
    assert routes("routes-ns", "p") == set()
