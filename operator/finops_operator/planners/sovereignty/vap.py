"""ValidatingAdmissionPolicy (CEL, admissionregistration.k8s.io/v1) and its binding, rendered from a
SovereignRegion.

Why: the API server evaluates these in-process, so the explicit sovereignty rules (another region or a
GPU product asked for by nodeSelector or required node affinity, a data classification not allowed)
keep being enforced while the operator is down. The Kopf webhooks add what CEL cannot do well (the
affinity injection, node-name pinning, requirements that exclude the region by NotIn/DoesNotExist).

Pure: no Kopf, no Kubernetes client. Every string from the spec is quoted as a CEL literal, never spliced
into an expression.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finops_operator.api.common import GPU_PRODUCT_LABEL, LabelSelector
from finops_operator.api.sovereignregion import SovereignRegionSpec
from finops_operator.planners.admissionpolicy import (
    API_VERSION,
    HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_NAME,
    RESOURCE_RULES,
    VALIDATION_ACTIONS,
)
from finops_operator.planners.sovereignty.facts import ClusterNode, Rule
from finops_operator.planners.sovereignty.region import (
    effective_node_selector,
    region_constraints,
    selector_text,
)

NAME_PREFIX = "finops-sovereignty-"
REGION_OBJECT_LABEL = "finops.dev/sovereign-region"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MAX_EXCLUDED_NAMESPACES = 1000

_TERMS = "variables.tmpl.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
VARIABLES: tuple[dict[str, str], ...] = (
    {
        "name": "tmpl",
        "expression": "request.kind.kind == 'Pod' ? object : "
        "(request.kind.kind == 'CronJob' ? object.spec.jobTemplate.spec.template : object.spec.template)",
    },
    {
        "name": "changed",
        # Scaling, rollbacks and the operator's own repairs that leave the template and labels as they
        # were are never judged, so an existing violator can still be scaled down.
        "expression": "request.operation == 'CREATE' || oldObject == null || "
        "(has(object.metadata.labels) ? object.metadata.labels : {}) != "
        "(has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}) || "
        "(request.kind.kind == 'CronJob' ? object.spec.jobTemplate != oldObject.spec.jobTemplate : "
        "object.spec.template != oldObject.spec.template)",
    },
    {
        "name": "nodeSelector",
        "expression": "has(variables.tmpl.spec) && has(variables.tmpl.spec.nodeSelector) ? "
        "variables.tmpl.spec.nodeSelector : {}",
    },
    {
        "name": "terms",
        "expression": "has(variables.tmpl.spec) && has(variables.tmpl.spec.affinity) && "
        "has(variables.tmpl.spec.affinity.nodeAffinity) && "
        f"has({_TERMS}) && has({_TERMS}.nodeSelectorTerms) ? {_TERMS}.nodeSelectorTerms : []",
    },
    {
        "name": "templateLabels",
        "expression": "has(variables.tmpl.metadata) && has(variables.tmpl.metadata.labels) ? "
        "variables.tmpl.metadata.labels : {}",
    },
    {
        "name": "objectLabels",
        "expression": "has(object.metadata.labels) ? object.metadata.labels : {}",
    },
    {
        "name": "namespaceLabels",
        "expression": "namespaceObject != null && has(namespaceObject.metadata.labels) ? "
        "namespaceObject.metadata.labels : {}",
    },
)


def cel_string(value: str) -> str:
    """A CEL string literal: JSON's double-quoted form (CEL accepts the same escapes)."""
    return json.dumps(value, ensure_ascii=False)


def cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(cel_string(v) for v in values) + "]"


def _inside(variable: str, reqs: Sequence[tuple[str, str, tuple[str, ...]]]) -> str:
    """CEL for: the label value ``variable`` (present) meets every requirement of its key."""
    parts: list[str] = []
    for _, operator, values in reqs:
        if operator == "In":
            parts.append(f"{variable} in {cel_list(values)}")
        elif operator == "NotIn":
            parts.append(f"!({variable} in {cel_list(values)})")
        elif operator == "DoesNotExist":
            parts.append("false")
        # Exists holds for any present value; Gt/Lt cannot come from a LabelSelector.
    return " && ".join(f"({p})" for p in parts) or "true"


