"""The confused-deputy decision of EdgeFleet (planners/fleet/author.py), pinned clocks, no cluster.
What the admission policy does on a real API server is tested in tests/integration/test_fleet_deputy.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.edgefleet import EdgeFleetSpec, EdgeFleetStatus
from finops_operator.planners.fleet import FleetObservation, FleetReason, SiteNode, plan_fleet
from finops_operator.planners.fleet.author import (
    SETTLE,
    AuthorCheckObject,
    author_check_binding,
    author_check_object,
    author_check_policy,
    author_unchecked,
    in_force_since,
    spec_written_at,
    stale_author_check,
)
from finops_operator.planners.plan import ApplyManifest

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def observed_check(created: datetime, *, policy_hash: str | None = None) -> dict[str, AuthorCheckObject]:
    found = {
        m["kind"]: author_check_object(
            {"metadata": {**m["metadata"], "creationTimestamp": created.isoformat()}}
        )
        for m in (author_check_policy(), author_check_binding())
    }
    if policy_hash is not None:
        found["ValidatingAdmissionPolicy"] = AuthorCheckObject(policy_hash, created)
    return found


def test_the_policy_asks_the_authorizer_about_the_requesting_user_on_spec_writes_only() -> None:
    policy = author_check_policy()["spec"]
    assert policy["failurePolicy"] == "Fail"
    assert policy["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert "object.spec != oldObject.spec" in policy["matchConditions"][0]["expression"]
    check = policy["validations"][0]["expression"]
    assert "authorizer.group('apps').resource('deployments')" in check and "check('create')" in check
    assert author_check_binding()["spec"]["validationActions"] == ["Deny"]


@pytest.mark.parametrize(
    ("observed", "stale"),
    [
        pytest.param({}, ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"], id="missing"),
        pytest.param(observed_check(T0), [], id="in-place"),
        pytest.param(observed_check(T0, policy_hash="old"), ["ValidatingAdmissionPolicy"], id="outdated"),
    ],
)
def test_stale_admission_objects_are_reapplied(
    observed: dict[str, AuthorCheckObject], stale: list[str]
) -> None:
    assert [m["kind"] for m in stale_author_check(observed)] == stale


def test_in_force_once_both_objects_exist_and_settled() -> None:
    assert in_force_since({}) is None
    assert in_force_since(observed_check(T0, policy_hash="old")) is None
    assert in_force_since(observed_check(T0)) == T0 + SETTLE


@pytest.mark.parametrize(
    ("written", "since", "held"),
    [
        pytest.param(T0, None, "not in force", id="no-check-yet"),
        pytest.param(None, T0, "before", id="no-spec-write-recorded"),
        pytest.param(T0 - timedelta(seconds=1), T0, "before", id="written-before-check"),
        pytest.param(T0, T0, None, id="written-as-check-took-force"),
        pytest.param(T0 + timedelta(hours=1), T0, None, id="written-after-check"),
    ],
)
def test_a_fleet_is_acted_on_only_when_written_under_the_check(
    written: datetime | None, since: datetime | None, held: str | None
) -> None:
    why = author_unchecked(written, since, now=T0 + timedelta(hours=2))
    assert why is None if held is None else (why is not None and held in why)


@pytest.mark.parametrize("written", [None, T0 - timedelta(seconds=1), T0 + timedelta(seconds=1)])
def test_nobody_is_told_to_reapply_before_a_reapply_would_be_trusted(written: datetime | None) -> None:
    """While the check settles, a re-applied spec is still untrusted: the fleet waits for the check
    instead of asking for a re-apply that would not count."""
    why = author_unchecked(written, T0 + SETTLE, now=T0 + timedelta(seconds=1))
    assert why is not None and "not in force" in why and "re-apply" not in why


def test_spec_written_is_the_latest_spec_write_not_metadata_or_status() -> None:
    fields: list[dict[str, Any]] = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "time": "2026-11-22T09:00:00Z",
            "fieldsV1": {"f:spec": {}},
        },
        {
            "manager": "argocd",
            "operation": "Apply",
            "time": "2026-11-22T09:30:00Z",
            "fieldsV1": {"f:spec": {}},
        },
        {
            "manager": "kopf",
            "operation": "Update",
            "time": "2026-11-22T09:50:00Z",
            "fieldsV1": {"f:metadata": {}},
        },
        {
            "manager": "finops-operator",
            "operation": "Update",
            "subresource": "status",
            "time": "2026-11-22T09:55:00Z",
            "fieldsV1": {"f:status": {}},
        },
    ]
    assert spec_written_at(fields) == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
    assert spec_written_at([]) is None


def test_an_unchecked_fleet_is_reported_and_nothing_but_the_check_is_written() -> None:
    spec = EdgeFleetSpec.model_validate(
        {
            "nodeSelector": {},
            "modelVersion": "v1",
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        }
    )
    base: dict[str, Any] = {
        "namespace": "ns",
        "name": "f",
        "uid": "u",
        "generation": 2,
        "current_status": EdgeFleetStatus(),
        "nodes": (SiteNode("n", {"finops.dev/site": "a"}, True, T0),),
    }
    held = plan_fleet(spec, FleetObservation(**base, author_check={}, spec_written=T0), T0)
    ready = find(held.status.conditions, "Ready")
    assert ready is not None and ready.status == ConditionStatus.FALSE
    assert ready.reason == FleetReason.AUTHOR_UNCHECKED and ready.observed_generation == 2
    assert [i.target.kind for i in held.intents if isinstance(i, ApplyManifest)] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert len(held.intents) == 2

    old = plan_fleet(
        spec,
        FleetObservation(**base, author_check=observed_check(T0), spec_written=T0 - SETTLE),
        T0 + SETTLE,
    )
    assert not old.intents and "re-apply" in (find(old.status.conditions, "Ready") or ready).message

    checked = plan_fleet(
        spec, FleetObservation(**base, author_check=observed_check(T0), spec_written=T0 + SETTLE), T0 + SETTLE
    )
    assert any(i.target.kind == "Deployment" for i in checked.intents if isinstance(i, ApplyManifest))
