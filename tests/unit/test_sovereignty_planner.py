from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.common import GPU_PRODUCT_LABEL, ConditionStatus, EnforcementMode
from finops_operator.api.conditions import find
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec, SovereigntyViolation
from finops_operator.planners.sovereignty import (
    AuditResult,
    Finding,
    NodeFacts,
    PodFacts,
    PodRef,
    PvcFacts,
    PvFacts,
    WorkloadFacts,
    admission_decision,
    audit,
    bound_regions,
    effective_node_selector,
    evaluate_pod_template,
    matching_node_names,
    merge_required_affinity,
    namespace_conflict_decision,
    parse_spec,
    plan_region_status,
    region_match_expressions,
    required_node_affinity,
    resolve_namespace_bindings,
)
from finops_operator.workloads.templates import pod_template

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
EU = "eu-west-1"
US = "us-east-1"
CLASS = "finops.dev/data-classification"


def region(**overrides: Any) -> SovereignRegionSpec:
    raw: dict[str, Any] = {"region": EU, "namespaceSelector": {"matchLabels": {"sovereignty": "eu"}}}
    raw.update(overrides)
    return parse_spec(raw)


SPEC = region()
NODES = {
    "eu-1": NodeFacts("eu-1", {REGION_LABEL: EU, "topology.kubernetes.io/zone": "eu-west-1a"}),
    "eu-gpu": NodeFacts("eu-gpu", {REGION_LABEL: EU, GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}),
    "us-1": NodeFacts(
        "us-1",
        {REGION_LABEL: US, "topology.kubernetes.io/zone": "us-east-1a", "kubernetes.io/hostname": "us-1"},
    ),
    "bare": NodeFacts("bare", {}),
}


def term(*expressions: Any, **extra: Any) -> dict[str, Any]:
    return {"matchExpressions": list(expressions), **extra}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    result: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        result["values"] = list(values)
    return result


def with_terms(*terms: Any, **pod: Any) -> dict[str, Any]:
    return {
        **pod,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        },
    }


def evaluate(
    pod_spec: Any,
    spec: SovereignRegionSpec = SPEC,
    *,
    labels: dict[str, str] | None = None,
    template_labels: dict[str, str] | None = None,
    namespace_labels: dict[str, str] | None = None,
    nodes: dict[str, NodeFacts] | None = None,
    kind: str = "Deployment",
) -> list[Finding]:
    return evaluate_pod_template(
        "ai",
        kind,
        "llm",
        labels=labels,
        pod_spec=pod_spec,
        namespace_labels=namespace_labels,
        region_spec=spec,
        nodes_by_name=nodes,
        template_labels=template_labels,
    )


# ---------------------------------------------------------------------------------------------- binding


REGIONS = {
    "eu": region(namespaceSelector={"matchLabels": {"sovereignty": "eu"}}),
    "eu-gpu": region(namespaceSelector={"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}),
    "us": region(region=US, namespaceSelector={"matchLabels": {"sovereignty": "us"}}),
}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"sovereignty": "eu"}, ["eu"]),
        ({"sovereignty": "us"}, ["us"]),
        ({"sovereignty": "eu", "gpu": "yes"}, ["eu", "eu-gpu"]),
        ({}, []),
        (None, []),
        ({"sovereignty": "EU"}, []),
        ({"sovereignty": "eu\x00", "x": "\u202e"}, []),
    ],
    ids=["eu", "us", "two-regions", "no-labels", "none", "case-sensitive", "garbage"],
)
def test_bound_regions(labels: dict[str, str] | None, expected: list[str]) -> None:
    assert bound_regions(labels, REGIONS) == expected


def test_namespace_bound_twice_is_governed_by_neither_and_reported_on_both() -> None:
    bindings = resolve_namespace_bindings(
        {
            "ai": {"sovereignty": "eu", "gpu": "1"},
            "web": {"sovereignty": "eu"},
            "us-app": {"sovereignty": "us"},
        },
        REGIONS,
    )
    assert bindings.governed == {"eu": ("web",), "eu-gpu": (), "us": ("us-app",)}
    assert bindings.conflicts["eu"] == {"ai": ("eu", "eu-gpu")}
    assert bindings.conflicts["eu-gpu"] == {"ai": ("eu", "eu-gpu")}
    assert bindings.conflicts["us"] == {}
    decision = namespace_conflict_decision("ai", ["eu-gpu", "eu"])
    assert decision.allowed and "ai" in decision.warnings[0] and "[eu, eu-gpu]" in decision.warnings[0]


# ---------------------------------------------------------------------------------------------- affinity


@pytest.mark.parametrize(
    ("node_selector", "expected"),
    [
        (None, {"matchLabels": {REGION_LABEL: EU}}),
        ({}, {"matchLabels": {REGION_LABEL: EU}}),
        ({"matchLabels": {"pool": "sovereign-eu"}}, {"matchLabels": {"pool": "sovereign-eu"}}),
    ],
    ids=["unset-defaults", "empty-defaults-not-everything", "custom"],
)
def test_effective_node_selector(node_selector: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    spec = region(nodeSelector=node_selector) if node_selector is not None else region()
    assert effective_node_selector(spec).to_wire() == {"matchLabels": {}, "matchExpressions": [], **expected}


def test_required_node_affinity_expresses_the_selector_as_match_expressions() -> None:
    assert required_node_affinity(SPEC) == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": [EU]}]}]
    }
    custom = region(
        nodeSelector={
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["spot"]},
                {"key": "sovereign", "operator": "Exists"},
            ],
        }
    )
    assert region_match_expressions(custom) == [
        {"key": "a", "operator": "In", "values": ["1"]},
        {"key": "b", "operator": "In", "values": ["2"]},
        {"key": "tier", "operator": "NotIn", "values": ["spot"]},
        {"key": "sovereign", "operator": "Exists"},
    ]


REGION_EXPR = expr(REGION_LABEL, "In", EU)
ZONE_A = expr("topology.kubernetes.io/zone", "In", "eu-west-1a")
GPU_EXPR = expr(GPU_PRODUCT_LABEL, "In", "H100")


