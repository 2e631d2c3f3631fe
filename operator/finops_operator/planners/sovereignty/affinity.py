"""Confining a pod spec to a region: the region's node selector as required node affinity, merged
into the workload's own."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from finops_operator.api.sovereignregion import SovereignRegionSpec
from finops_operator.planners.sovereignty.region import effective_node_selector
from finops_operator.planners.sovereignty.requirements import selector_reqs
from finops_operator.planners.sovereignty.text import list_of, mapping_of


def region_match_expressions(spec: SovereignRegionSpec) -> list[dict[str, Any]]:
    """The region's node selector as NodeSelectorRequirements (matchLabels become In [value])."""
    expressions: list[dict[str, Any]] = []
    for key, operator, values in selector_reqs(effective_node_selector(spec)):
        expression: dict[str, Any] = {"key": key, "operator": operator}
        if operator in ("In", "NotIn"):
            expression["values"] = list(values)
        expressions.append(expression)
    return expressions


def required_node_affinity(spec: SovereignRegionSpec) -> dict[str, Any]:
    """The NodeSelector (one term) that confines a pod to the region's nodes."""
    return {"nodeSelectorTerms": [{"matchExpressions": region_match_expressions(spec)}]}


def _expression_key(expression: object) -> tuple[str, str, tuple[str, ...]] | None:
    expr = mapping_of(expression)
    if "key" not in expr:
        return None
    values = tuple(sorted(str(v) for v in list_of(expr.get("values"))))
    return (str(expr.get("key")), str(expr.get("operator", "")), values)


def _term_is_empty(term: Mapping[str, Any]) -> bool:
    return not list_of(term.get("matchExpressions")) and not list_of(term.get("matchFields"))


def merge_required_affinity(
    pod_spec: Mapping[str, Any] | None, region_spec: SovereignRegionSpec
) -> tuple[dict[str, Any], bool]:
    """Confine a pod spec to the region without replacing the workload's own affinity.

    Kubernetes ORs nodeSelectorTerms and ANDs matchExpressions within a term, so the region's
    requirements are added to every term (a term is created when there is none): the pod may then go
    wherever it asked AND inside the region. An empty term matches no node and is left alone, so the
    merge never widens where a pod may go. Returns a deep copy and whether anything changed;
    merging twice changes nothing."""
    new_spec: dict[str, Any] = copy.deepcopy(dict(pod_spec or {}))
    wanted = region_match_expressions(region_spec)
    wanted_keys = [_expression_key(e) for e in wanted]

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
            present = {_expression_key(e) for e in expressions}
            missing = [copy.deepcopy(e) for e, k in zip(wanted, wanted_keys, strict=True) if k not in present]
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
