"""plan_sovereignty and plan_admission: the decisions that used to live in the SovereignRegion handler
(status heartbeat, which workloads to repair, eviction throttling, the new-violation diff, DryRun
admission, the admission objects to apply, an invalid spec), as tables with pinned clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finops_operator.api.common import ConditionStatus
from finops_operator.api.conditions import find
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionStatus
from finops_operator.planners.plan import ApplyManifest, Evict, ObjectRef, PatchPodTemplate
from finops_operator.planners.sovereignty import (
    AdmissionReview,
    ClusterNode,
    Inventory,
    PlacedPod,
    SovereigntyObservation,
    TemplatedWorkload,
    parse_spec,
    plan_admission,
    plan_sovereignty,
    vap,
)
from finops_operator.planners.sovereignty.plan import (
    MAX_EVENTS_PER_AUDIT,
    MAX_EVICTIONS_PER_AUDIT,
    MAX_REPAIRS_PER_AUDIT,
)

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
EU, US = "eu-west-1", "us-east-1"
SPEC: dict[str, Any] = {"region": EU, "namespaceSelector": {"matchLabels": {"sovereignty": "eu"}}}
NODES = {"eu-1": ClusterNode("eu-1", {REGION_LABEL: EU}), "us-1": ClusterNode("us-1", {REGION_LABEL: US})}
BOUND = {"ai": {"sovereignty": "eu"}}


def spec(**overrides: Any) -> dict[str, Any]:
    return {**SPEC, **overrides}


def observed(
    *,
    workloads: tuple[TemplatedWorkload, ...] = (),
    pods: tuple[PlacedPod, ...] = (),
    status: SovereignRegionStatus | None = None,
    hashes: dict[tuple[str, str], str] | None = None,
) -> SovereigntyObservation:
    return SovereigntyObservation(
        name="sovereign-eu",
        uid="uid-1",
        generation=2,
        current_status=status or SovereignRegionStatus(),
        nodes=NODES,
        inventory=Inventory(BOUND, workloads, pods),
        admission_hashes=hashes or {},
    )


def bare(name: str) -> TemplatedWorkload:
    """A Deployment that asks for nothing: repairable."""
    return TemplatedWorkload("ai", "Deployment", name)


def violator(name: str) -> TemplatedWorkload:
    return TemplatedWorkload("ai", "Deployment", name, pod_spec={"nodeSelector": {REGION_LABEL: US}})


def outside(name: str, owner: tuple[str, str] | None = ("Deployment", "w")) -> PlacedPod:
    return PlacedPod("ai", name, "us-1", workload=owner)


def admission_hashes() -> dict[tuple[str, str], str]:
    """What the API server holds after the admission objects of SPEC were applied."""
    plan = plan_sovereignty(SPEC, observed(), NOW)
    applied = [i.manifest for i in plan.intents if isinstance(i, ApplyManifest)]
    return {
        (m["kind"], m["metadata"]["name"]): m["metadata"]["annotations"][vap.HASH_ANNOTATION] for m in applied
    }


# ------------------------------------------------------------------------------------------- writes


@pytest.mark.parametrize(
    ("raw", "workloads", "pods", "repaired", "evicted"),
    [
        pytest.param(SPEC, (bare("a"),), (), ["a"], [], id="enforce-repairs-a-bare-workload"),
        pytest.param(SPEC, (violator("v"),), (), [], [], id="explicit-violator-is-not-confined"),
        pytest.param(
            spec(enforcementMode="Warn"), (bare("a"),), (outside("p"),), [], [], id="warn-writes-nothing"
        ),
        pytest.param(
            spec(enforcementMode="DryRun"), (bare("a"),), (outside("p"),), [], [], id="dryrun-writes-nothing"
        ),
        pytest.param(SPEC, (), (outside("p"),), [], [], id="eviction-is-opt-in"),
        pytest.param(
            spec(evictOutOfRegionPods=True), (), (outside("p"),), [], ["p"], id="evicts-when-opted-in"
        ),
        pytest.param(
            spec(evictOutOfRegionPods=True),
            (),
            (outside("p", None),),
            [],
            [],
            id="never-evicts-an-unowned-pod",
        ),
        pytest.param(
            SPEC,
            tuple(bare(f"w{i:02}") for i in range(MAX_REPAIRS_PER_AUDIT + 3)),
            (),
            [f"w{i:02}" for i in range(MAX_REPAIRS_PER_AUDIT)],
            [],
            id="repairs-throttled",
        ),
        pytest.param(
            spec(evictOutOfRegionPods=True),
            (),
            tuple(outside(f"p{i}") for i in range(MAX_EVICTIONS_PER_AUDIT + 2)),
            [],
            [f"p{i}" for i in range(MAX_EVICTIONS_PER_AUDIT)],
            id="evictions-throttled",
        ),
        pytest.param(
            SPEC,
            (TemplatedWorkload("ai", "Job", "j"), TemplatedWorkload("ai", "CronJob", "c")),
            (),
            ["c"],
            [],
            id="a-job-template-is-immutable",
        ),
    ],
)
def test_writes(
    raw: dict[str, Any],
    workloads: tuple[TemplatedWorkload, ...],
    pods: tuple[PlacedPod, ...],
    repaired: list[str],
    evicted: list[str],
) -> None:
    plan = plan_sovereignty(raw, observed(workloads=workloads, pods=pods, hashes=admission_hashes()), NOW)
    assert [i.target.name for i in plan.intents if isinstance(i, PatchPodTemplate)] == repaired
    assert [i.target.name for i in plan.intents if isinstance(i, Evict)] == evicted
    if len(evicted) == MAX_EVICTIONS_PER_AUDIT and len(pods) > len(evicted):
        assert "eviction throttled: 2 more pod(s) next audit" in plan.notes


def test_a_repair_restores_only_the_required_affinity_and_says_so_on_the_workload() -> None:
    plan = plan_sovereignty(SPEC, observed(workloads=(bare("a"),), hashes=admission_hashes()), NOW)
    (repair,) = plan.intents
    assert isinstance(repair, PatchPodTemplate)
    assert repair.target == ObjectRef("apps/v1", "Deployment", "a", "ai")
    terms = repair.pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": [EU]}]}]
    }
    assert repair.event is not None and repair.event.reason == "SovereigntyAffinityRestored"
    assert repair.event.regarding == repair.target


@pytest.mark.parametrize(
    ("hashes", "applied"),
    [
        pytest.param({}, ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"], id="missing"),
        pytest.param(None, [], id="up-to-date"),
        pytest.param(
            {("ValidatingAdmissionPolicy", "finops-sovereignty-sovereign-eu"): "old"},
            ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"],
            id="changed",
        ),
    ],
)
def test_admission_objects_are_applied_only_when_their_hash_differs(
    hashes: dict[tuple[str, str], str] | None, applied: list[str]
) -> None:
    plan = plan_sovereignty(SPEC, observed(hashes=admission_hashes() if hashes is None else hashes), NOW)
    assert [i.manifest["kind"] for i in plan.intents if isinstance(i, ApplyManifest)] == applied


# ------------------------------------------------------------------------------------------- events


def test_one_event_per_new_violation_capped_with_a_summary() -> None:
    workloads = tuple(violator(f"v{i:02}") for i in range(MAX_EVENTS_PER_AUDIT + 4))
    first = plan_sovereignty(SPEC, observed(workloads=workloads), NOW)
    assert len(first.events) == MAX_EVENTS_PER_AUDIT + 1
    assert all(e.type == "Warning" and e.reason == "SovereigntyViolation" for e in first.events)
    assert (
        first.events[-1].message
        == "SovereignRegion sovereign-eu: 4 more new violation(s); see status.violations"
    )
    again = plan_sovereignty(SPEC, observed(workloads=workloads, status=first.status), NOW)
    assert again.events == ()  # known violations are not announced twice


def test_counts_cover_every_violation_not_only_the_listed_ones() -> None:
    workloads = tuple(violator(f"v{i:03}") for i in range(150))
    plan = plan_sovereignty(SPEC, observed(workloads=workloads), NOW)
    assert plan.counts == {"Region": 150}
    assert len(plan.status.violations) == 100 and plan.status.violation_count == 150


# ------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("later", "change", "kept"),
    [
        pytest.param(timedelta(minutes=1), False, True, id="quiet-and-recent"),
        pytest.param(timedelta(minutes=6), False, False, id="heartbeat-due"),
        pytest.param(timedelta(minutes=1), True, False, id="something-else-changed"),
    ],
)
def test_status_heartbeat(later: timedelta, change: bool, kept: bool) -> None:
    first = plan_sovereignty(SPEC, observed(), NOW).status
    workloads = (violator("v"),) if change else ()
    second = plan_sovereignty(SPEC, observed(workloads=workloads, status=first), NOW + later).status
    assert second.last_audit_time == (NOW if kept else NOW + later)


def test_an_invalid_spec_reports_ready_false_and_writes_nothing() -> None:
    previous = plan_sovereignty(SPEC, observed(), NOW).status
    plan = plan_sovereignty({"region": EU}, observed(status=previous), NOW + timedelta(minutes=1))
    ready = find(plan.status.conditions, "Ready")
    assert ready is not None and ready.status == ConditionStatus.FALSE and ready.reason == "InvalidSpec"
    assert ready.message.startswith("spec.namespaceSelector")
    assert plan.intents == () and plan.events == () and plan.counts is None
    assert plan.status.matching_nodes == previous.matching_nodes  # the rest of the status is kept


def test_reconciling_twice_writes_nothing_more() -> None:
    workloads = (violator("v"),)
    first = plan_sovereignty(SPEC, observed(workloads=workloads), NOW)
    hashes = admission_hashes()
    second = plan_sovereignty(SPEC, observed(workloads=workloads, status=first.status, hashes=hashes), NOW)
    assert (second.intents, second.events) == ((), ())
    assert second.status.to_wire() == first.status.to_wire()


# ------------------------------------------------------------------------------------------- admission


def deployment(node_selector: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "c"}]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {
        "metadata": {"name": "llm", "namespace": "ai", **meta},
        "spec": {"template": {"metadata": {"labels": {"app": "llm"}}, "spec": pod_spec}},
    }


def review(
    body: dict[str, Any],
    mode: str = "Enforce",
    *,
    old: dict[str, Any] | None = None,
    namespace_labels: dict[str, str] | None = None,
    regions: int = 1,
) -> AdmissionReview:
    specs = {f"r{i}": parse_spec(spec(enforcementMode=mode)) for i in range(regions)}
    return AdmissionReview(
        kind="Deployment",
        body=body,
        old=old,
        operation="UPDATE" if old is not None else "CREATE",
        namespace_labels=BOUND["ai"] if namespace_labels is None else namespace_labels,
        regions=specs,
        nodes=NODES,
    )


@pytest.mark.parametrize(
    ("request_", "allowed", "warnings", "dry_run", "confined"),
    [
        pytest.param(review(deployment()), True, 0, 0, True, id="enforce-confines"),
        pytest.param(review(deployment({REGION_LABEL: US})), False, 0, 0, False, id="enforce-rejects"),
        pytest.param(
            review(deployment({REGION_LABEL: US}), "Warn"), True, 1, 0, True, id="warn-admits-warns"
        ),
        pytest.param(
            review(deployment({REGION_LABEL: US}), "DryRun"), True, 0, 1, False, id="dryrun-reports-only"
        ),
        pytest.param(review(deployment(), "DryRun"), True, 0, 0, False, id="dryrun-never-mutates"),
        pytest.param(review(deployment(), namespace_labels={}), True, 0, 0, False, id="unbound-namespace"),
        pytest.param(
            review(deployment({REGION_LABEL: US}), regions=2), True, 1, 0, False, id="conflict-warns"
        ),
        pytest.param(
            review(deployment({REGION_LABEL: US}), old=deployment({REGION_LABEL: US})),
            True,
            0,
            0,
            False,
            id="unchanged-update-not-judged",
        ),
    ],
)
def test_admission(
    request_: AdmissionReview, allowed: bool, warnings: int, dry_run: int, confined: bool
) -> None:
    answer = plan_admission(request_)
    assert answer.allowed is allowed
    assert (len(answer.warnings), len(answer.dry_run_report)) == (warnings, dry_run)
    assert (answer.affinity is not None) is confined
    if not allowed:
        assert "SovereignRegion r0" in answer.message and "[rule Region]" in answer.message


# ------------------------------------------------------------------------- GPU products, both paths

A100, H100 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"
GPU_SPEC = spec(allowedGPUProducts=[A100])
REGION_TERM = {"key": REGION_LABEL, "operator": "In", "values": [EU]}
PRODUCT_TERM = {"key": "nvidia.com/gpu.product", "operator": "In", "values": [A100]}


def gpu_pod_spec(gpus: int, **extra: Any) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}
    return {"containers": [{"name": "c", "resources": resources}], **extra}


def region_only(**extra: Any) -> dict[str, Any]:
    required = {"nodeSelectorTerms": [{"matchExpressions": [REGION_TERM]}]}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}},
        **extra,
    }


@pytest.mark.parametrize(
    ("pod_spec", "admitted", "expected"),
    [
        pytest.param(gpu_pod_spec(1), True, [REGION_TERM, PRODUCT_TERM], id="gpu-pod-confined-to-products"),
        pytest.param(gpu_pod_spec(0), True, [REGION_TERM], id="cpu-only-pod-region-only"),
        pytest.param(
            gpu_pod_spec(1, **region_only()),
            True,
            [REGION_TERM, PRODUCT_TERM],
            id="region-only-gpu-pod-gets-products",
        ),
        pytest.param(gpu_pod_spec(0, **region_only()), True, None, id="confined-cpu-pod-unchanged"),
        pytest.param(
            gpu_pod_spec(1, nodeSelector={"nvidia.com/gpu.product": H100}),
            False,
            None,
            id="explicit-other-product",
        ),
    ],
)
def test_admission_and_repair_confine_gpu_pods_alike(
    pod_spec: dict[str, Any], admitted: bool, expected: list[dict[str, Any]] | None
) -> None:
    """The webhook and the drift repair write the same required affinity: one merge serves both."""
    body = {
        "metadata": {"name": "llm", "namespace": "ai"},
        "spec": {"template": {"metadata": {"labels": {"app": "llm"}}, "spec": pod_spec}},
    }
    answer = plan_admission(
        AdmissionReview("Deployment", body, None, "CREATE", BOUND["ai"], {"eu": parse_spec(GPU_SPEC)}, NODES)
    )
    assert answer.allowed is admitted
    if not admitted:
        assert "[rule GPUProduct]" in answer.message
    admitted_terms = None
    if answer.affinity is not None:
        admitted_terms = answer.affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    workload = TemplatedWorkload("ai", "Deployment", "llm", pod_spec=pod_spec)
    plan = plan_sovereignty(GPU_SPEC, observed(workloads=(workload,)), NOW)
    repairs = [i for i in plan.intents if isinstance(i, PatchPodTemplate)]
    repaired_terms = None
    if repairs:
        repaired_terms = repairs[0].pod_spec["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
    assert repaired_terms == admitted_terms
    wanted = None if expected is None else {"nodeSelectorTerms": [{"matchExpressions": expected}]}
    assert admitted_terms == wanted
