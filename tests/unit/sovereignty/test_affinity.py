"""Confining a pod spec to a region (and a GPU pod to the allowed products): the required node
affinity and its merge into the workload's own."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finops_operator.api.common import GPU_PRODUCT_LABEL
from finops_operator.api.sovereignregion import REGION_LABEL
from finops_operator.planners.sovereignty import (
    confining_expressions,
    merge_required_affinity,
    region_match_expressions,
    required_node_affinity,
)
from tests.unit.sovereignty.helpers import (
    EU,
    GPU_EXPR,
    REGION_EXPR,
    SPEC,
    US,
    ZONE_A,
    expr,
    region,
    term,
    with_terms,
)


def test_required_node_affinity_expresses_the_selector_as_match_expressions() -> None:
    assert required_node_affinity(SPEC, {}) == {
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


A100, L4 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-L4"
GPU_SPEC = region(allowedGPUProducts=[A100, L4])
ALLOWED_EXPR = expr(GPU_PRODUCT_LABEL, "In", A100, L4)


def gpu_pod(gpus: Any = 1, **pod: Any) -> dict[str, Any]:
    return {**pod, "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}


@pytest.mark.parametrize(
    ("spec", "pod_spec", "expected_terms", "changed"),
    [
        (GPU_SPEC, gpu_pod(), [term(REGION_EXPR, ALLOWED_EXPR)], True),
        (GPU_SPEC, {"containers": [{"name": "c"}]}, [term(REGION_EXPR)], True),
        (GPU_SPEC, gpu_pod(0), [term(REGION_EXPR)], True),
        (
            GPU_SPEC,
            {"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "2"}}}]},
            [term(REGION_EXPR, ALLOWED_EXPR)],
            True,
        ),
        (
            GPU_SPEC,
            {
                "containers": [{"name": "c"}],
                "initContainers": [{"name": "i", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
            },
            [term(REGION_EXPR, ALLOWED_EXPR)],
            True,
        ),
        (SPEC, gpu_pod(), [term(REGION_EXPR)], True),
        (
            GPU_SPEC,
            gpu_pod(**with_terms(term(ZONE_A), term(expr("pool", "In", "x")))),
            [
                term(ZONE_A, REGION_EXPR, ALLOWED_EXPR),
                term(expr("pool", "In", "x"), REGION_EXPR, ALLOWED_EXPR),
            ],
            True,
        ),
        (
            GPU_SPEC,
            gpu_pod(**with_terms(term(REGION_EXPR))),
            [term(REGION_EXPR, ALLOWED_EXPR)],
            True,
        ),
        (
            GPU_SPEC,
            gpu_pod(**with_terms(term(expr(GPU_PRODUCT_LABEL, "In", A100)))),
            [term(expr(GPU_PRODUCT_LABEL, "In", A100), REGION_EXPR)],
            True,
        ),
        (
            GPU_SPEC,
            gpu_pod(**with_terms(term(REGION_EXPR, expr(GPU_PRODUCT_LABEL, "In", L4, A100)))),
            [term(REGION_EXPR, expr(GPU_PRODUCT_LABEL, "In", L4, A100))],
            False,
        ),
        (
            GPU_SPEC,
            gpu_pod(**with_terms(term(expr(GPU_PRODUCT_LABEL, "Exists")))),
            [term(expr(GPU_PRODUCT_LABEL, "Exists"), REGION_EXPR, ALLOWED_EXPR)],
            True,
        ),
        (
            region(allowedGPUProducts=[A100, A100]),
            gpu_pod(),
            [term(REGION_EXPR, expr(GPU_PRODUCT_LABEL, "In", A100))],
            True,
        ),
        (GPU_SPEC, gpu_pod("garbage"), [term(REGION_EXPR)], True),
    ],
    ids=[
        "gpu-pod-gets-region-and-products",
        "cpu-only-pod-gets-region-only",
        "zero-gpus-is-cpu-only",
        "requests-alone-count",
        "init-container-gpus-count",
        "no-allowed-products-region-only",
        "every-term-gets-both",
        "region-there-products-added",
        "one-allowed-product-already-narrower",
        "allowed-products-already-there",
        "exists-is-wider-products-added",
        "duplicate-products-once",
        "malformed-quantity-is-cpu-only",
    ],
)
def test_merge_confines_gpu_pods_to_the_allowed_products(
    spec: Any, pod_spec: dict[str, Any], expected_terms: list[Any], changed: bool
) -> None:
    merged, did_change = merge_required_affinity(pod_spec, spec)
    assert did_change is changed
    required = merged["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == expected_terms
    assert merge_required_affinity(merged, spec) == (merged, False)  # idempotent


def test_confining_expressions_are_the_single_required_term() -> None:
    assert confining_expressions(GPU_SPEC, gpu_pod()) == [REGION_EXPR, ALLOWED_EXPR]
    assert confining_expressions(GPU_SPEC, None) == [REGION_EXPR]
    assert required_node_affinity(GPU_SPEC, gpu_pod()) == {
        "nodeSelectorTerms": [{"matchExpressions": [REGION_EXPR, ALLOWED_EXPR]}]
    }