@pytest.mark.parametrize(
    ("pod_spec", "expected_terms", "changed"),
    [
        ({}, [term(REGION_EXPR)], True),
        (None, [term(REGION_EXPR)], True),
        ({"affinity": "garbage"}, [term(REGION_EXPR)], True),
        (with_terms(), [term(REGION_EXPR)], True),
        (with_terms(term(ZONE_A)), [term(ZONE_A, REGION_EXPR)], True),
        (
            with_terms(term(ZONE_A), term(GPU_EXPR)),
            [term(ZONE_A, REGION_EXPR), term(GPU_EXPR, REGION_EXPR)],
            True,
        ),
        (with_terms(term(REGION_EXPR, ZONE_A)), [term(REGION_EXPR, ZONE_A)], False),
        (
            with_terms(term(expr(REGION_LABEL, "In", EU, US))),
            [term(expr(REGION_LABEL, "In", EU, US), REGION_EXPR)],
            True,
        ),
        (with_terms({}, term(ZONE_A)), [{}, term(ZONE_A, REGION_EXPR)], True),
        (
            with_terms({"matchFields": [expr("metadata.name", "In", "eu-1")]}),
            [{"matchFields": [expr("metadata.name", "In", "eu-1")], "matchExpressions": [REGION_EXPR]}],
            True,
        ),
        (with_terms("junk", term(ZONE_A)), ["junk", term(ZONE_A, REGION_EXPR)], True),
    ],
    ids=[
        "no-affinity",
        "none-pod-spec",
        "garbage-affinity",
        "empty-terms",
        "one-term",
        "every-term-gets-it",
        "already-there",
        "narrower-added-to-wider",
        "empty-term-matches-nothing-left-alone",
        "match-fields-only",
        "garbage-term-left-alone",
    ],
)
def test_merge_adds_the_region_to_every_term(pod_spec: Any, expected_terms: list[Any], changed: bool) -> None:
    original = copy.deepcopy(pod_spec)
    merged, did_change = merge_required_affinity(pod_spec, SPEC)
    assert did_change is changed
    required = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == expected_terms
    assert pod_spec == original  # never mutated
    again, changed_again = merge_required_affinity(merged, SPEC)
    assert (again, changed_again) == (merged, False)  # idempotent


def test_merge_keeps_everything_else_of_the_affinity() -> None:
    pod_spec = with_terms(
        term(ZONE_A),
        containers=[{"name": "c", "image": "x"}],
        nodeSelector={"disk": "ssd"},
    )
    pod_spec["affinity"]["podAntiAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "h"}]
    }
    preferred = [{"weight": 1, "preference": term(GPU_EXPR)}]
    pod_spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    merged, changed = merge_required_affinity(pod_spec, SPEC)
    assert changed
    assert merged["containers"] == [{"name": "c", "image": "x"}] and merged["nodeSelector"] == {"disk": "ssd"}
    assert merged["affinity"]["podAntiAffinity"] == pod_spec["affinity"]["podAntiAffinity"]
    assert merged["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    merged["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] = 9
    assert preferred[0]["weight"] == 1  # a deep copy


def test_merge_with_custom_selector_adds_every_requirement_once() -> None:
    spec = region(
        nodeSelector={
            "matchLabels": {"pool": "eu"},
            "matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}],
        }
    )
    merged, _ = merge_required_affinity(with_terms(term(expr("pool", "In", "eu"))), spec)
    terms = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [term(expr("pool", "In", "eu"), expr("spot", "DoesNotExist"))]


# ---------------------------------------------------------------------------------------------- evaluate


EXAMPLE = (
    "SovereignRegion eu-west-1: Deployment ai/llm asks for region us-east-1 "
    "(nodeSelector topology.kubernetes.io/region=us-east-1), but namespace ai is bound to eu-west-1"
)


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        ({}, []),
        (None, []),
        ({"nodeSelector": {REGION_LABEL: EU}}, []),
        ({"nodeSelector": {REGION_LABEL: US}}, [EXAMPLE]),
        ({"nodeSelector": {"failure-domain.beta.kubernetes.io/region": US}}, ["asks for region us-east-1"]),
        ({"nodeSelector": {REGION_LABEL: None}}, []),
        (
            with_terms(term(expr(REGION_LABEL, "In", US))),
            ["term 1: topology.kubernetes.io/region In [us-east-1]"],
        ),
        (with_terms(term(expr(REGION_LABEL, "In", EU, US))), ["asks for region us-east-1 (required"]),
        (with_terms(term(expr(REGION_LABEL, "NotIn", EU))), ["asks for nodes outside region eu-west-1"]),
        (with_terms(term(expr(REGION_LABEL, "NotIn", US))), []),
        (with_terms(term(expr(REGION_LABEL, "DoesNotExist"))), ["region DoesNotExist"]),
        (with_terms(term(expr(REGION_LABEL, "Exists"))), []),
        (with_terms(term(expr(REGION_LABEL, "Gt", "3"))), ["Gt [3]"]),
        (
            with_terms(term(expr(REGION_LABEL, "In", EU), expr(REGION_LABEL, "NotIn", EU))),
            [],
        ),
        (with_terms(term(ZONE_A), term(expr(REGION_LABEL, "In", US))), ["required node affinity term 2"]),
        (
            with_terms(term(expr(REGION_LABEL, "In", US)), nodeSelector={REGION_LABEL: EU}),
            ["term 1: topology.kubernetes.io/region In [us-east-1]"],
        ),
        (
            with_terms(term(expr(REGION_LABEL, "In", EU)), nodeSelector={REGION_LABEL: US}),
            ["(nodeSelector topology.kubernetes.io/region=us-east-1)"],
        ),
        (
            with_terms(term(expr(REGION_LABEL, "In", US)), term(expr(REGION_LABEL, "NotIn", EU))),
            ["term 1", "term 2"],
        ),
        ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "x"}}}, []),
        (with_terms("junk", {"matchExpressions": "junk"}, term({"operator": "In"}, "junk")), []),
        (with_terms(term({"key": REGION_LABEL, "operator": "In", "values": "us-east-1"})), []),
        (with_terms(term({"key": REGION_LABEL, "operator": "Bogus", "values": [EU]})), []),
    ],
    ids=[
        "nothing-asked",
        "none-spec",
        "node-selector-inside",
        "node-selector-outside",
        "legacy-region-label",
        "null-node-selector-value",
        "affinity-in-outside",
        "affinity-in-mixed",
        "affinity-notin-region",
        "affinity-notin-other",
        "affinity-doesnotexist",
        "affinity-exists",
        "affinity-gt",
        "self-contradicting-term-matches-nothing",
        "second-of-several-terms",
        "selector-ok-affinity-contradicts",
        "affinity-ok-selector-contradicts",
        "two-bad-terms",
        "garbage-required",
        "garbage-terms",
        "values-not-a-list",
        "unknown-operator",
    ],
)
def test_region_placement(pod_spec: Any, expected: list[str]) -> None:
    findings = evaluate(pod_spec)
    assert len(findings) == len(expected)
    for finding, fragment in zip(findings, expected, strict=True):
        assert finding.rule == "Region"
        assert fragment in finding.message
        assert finding.message.startswith("SovereignRegion eu-west-1: Deployment ai/llm ")
        assert finding.message.endswith("but namespace ai is bound to eu-west-1")
        assert (finding.namespace, finding.kind, finding.name) == ("ai", "Deployment", "llm")


