"""SovereignRegion planner: which namespaces a region binds, what a workload asks for against what the
region allows, how to confine a pod spec to the region, what admission answers, what the continuous
audit finds, and what the region's status says.

Pure: no Kopf, no Kubernetes client, no clock (``now`` is an argument). Inputs are treated as hostile:
pod specs, affinities and labels may be missing, malformed or huge, and nothing here raises on them.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from finops_operator.api.common import (
    GPU_PRODUCT_LABEL,
    ConditionStatus,
    EnforcementMode,
    LabelSelector,
)
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions
from finops_operator.api.sovereignregion import (
    REGION_LABEL,
    SovereignRegionSpec,
    SovereignRegionStatus,
    SovereigntyViolation,
)
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.workloads.resources import gpus_in_pod_spec

LEGACY_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"

MAX_VIOLATIONS = 100
MAX_LISTED_NAMESPACES = 1000
MAX_NAMES_IN_MESSAGE = 20
MAX_WARNINGS = 16
MAX_MESSAGE = 4096
MAX_VIOLATION_MESSAGE = 1024
MAX_NOTES = 100

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
NEVER_EVICTED_KINDS = frozenset({"DaemonSet", "Node"})
"""DaemonSet pods come back on the same node, static pods cannot be evicted: evicting them only churns."""


class Rule:
    REGION = "Region"
    GPU_PRODUCT = "GPUProduct"
    DATA_CLASSIFICATION = "DataClassification"


class SovereigntyReason:
    """Condition reasons specific to SovereignRegion (NamespaceConflict reuses SelectorOverlap/NoOverlap)."""

    NO_MATCHING_NODES = "NoMatchingNodes"
    NO_VIOLATIONS = "NoViolations"
    VIOLATIONS_FOUND = "ViolationsFound"


# --------------------------------------------------------------------------------------------------
# Facts and results


@dataclass(frozen=True)
class NodeFacts:
    """A node as the planner sees it (from a Kopf index)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkloadFacts:
    """A workload with a pod template (Deployment, StatefulSet, Job, CronJob, ... or a bare Pod)."""

    namespace: str
    kind: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    template_labels: Mapping[str, str] = field(default_factory=dict)
    pod_spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PodFacts:
    """A pod, for placement: where it runs and which top-level workload (kind, name) owns it, if any."""

    namespace: str
    name: str
    node_name: str | None = None
    phase: str = "Running"
    gpus: int = 0
    workload: tuple[str, str] | None = None
    terminating: bool = False


@dataclass(frozen=True)
class PvFacts:
    """The PersistentVolume a claim is bound to: its labels and its spec.nodeAffinity as stored."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node_affinity: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PvcFacts:
    """A PersistentVolumeClaim and, when bound, its PersistentVolume."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pv: PvFacts | None = None


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


