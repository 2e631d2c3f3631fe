"""SovereignRegion planner: which namespaces a region binds, what a workload asks for against what the
region allows, how to confine a pod spec to the region, what admission answers, what the continuous
audit finds, what the region's status says, and the writes that follow (``plan_sovereignty``).

Pure: no Kopf, no Kubernetes client, no clock (``now`` is an argument). Inputs are treated as hostile:
pod specs, affinities and labels may be missing, malformed or huge, and nothing here raises on them.

Modules, in the order a reconcile uses them: ``facts`` (observation and finding types), ``region``
(a region's nodes, constraints and namespace bindings), ``evaluation`` (judging one pod template),
``affinity`` (confining one), ``admission``, ``audit``, ``status``, ``vap`` (the
ValidatingAdmissionPolicy the API server enforces while the operator is down) and ``plan``. Helpers:
``requirements`` (selector requirements) and ``text`` (hostile input, message limits).
"""

from finops_operator.planners.sovereignty.admission import (
    AdmissionAnswer,
    AdmissionReview,
    Decision,
    admission_decision,
    namespace_conflict_decision,
    plan_admission,
)
from finops_operator.planners.sovereignty.affinity import (
    confining_expressions,
    merge_required_affinity,
    region_match_expressions,
    required_node_affinity,
)
from finops_operator.planners.sovereignty.audit import AuditResult, audit
from finops_operator.planners.sovereignty.evaluation import evaluate_pod_template
from finops_operator.planners.sovereignty.facts import (
    ClusterNode,
    Finding,
    Inventory,
    PlacedPod,
    PodRef,
    PvcFacts,
    PvFacts,
    Rule,
    SovereigntyObservation,
    TemplatedWorkload,
)
from finops_operator.planners.sovereignty.plan import plan_sovereignty
from finops_operator.planners.sovereignty.region import (
    NamespaceBindings,
    PreparedRegion,
    bound_regions,
    effective_node_selector,
    matching_node_names,
    parse_spec,
    prepare_region,
    region_constraints,
    resolve_namespace_bindings,
    selector_text,
)
from finops_operator.planners.sovereignty.requirements import LEGACY_REGION_LABEL
from finops_operator.planners.sovereignty.status import SovereigntyReason, plan_region_status

__all__ = [
    "LEGACY_REGION_LABEL",
    "AdmissionAnswer",
    "AdmissionReview",
    "AuditResult",
    "ClusterNode",
    "Decision",
    "Finding",
    "Inventory",
    "NamespaceBindings",
    "PlacedPod",
    "PodRef",
    "PreparedRegion",
    "PvFacts",
    "PvcFacts",
    "Rule",
    "SovereigntyObservation",
    "SovereigntyReason",
    "TemplatedWorkload",
    "admission_decision",
    "audit",
    "bound_regions",
    "confining_expressions",
    "effective_node_selector",
    "evaluate_pod_template",
    "matching_node_names",
    "merge_required_affinity",
    "namespace_conflict_decision",
    "parse_spec",
    "plan_admission",
    "plan_region_status",
    "plan_sovereignty",
    "prepare_region",
    "region_constraints",
    "region_match_expressions",
    "required_node_affinity",
    "resolve_namespace_bindings",
    "selector_text",
]