CUSTOM = region(nodeSelector={"matchLabels": {"pool": "sovereign-eu"}})
CUSTOM_NODES = {
    "a": NodeFacts("a", {"pool": "sovereign-eu", REGION_LABEL: "eu-west-2"}),
    "b": NodeFacts("b", {"pool": "general", REGION_LABEL: US}),
}


@pytest.mark.parametrize(
    ("pod_spec", "nodes", "count"),
    [
        ({"nodeSelector": {"pool": "sovereign-eu"}}, None, 0),
        ({"nodeSelector": {"pool": "general"}}, None, 1),
        (with_terms(term(expr("pool", "NotIn", "sovereign-eu"))), None, 1),
        ({"nodeSelector": {REGION_LABEL: EU}}, None, 0),
        ({"nodeSelector": {REGION_LABEL: "eu-west-2"}}, None, 1),
        ({"nodeSelector": {REGION_LABEL: "eu-west-2"}}, CUSTOM_NODES, 0),
        ({"nodeSelector": {REGION_LABEL: US}}, CUSTOM_NODES, 1),
    ],
    ids=[
        "own-key-inside",
        "own-key-outside",
        "own-key-excluded",
        "region-label-is-the-region",
        "region-label-unknown-without-nodes",
        "region-label-of-a-selected-node",
        "region-label-of-an-unselected-node",
    ],
)
def test_custom_node_selector_keys(
    pod_spec: dict[str, Any], nodes: dict[str, NodeFacts] | None, count: int
) -> None:
    assert len(evaluate(pod_spec, CUSTOM, nodes=nodes)) == count


def test_a_term_whose_requirements_together_exclude_the_region() -> None:
    spec = region(
        nodeSelector={
            "matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": [EU, "eu-west-2"]}]
        }
    )
    one = with_terms(term(expr(REGION_LABEL, "NotIn", EU)))
    both = with_terms(term(expr(REGION_LABEL, "NotIn", EU), expr(REGION_LABEL, "NotIn", "eu-west-2")))
    assert evaluate(one, spec) == []
    [finding] = evaluate(both, spec)
    assert "asks for nodes outside region eu-west-1" in finding.message
    assert "NotIn [eu-west-1] AND topology.kubernetes.io/region NotIn [eu-west-2]" in finding.message


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        ({"nodeName": "eu-1"}, []),
        ({"nodeName": "us-1"}, ["is pinned to node us-1 in region us-east-1 (spec.nodeName)"]),
        ({"nodeName": "bare"}, ["is pinned to node bare without a region label"]),
        ({"nodeName": "ghost"}, []),
        ({"nodeName": 42}, []),
        (
            with_terms({"matchFields": [expr("metadata.name", "In", "eu-1", "us-1")]}),
            ["is pinned to node us-1 in region us-east-1 (required node affinity term 1: metadata.name In"],
        ),
    ],
    ids=[
        "pinned-inside",
        "pinned-outside",
        "pinned-unlabelled",
        "unknown-node",
        "garbage-node-name",
        "match-fields",
    ],
)
def test_pinned_to_a_node(pod_spec: dict[str, Any], expected: list[str]) -> None:
    findings = evaluate(pod_spec, nodes=NODES)
    assert [f.rule for f in findings] == ["Region"] * len(expected)
    for finding, fragment in zip(findings, expected, strict=True):
        assert fragment in finding.message


GPU_SPEC = region(allowedGPUProducts=["NVIDIA-A100-SXM4-80GB"])
GPU_POD = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}


