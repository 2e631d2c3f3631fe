"""ValidatingAdmissionPolicy rendering: structure, modes, ownership, and hostile strings kept as CEL
literals. The CEL itself is evaluated by a real API server in tests/integration/test_sovereignty.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from finops_operator.api.common import EnforcementMode
from finops_operator.planners.sovereignty import ClusterNode, parse_spec, vap

EU = "eu-west-1"


def spec(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "region": EU,
        "namespaceSelector": {"matchLabels": {"sovereignty": "eu"}},
        "allowedGPUProducts": ["NVIDIA-A100-SXM4-80GB"],
        "allowedDataClassifications": ["public", "internal"],
    }
    raw.update(overrides)
    return parse_spec(raw)


def policy(**overrides: Any) -> dict[str, Any]:
    return vap.validating_admission_policy(spec(**overrides), region_name="eu", uid="u-1")


def expressions(obj: dict[str, Any]) -> list[str]:
    return [v["expression"] for v in obj["spec"]["validations"]]


def test_policy_is_owned_fails_closed_and_matches_pods_and_templates() -> None:
    obj = policy()
    assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert obj["metadata"]["name"] == "finops-sovereignty-eu"
    owner = obj["metadata"]["ownerReferences"][0]
    assert owner == {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "name": "eu",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert obj["metadata"]["labels"][vap.MANAGED_BY_LABEL] == "finops-operator"
    assert obj["spec"]["failurePolicy"] == "Fail"
    resources = {r for rule in obj["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]}
    assert resources == {"pods", "deployments", "statefulsets", "daemonsets", "jobs", "cronjobs"}
    pods = obj["spec"]["matchConstraints"]["resourceRules"][0]
    assert pods["operations"] == ["CREATE"]


def test_one_validation_per_rule_and_every_rule_skips_unchanged_updates() -> None:
    obj = policy()
    rules = [v["message"].split(", rule ")[1].split(":")[0] for v in obj["spec"]["validations"]]
    assert rules == ["Region", "Region", "GPUProduct", "DataClassification"]
    assert all(e.startswith("!variables.changed || ") for e in expressions(obj))
    for validation in obj["spec"]["validations"]:
        assert validation["reason"] == "Forbidden"
        assert "SovereignRegion eu (region eu-west-1)" in validation["message"]
        assert "ValidatingAdmissionPolicy finops-sovereignty-eu" in validation["messageExpression"]
    region = expressions(obj)[0]
    assert '"topology.kubernetes.io/region" in variables.nodeSelector' in region
    assert 'variables.nodeSelector["topology.kubernetes.io/region"] in ["eu-west-1"]' in region
    assert '"failure-domain.beta.kubernetes.io/region"' in region  # the legacy label too


def test_empty_allow_lists_render_no_rule() -> None:
    obj = policy(allowedGPUProducts=[], allowedDataClassifications=[])
    assert len(obj["spec"]["validations"]) == 2


def test_custom_node_selector_and_nodes_widen_the_allowed_regions() -> None:
    custom = spec(
        nodeSelector={
            "matchLabels": {"example.com/sovereign": "true"},
            "matchExpressions": [{"key": "example.com/country", "operator": "NotIn", "values": ["us"]}],
        }
    )
    nodes = {
        "a": ClusterNode(
            "a", {"example.com/sovereign": "true", "topology.kubernetes.io/region": "eu-central-1"}
        ),
        "b": ClusterNode("b", {"topology.kubernetes.io/region": "us-east-1"}),
    }
    rendered = vap.validations(custom, "eu", nodes)
    region = rendered[0].expression
    assert 'variables.nodeSelector["example.com/sovereign"] in ["true"]' in region
    assert '!(variables.nodeSelector["example.com/country"] in ["us"])' in region
    assert '["eu-central-1", "eu-west-1"]' in region and "us-east-1" not in region


@pytest.mark.parametrize(
    "hostile",
    ['x" || true || "', "a\\\" in [] || '", "\u202e\x00\n", "' + object.metadata.name + '"],
)
def test_hostile_strings_stay_literals(hostile: str) -> None:
    obj = policy(allowedDataClassifications=[hostile], allowedGPUProducts=[hostile])
    literal = json.dumps(hostile, ensure_ascii=False)
    for expression in expressions(obj)[2:]:
        assert literal in expression
        # Removing every string literal leaves no trace of the hostile text in the code around it.
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
        assert "true ||" not in code and "object.metadata.name" not in code
    json.dumps(obj)  # serialisable as is


@pytest.mark.parametrize(
    ("mode", "actions"),
    [
        (EnforcementMode.ENFORCE, ["Deny"]),
        (EnforcementMode.WARN, ["Warn"]),
        (EnforcementMode.DRY_RUN, ["Audit"]),
    ],
)
def test_binding_actions_follow_the_mode(mode: EnforcementMode, actions: list[str]) -> None:
    binding = vap.validating_admission_policy_binding(
        spec(enforcementMode=mode.value), region_name="eu", uid="u"
    )
    assert binding["spec"]["validationActions"] == actions
    assert binding["spec"]["policyName"] == "finops-sovereignty-eu"
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"sovereignty": "eu"}}


def test_binding_leaves_out_conflicted_namespaces_and_keeps_expressions() -> None:
    selected = spec(namespaceSelector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
    binding = vap.validating_admission_policy_binding(
        selected, region_name="eu", uid="u", excluded_namespaces=["b", "a", "b"]
    )
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "tier", "operator": "Exists"},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["a", "b"]},
        ]
    }


def test_hash_changes_with_the_spec_only() -> None:
    first, again = policy(), policy()
    assert first == again
    changed = policy(allowedGPUProducts=["NVIDIA-L4"])
    key = vap.HASH_ANNOTATION
    assert first["metadata"]["annotations"][key] != changed["metadata"]["annotations"][key]


def test_long_names_are_shortened_and_stay_unique() -> None:
    one, two = "r" * 250 + "a", "r" * 250 + "b"
    assert len(vap.policy_name(one)) == vap.MAX_NAME
    assert vap.policy_name(one) != vap.policy_name(two)
    obj = vap.validating_admission_policy(spec(), region_name=one, uid="u")
    assert len(obj["metadata"]["labels"][vap.REGION_OBJECT_LABEL]) <= 63