@dataclass(frozen=True)
class Finding:
    """One rule a workload, pod, volume or namespace breaks, with what was found and what is allowed."""

    namespace: str
    kind: str
    name: str
    rule: str
    message: str
    found: str
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What admission answers: Enforce rejects, Warn admits with warnings, DryRun admits silently and
    hands the findings back for the status report."""

    allowed: bool
    warnings: tuple[str, ...] = ()
    message: str = ""
    dry_run_report: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class NamespaceBindings:
    """Per region: the namespaces it enforces on, and those it shares with another region (which no
    region enforces on), each with every region that binds it."""

    governed: Mapping[str, tuple[str, ...]]
    conflicts: Mapping[str, Mapping[str, tuple[str, ...]]]


@dataclass(frozen=True)
class AuditResult:
    bound_namespaces: tuple[str, ...]
    violations: tuple[SovereigntyViolation, ...]
    violation_count: int
    compliant_workloads: int
    violating_workloads: int
    matching_nodes: int
    evictions: tuple[PodRef, ...] = ()
    notes: tuple[str, ...] = ()
    """What could not be judged (unknown node, volume without topology) or was deliberately not evicted."""


# --------------------------------------------------------------------------------------------------
# Small helpers for hostile input

_Req = tuple[str, str, tuple[str, ...]]
"""(key, operator, values) of a label selector or node selector requirement."""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _label(labels: Mapping[str, Any] | None, key: str) -> str | None:
    """A label value as a string, or None when absent (a null value counts as absent)."""
    if not isinstance(labels, Mapping):
        return None
    value = labels.get(key)
    return None if value is None else str(value)


def _show(value: object, limit: int = 80) -> str:
    """Render a value for a message: control characters escaped, long values cut."""
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list_text(values: Iterable[object], limit: int = MAX_NAMES_IN_MESSAGE) -> str:
    items = [_show(v) for v in values]
    more = len(items) - limit
    shown = ", ".join(items[:limit])
    return f"[{shown}, ... ({more} more)]" if more > 0 else f"[{shown}]"


def _cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _req_ok(operator: str, values: tuple[str, ...], value: str | None) -> bool:
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


def _satisfiable(reqs: Sequence[_Req]) -> bool:
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
    return any(all(_req_ok(op, vals, c) for _, op, vals in reqs) for c in candidates)


def _req_text(req: _Req) -> str:
    key, operator, values = req
    return f"{_show(key)} {_show(operator)} {_list_text(values)}" if values else f"{_show(key)} {operator}"


def _selector_reqs(selector: LabelSelector) -> list[_Req]:
    reqs: list[_Req] = [(k, "In", (v,)) for k, v in sorted(selector.match_labels.items())]
    reqs.extend((r.key, r.operator, tuple(r.values)) for r in selector.match_expressions)
    return reqs


def _parse_reqs(expressions: object) -> list[_Req]:
    reqs: list[_Req] = []
    for expression in _list(expressions):
        expr = _mapping(expression)
        key = expr.get("key")
        if key is None:
            continue
        values = tuple(str(v) for v in _list(expr.get("values")))
        reqs.append((str(key), str(expr.get("operator", "")), values))
    return reqs


def _required_terms(node_affinity_holder: Mapping[str, Any]) -> list[Any]:
    """The required nodeSelectorTerms of a pod spec's affinity.nodeAffinity."""
    node_affinity = _mapping(_mapping(node_affinity_holder.get("affinity")).get("nodeAffinity"))
    required = _mapping(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    return _list(required.get("nodeSelectorTerms"))


# --------------------------------------------------------------------------------------------------
# The region's nodes


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
    parts = [f"{_show(k)}={_show(v)}" for k, v in sorted(selector.match_labels.items())]
    parts.extend(_req_text((r.key, r.operator, tuple(r.values))) for r in selector.match_expressions)
    return ", ".join(parts) or "every node"


def matching_node_names(spec: SovereignRegionSpec, nodes: Mapping[str, NodeFacts]) -> list[str]:
    """Names of the nodes the region selects, sorted."""
    selector = effective_node_selector(spec)
    return sorted(name for name, node in nodes.items() if selector_matches(selector, node.labels))


def _region_constraints(
    spec: SovereignRegionSpec, nodes: Mapping[str, NodeFacts] | None
) -> dict[str, list[_Req]]:
    """Per node label key, what the region requires of it: the node selector's requirements, and for
    the region label (when the selector does not constrain it) the region itself plus the region
    label of every node the selector matches."""
    selector = effective_node_selector(spec)
    constraints: dict[str, list[_Req]] = {}
    for req in _selector_reqs(selector):
        constraints.setdefault(req[0], []).append(req)
    if REGION_LABEL not in constraints:
        values = {spec.region}
        for node in (nodes or {}).values():
            value = _label(node.labels, REGION_LABEL)
            if value is not None and selector_matches(selector, node.labels):
                values.add(value)
        constraints[REGION_LABEL] = [(REGION_LABEL, "In", tuple(sorted(values)))]
    if LEGACY_REGION_LABEL not in constraints:
        constraints[LEGACY_REGION_LABEL] = [
            (LEGACY_REGION_LABEL, op, vals) for _, op, vals in constraints[REGION_LABEL]
        ]
    return constraints


def region_constraints(
    spec: SovereignRegionSpec, nodes: Mapping[str, NodeFacts] | None = None
) -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
    """Per node label key, the (key, operator, values) requirements a value must meet to be inside the
    region: what admission, the audit and the generated ValidatingAdmissionPolicy all judge against."""
    return {key: list(reqs) for key, reqs in _region_constraints(spec, nodes).items()}


@dataclass(frozen=True)
class _Region:
    """A region prepared once per admission review or audit run: its node selector, what it requires
    of each node label key, the known nodes and which of them are inside."""

    spec: SovereignRegionSpec
    name: str
    selector_text: str
    constraints: Mapping[str, list[_Req]]
    nodes: Mapping[str, NodeFacts]
    inside: frozenset[str]


def _prepare(
    spec: SovereignRegionSpec, nodes: Mapping[str, NodeFacts] | None, region_name: str | None
) -> _Region:
    selector = effective_node_selector(spec)
    known = nodes or {}
    return _Region(
        spec=spec,
        name=region_display_name(spec, region_name),
        selector_text=selector_text(selector),
        constraints=_region_constraints(spec, known),
        nodes=known,
        inside=frozenset(name for name, node in known.items() if selector_matches(selector, node.labels)),
    )


def _inside(constraints: Sequence[_Req], value: str | None) -> bool:
    return all(_req_ok(op, vals, value) for _, op, vals in constraints)


def _asks_for(key: str, value: str) -> str:
    return (
        f"region {_show(value)}"
        if key in (REGION_LABEL, LEGACY_REGION_LABEL)
        else f"{_show(key)}={_show(value)}"
    )


# --------------------------------------------------------------------------------------------------
# 1. Namespace binding


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


# --------------------------------------------------------------------------------------------------
# 2. Node affinity


def region_match_expressions(spec: SovereignRegionSpec) -> list[dict[str, Any]]:
    """The region's node selector as NodeSelectorRequirements (matchLabels become In [value])."""
    expressions: list[dict[str, Any]] = []
    for key, operator, values in _selector_reqs(effective_node_selector(spec)):
        expression: dict[str, Any] = {"key": key, "operator": operator}
        if operator in ("In", "NotIn"):
            expression["values"] = list(values)
        expressions.append(expression)
    return expressions


def required_node_affinity(spec: SovereignRegionSpec) -> dict[str, Any]:
    """The NodeSelector (one term) that confines a pod to the region's nodes."""
    return {"nodeSelectorTerms": [{"matchExpressions": region_match_expressions(spec)}]}


def _expression_key(expression: object) -> tuple[str, str, tuple[str, ...]] | None:
    expr = _mapping(expression)
    if "key" not in expr:
        return None
    values = tuple(sorted(str(v) for v in _list(expr.get("values"))))
    return (str(expr.get("key")), str(expr.get("operator", "")), values)


def _term_is_empty(term: Mapping[str, Any]) -> bool:
    return not _list(term.get("matchExpressions")) and not _list(term.get("matchFields"))


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
    terms = _list(required.get("nodeSelectorTerms"))

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
            expressions = _list(term.get("matchExpressions"))
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


# --------------------------------------------------------------------------------------------------
# 3. Evaluating a pod template


@dataclass(frozen=True)
class _Subject:
    namespace: str
    kind: str
    name: str
    region: _Region

    @property
    def spec(self) -> SovereignRegionSpec:
        return self.region.spec

    def finding(self, rule: str, what: str, found: str, allowed: Iterable[str] = ()) -> Finding:
        return Finding(
            namespace=self.namespace,
            kind=self.kind,
            name=self.name,
            rule=rule,
            message=_cap(f"SovereignRegion {_show(self.region.name)}: {_show(self.kind)} {self.ref}{what}"),
            found=found,
            allowed=tuple(allowed),
        )

    @property
    def ref(self) -> str:
        return f"{_show(self.namespace)}/{_show(self.name)}" if self.kind != "Namespace" else _show(self.name)

    @property
    def bound_to(self) -> str:
        return f", but namespace {_show(self.namespace)} is bound to {_show(self.spec.region)}"


def _allowed_regions(constraints: Mapping[str, list[_Req]]) -> tuple[str, ...]:
    return tuple(v for _, op, vals in constraints[REGION_LABEL] if op == "In" for v in vals)


def _node_selector_findings(subject: _Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    """nodeSelector entries on a region key whose value lies outside the region."""
    constraints = subject.region.constraints
    node_selector = _mapping(pod_spec.get("nodeSelector"))
    findings = []
    for key in sorted(constraints):
        value = _label(node_selector, key)
        if value is not None and not _inside(constraints[key], value):
            findings.append(
                subject.finding(
                    Rule.REGION,
                    f" asks for {_asks_for(key, value)} (nodeSelector {_show(key)}={_show(value)})"
                    + subject.bound_to,
                    found=f"{key}={value}",
                    allowed=_allowed_regions(constraints),
                )
            )
    return findings


def _term_findings(subject: _Subject, term: Mapping[str, Any], where: str) -> list[Finding]:
    """Per region key of one required term: In values outside the region, else requirements that
    together exclude the region (NotIn, DoesNotExist, Gt/Lt). A term that contradicts itself matches
    no node at all, so it asks for no other region and is no finding."""
    constraints = subject.region.constraints
    by_key: dict[str, list[_Req]] = {}
    for req in _parse_reqs(term.get("matchExpressions")):
        if req[0] in constraints:
            by_key.setdefault(req[0], []).append(req)
    findings: list[Finding] = []
    for key in sorted(by_key):
        reqs = by_key[key]
        explicit = False
        for req in reqs:
            outside = [v for v in req[2] if req[1] == "In" and not _inside(constraints[key], v)]
            if outside:
                explicit = True
                asked = ", ".join(_asks_for(key, v) for v in outside[:MAX_NAMES_IN_MESSAGE])
                findings.append(
                    subject.finding(
                        Rule.REGION,
                        f" asks for {asked} ({where}: {_req_text(req)})" + subject.bound_to,
                        found=_req_text(req),
                        allowed=_allowed_regions(constraints),
                    )
                )
        if not explicit and _satisfiable(reqs) and not _satisfiable([*reqs, *constraints[key]]):
            text = " AND ".join(_req_text(r) for r in reqs)
            findings.append(
                subject.finding(
                    Rule.REGION,
                    f" asks for nodes outside region {_show(subject.spec.region)} ({where}: {text})"
                    + subject.bound_to,
                    found=text,
                    allowed=_allowed_regions(constraints),
                )
            )
    return findings


def _pinned_findings(subject: _Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    """spec.nodeName, or matchFields metadata.name In [...], naming a known node outside the region."""
    nodes, inside = subject.region.nodes, subject.region.inside
    if not nodes:
        return []
    pins: list[tuple[str, str]] = []
    for index, term in enumerate(_required_terms(pod_spec), start=1):
        for req in _parse_reqs(_mapping(term).get("matchFields")):
            if req[0] == "metadata.name" and req[1] == "In":
                where = f"required node affinity term {index}: {_req_text(req)}"
                pins.extend((node_name, where) for node_name in req[2])
    pinned = pod_spec.get("nodeName")
    if isinstance(pinned, str):
        pins.append((pinned, "spec.nodeName"))
    findings = []
    for node_name, where in pins:
        node = nodes.get(node_name)
        if node is not None and node_name not in inside:
            findings.append(_pinned_finding(subject, node, where))
    return findings


def _placement_findings(subject: _Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    findings = _node_selector_findings(subject, pod_spec)
    for index, term in enumerate(_required_terms(pod_spec), start=1):
        findings.extend(_term_findings(subject, _mapping(term), f"required node affinity term {index}"))
    findings.extend(_pinned_findings(subject, pod_spec))
    return findings


def _pinned_finding(subject: _Subject, node: NodeFacts, where: str) -> Finding:
    region = _label(node.labels, REGION_LABEL)
    in_region = f"in region {_show(region)}" if region is not None else "without a region label"
    return subject.finding(
        Rule.REGION,
        f" is pinned to node {_show(node.name)} {in_region} ({where})" + subject.bound_to,
        found=f"node {node.name}",
        allowed=(subject.region.selector_text,),
    )


def _gpu_findings(subject: _Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    allowed = subject.spec.allowed_gpu_products
    if not allowed:
        return []
    findings: list[Finding] = []
    but = f", but region {_show(subject.spec.region)} allows only {_list_text(allowed)}"
    product = _label(_mapping(pod_spec.get("nodeSelector")), GPU_PRODUCT_LABEL)
    if product is not None and product not in allowed:
        findings.append(
            subject.finding(
                Rule.GPU_PRODUCT,
                f" asks for GPU product {_show(product)} (nodeSelector {GPU_PRODUCT_LABEL}={_show(product)})"
                + but,
                found=product,
                allowed=allowed,
            )
        )
    for index, term in enumerate(_required_terms(pod_spec), start=1):
        for req in _parse_reqs(_mapping(term).get("matchExpressions")):
            if req[0] != GPU_PRODUCT_LABEL or req[1] != "In":
                continue
            outside = [v for v in req[2] if v not in allowed]
            if outside:
                findings.append(
                    subject.finding(
                        Rule.GPU_PRODUCT,
                        f" asks for GPU product {_list_text(outside)} "
                        f"(required node affinity term {index}: {_req_text(req)})" + but,
                        found=", ".join(outside),
                        allowed=allowed,
                    )
                )
    node_name, nodes = pod_spec.get("nodeName"), subject.region.nodes
    if nodes and isinstance(node_name, str) and node_name in nodes and gpus_in_pod_spec(pod_spec) > 0:
        product = _label(nodes[node_name].labels, GPU_PRODUCT_LABEL)
        if product is not None and product not in allowed:
            findings.append(
                subject.finding(
                    Rule.GPU_PRODUCT,
                    f" is pinned to node {_show(node_name)} with GPU product {_show(product)} (spec.nodeName)"
                    + but,
                    found=product,
                    allowed=allowed,
                )
            )
    return findings


def _classification_findings(
    subject: _Subject, sources: Sequence[tuple[str, Mapping[str, str] | None]]
) -> list[Finding]:
    """Data classification from the first sources that carry the label; every disallowed value found
    is a finding. ``sources`` are (description, labels), the namespace last as the fallback."""
    allowed = subject.spec.allowed_data_classifications
    if not allowed:
        return []
    label = subject.spec.data_classification_label
    found: dict[str, list[str]] = {}
    own, fallback = sources[:-1], sources[-1:]
    for description, labels in own:
        value = _label(labels, label)
        if value is not None:
            found.setdefault(value, []).append(description)
    if not found:
        for description, labels in fallback:
            value = _label(labels, label)
            if value is not None:
                found.setdefault(value, []).append(description)
    return [
        subject.finding(
            Rule.DATA_CLASSIFICATION,
            f" carries data classification {_show(value)} (label {_show(label)} on {' and '.join(where)})"
            f", but region {_show(subject.spec.region)} allows only {_list_text(allowed)}",
            found=value,
            allowed=allowed,
        )
        for value, where in found.items()
        if value not in allowed
    ]


def evaluate_pod_template(
    namespace: str,
    kind: str,
    name: str,
    *,
    labels: Mapping[str, str] | None,
    pod_spec: Mapping[str, Any] | None,
    namespace_labels: Mapping[str, str] | None,
    region_spec: SovereignRegionSpec,
    nodes_by_name: Mapping[str, NodeFacts] | None = None,
    template_labels: Mapping[str, str] | None = None,
    region_name: str | None = None,
) -> list[Finding]:
    """What a workload (or bare pod) explicitly asks for that its namespace's region does not allow.

    Region: nodeSelector or required node affinity on the region label (or a key of the region's node
    selector) naming a value outside the region, or a term that excludes the region altogether
    (NotIn, DoesNotExist, ...); with ``nodes_by_name``, also spec.nodeName or matchFields pinning to
    a node outside the region. GPUProduct: nodeSelector/affinity on nvidia.com/gpu.product naming a
    product not allowed. DataClassification: the label on the pod template and the workload (or else
    on the namespace) not allowed. Preferred (soft) affinity is not judged: it cannot place a pod
    outside a region its required affinity confines it to. A workload that says nothing is no
    finding: admission confines it with ``merge_required_affinity``."""
    subject = _Subject(namespace, kind, name, _prepare(region_spec, nodes_by_name, region_name))
    return _evaluate(subject, labels, pod_spec, namespace_labels, template_labels)


def _evaluate(
    subject: _Subject,
    labels: Mapping[str, str] | None,
    pod_spec: Mapping[str, Any] | None,
    namespace_labels: Mapping[str, str] | None,
    template_labels: Mapping[str, str] | None,
) -> list[Finding]:
    spec = _mapping(pod_spec)
    sources: list[tuple[str, Mapping[str, str] | None]] = []
    if template_labels is not None:
        sources.append(("the pod template", template_labels))
    sources.append((f"the {_show(subject.kind)}", labels))
    sources.append((f"namespace {_show(subject.namespace)}", namespace_labels))
    return [
        *_placement_findings(subject, spec),
        *_gpu_findings(subject, spec),
        *_classification_findings(subject, sources),
    ]


# --------------------------------------------------------------------------------------------------
# 4. Admission


def admission_decision(mode: EnforcementMode, findings: Sequence[Finding]) -> Decision:
    """Enforce rejects with every finding in the message; Warn admits with one warning per finding;
    DryRun admits without a word to the user and returns the findings for the status report."""
    if not findings:
        return Decision(allowed=True)
    messages = [f.message for f in findings]
    if mode == EnforcementMode.ENFORCE:
        return Decision(allowed=False, message=_cap("; ".join(messages)))
    if mode == EnforcementMode.WARN:
        warnings = [_cap(m, 1024) for m in messages[:MAX_WARNINGS]]
        if len(messages) > MAX_WARNINGS:
            warnings.append(f"... and {len(messages) - MAX_WARNINGS} more sovereignty finding(s)")
        return Decision(allowed=True, warnings=tuple(warnings))
    return Decision(allowed=True, dry_run_report=tuple(findings))


def namespace_conflict_decision(namespace: str, region_names: Sequence[str]) -> Decision:
    """A namespace bound to several regions is governed by none: admit, but say so."""
    return Decision(
        allowed=True,
        warnings=(
            _cap(
                f"namespace {_show(namespace)} is bound to several SovereignRegions "
                f"{_list_text(sorted(region_names))}; none of them enforces on it until the conflict "
                "is resolved",
                1024,
            ),
        ),
    )


# --------------------------------------------------------------------------------------------------
# 5. Audit


def _is_zone_like(key: str) -> bool:
    return key in (ZONE_LABEL, LEGACY_ZONE_LABEL, HOSTNAME_LABEL) or key.endswith(("/zone", "/region"))


def _pv_terms(pv: PvFacts) -> list[list[_Req]]:
    """The PV's required node affinity terms, or, for a PV without node affinity, its legacy topology
    labels as one term."""
    required = _mapping(_mapping(pv.node_affinity).get("required"))
    terms = [
        _parse_reqs(_mapping(t).get("matchExpressions")) for t in _list(required.get("nodeSelectorTerms"))
    ]
    terms = [t for t in terms if t]
    if terms:
        return terms
    labelled: list[_Req] = [
        (key, "In", (str(value),))
        for key, value in sorted(pv.labels.items())
        if value is not None and (key in (REGION_LABEL, LEGACY_REGION_LABEL) or _is_zone_like(key))
    ]
    return [labelled] if labelled else []


def _pv_outside(region: _Region, pv: PvFacts) -> tuple[str | None, bool]:
    """(where the PV's data lives outside the region, or None; whether its topology was judged)."""
    constraints = region.constraints
    judged = False
    for index, term in enumerate(_pv_terms(pv), start=1):
        region_reqs = [r for r in term if r[0] in constraints]
        if region_reqs:
            judged = True
            for req in region_reqs:
                outside = [v for v in req[2] if req[1] == "In" and not _inside(constraints[req[0]], v)]
                if outside or not _satisfiable([req, *constraints[req[0]]]):
                    return f"node affinity term {index}: {_req_text(req)}", True
            continue
        topology = [r for r in term if r[1] == "In" and _is_zone_like(r[0])]
        if not topology:
            continue
        reachable = [
            (name, node)
            for name, node in sorted(region.nodes.items())
            if all(_req_ok(op, vals, _label(node.labels, key)) for key, op, vals in term)
        ]
        if not reachable:
            continue  # no node in that zone: nothing to say where it is
        judged = True
        for name, node in reachable:
            if name not in region.inside:
                label = _label(node.labels, REGION_LABEL)
                region_text = f"region {_show(label)}" if label is not None else f"node {_show(node.name)}"
                return (
                    f"node affinity term {index}: {_req_text(topology[0])}, which is in {region_text}",
                    True,
                )
    return None, judged


@dataclass
class _Audit:
    """What one audit run knows, and what it has found so far."""

    region: _Region
    bound: Mapping[str, Mapping[str, str]]
    findings: list[Finding] = field(default_factory=list)
    violating: set[tuple[str, str, str]] = field(default_factory=set)
    evictions: list[PodRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _audit_pods(out: _Audit, pods: Sequence[PodFacts]) -> None:
    spec, bound, nodes = out.region.spec, out.bound, out.region.nodes
    evict = spec.evict_out_of_region_pods and spec.enforcement_mode == EnforcementMode.ENFORCE
    for pod in pods:
        if pod.namespace not in bound or not pod.node_name or pod.phase in TERMINAL_PHASES:
            continue  # unscheduled or finished pods are not judged on placement
        node = nodes.get(pod.node_name)
        subject = _Subject(pod.namespace, "Pod", pod.name, out.region)
        if node is None:
            out.notes.append(f"Pod {subject.ref} runs on node {_show(pod.node_name)}, which is not known")
            continue
        pod_findings: list[Finding] = []
        if pod.node_name not in out.region.inside:
            pod_findings.append(_running_outside(subject, node))
            if evict and not pod.terminating:
                if pod.workload is None:
                    out.notes.append(f"Pod {subject.ref} is not evicted: no controller would recreate it")
                elif pod.workload[0] not in NEVER_EVICTED_KINDS:
                    out.evictions.append(PodRef(pod.namespace, pod.name))
        product = _label(node.labels, GPU_PRODUCT_LABEL)
        allowed = spec.allowed_gpu_products
        if pod.gpus > 0 and allowed and product is not None and product not in allowed:
            pod_findings.append(
                subject.finding(
                    Rule.GPU_PRODUCT,
                    f" runs on node {_show(node.name)} with GPU product {_show(product)}, but region "
                    f"{_show(spec.region)} allows only {_list_text(allowed)}",
                    found=product,
                    allowed=allowed,
                )
            )
        out.findings.extend(pod_findings)
        if pod_findings and pod.workload is not None:
            out.violating.add((pod.namespace, pod.workload[0], pod.workload[1]))


def _running_outside(subject: _Subject, node: NodeFacts) -> Finding:
    region = _label(node.labels, REGION_LABEL)
    where = f"in region {_show(region)}" if region is not None else "without a region label"
    return subject.finding(
        Rule.REGION,
        f" runs on node {_show(node.name)} {where}, outside the region's nodes "
        f"({subject.region.selector_text})" + subject.bound_to,
        found=f"node {node.name}" + (f" (region {region})" if region is not None else ""),
        allowed=(subject.region.selector_text,),
    )


def _audit_pvcs(out: _Audit, pvcs: Sequence[PvcFacts]) -> None:
    spec, bound = out.region.spec, out.bound
    for pvc in pvcs:
        if pvc.namespace not in bound:
            continue
        subject = _Subject(pvc.namespace, "PersistentVolumeClaim", pvc.name, out.region)
        out.findings.extend(
            _classification_findings(
                subject,
                [
                    ("the PersistentVolumeClaim", pvc.labels),
                    (f"namespace {_show(pvc.namespace)}", bound[pvc.namespace]),
                ],
            )
        )
        if pvc.pv is None:
            continue  # unbound (e.g. WaitForFirstConsumer): the pod's placement decides, judged there
        where, judged = _pv_outside(out.region, pvc.pv)
        if where is not None:
            out.findings.append(
                subject.finding(
                    Rule.REGION,
                    f" is bound to PersistentVolume {_show(pvc.pv.name)} outside region "
                    f"{_show(spec.region)} ({where})" + subject.bound_to,
                    found=where,
                    allowed=(out.region.selector_text,),
                )
            )
        elif not judged:
            out.notes.append(
                f"PersistentVolumeClaim {subject.ref}: PersistentVolume {_show(pvc.pv.name)} has no "
                "topology, so where its data lives cannot be judged"
            )


def _violations(
    findings: Sequence[Finding], previous: Sequence[SovereigntyViolation], now: datetime
) -> list[SovereigntyViolation]:
    """One violation per (namespace, kind, name, rule), sorted by that key, ``since`` kept from the
    previous audit when the same violation was already there."""
    since = {(v.namespace, v.kind, v.name, v.rule): v.since for v in previous}
    grouped: dict[tuple[str, str, str, str], list[Finding]] = {}
    for finding in findings:
        grouped.setdefault((finding.namespace, finding.kind, finding.name, finding.rule), []).append(finding)
    violations = []
    for key in sorted(grouped):
        group = grouped[key]
        more = f" (and {len(group) - 1} more)" if len(group) > 1 else ""
        message = _cap(group[0].message, MAX_VIOLATION_MESSAGE - len(more)) + more
        violations.append(
            SovereigntyViolation(
                namespace=key[0],
                kind=key[1],
                name=key[2],
                rule=key[3],
                message=message,
                since=since.get(key, now),
            )
        )
    return violations


def audit(
    region_spec: SovereignRegionSpec,
    *,
    bound_namespaces: Mapping[str, Mapping[str, str]],
    workloads: Sequence[WorkloadFacts],
    pods: Sequence[PodFacts] = (),
    pvcs: Sequence[PvcFacts] = (),
    nodes: Mapping[str, NodeFacts],
    previous_violations: Sequence[SovereigntyViolation] = (),
    now: datetime,
    cap: int = MAX_VIOLATIONS,
    region_name: str | None = None,
) -> AuditResult:
    """Audit what already runs and is stored in the namespaces the region governs.

    ``bound_namespaces`` maps each governed namespace (conflicted ones excluded) to its labels.
    Workloads are judged as admission would judge them; a running pod by its node (outside the
    region's node selector is a violation, unscheduled pods are not judged); a claim by its label and
    its PersistentVolume's topology; the namespace by its label. Evictions are listed only in Enforce
    mode with evictOutOfRegionPods, only for placed, live, controller-owned pods on out-of-region
    nodes (not DaemonSet or static pods, which would come straight back)."""
    bound = dict(bound_namespaces)
    out = _Audit(_prepare(region_spec, nodes, region_name), bound)

    for namespace in sorted(bound):
        subject = _Subject(namespace, "Namespace", namespace, out.region)
        out.findings.extend(
            _classification_findings(subject, [("the Namespace", bound[namespace]), ("", None)])
        )

    governed = [w for w in workloads if w.namespace in bound]
    for workload in governed:
        found = _evaluate(
            _Subject(workload.namespace, workload.kind, workload.name, out.region),
            workload.labels,
            workload.pod_spec,
            bound[workload.namespace],
            workload.template_labels if workload.kind != "Pod" else None,
        )
        out.findings.extend(found)
        if found:
            out.violating.add((workload.namespace, workload.kind, workload.name))

    _audit_pods(out, pods)
    _audit_pvcs(out, pvcs)

    violations = _violations(out.findings, previous_violations, now)
    workload_keys = {(w.namespace, w.kind, w.name) for w in governed}
    violating = len(workload_keys & out.violating)
    return AuditResult(
        bound_namespaces=tuple(sorted(bound)),
        violations=tuple(violations[: max(cap, 0)]),
        violation_count=len(violations),
        compliant_workloads=len(workload_keys) - violating,
        violating_workloads=violating,
        matching_nodes=len(out.region.inside),
        evictions=tuple(sorted(set(out.evictions), key=lambda p: (p.namespace, p.name))),
        notes=tuple(out.notes[:MAX_NOTES]),
    )


# --------------------------------------------------------------------------------------------------
# 6. Status


def plan_region_status(
    spec: SovereignRegionSpec,
    *,
    generation: int,
    current_status: SovereignRegionStatus | None,
    audit_result: AuditResult,
    namespace_conflicts: Mapping[str, Sequence[str]],
    matching_nodes: int,
    now: datetime,
    region_name: str | None = None,
) -> SovereignRegionStatus:
    """The region's status: audit counts and violations, and the Ready, Compliant and
    NamespaceConflict conditions (lastTransitionTime moves only when a status flips).

    ``namespace_conflicts`` maps each namespace this region shares with other regions to every
    region binding it; ``matching_nodes`` is the number of nodes the node selector selects."""
    name = region_display_name(spec, region_name)
    status = (current_status or SovereignRegionStatus()).model_copy(deep=True)
    status.observed_generation = generation
    status.bound_namespaces = list(audit_result.bound_namespaces[:MAX_LISTED_NAMESPACES])
    status.bound_namespace_count = len(audit_result.bound_namespaces)
    status.matching_nodes = matching_nodes
    status.compliant_workloads = audit_result.compliant_workloads
    status.violating_workloads = audit_result.violating_workloads
    status.violations = list(audit_result.violations[:MAX_VIOLATIONS])
    status.violation_count = audit_result.violation_count
    status.last_audit_time = now

    selector = selector_text(effective_node_selector(spec))
    if matching_nodes == 0:
        ready = ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.FALSE,
            SovereigntyReason.NO_MATCHING_NODES,
            f"SovereignRegion {_show(name)} selects no node ({selector}); "
            "workloads bound to it cannot be scheduled",
        )
    else:
        ready = ConditionUpdate(
            ConditionType.READY,
            ConditionStatus.TRUE,
            Reason.RECONCILED,
            f"{matching_nodes} node(s) match {selector}; "
            f"{len(audit_result.bound_namespaces)} namespace(s) bound",
        )

    mode = spec.enforcement_mode.value
    if audit_result.violation_count == 0:
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.TRUE,
            SovereigntyReason.NO_VIOLATIONS,
            f"{audit_result.compliant_workloads} workload(s) compliant, 0 violating ({mode})",
        )
    else:
        rules = Counter(v.rule for v in audit_result.violations)
        by_rule = ", ".join(f"{rule}: {count}" for rule, count in sorted(rules.items()))
        listed = f" (of the {len(audit_result.violations)} listed: {by_rule})" if by_rule else ""
        compliant = ConditionUpdate(
            ConditionType.COMPLIANT,
            ConditionStatus.FALSE,
            SovereigntyReason.VIOLATIONS_FOUND,
            f"{audit_result.compliant_workloads} workload(s) compliant, {audit_result.violating_workloads} "
            f"violating; {audit_result.violation_count} violation(s){listed} ({mode})",
        )

    if namespace_conflicts:
        parts = []
        names = sorted(namespace_conflicts)
        for namespace in names[:MAX_NAMES_IN_MESSAGE]:
            others = sorted(r for r in namespace_conflicts[namespace] if r != name)
            parts.append(f"{_show(namespace)} (also bound to {', '.join(_show(o) for o in others)})")
        more = f" and {len(names) - MAX_NAMES_IN_MESSAGE} more" if len(names) > MAX_NAMES_IN_MESSAGE else ""
        conflict = ConditionUpdate(
            ConditionType.NAMESPACE_CONFLICT,
            ConditionStatus.TRUE,
            Reason.SELECTOR_OVERLAP,
            _cap(
                f"{len(names)} namespace(s) bound to more than one SovereignRegion: "
                f"{'; '.join(parts)}{more}; no region enforces on them until the conflict is resolved"
            ),
        )
    else:
        conflict = ConditionUpdate(
            ConditionType.NAMESPACE_CONFLICT,
            ConditionStatus.FALSE,
            Reason.NO_OVERLAP,
            "no bound namespace is selected by another SovereignRegion",
        )
    status.conditions = apply_conditions(status.conditions, [ready, compliant, conflict], generation, now)
    return status
