"""The generated ValidatingAdmissionPolicy: ownership, modes, one validation per static rule, strings
quoted as CEL literals. The CEL is evaluated by a real API server in
tests/integration/test_release_gates.py."""

from __future__ import annotations

import pytest

from finops_operator.api.common import LabelSelector
from finops_operator.planners.admissionpolicy import HASH_ANNOTATION
from finops_operator.planners.releasegate import vap
from tests.unit.releasegate.helpers import spec


def test_policy_fails_closed_is_owned_and_has_one_validation_per_static_rule() -> None:
    policy = vap.validating_admission_policy(spec(), gate="prod", uid="u-1")
    assert policy["metadata"]["name"] == "finops-modelgate-prod"
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "ModelReleaseGate"
    assert policy["spec"]["failurePolicy"] == "Fail"
    rules = [v["message"].split("[rule ")[1].split("]")[0] for v in policy["spec"]["validations"]]
    # sbom, sbom-digest, xai-report, the bias metric, the licence, artifact-digest, signature
    assert rules == ["RequiredEvidence"] * 7 + ["Threshold", "AllowedValue"]
    assert all(v["expression"].startswith("!variables.gated || ") for v in policy["spec"]["validations"])


@pytest.mark.parametrize(
    ("mode", "actions"), [("Enforce", ["Deny"]), ("Warn", ["Warn"]), ("DryRun", ["Audit"])]
)
def test_binding_actions_follow_the_mode(mode: str, actions: list[str]) -> None:
    binding = vap.validating_admission_policy_binding(spec(enforcementMode=mode), gate="prod", uid="u")
    assert binding["spec"]["validationActions"] == actions
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"release-gate": "prod"}}


def test_hostile_strings_stay_literals() -> None:
    hostile = 'x" || true || "'
    policy = vap.validating_admission_policy(
        spec(allowedValues=[{"evidence": "card.source", "values": [hostile]}]), gate="prod", uid="u"
    )
    allowed = policy["spec"]["validations"][-1]["expression"]
    assert '["x\\" || true || \\""]' in allowed


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param({}, "true", id="empty-selects-all"),
        pytest.param({"matchLabels": {"a": "b"}}, '("a" in l && l["a"] == "b")', id="labels"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]},
            '(!("a" in l) || !(l["a"] in ["x"]))',
            id="not-in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
            '!("a" in l)',
            id="does-not-exist",
        ),
    ],
)
def test_selector_expression(selector: dict[str, object], expected: str) -> None:
    assert vap.selector_expression(LabelSelector.model_validate(selector), "l") == expected


def test_hash_changes_with_the_spec_only() -> None:
    one = vap.validating_admission_policy(spec(), gate="prod", uid="u")
    same = vap.validating_admission_policy(spec(), gate="prod", uid="u")
    other = vap.validating_admission_policy(spec(requiredEvidence=["sbom"]), gate="prod", uid="u")
    hash_of = HASH_ANNOTATION
    assert one["metadata"]["annotations"][hash_of] == same["metadata"]["annotations"][hash_of]
    assert one["metadata"]["annotations"][hash_of] != other["metadata"]["annotations"][hash_of]
