"""The continuous audit: pods, claims and volumes, namespaces, counts and caps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec, SovereigntyViolation
from finops_operator.planners.sovereignty import (
    PlacedPod,
    PvcFacts,
    PvFacts,
    TemplatedWorkload,
)
from tests.unit.sovereignty.helpers import (
    BOUND,
    CLASS,
    DATA_SPEC,
    EU,
    EVICTING,
    LATER,
    NOW,
    SPEC,
    US,
    ZONE_A,
    expr,
    region,
    run_audit,
    term,
    with_terms,
)


@pytest.mark.parametrize(
    ("spec", "pod", "violations", "evicted"),
    [
        (EVICTING, PlacedPod("ai", "p", "eu-1", workload=("Deployment", "llm")), [], []),
        (EVICTING, PlacedPod("ai", "p", "us-1", workload=("Deployment", "llm")), ["Region"], ["p"]),
        (EVICTING, PlacedPod("ai", "p", "bare", workload=("Deployment", "llm")), ["Region"], ["p"]),
        (SPEC, PlacedPod("ai", "p", "us-1", workload=("Deployment", "llm")), ["Region"], []),
        (
            region(evictOutOfRegionPods=True, enforcementMode="Warn"),
            PlacedPod("ai", "p", "us-1", workload=("Job", "j")),
            ["Region"],
            [],
        ),
        (
            region(evictOutOfRegionPods=True, enforcementMode="DryRun"),
            PlacedPod("ai", "p", "us-1", workload=("Job", "j")),
            ["Region"],
            [],
        ),
        (EVICTING, PlacedPod("ai", "p", None, phase="Pending", workload=("Deployment", "llm")), [], []),
        (EVICTING, PlacedPod("ai", "p", "", workload=("Deployment", "llm")), [], []),
        (EVICTING, PlacedPod("ai", "p", "us-1", phase="Succeeded", workload=("Job", "j")), [], []),
        (EVICTING, PlacedPod("ai", "p", "us-1", phase="Pending", workload=("Job", "j")), ["Region"], ["p"]),
        (EVICTING, PlacedPod("ai", "p", "us-1", workload=("DaemonSet", "ds")), ["Region"], []),
        (EVICTING, PlacedPod("ai", "p", "us-1", workload=None), ["Region"], []),
        (
            EVICTING,
            PlacedPod("ai", "p", "us-1", workload=("Deployment", "llm"), terminating=True),
            ["Region"],
            [],
        ),
        (EVICTING, PlacedPod("other", "p", "us-1", workload=("Deployment", "llm")), [], []),
        (EVICTING, PlacedPod("ai", "p", "ghost", workload=("Deployment", "llm")), [], []),
        (region(allowedGPUProducts=["A100"]), PlacedPod("ai", "p", "eu-gpu", gpus=1), ["GPUProduct"], []),
        (region(allowedGPUProducts=["A100"]), PlacedPod("ai", "p", "eu-gpu", gpus=0), [], []),
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
    spec: SovereignRegionSpec, pod: PlacedPod, violations: list[str], evicted: list[str]
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
            PlacedPod("ai", "ghost-pod", "ghost", workload=("Deployment", "x")),
            PlacedPod("ai", "bare-pod", "us-1"),
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
            TemplatedWorkload("data", "Deployment", "inherits"),
            TemplatedWorkload("data", "Deployment", "own-label", template_labels={CLASS: "public"}),
            TemplatedWorkload("ai", "StatefulSet", "db", labels={CLASS: "pii"}),
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
        TemplatedWorkload("ai", "Deployment", f"w{i:03}", pod_spec={"nodeSelector": {REGION_LABEL: US}})
        for i in range(150)
    ] + [TemplatedWorkload("ai", "Deployment", "ok")]
    pods = [PlacedPod("ai", "w000-x", "us-1", workload=("Deployment", "ok"))]
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
    workloads[2] = TemplatedWorkload("ai", "Deployment", "w002", pod_spec=merged)
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
        workloads=[TemplatedWorkload("ai", "Deployment", "w", labels={CLASS: "pii"})],
        pods=[PlacedPod("ai", "p", "us-1", workload=("Deployment", "w"))],
        pvcs=[PvcFacts("ai", "c", {CLASS: "pii"})],
    )
    assert (result.violation_count, result.compliant_workloads, result.violating_workloads) == (0, 0, 0)
