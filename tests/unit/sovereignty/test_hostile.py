"""Hostile and large inputs: judged in full, never raising (their cost is in
benchmarks/sovereignty_audit.py)."""

from __future__ import annotations

from typing import Any

import pytest

from finops_operator.api.sovereignregion import REGION_LABEL
from finops_operator.planners.sovereignty import (
    ClusterNode,
    PlacedPod,
    PodRef,
    TemplatedWorkload,
    bound_regions,
    merge_required_affinity,
)
from tests.unit.sovereignty.helpers import (
    CLASS,
    EU,
    EVICTING,
    NODES,
    US,
    ZONE_A,
    evaluate,
    expr,
    region,
    run_audit,
    term,
    with_terms,
)


def test_huge_label_sets_and_affinities_are_judged_in_full() -> None:
    """How long this takes is measured by benchmarks/sovereignty_audit.py."""
    labels = {f"example.com/key-{i}": f"value-{i}" for i in range(10_000)}
    namespace_labels = {**labels, "sovereignty": "eu", CLASS: "public"}
    nodes = {f"n{i}": ClusterNode(f"n{i}", {**labels, REGION_LABEL: EU if i % 2 else US}) for i in range(200)}
    pod_spec = with_terms(
        *(term(*(expr(k, "In", v) for k, v in list(labels.items())[:1000])) for _ in range(10)),
        nodeSelector={**labels, REGION_LABEL: US},
    )
    spec = region(allowedDataClassifications=["public"], allowedGPUProducts=["A100"])
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
        workloads=[
            TemplatedWorkload("ai", "Deployment", f"w{i}", labels, labels, pod_spec) for i in range(20)
        ],
        pods=[PlacedPod("ai", f"p{i}", f"n{i % 200}", workload=("Deployment", "w0")) for i in range(2000)],
        nodes=nodes,
    )
    assert [f.rule for f in findings] == ["Region"] and changed
    assert result.violation_count == 20 + 1000


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
    pods = [PlacedPod("ai", name, "us-1", workload=("Deployment", "w")) for name in ("b", "a", "c", "a")]
    result = run_audit(EVICTING, pods=pods)
    assert result.evictions == (PodRef("ai", "a"), PodRef("ai", "b"), PodRef("ai", "c"))


def test_audit_scales_with_nodes_and_workloads() -> None:
    """How long this takes is measured by benchmarks/sovereignty_audit.py."""
    nodes = {f"n{i}": ClusterNode(f"n{i}", {REGION_LABEL: EU if i % 2 else US}) for i in range(5000)}
    workloads = [
        TemplatedWorkload(
            "ai", "Deployment", f"w{i}", pod_spec={"nodeName": f"n{i}", **with_terms(term(ZONE_A))}
        )
        for i in range(5000)
    ]
    pods = [PlacedPod("ai", f"p{i}", f"n{i}", workload=("Deployment", f"w{i}")) for i in range(5000)]
    result = run_audit(EVICTING, workloads=workloads, pods=pods, nodes=nodes)
    assert (result.matching_nodes, result.violating_workloads, result.compliant_workloads) == (
        2500,
        2500,
        2500,
    )
    assert result.violation_count == 5000 and len(result.evictions) == 2500