@pytest.mark.parametrize(
    ("spec", "pod_spec", "expected_found"),
    [
        (SPEC, {"nodeSelector": {GPU_PRODUCT_LABEL: "Tesla-T4"}}, []),
        (GPU_SPEC, {"nodeSelector": {GPU_PRODUCT_LABEL: "NVIDIA-A100-SXM4-80GB"}}, []),
        (GPU_SPEC, {"nodeSelector": {GPU_PRODUCT_LABEL: "Tesla-T4"}}, ["Tesla-T4"]),
        (
            GPU_SPEC,
            with_terms(term(expr(GPU_PRODUCT_LABEL, "In", "NVIDIA-A100-SXM4-80GB", "H100"))),
            ["H100"],
        ),
        (GPU_SPEC, with_terms(term(expr(GPU_PRODUCT_LABEL, "NotIn", "H100"))), []),
        (GPU_SPEC, with_terms(term(expr(GPU_PRODUCT_LABEL, "Exists"))), []),
        (GPU_SPEC, {**GPU_POD, "nodeName": "eu-gpu"}, ["NVIDIA-H100-80GB-HBM3"]),
        (GPU_SPEC, {"nodeName": "eu-gpu"}, []),
        (
            GPU_SPEC,
            {"initContainers": [{"resources": {"requests": {"nvidia.com/gpu": 2}}}], "nodeName": "eu-gpu"},
            ["NVIDIA-H100-80GB-HBM3"],
        ),
        (
            GPU_SPEC,
            {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "lots"}}}], "nodeName": "eu-gpu"},
            [],
        ),
    ],
    ids=[
        "empty-allowed-list-allows-any",
        "allowed-product",
        "node-selector-disallowed",
        "affinity-one-disallowed",
        "notin-does-not-ask",
        "exists-does-not-ask",
        "pinned-to-disallowed-gpu-node",
        "pinned-without-gpu-request",
        "pinned-init-container-gpu-request",
        "pinned-garbage-gpu-quantity",
    ],
)
def test_gpu_product(spec: SovereignRegionSpec, pod_spec: dict[str, Any], expected_found: list[str]) -> None:
    findings = evaluate(pod_spec, spec, nodes=NODES)
    assert [f.found for f in findings] == expected_found
    for finding in findings:
        assert finding.rule == "GPUProduct"
        assert finding.allowed == ("NVIDIA-A100-SXM4-80GB",)
        assert "but region eu-west-1 allows only [NVIDIA-A100-SXM4-80GB]" in finding.message


DATA_SPEC = region(allowedDataClassifications=["public", "internal"])


@pytest.mark.parametrize(
    ("spec", "template", "labels", "namespace", "expected"),
    [
        (DATA_SPEC, {CLASS: "public"}, {}, {}, []),
        (DATA_SPEC, {CLASS: "secret"}, {}, {}, [("secret", "the pod template")]),
        (DATA_SPEC, {CLASS: "public"}, {CLASS: "secret"}, {}, [("secret", "the Deployment")]),
        (
            DATA_SPEC,
            {CLASS: "secret"},
            {CLASS: "secret"},
            {},
            [("secret", "the pod template and the Deployment")],
        ),
        (DATA_SPEC, {}, {}, {CLASS: "secret"}, [("secret", "namespace ai")]),
        (DATA_SPEC, {CLASS: "public"}, {}, {CLASS: "secret"}, []),
        (DATA_SPEC, {}, {}, {}, []),
        (SPEC, {CLASS: "secret"}, {}, {}, []),
        (
            region(allowedDataClassifications=["public"], dataClassificationLabel="acme/class"),
            {},
            {"acme/class": "pii"},
            {CLASS: "public"},
            [("pii", "the Deployment")],
        ),
        (DATA_SPEC, {CLASS: "s\u00e9cr\u00e8t\x07"}, {}, {}, [("s\u00e9cr\u00e8t\x07", "the pod template")]),
        (DATA_SPEC, {CLASS: "x" * 5000}, {}, {}, [("x" * 5000, "the pod template")]),
    ],
    ids=[
        "allowed",
        "template-disallowed",
        "workload-label-disallowed",
        "both-same-value-one-finding",
        "namespace-fallback",
        "own-label-wins-over-namespace",
        "unclassified",
        "empty-allowed-list-allows-any",
        "custom-label",
        "unicode-and-control-chars",
        "huge-value",
    ],
)
def test_data_classification(
    spec: SovereignRegionSpec,
    template: dict[str, str],
    labels: dict[str, str],
    namespace: dict[str, str],
    expected: list[tuple[str, str]],
) -> None:
    findings = evaluate({}, spec, labels=labels, template_labels=template, namespace_labels=namespace)
    assert [(f.found, f.rule) for f in findings] == [(value, "DataClassification") for value, _ in expected]
    for finding, (_, where) in zip(findings, expected, strict=True):
        assert f"on {where})" in finding.message
        assert len(finding.message) < 1000
        assert "\x07" not in finding.message  # control characters are escaped


def test_a_bare_pod_is_judged_on_its_own_labels() -> None:
    findings = evaluate({"nodeSelector": {REGION_LABEL: US}}, DATA_SPEC, labels={CLASS: "secret"}, kind="Pod")
    assert [f.rule for f in findings] == ["Region", "DataClassification"]
    assert "Pod ai/llm" in findings[0].message and "on the Pod)" in findings[1].message


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        (
            "Deployment",
            {"spec": {"template": {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}}}},
            ({"a": "1"}, {"x": 1}),
        ),
        ("CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"x": 2}}}}}}, ({}, {"x": 2})),
        ("Pod", {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 3}}, ({"a": "1"}, {"x": 3})),
        ("Deployment", {"spec": "garbage"}, ({}, {})),
        ("ConfigMap", {"data": {}}, None),
    ],
    ids=["deployment", "cronjob", "pod", "garbage", "not-a-workload"],
)
def test_pod_template(kind: str, body: dict[str, Any], expected: Any) -> None:
    assert pod_template(kind, body) == expected


# ---------------------------------------------------------------------------------------------- admission


FINDINGS = [
    Finding("ai", "Deployment", "llm", "Region", "first", "r"),
    Finding("ai", "Deployment", "llm", "GPUProduct", "second", "g"),
]


@pytest.mark.parametrize(
    ("mode", "findings", "expected"),
    [
        (EnforcementMode.ENFORCE, [], (True, (), "", ())),
        (EnforcementMode.WARN, [], (True, (), "", ())),
        (EnforcementMode.DRY_RUN, [], (True, (), "", ())),
        (EnforcementMode.ENFORCE, FINDINGS, (False, (), "first; second", ())),
        (EnforcementMode.WARN, FINDINGS, (True, ("first", "second"), "", ())),
        (EnforcementMode.DRY_RUN, FINDINGS, (True, (), "", tuple(FINDINGS))),
    ],
    ids=["enforce-clean", "warn-clean", "dryrun-clean", "enforce-rejects", "warn-admits", "dryrun-reports"],
)
def test_admission_decision(
    mode: EnforcementMode, findings: list[Finding], expected: tuple[Any, ...]
) -> None:
    decision = admission_decision(mode, findings)
    assert (decision.allowed, decision.warnings, decision.message, decision.dry_run_report) == expected


