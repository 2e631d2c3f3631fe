"""Judging one pod template: placement, pinned nodes, GPU products, data classifications."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.api.common import GPU_PRODUCT_LABEL
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec
from finops_operator.planners.sovereignty import (
    ClusterNode,
)
from finops_operator.workloads.templates import pod_template
from tests.unit.sovereignty.helpers import (
    CLASS,
    DATA_SPEC,
    EU,
    NODES,
    SPEC,
    US,
    ZONE_A,
    evaluate,
    expr,
    region,
    term,
    with_terms,
)

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
    "a": ClusterNode("a", {"pool": "sovereign-eu", REGION_LABEL: "eu-west-2"}),
    "b": ClusterNode("b", {"pool": "general", REGION_LABEL: US}),
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
    pod_spec: dict[str, Any], nodes: dict[str, ClusterNode] | None, count: int
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
