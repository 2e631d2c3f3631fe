"""The ValidatingAdmissionPolicy and binding of one gate: its static rules (evidence present,
thresholds, allowed values) evaluated inside the API server, so they hold while the operator is down.
The signature cannot be checked in CEL; the operator's webhook and audit do that.

Pure. Every string from the spec is quoted as a CEL literal, never spliced into an expression.
"""

from __future__ import annotations

from typing import Any

from finops_operator.api.common import LabelSelector
from finops_operator.api.modelreleasegate import ModelReleaseGateSpec
from finops_operator.planners.admissionpolicy import (
    API_VERSION,
    RESOURCE_RULES,
    TEMPLATE_CHANGED,
    TEMPLATE_VARIABLE,
    VALIDATION_ACTIONS,
    cel_list,
    cel_string,
    message_expression,
    object_name,
    owned_metadata,
    with_hash,
)
from finops_operator.planners.releasegate.evaluation import NUMBER
from finops_operator.planners.releasegate.facts import Rule
from finops_operator.planners.releasegate.gate import annotation, required_annotations

NAME_PREFIX = "finops-modelgate-"
GATE_OBJECT_LABEL = "finops.dev/model-release-gate"


def selector_expression(selector: LabelSelector, labels: str) -> str:
    """CEL for a label selector over the map ``labels``, with Kubernetes' semantics."""
    parts = [
        f"({cel_string(k)} in {labels} && {labels}[{cel_string(k)}] == {cel_string(v)})"
        for k, v in sorted(selector.match_labels.items())
    ]
    for requirement in selector.match_expressions:
        key = cel_string(requirement.key)
        if requirement.operator == "In":
            parts.append(f"({key} in {labels} && {labels}[{key}] in {cel_list(requirement.values)})")
        elif requirement.operator == "NotIn":
            parts.append(f"(!({key} in {labels}) || !({labels}[{key}] in {cel_list(requirement.values)}))")
        elif requirement.operator == "Exists":
            parts.append(f"({key} in {labels})")
        else:
            parts.append(f"!({key} in {labels})")
    return " && ".join(parts) or "true"


def variables(spec: ModelReleaseGateSpec) -> list[dict[str, str]]:
    return [
        dict(TEMPLATE_VARIABLE),
        {
            "name": "labels",
            "expression": "has(variables.tmpl.metadata) && has(variables.tmpl.metadata.labels) ? "
            "variables.tmpl.metadata.labels : {}",
        },
        {
            "name": "evidence",
            "expression": "has(variables.tmpl.metadata) && has(variables.tmpl.metadata.annotations) ? "
            "variables.tmpl.metadata.annotations : {}",
        },
        {
            # Scaling, rollbacks and edits outside the pod template are never judged.
            "name": "gated",
            "expression": f"{TEMPLATE_CHANGED} && "
            f"({selector_expression(spec.workload_selector, 'variables.labels')})",
        },
    ]


def validations(spec: ModelReleaseGateSpec) -> list[tuple[str, str, str]]:
    """(rule, CEL expression, what is wrong) for each static rule, each guarded by ``gated``."""
    result: list[tuple[str, str, str]] = []
    for name in required_annotations(spec):
        key = cel_string(name)
        result.append(
            (
                Rule.REQUIRED_EVIDENCE,
                f"!variables.gated || {key} in variables.evidence",
                f"lacks evidence annotation {name}",
            )
        )
    for threshold in spec.thresholds:
        name = annotation(threshold.evidence)
        key = cel_string(name)
        value = f"variables.evidence[{key}]"
        bounds = [f"double({value}) <= {threshold.max!r}" if threshold.max is not None else ""]
        bounds.append(f"double({value}) >= {threshold.min!r}" if threshold.min is not None else "")
        within = " && ".join(b for b in bounds if b)
        text = " and ".join(
            t
            for t in (
                f">= {threshold.min:g}" if threshold.min is not None else "",
                f"<= {threshold.max:g}" if threshold.max is not None else "",
            )
            if t
        )
        result.append(
            (
                Rule.THRESHOLD,
                f"!variables.gated || !({key} in variables.evidence) || "
                f"(size({value}) <= 64 && {value}.matches({cel_string(NUMBER)}) && {within})",
                f"has {name} outside the threshold or not a number (required {text})",
            )
        )
    for allowed in spec.allowed_values:
        name = annotation(allowed.evidence)
        key = cel_string(name)
        result.append(
            (
                Rule.ALLOWED_VALUE,
                f"!variables.gated || !({key} in variables.evidence) || "
                f"variables.evidence[{key}] in {cel_list(allowed.values)}",
                f"has {name} not allowed (allowed: {', '.join(allowed.values)})",
            )
        )
    return result


def policy_name(gate: str) -> str:
    return object_name(NAME_PREFIX, gate)


def _metadata(gate: str, uid: str) -> dict[str, Any]:
    return owned_metadata(
        policy_name(gate), owner_kind="ModelReleaseGate", owner_name=gate, uid=uid, label=GATE_OBJECT_LABEL
    )


def validating_admission_policy(spec: ModelReleaseGateSpec, *, gate: str, uid: str) -> dict[str, Any]:
    """failurePolicy Fail: an expression that cannot be evaluated rejects rather than admits; owned by
    the gate, so deleting the gate garbage-collects it."""
    name = policy_name(gate)
    rendered = [
        {
            "expression": expression,
            "message": f"ModelReleaseGate {gate}: a workload {what} [rule {rule}] "
            f"(ValidatingAdmissionPolicy {name})",
            "messageExpression": message_expression(
                f"ModelReleaseGate {gate}: ", f" {what} [rule {rule}] (ValidatingAdmissionPolicy {name})"
            ),
            "reason": "Forbidden",
        }
        for rule, expression, what in validations(spec)
    ]
    return with_hash(
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": _metadata(gate, uid),
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [dict(r) for r in RESOURCE_RULES]},
                "variables": variables(spec),
                "validations": rendered,
            },
        }
    )


def _namespace_selector(selector: LabelSelector) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if selector.match_labels:
        result["matchLabels"] = dict(sorted(selector.match_labels.items()))
    if selector.match_expressions:
        result["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return result


def validating_admission_policy_binding(spec: ModelReleaseGateSpec, *, gate: str, uid: str) -> dict[str, Any]:
    """The gate's namespaces, and the validation actions of its mode."""
    return with_hash(
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": _metadata(gate, uid),
            "spec": {
                "policyName": policy_name(gate),
                "validationActions": list(VALIDATION_ACTIONS[spec.enforcement_mode]),
                "matchResources": {"namespaceSelector": _namespace_selector(spec.namespace_selector)},
            },
        }
    )