def test_admission_output_stays_bounded() -> None:
    many = [Finding("ai", "Pod", "p", "Region", "m" * 5000, "x") for _ in range(200)]
    warned = admission_decision(EnforcementMode.WARN, many)
    assert len(warned.warnings) == 17 and warned.warnings[-1].startswith("... and 184 more")
    assert all(len(w) <= 1024 for w in warned.warnings)
    assert len(admission_decision(EnforcementMode.ENFORCE, many).message) <= 4096


# ---------------------------------------------------------------------------------------------- audit


BOUND = {"ai": {"sovereignty": "eu"}, "data": {"sovereignty": "eu", CLASS: "secret"}}


def run_audit(spec: SovereignRegionSpec = SPEC, **overrides: Any) -> AuditResult:
    values: dict[str, Any] = {
        "bound_namespaces": {"ai": {"sovereignty": "eu"}},
        "workloads": [],
        "pods": [],
        "pvcs": [],
        "nodes": NODES,
        "previous_violations": [],
        "now": NOW,
    }
    values.update(overrides)
    return audit(spec, **values)


EVICTING = region(evictOutOfRegionPods=True)


@pytest.mark.parametrize(
    ("spec", "pod", "violations", "evicted"),
    [
        (EVICTING, PodFacts("ai", "p", "eu-1", workload=("Deployment", "llm")), [], []),
        (EVICTING, PodFacts("ai", "p", "us-1", workload=("Deployment", "llm")), ["Region"], ["p"]),
        (EVICTING, PodFacts("ai", "p", "bare", workload=("Deployment", "llm")), ["Region"], ["p"]),
        (SPEC, PodFacts("ai", "p", "us-1", workload=("Deployment", "llm")), ["Region"], []),
        (
            region(evictOutOfRegionPods=True, enforcementMode="Warn"),
            PodFacts("ai", "p", "us-1", workload=("Job", "j")),
            ["Region"],
            [],
        ),
        (
            region(evictOutOfRegionPods=True, enforcementMode="DryRun"),
            PodFacts("ai", "p", "us-1", workload=("Job", "j")),
            ["Region"],
            [],
        ),
        (EVICTING, PodFacts("ai", "p", None, phase="Pending", workload=("Deployment", "llm")), [], []),
        (EVICTING, PodFacts("ai", "p", "", workload=("Deployment", "llm")), [], []),
        (EVICTING, PodFacts("ai", "p", "us-1", phase="Succeeded", workload=("Job", "j")), [], []),
        (EVICTING, PodFacts("ai", "p", "us-1", phase="Pending", workload=("Job", "j")), ["Region"], ["p"]),
        (EVICTING, PodFacts("ai", "p", "us-1", workload=("DaemonSet", "ds")), ["Region"], []),
        (EVICTING, PodFacts("ai", "p", "us-1", workload=None), ["Region"], []),
        (
            EVICTING,
            PodFacts("ai", "p", "us-1", workload=("Deployment", "llm"), terminating=True),
            ["Region"],
            [],
        ),
        (EVICTING, PodFacts("other", "p", "us-1", workload=("Deployment", "llm")), [], []),
        (EVICTING, PodFacts("ai", "p", "ghost", workload=("Deployment", "llm")), [], []),
        (region(allowedGPUProducts=["A100"]), PodFacts("ai", "p", "eu-gpu", gpus=1), ["GPUProduct"], []),
        (region(allowedGPUProducts=["A100"]), PodFacts("ai", "p", "eu-gpu", gpus=0), [], []),
    ],
    ids=[
        "inside",
        "outside-evicted",
        "unlabelled-node-evicted",
        "no-evict-flag",
        "warn-never-evicts",
        "dryrun-never-evicts",
        "unscheduled",
        "empty-node-name",
        "finished",
        "placed-pending-evicted",
        "daemonset-not-evicted",
        "bare-pod-not-evicted",
        "terminating-not-evicted",
        "ungoverned-namespace",
        "unknown-node",
        "gpu-product-on-node",
        "no-gpu-requested",
    ],
)
def test_audit_pods(
    spec: SovereignRegionSpec, pod: PodFacts, violations: list[str], evicted: list[str]
) -> None:
    result = run_audit(spec, pods=[pod])
    assert [v.rule for v in result.violations] == violations
    assert [p.name for p in result.evictions] == evicted
    for violation in result.violations:
        assert violation.kind == "Pod" and violation.since == NOW


def test_audit_says_what_it_could_not_judge() -> None:
    result = run_audit(
        EVICTING,
        pods=[
            PodFacts("ai", "ghost-pod", "ghost", workload=("Deployment", "x")),
            PodFacts("ai", "bare-pod", "us-1"),
        ],
        pvcs=[PvcFacts("ai", "nfs", pv=PvFacts("pv-nfs"))],
    )
    assert any("ghost-pod runs on node ghost, which is not known" in n for n in result.notes)
    assert any("bare-pod is not evicted: no controller" in n for n in result.notes)
    assert any("PersistentVolume pv-nfs has no topology" in n for n in result.notes)


def pv(name: str, *terms: dict[str, Any], labels: dict[str, str] | None = None) -> PvFacts:
    affinity = {"required": {"nodeSelectorTerms": list(terms)}} if terms else None
    return PvFacts(name, labels or {}, affinity)


