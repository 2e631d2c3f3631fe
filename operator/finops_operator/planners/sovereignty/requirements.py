"""Label and node selector requirements as (key, operator, values), with Kubernetes semantics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finops_operator.api.common import LabelSelector
from finops_operator.planners.sovereignty.text import list_of, list_text, mapping_of, show

LEGACY_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"


Req = tuple[str, str, tuple[str, ...]]
"""(key, operator, values) of a label selector or node selector requirement."""


def req_ok(operator: str, values: tuple[str, ...], value: str | None) -> bool:
    """Kubernetes requirement semantics (labels.Selector / NodeSelectorRequirement), for one key."""
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False  # an unknown operator matches nothing, as the API server would never let it through


def satisfiable(reqs: Sequence[Req]) -> bool:
    """Whether some value (or absence) of one key satisfies all requirements on it.

    Requirements only distinguish the values they name, absence, integers around Gt/Lt bounds, and
    "anything else"; trying exactly those is complete."""
    candidates: set[str | None] = {None}
    for _, operator, values in reqs:
        candidates.update(values)
        if operator in ("Gt", "Lt"):
            for value in values:
                try:
                    bound = int(value)
                except ValueError:
                    continue
                candidates.update((str(bound + 1), str(bound - 1)))
    candidates.add("\x00" * (1 + max((len(c) for c in candidates if c is not None), default=0)))
    return any(all(req_ok(op, vals, c) for _, op, vals in reqs) for c in candidates)


def req_text(req: Req) -> str:
    key, operator, values = req
    return f"{show(key)} {show(operator)} {list_text(values)}" if values else f"{show(key)} {operator}"


def selector_reqs(selector: LabelSelector) -> list[Req]:
    reqs: list[Req] = [(k, "In", (v,)) for k, v in sorted(selector.match_labels.items())]
    reqs.extend((r.key, r.operator, tuple(r.values)) for r in selector.match_expressions)
    return reqs


def parse_reqs(expressions: object) -> list[Req]:
    reqs: list[Req] = []
    for expression in list_of(expressions):
        expr = mapping_of(expression)
        key = expr.get("key")
        if key is None:
            continue
        values = tuple(str(v) for v in list_of(expr.get("values")))
        reqs.append((str(key), str(expr.get("operator", "")), values))
    return reqs


def required_terms(node_affinity_holder: Mapping[str, Any]) -> list[Any]:
    """The required nodeSelectorTerms of a pod spec's affinity.nodeAffinity."""
    node_affinity = mapping_of(mapping_of(node_affinity_holder.get("affinity")).get("nodeAffinity"))
    required = mapping_of(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    return list_of(required.get("nodeSelectorTerms"))
