"""Confining a pod spec to a region: the region's node selector and, for a pod that asks for GPUs,
the region's allowed GPU products, as required node affinity merged into the workload's own."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from finops_operator.api.common import GPU_PRODUCT_LABEL
from finops_operator.api.sovereignregion import SovereignRegionSpec
from finops_operator.planners.sovereignty.region import effective_node_selector
from finops_operator.planners.sovereignty.requirements import selector_reqs
from finops_operator.planners.sovereignty.text import list_of, mapping_of
from finops_operator.workloads.resources import gpus_in_pod_spec


def region_match_expressions(spec: SovereignRegionSpec) -> list[dict[str, Any]]:
    """The region's node selector as NodeSelectorRequirements (matchLabels become In [value])."""
    expressions: list[dict[str, Any]] = []
    for key, operator, values in selector_reqs(effective_node_selector(spec)):
        expression: dict[str, Any] = {"key": key, "operator": operator}
        if operator in ("In", "NotIn"):
            expression["values"] = list(values)
        expressions.append(expression)
    return expressions


def confining_expressions(
    spec: SovereignRegionSpec, pod_spec: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """What every required term of this pod must hold: the region's node selector and, when the pod
    asks for GPUs and the region names allowed products, ``nvidia.com/gpu.product In [allowed]``.

    Without the product requirement a GPU pod that says nothing about the product may be scheduled
    on an in-region node whose product the region does not allow, and only then be reported. A
    CPU-only pod gets the region alone: confining it to GPU products would keep it off CPU nodes."""
    expressions = region_match_expressions(spec)
    allowed = list(dict.fromkeys(spec.allowed_gpu_products))
    if allowed and gpus_in_pod_spec(mapping_of(pod_spec)) > 0:
        expressions.append({"key": GPU_PRODUCT_LABEL, "operator": "In", "values": allowed})
    return expressions


def required_node_affinity(spec: SovereignRegionSpec, pod_spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The NodeSelector (one term) that confines a pod with no affinity of its own."""
    return {"nodeSelectorTerms": [{"matchExpressions": confining_expressions(spec, pod_spec)}]}


def _expression_key(expression: object) -> tuple[str, str, tuple[str, ...]] | None:
    expr = mapping_of(expression)
    if "key" not in expr:
        return None
    values = tuple(sorted(str(v) for v in list_of(expr.get("values"))))
    return (str(expr.get("key")), str(expr.get("operator", "")), values)


def _already_holds(expressions: list[Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a term's own requirements already imply ``wanted``: the same requirement, or an ``In``
    on the same key whose values all lie within wanted's ``In`` (e.g. a GPU pod that asks for one
    allowed product needs no second, wider requirement)."""
    key = _expression_key(wanted)
    if key is None:
        return False
    for expression in expressions:
        have = _expression_key(expression)
        if have == key:
            return True
        if (
            have is not None
            and key[1] == "In"
            and have[:2] == key[:2]
            and have[2]
            and set(have[2]) <= set(key[2])
        ):
            return True
    return False


def _term_is_empty(term: Mapping[str, Any]) -> bool:
    return not list_of(term.get("matchExpressions")) and not list_of(term.get("matchFields"))


def merge_required_affinity(
    pod_spec: Mapping[str, Any] | None, region_spec: SovereignRegionSpec
) -> tuple[dict[str, Any], bool]:
    """Confine a pod spec to the region (and a GPU pod to the allowed products) without replacing
    the workload's own affinity: the one merge admission and drift repair both use.

    Kubernetes ORs nodeSelectorTerms and ANDs matchExpressions within a term, so the requirements of
    ``confining_expressions`` are added to every term (a term is created when there is none): the pod
    may then go wherever it asked AND inside the region. An empty term matches no node and is left
    alone, so the merge never widens where a pod may go. Returns a deep copy and whether anything
    changed; merging twice changes nothing."""
    new_spec: dict[str, Any] = copy.deepcopy(dict(pod_spec or {}))
    wanted = confining_expressions(region_spec, new_spec)

    affinity = new_spec.get("affinity")
    affinity = dict(affinity) if isinstance(affinity, Mapping) else {}
    node_affinity = affinity.get("nodeAffinity")
    node_affinity = dict(node_affinity) if isinstance(node_affinity, Mapping) else {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    required = dict(required) if isinstance(required, Mapping) else {}
    terms = list_of(required.get("nodeSelectorTerms"))

    changed = False
    if not terms:
        terms = [{"matchExpressions": copy.deepcopy(wanted)}]
        changed = True
    else:
        merged_terms: list[Any] = []
        for term in terms:
            if not isinstance(term, Mapping) or _term_is_empty(term):
                merged_terms.append(term)
                continue
            new_term = dict(term)
            expressions = list_of(term.get("matchExpressions"))
            missing = [copy.deepcopy(e) for e in wanted if not _already_holds(expressions, e)]
            if missing:
                new_term["matchExpressions"] = expressions + missing
                changed = True
            merged_terms.append(new_term)
        terms = merged_terms

    if not changed:
        return new_spec, False
    required["nodeSelectorTerms"] = terms
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    new_spec["affinity"] = affinity
    return new_spec, True