@pytest.mark.parametrize(
    ("volume", "fragment"),
    [
        (None, None),
        (pv("pv"), None),
        (pv("pv", term(expr(REGION_LABEL, "In", EU))), None),
        (pv("pv", term(expr(REGION_LABEL, "In", US))), "In [us-east-1]"),
        (pv("pv", term(expr(REGION_LABEL, "NotIn", EU))), "NotIn [eu-west-1]"),
        (pv("pv", term(ZONE_A)), None),
        (
            pv("pv", term(expr("topology.kubernetes.io/zone", "In", "us-east-1a"))),
            "which is in region us-east-1",
        ),
        (pv("pv", term(expr("topology.ebs.csi.aws.com/zone", "In", "nowhere-1z"))), None),
        (pv("pv", term(expr("kubernetes.io/hostname", "In", "eu-1"))), None),
        (pv("pv", term(expr("kubernetes.io/hostname", "In", "us-1"))), "which is in region us-east-1"),
        (pv("pv", term(ZONE_A), term(expr(REGION_LABEL, "In", US))), "node affinity term 2"),
        (pv("pv", labels={"failure-domain.beta.kubernetes.io/region": US}), "failure-domain.beta"),
        (pv("pv", labels={"failure-domain.beta.kubernetes.io/region": EU}), None),
        (PvFacts("pv", {}, {"required": "garbage"}), None),
    ],
    ids=[
        "unbound",
        "no-topology",
        "region-inside",
        "region-outside",
        "region-excluded",
        "zone-inside",
        "zone-outside",
        "zone-no-node",
        "hostname-label-missing-on-node",
        "local-volume-on-node-outside",
        "one-of-several-terms-outside",
        "legacy-label-outside",
        "legacy-label-inside",
        "garbage-affinity",
    ],
)
def test_audit_pvc_topology(volume: PvFacts | None, fragment: str | None) -> None:
    result = run_audit(pvcs=[PvcFacts("ai", "data", pv=volume)])
    if fragment is None:
        assert result.violations == ()
    else:
        assert [(v.kind, v.rule) for v in result.violations] == [("PersistentVolumeClaim", "Region")]
        assert fragment in result.violations[0].message


def test_audit_classifications_of_namespace_claims_and_workloads() -> None:
    result = run_audit(
        DATA_SPEC,
        bound_namespaces=BOUND,
        workloads=[
            WorkloadFacts("data", "Deployment", "inherits"),
            WorkloadFacts("data", "Deployment", "own-label", template_labels={CLASS: "public"}),
            WorkloadFacts("ai", "StatefulSet", "db", labels={CLASS: "pii"}),
        ],
        pvcs=[PvcFacts("ai", "clean"), PvcFacts("data", "inherits"), PvcFacts("ai", "pii", {CLASS: "pii"})],
    )
    assert [(v.namespace, v.kind, v.name) for v in result.violations] == [
        ("ai", "PersistentVolumeClaim", "pii"),
        ("ai", "StatefulSet", "db"),
        ("data", "Deployment", "inherits"),
        ("data", "Namespace", "data"),
        ("data", "PersistentVolumeClaim", "inherits"),
    ]
    assert (result.compliant_workloads, result.violating_workloads) == (1, 2)
    assert result.bound_namespaces == ("ai", "data")


def test_audit_counts_violations_merges_per_rule_keeps_since_and_caps() -> None:
    workloads = [
        WorkloadFacts("ai", "Deployment", f"w{i:03}", pod_spec={"nodeSelector": {REGION_LABEL: US}})
        for i in range(150)
    ] + [WorkloadFacts("ai", "Deployment", "ok")]
    pods = [PodFacts("ai", "w000-x", "us-1", workload=("Deployment", "ok"))]
    earlier = NOW - timedelta(days=3)
    previous = [
        SovereigntyViolation(
            namespace="ai", kind="Deployment", name="w001", rule="Region", message="m", since=earlier
        ),
        SovereigntyViolation(
            namespace="ai", kind="Deployment", name="w001", rule="GPUProduct", message="m", since=earlier
        ),
    ]
    merged = with_terms(term(expr(REGION_LABEL, "In", US)), nodeSelector={REGION_LABEL: US})
    workloads[2] = WorkloadFacts("ai", "Deployment", "w002", pod_spec=merged)
    result = run_audit(workloads=workloads, pods=pods, previous_violations=previous, cap=100)
    assert result.violation_count == 151
    assert len(result.violations) == 100
    assert [v.name for v in result.violations[:3]] == ["w000", "w001", "w002"]
    assert result.violations[1].since == earlier and result.violations[0].since == NOW
    assert result.violations[2].message.endswith("(and 1 more)")
    assert (result.compliant_workloads, result.violating_workloads) == (0, 151)  # "ok" has a pod outside
    assert result.matching_nodes == 2
    again = run_audit(workloads=workloads, pods=pods, previous_violations=result.violations, now=LATER)
    assert again.violations == result.violations  # same since, same order
    assert run_audit(workloads=workloads, cap=0).violations == ()


def test_audit_ignores_what_is_not_governed() -> None:
    result = run_audit(
        DATA_SPEC,
        bound_namespaces={},
        workloads=[WorkloadFacts("ai", "Deployment", "w", labels={CLASS: "pii"})],
        pods=[PodFacts("ai", "p", "us-1", workload=("Deployment", "w"))],
        pvcs=[PvcFacts("ai", "c", {CLASS: "pii"})],
    )
    assert (result.violation_count, result.compliant_workloads, result.violating_workloads) == (0, 0, 0)


def test_matching_node_names() -> None:
    assert matching_node_names(SPEC, NODES) == ["eu-1", "eu-gpu"]
    assert matching_node_names(region(region="ap-south-1"), NODES) == []


# ---------------------------------------------------------------------------------------------- status


