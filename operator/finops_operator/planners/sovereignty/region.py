"""A region's nodes and what it requires of each node label, and which namespaces it binds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finops_operator.api.common import LabelSelector
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.sovereignty.facts import ClusterNode
from finops_operator.planners.sovereignty.requirements import (
    LEGACY_REGION_LABEL,
    Req,
    req_ok,
    req_text,
    selector_reqs,
)
from finops_operator.planners.sovereignty.text import label_value, show


def parse_spec(raw: Mapping[str, Any]) -> SovereignRegionSpec:
    """Validate a spec as stored; the API server's schema already rejected most bad input."""
    return SovereignRegionSpec.model_validate(dict(raw))


def region_display_name(spec: SovereignRegionSpec, region_name: str | None = None) -> str:
    return region_name or spec.region


def effective_node_selector(spec: SovereignRegionSpec) -> LabelSelector:
    """The nodes of the region: spec.nodeSelector, else topology.kubernetes.io/region=<region>.

    An explicitly empty selector would select every node of the cluster, which can never be what a
    sovereignty boundary means, so it falls back to the default as well."""
    selector = spec.node_selector
    if selector is None or (not selector.match_labels and not selector.match_expressions):
        return LabelSelector(match_labels={REGION_LABEL: spec.region})
    return selector


def selector_text(selector: LabelSelector) -> str:
    """Human form of a selector for messages, e.g. ``topology.kubernetes.io/region=eu-west-1``."""
    parts = [f"{show(k)}={show(v)}" for k, v in sorted(selector.match_labels.items())]
    parts.extend(req_text((r.key, r.operator, tuple(r.values))) for r in selector.match_expressions)
    return ", ".join(parts) or "every node"


def matching_node_names(spec: SovereignRegionSpec, nodes: Mapping[str, ClusterNode]) -> list[str]:
    """Names of the nodes the region selects, sorted."""
    selector = effective_node_selector(spec)
    return sorted(name for name, node in nodes.items() if selector_matches(selector, node.labels))


def _region_constraints(
    spec: SovereignRegionSpec, nodes: Mapping[str, ClusterNode] | None
) -> dict[str, list[Req]]:
    """Per node label key, what the region requires of it: the node selector's requirements, and for
    the region label (when the selector does not constrain it) the region itself plus the region
    label of every node the selector matches."""
    selector = effective_node_selector(spec)
    constraints: dict[str, list[Req]] = {}
    for req in selector_reqs(selector):
        constraints.setdefault(req[0], []).append(req)
    if REGION_LABEL not in constraints:
        values = {spec.region}
        for node in (nodes or {}).values():
            value = label_value(node.labels, REGION_LABEL)
            if value is not None and selector_matches(selector, node.labels):
                values.add(value)
        constraints[REGION_LABEL] = [(REGION_LABEL, "In", tuple(sorted(values)))]
    if LEGACY_REGION_LABEL not in constraints:
        constraints[LEGACY_REGION_LABEL] = [
            (LEGACY_REGION_LABEL, op, vals) for _, op, vals in constraints[REGION_LABEL]
        ]
    return constraints


def region_constraints(
    spec: SovereignRegionSpec, nodes: Mapping[str, ClusterNode] | None = None
) -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
    """Per node label key, the (key, operator, values) requirements a value must meet to be inside the
    region: what admission, the audit and the generated ValidatingAdmissionPolicy all judge against."""
    return {key: list(reqs) for key, reqs in _region_constraints(spec, nodes).items()}


@dataclass(frozen=True)
class PreparedRegion:
    """A region prepared once per admission review or audit run: its node selector, what it requires
    of each node label key, the known nodes and which of them are inside."""

    spec: SovereignRegionSpec
    name: str
    selector_text: str
    constraints: Mapping[str, list[Req]]
    nodes: Mapping[str, ClusterNode]
    inside: frozenset[str]


def prepare_region(
    spec: SovereignRegionSpec, nodes: Mapping[str, ClusterNode] | None, region_name: str | None
) -> PreparedRegion:
    selector = effective_node_selector(spec)
    known = nodes or {}
    return PreparedRegion(
        spec=spec,
        name=region_display_name(spec, region_name),
        selector_text=selector_text(selector),
        constraints=_region_constraints(spec, known),
        nodes=known,
        inside=frozenset(name for name, node in known.items() if selector_matches(selector, node.labels)),
    )


def meets(constraints: Sequence[Req], value: str | None) -> bool:
    return all(req_ok(op, vals, value) for _, op, vals in constraints)


def asks_for(key: str, value: str) -> str:
    return (
        f"region {show(value)}"
        if key in (REGION_LABEL, LEGACY_REGION_LABEL)
        else f"{show(key)}={show(value)}"
    )


@dataclass(frozen=True)
class NamespaceBindings:
    """Per region: the namespaces it enforces on, and those it shares with another region (which no
    region enforces on), each with every region that binds it."""

    governed: Mapping[str, tuple[str, ...]]
    conflicts: Mapping[str, Mapping[str, tuple[str, ...]]]


def bound_regions(
    namespace_labels: Mapping[str, str] | None, regions: Mapping[str, SovereignRegionSpec]
) -> list[str]:
    """Names of the regions whose namespaceSelector selects a namespace with these labels, sorted.

    More than one means a conflict: no region enforces on that namespace."""
    return sorted(
        name for name, spec in regions.items() if selector_matches(spec.namespace_selector, namespace_labels)
    )


def resolve_namespace_bindings(
    namespaces: Mapping[str, Mapping[str, str]], regions: Mapping[str, SovereignRegionSpec]
) -> NamespaceBindings:
    """Bind every namespace to its region; a namespace selected by two regions is governed by neither
    and reported as a conflict on both, so nothing is silently ignored."""
    governed: dict[str, list[str]] = {name: [] for name in regions}
    conflicts: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in regions}
    for namespace in sorted(namespaces):
        names = bound_regions(namespaces[namespace], regions)
        if len(names) == 1:
            governed[names[0]].append(namespace)
        elif len(names) > 1:
            for name in names:
                conflicts[name][namespace] = tuple(names)
    return NamespaceBindings(
        governed={name: tuple(values) for name, values in governed.items()},
        conflicts=conflicts,
    )
