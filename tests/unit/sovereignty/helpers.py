"""What the sovereignty planner tests share: a region, nodes, affinity builders, and shorthands for
evaluating one workload and auditing a namespace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from finops_operator.api.common import GPU_PRODUCT_LABEL
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec
from finops_operator.planners.sovereignty import (
    AuditResult,
    ClusterNode,
    Finding,
    Inventory,
    TemplatedWorkload,
    audit,
    evaluate_pod_template,
    parse_spec,
    prepare_region,
)

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
    "eu-1": ClusterNode("eu-1", {REGION_LABEL: EU, "topology.kubernetes.io/zone": "eu-west-1a"}),
    "eu-gpu": ClusterNode("eu-gpu", {REGION_LABEL: EU, GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}),
    "us-1": ClusterNode(
        "us-1",
        {REGION_LABEL: US, "topology.kubernetes.io/zone": "us-east-1a", "kubernetes.io/hostname": "us-1"},
    ),
    "bare": ClusterNode("bare", {}),
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
    nodes: dict[str, ClusterNode] | None = None,
    kind: str = "Deployment",
) -> list[Finding]:
    workload = TemplatedWorkload("ai", kind, "llm", labels, template_labels or {}, pod_spec)  # type: ignore[arg-type]
    return evaluate_pod_template(workload, prepare_region(spec, nodes, None), namespace_labels)


DATA_SPEC = region(allowedDataClassifications=["public", "internal"])

REGION_EXPR = expr(REGION_LABEL, "In", EU)
ZONE_A = expr("topology.kubernetes.io/zone", "In", "eu-west-1a")
GPU_EXPR = expr(GPU_PRODUCT_LABEL, "In", "H100")


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
    inventory = Inventory(values["bound_namespaces"], values["workloads"], values["pods"], values["pvcs"])
    return audit(
        prepare_region(spec, values["nodes"], values.get("region_name")),
        inventory,
        previous_violations=values["previous_violations"],
        now=values["now"],
        **({"cap": values["cap"]} if "cap" in values else {}),
    )


EVICTING = region(evictOutOfRegionPods=True)