def test_status_conditions_and_transition_times() -> None:
    clean = run_audit(workloads=[WorkloadFacts("ai", "Deployment", "ok")])
    status = plan_region_status(
        SPEC,
        generation=3,
        current_status=None,
        audit_result=clean,
        namespace_conflicts={},
        matching_nodes=2,
        now=NOW,
    )
    ready, compliant, conflict = (
        find(status.conditions, t) for t in ("Ready", "Compliant", "NamespaceConflict")
    )
    assert ready is not None and ready.status == ConditionStatus.TRUE and ready.observed_generation == 3
    assert compliant is not None and compliant.status == ConditionStatus.TRUE
    assert compliant.message == "1 workload(s) compliant, 0 violating (Enforce)"
    assert conflict is not None and conflict.status == ConditionStatus.FALSE
    assert (status.bound_namespaces, status.bound_namespace_count, status.matching_nodes) == (["ai"], 1, 2)
    assert status.last_audit_time == NOW

    dirty = run_audit(
        workloads=[WorkloadFacts("ai", "Deployment", "bad", pod_spec={"nodeSelector": {REGION_LABEL: US}})]
    )
    later = plan_region_status(
        SPEC,
        generation=4,
        current_status=status,
        audit_result=dirty,
        namespace_conflicts={"shared": ["eu-west-1", "eu-gpu"]},
        matching_nodes=0,
        now=LATER,
    )
    ready, compliant, conflict = (
        find(later.conditions, t) for t in ("Ready", "Compliant", "NamespaceConflict")
    )
    assert ready is not None and ready.status == ConditionStatus.FALSE and ready.reason == "NoMatchingNodes"
    assert ready.message == (
        "SovereignRegion eu-west-1 selects no node (topology.kubernetes.io/region=eu-west-1); "
        "workloads bound to it cannot be scheduled"
    )
    assert ready.last_transition_time == LATER
    assert compliant is not None and compliant.status == ConditionStatus.FALSE
    assert (
        compliant.reason == "ViolationsFound" and "0 workload(s) compliant, 1 violating" in compliant.message
    )
    assert "Region: 1" in compliant.message
    assert conflict is not None and conflict.status == ConditionStatus.TRUE
    assert "shared (also bound to eu-gpu)" in conflict.message and "no region enforces" in conflict.message
    assert (later.violation_count, len(later.violations)) == (1, 1)
    assert status.violation_count == 0  # the input status is not mutated

    steady = plan_region_status(
        SPEC,
        generation=4,
        current_status=later,
        audit_result=dirty,
        namespace_conflicts={"shared": ["eu-west-1", "eu-gpu"]},
        matching_nodes=0,
        now=LATER + timedelta(hours=1),
    )
    assert [c.last_transition_time for c in steady.conditions] == [LATER, LATER, LATER]
    assert steady.conditions == later.conditions


def test_status_uses_the_object_name_and_caps_conflict_messages() -> None:
    conflicts = {f"ns-{i:05}": ["sovereign-eu", "other"] for i in range(3000)}
    audit_result = run_audit(bound_namespaces={f"b{i}": {} for i in range(1500)})
    status = plan_region_status(
        SPEC,
        generation=1,
        current_status=None,
        audit_result=audit_result,
        namespace_conflicts=conflicts,
        matching_nodes=0,
        now=NOW,
        region_name="sovereign-eu",
    )
    ready = find(status.conditions, "Ready")
    assert ready is not None and ready.message.startswith("SovereignRegion sovereign-eu selects no node")
    conflict = find(status.conditions, "NamespaceConflict")
    assert conflict is not None and "and 2980 more" in conflict.message and len(conflict.message) <= 4096
    assert "3000 namespace(s)" in conflict.message
    assert (len(status.bound_namespaces), status.bound_namespace_count) == (1000, 1500)
    status.model_validate(status.to_wire())  # still within the API's own limits


# ------------------------------------------------------------------------------------ hostile / scale


def test_huge_label_sets_and_affinities_stay_fast() -> None:
    labels = {f"example.com/key-{i}": f"value-{i}" for i in range(10_000)}
    namespace_labels = {**labels, "sovereignty": "eu", CLASS: "public"}
    nodes = {f"n{i}": NodeFacts(f"n{i}", {**labels, REGION_LABEL: EU if i % 2 else US}) for i in range(200)}
    pod_spec = with_terms(
        *(term(*(expr(k, "In", v) for k, v in list(labels.items())[:1000])) for _ in range(10)),
        nodeSelector={**labels, REGION_LABEL: US},
    )
    spec = region(allowedDataClassifications=["public"], allowedGPUProducts=["A100"])
    started = time.perf_counter()
    assert bound_regions(namespace_labels, {f"r{i}": spec for i in range(100)}) == sorted(
        f"r{i}" for i in range(100)
    )
    findings = evaluate(
        pod_spec, spec, labels=labels, template_labels=labels, namespace_labels=namespace_labels, nodes=nodes
    )
    merged, changed = merge_required_affinity(pod_spec, spec)
    assert merge_required_affinity(merged, spec)[1] is False
    result = run_audit(
        spec,
        bound_namespaces={"ai": namespace_labels},
        workloads=[WorkloadFacts("ai", "Deployment", f"w{i}", labels, labels, pod_spec) for i in range(20)],
        pods=[PodFacts("ai", f"p{i}", f"n{i % 200}", workload=("Deployment", "w0")) for i in range(2000)],
        nodes=nodes,
    )
    elapsed = time.perf_counter() - started
    assert [f.rule for f in findings] == ["Region"] and changed
    assert result.violation_count == 20 + 1000
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    "pod_spec",
    [
        {"nodeSelector": "garbage", "affinity": {"nodeAffinity": ["x"]}},
        {"nodeSelector": {REGION_LABEL: 7}, "nodeName": ["x"]},
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": None}
                }
            }
        },
        with_terms(term(expr(REGION_LABEL, "Gt", "not-a-number"), expr(REGION_LABEL, "Lt"))),
        with_terms(term({"key": None, "operator": None, "values": [None, 1, {"a": 1}]})),
        {"containers": "junk", "nodeName": "eu-gpu"},
    ],
    ids=["garbage-types", "non-string-values", "null-terms", "bad-gt-lt", "null-key", "garbage-containers"],
)
def test_garbage_never_raises(pod_spec: Any) -> None:
    spec = region(allowedGPUProducts=["A100"], allowedDataClassifications=["public"])
    findings = evaluate(pod_spec, spec, labels={CLASS: None}, namespace_labels={CLASS: 3}, nodes=NODES)  # type: ignore[dict-item]
    assert all(f.rule in ("Region", "GPUProduct", "DataClassification") for f in findings)
    merge_required_affinity(pod_spec, spec)


