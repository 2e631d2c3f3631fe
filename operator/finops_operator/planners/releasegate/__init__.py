"""ModelReleaseGate planner: which workloads a gate governs, what their evidence annotations fail
(presence, thresholds, allowed values, the signature of the artifact digest), what admission answers,
the ValidatingAdmissionPolicy holding the static rules while the operator is down, and the audit
(``plan_release_gate``).

Pure: no Kopf, no Kubernetes client, no clock. Modules: ``facts``, ``signature`` (cosign key-pair
format, verified with ``cryptography``), ``gate`` (spec, selection, key), ``evaluation``,
``admission``, ``vap``, ``plan``.
"""

from finops_operator.planners.releasegate.admission import (
    AdmissionAnswer,
    AdmissionReview,
    GateState,
    plan_admission,
    workload_of,
)
from finops_operator.planners.releasegate.evaluation import evaluate
from finops_operator.planners.releasegate.facts import (
    Finding,
    GateObservation,
    KeyMaterial,
    ModelWorkload,
    Rule,
    evidence_annotations,
)
from finops_operator.planners.releasegate.gate import gated_namespaces, parse_spec, selects, verification_key
from finops_operator.planners.releasegate.plan import plan_release_gate

__all__ = [
    "AdmissionAnswer",
    "AdmissionReview",
    "Finding",
    "GateObservation",
    "GateState",
    "KeyMaterial",
    "ModelWorkload",
    "Rule",
    "evaluate",
    "evidence_annotations",
    "gated_namespaces",
    "parse_spec",
    "plan_admission",
    "plan_release_gate",
    "selects",
    "verification_key",
    "workload_of",
]