def policy_name(region_name: str) -> str:
    """finops-sovereignty-<region>, shortened with a hash when the result would be too long."""
    name = NAME_PREFIX + region_name
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(region_name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


@dataclass(frozen=True)
class Validation:
    rule: str
    expression: str
    message: str


def _message_expression(prefix: str, what: str) -> str:
    """A message naming the object; CEL builds it, the static message is the fallback."""
    return (
        f"{cel_string(prefix)} + request.kind.kind + ' ' + request.namespace + '/' + "
        f"(request.name != '' ? request.name : (has(object.metadata.generateName) ? "
        f"object.metadata.generateName : '')) + {cel_string(what)}"
    )


def validations(
    spec: SovereignRegionSpec, region_name: str, nodes: Mapping[str, ClusterNode] | None = None
) -> list[Validation]:
    """The CEL rules of one region, each guarded so unchanged UPDATEs pass."""
    constraints = region_constraints(spec, nodes)
    where = selector_text(effective_node_selector(spec))
    result: list[Validation] = []
    keys = sorted(constraints)
    selector_checks = " && ".join(
        f"(!({cel_string(k)} in variables.nodeSelector) || "
        f"({_inside(f'variables.nodeSelector[{cel_string(k)}]', constraints[k])}))"
        for k in keys
    )
    result.append(
        Validation(
            Rule.REGION,
            f"!variables.changed || ({selector_checks})",
            f"nodeSelector names a node outside the region ({where})",
        )
    )
    term_checks = " && ".join(
        f"(e.key != {cel_string(k)} || e.operator != 'In' || !has(e.values) || "
        f"e.values.all(v, {_inside('v', constraints[k])}))"
        for k in keys
    )
    result.append(
        Validation(
            Rule.REGION,
            "!variables.changed || variables.terms.all(t, !has(t.matchExpressions) || "
            f"t.matchExpressions.all(e, {term_checks}))",
            f"required node affinity asks for nodes outside the region ({where})",
        )
    )
    allowed_gpus = spec.allowed_gpu_products
    if allowed_gpus:
        gpus = cel_list(allowed_gpus)
        key = cel_string(GPU_PRODUCT_LABEL)
        result.append(
            Validation(
                Rule.GPU_PRODUCT,
                f"!variables.changed || ((!({key} in variables.nodeSelector) || "
                f"variables.nodeSelector[{key}] in {gpus}) && variables.terms.all(t, "
                f"!has(t.matchExpressions) || t.matchExpressions.all(e, e.key != {key} || "
                f"e.operator != 'In' || !has(e.values) || e.values.all(v, v in {gpus}))))",
                f"asks for a GPU product ({GPU_PRODUCT_LABEL}) outside {_plain_list(allowed_gpus)}",
            )
        )
    allowed_classes = spec.allowed_data_classifications
    if allowed_classes:
        classes = cel_list(allowed_classes)
        label = cel_string(spec.data_classification_label)
        own = f"({label} in variables.templateLabels || {label} in variables.objectLabels)"
        result.append(
            Validation(
                Rule.DATA_CLASSIFICATION,
                f"!variables.changed || ("
                f"(!({label} in variables.templateLabels) || variables.templateLabels[{label}] in {classes})"
                f" && (!({label} in variables.objectLabels) || variables.objectLabels[{label}] in {classes})"
                f" && ({own} || !({label} in variables.namespaceLabels) || "
                f"variables.namespaceLabels[{label}] in {classes}))",
                f"carries a data classification (label {spec.data_classification_label} on the workload, "
                f"its pod template or its namespace) outside {_plain_list(allowed_classes)}",
            )
        )
    return result


def _plain_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _owner(region_name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "finops.dev/v1alpha1",
        "kind": "SovereignRegion",
        "name": region_name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _metadata(name: str, region_name: str, uid: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, REGION_OBJECT_LABEL: _label_value(region_name)},
        "ownerReferences": [_owner(region_name, uid)],
    }


def _label_value(value: str) -> str:
    """Label values are at most 63 characters; longer region names are cut and hashed."""
    if len(value) <= 63:
        return value
    return value[:52] + "-" + hashlib.sha256(value.encode()).hexdigest()[:10]


def _with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(obj["spec"], sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"]["annotations"] = {HASH_ANNOTATION: digest}
    return obj


def validating_admission_policy(
    spec: SovereignRegionSpec,
    *,
    region_name: str,
    uid: str,
    nodes: Mapping[str, ClusterNode] | None = None,
) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy of one region: failurePolicy Fail (an expression that cannot be
    evaluated rejects rather than lets a workload through) and owned by the SovereignRegion, so
    deleting the region garbage-collects it."""
    name = policy_name(region_name)
    prefix = f"SovereignRegion {region_name} (region {spec.region}), rule "
    suffix = f", but the namespace is bound to region {spec.region} (ValidatingAdmissionPolicy {name})"
    rendered = [
        {
            "expression": v.expression,
            "message": f"{prefix}{v.rule}: a workload {v.message}{suffix}",
            "messageExpression": _message_expression(f"{prefix}{v.rule}: ", f" {v.message}{suffix}"),
            "reason": "Forbidden",
        }
        for v in validations(spec, region_name, nodes)
    ]
    return _with_hash(
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": _metadata(name, region_name, uid),
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [dict(r) for r in RESOURCE_RULES]},
                "variables": [dict(v) for v in VARIABLES],
                "validations": rendered,
            },
        }
    )


def namespace_selector(selector: LabelSelector, excluded: Sequence[str] = ()) -> dict[str, Any]:
    """The region's namespaceSelector, minus namespaces it shares with another region (no region
    enforces on those until the conflict is resolved, as the webhooks and the audit decide too)."""
    expressions: list[dict[str, Any]] = []
    for requirement in selector.match_expressions:
        expression: dict[str, Any] = {"key": requirement.key, "operator": requirement.operator}
        if requirement.values:
            expression["values"] = list(requirement.values)
        expressions.append(expression)
    if excluded:
        names = sorted(set(excluded))[:MAX_EXCLUDED_NAMESPACES]
        expressions.append({"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": names})
    result: dict[str, Any] = {}
    if selector.match_labels:
        result["matchLabels"] = dict(sorted(selector.match_labels.items()))
    if expressions:
        result["matchExpressions"] = expressions
    return result


def validating_admission_policy_binding(
    spec: SovereignRegionSpec,
    *,
    region_name: str,
    uid: str,
    excluded_namespaces: Sequence[str] = (),
) -> dict[str, Any]:
    """The binding: the region's namespaces, and the validation actions of its enforcement mode."""
    name = policy_name(region_name)
    return _with_hash(
        {
            "apiVersion": API_VERSION,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": _metadata(name, region_name, uid),
            "spec": {
                "policyName": name,
                "validationActions": list(VALIDATION_ACTIONS[spec.enforcement_mode]),
                "matchResources": {
                    "namespaceSelector": namespace_selector(spec.namespace_selector, excluded_namespaces)
                },
            },
        }
    )