def test_evictions_are_sorted_and_unique() -> None:
    pods = [PodFacts("ai", name, "us-1", workload=("Deployment", "w")) for name in ("b", "a", "c", "a")]
    result = run_audit(EVICTING, pods=pods)
    assert result.evictions == (PodRef("ai", "a"), PodRef("ai", "b"), PodRef("ai", "c"))


def test_audit_scales_with_nodes_and_workloads() -> None:
    nodes = {f"n{i}": NodeFacts(f"n{i}", {REGION_LABEL: EU if i % 2 else US}) for i in range(5000)}
    workloads = [
        WorkloadFacts("ai", "Deployment", f"w{i}", pod_spec={"nodeName": f"n{i}", **with_terms(term(ZONE_A))})
        for i in range(5000)
    ]
    pods = [PodFacts("ai", f"p{i}", f"n{i}", workload=("Deployment", f"w{i}")) for i in range(5000)]
    started = time.perf_counter()
    result = run_audit(EVICTING, workloads=workloads, pods=pods, nodes=nodes)
    elapsed = time.perf_counter() - started
    assert (result.matching_nodes, result.violating_workloads, result.compliant_workloads) == (
        2500,
        2500,
        2500,
    )
    assert result.violation_count == 5000 and len(result.evictions) == 2500
    assert elapsed < 5, elapsed


# ---------------------------------------------------------------------------------------------- constraints


def test_region_constraints_cover_the_selector_the_legacy_label_and_known_nodes() -> None:
    from finops_operator.planners.sovereignty import LEGACY_REGION_LABEL, region_constraints

    constraints = region_constraints(SPEC, NODES)
    assert constraints[REGION_LABEL] == [(REGION_LABEL, "In", (EU,))]
    assert constraints[LEGACY_REGION_LABEL] == [(LEGACY_REGION_LABEL, "In", (EU,))]
    custom = region(nodeSelector={"matchLabels": {"pool": "sovereign"}})
    nodes = {"x": NodeFacts("x", {"pool": "sovereign", REGION_LABEL: "eu-central-1"})}
    widened = region_constraints(custom, nodes)
    assert widened["pool"] == [("pool", "In", ("sovereign",))]
    assert widened[REGION_LABEL] == [(REGION_LABEL, "In", ("eu-central-1", EU))]


# ---------------------------------------------------------------------------------------------- report


def _region_object(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 2},
        "spec": {"region": EU, "enforcementMode": "Warn", "allowedGPUProducts": ["NVIDIA-L4"]},
        "status": status,
    }


def _conditions(
    ready: str = "True", compliant: str = "True", conflict: str = "False"
) -> list[dict[str, Any]]:
    return [
        {"type": "Ready", "status": ready, "reason": "NoMatchingNodes" if ready != "True" else "Reconciled"},
        {"type": "Compliant", "status": compliant, "reason": "x"},
        {"type": "NamespaceConflict", "status": conflict, "reason": "y", "message": "ai (also bound to b)"},
    ]


def test_report_rows_json_and_table() -> None:
    import json

    from finops_operator.reports import sovereignty_report

    clean = _region_object(
        "b-clean",
        observedGeneration=2,
        lastAuditTime="2026-11-22T10:00:00Z",
        boundNamespaceCount=2,
        matchingNodes=3,
        compliantWorkloads=4,
        conditions=_conditions(),
    )
    dirty = _region_object(
        "a-dirty",
        observedGeneration=2,
        lastAuditTime="2026-11-22T10:00:00Z",
        violatingWorkloads=1,
        violationCount=1,
        violations=[
            {
                "namespace": "ai",
                "kind": "Deployment",
                "name": "llm",
                "rule": "Region",
                "since": "2026-11-22T09:00:00Z",
                "message": "asks for us-east-1",
            }
        ],
        conditions=_conditions(compliant="False"),
    )
    report = sovereignty_report([clean, dirty])
    assert [r.name for r in report.regions] == ["a-dirty", "b-clean"]
    assert not report.compliant
    assert sovereignty_report([clean]).compliant
    data = json.loads(report.to_json())
    assert data["compliant"] is False
    assert data["regions"][0]["violations"][0]["rule"] == "Region"
    assert data["regions"][1]["allowed_gpu_products"] == ["NVIDIA-L4"]
    table = report.to_table()
    assert table.splitlines()[0].split()[:3] == ["NAME", "REGION", "MODE"]
    assert "a-dirty  ai" in table and "Overall: NOT COMPLIANT" in table


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (_region_object("x"), "never audited"),
        (_region_object("x", lastAuditTime="t", conditions=_conditions(ready="False")), "not Ready"),
        (
            _region_object("x", lastAuditTime="t", conditions=_conditions(conflict="True")),
            "namespace conflict",
        ),
        (_region_object("x", lastAuditTime="t", observedGeneration=1, conditions=_conditions()), "older"),
    ],
)
def test_report_never_calls_an_unaudited_or_broken_region_compliant(
    obj: dict[str, Any], problem: str
) -> None:
    from finops_operator.reports import sovereignty_report

    report = sovereignty_report([obj])
    assert not report.compliant
    assert problem in report.regions[0].problems[0]
    assert problem.split(maxsplit=1)[0] in report.to_table()


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"spec": None, "status": "x"},
        {"status": {"conditions": "nope", "violations": [1, None, "x"]}},
        {"metadata": [], "status": {"violationCount": "NaN", "matchingNodes": True}},
    ],
)
def test_report_tolerates_malformed_objects(garbage: dict[str, Any]) -> None:
    from finops_operator.reports import sovereignty_report

    report = sovereignty_report([garbage])
    assert not report.compliant and report.regions[0].violation_count == 0
    report.to_table()
    report.to_json()
