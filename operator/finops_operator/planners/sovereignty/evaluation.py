"""What a workload (or bare pod) explicitly asks for that its namespace's region does not allow."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finops_operator.api.common import GPU_PRODUCT_LABEL
from finops_operator.api.sovereignregion import REGION_LABEL, SovereignRegionSpec
from finops_operator.planners.sovereignty.facts import ClusterNode, Finding, Rule, TemplatedWorkload
from finops_operator.planners.sovereignty.region import PreparedRegion, asks_for, meets
from finops_operator.planners.sovereignty.requirements import (
    Req,
    parse_reqs,
    req_text,
    required_terms,
    satisfiable,
)
from finops_operator.planners.sovereignty.text import (
    MAX_NAMES_IN_MESSAGE,
    cap_text,
    label_value,
    list_text,
    mapping_of,
    show,
)
from finops_operator.workloads.resources import gpus_in_pod_spec


@dataclass(frozen=True)
class Subject:
    namespace: str
    kind: str
    name: str
    region: PreparedRegion

    @property
    def spec(self) -> SovereignRegionSpec:
        return self.region.spec

    def finding(self, rule: str, what: str, found: str, allowed: Iterable[str] = ()) -> Finding:
        return Finding(
            namespace=self.namespace,
            kind=self.kind,
            name=self.name,
            rule=rule,
            message=cap_text(f"SovereignRegion {show(self.region.name)}: {show(self.kind)} {self.ref}{what}"),
            found=found,
            allowed=tuple(allowed),
        )

    @property
    def ref(self) -> str:
        return f"{show(self.namespace)}/{show(self.name)}" if self.kind != "Namespace" else show(self.name)

    @property
    def bound_to(self) -> str:
        return f", but namespace {show(self.namespace)} is bound to {show(self.spec.region)}"


def _allowed_regions(constraints: Mapping[str, list[Req]]) -> tuple[str, ...]:
    return tuple(v for _, op, vals in constraints[REGION_LABEL] if op == "In" for v in vals)


def _node_selector_findings(subject: Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    """nodeSelector entries on a region key whose value lies outside the region."""
    constraints = subject.region.constraints
    node_selector = mapping_of(pod_spec.get("nodeSelector"))
    findings = []
    for key in sorted(constraints):
        value = label_value(node_selector, key)
        if value is not None and not meets(constraints[key], value):
            findings.append(
                subject.finding(
                    Rule.REGION,
                    f" asks for {asks_for(key, value)} (nodeSelector {show(key)}={show(value)})"
                    + subject.bound_to,
                    found=f"{key}={value}",
                    allowed=_allowed_regions(constraints),
                )
            )
    return findings


def _term_findings(subject: Subject, term: Mapping[str, Any], where: str) -> list[Finding]:
    """Per region key of one required term: In values outside the region, else requirements that
    together exclude the region (NotIn, DoesNotExist, Gt/Lt). A term that contradicts itself matches
    no node at all, so it asks for no other region and is no finding."""
    constraints = subject.region.constraints
    by_key: dict[str, list[Req]] = {}
    for req in parse_reqs(term.get("matchExpressions")):
        if req[0] in constraints:
            by_key.setdefault(req[0], []).append(req)
    findings: list[Finding] = []
    for key in sorted(by_key):
        reqs = by_key[key]
        explicit = False
        for req in reqs:
            outside = [v for v in req[2] if req[1] == "In" and not meets(constraints[key], v)]
            if outside:
                explicit = True
                asked = ", ".join(asks_for(key, v) for v in outside[:MAX_NAMES_IN_MESSAGE])
                findings.append(
                    subject.finding(
                        Rule.REGION,
                        f" asks for {asked} ({where}: {req_text(req)})" + subject.bound_to,
                        found=req_text(req),
                        allowed=_allowed_regions(constraints),
                    )
                )
        if not explicit and satisfiable(reqs) and not satisfiable([*reqs, *constraints[key]]):
            text = " AND ".join(req_text(r) for r in reqs)
            findings.append(
                subject.finding(
                    Rule.REGION,
                    f" asks for nodes outside region {show(subject.spec.region)} ({where}: {text})"
                    + subject.bound_to,
                    found=text,
                    allowed=_allowed_regions(constraints),
                )
            )
    return findings


def _pinned_findings(subject: Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    """spec.nodeName, or matchFields metadata.name In [...], naming a known node outside the region."""
    nodes, inside = subject.region.nodes, subject.region.inside
    if not nodes:
        return []
    pins: list[tuple[str, str]] = []
    for index, term in enumerate(required_terms(pod_spec), start=1):
        for req in parse_reqs(mapping_of(term).get("matchFields")):
            if req[0] == "metadata.name" and req[1] == "In":
                where = f"required node affinity term {index}: {req_text(req)}"
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


def _placement_findings(subject: Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    findings = _node_selector_findings(subject, pod_spec)
    for index, term in enumerate(required_terms(pod_spec), start=1):
        findings.extend(_term_findings(subject, mapping_of(term), f"required node affinity term {index}"))
    findings.extend(_pinned_findings(subject, pod_spec))
    return findings


def _pinned_finding(subject: Subject, node: ClusterNode, where: str) -> Finding:
    region = label_value(node.labels, REGION_LABEL)
    in_region = f"in region {show(region)}" if region is not None else "without a region label"
    return subject.finding(
        Rule.REGION,
        f" is pinned to node {show(node.name)} {in_region} ({where})" + subject.bound_to,
        found=f"node {node.name}",
        allowed=(subject.region.selector_text,),
    )


def _gpu_findings(subject: Subject, pod_spec: Mapping[str, Any]) -> list[Finding]:
    allowed = subject.spec.allowed_gpu_products
    if not allowed:
        return []
    findings: list[Finding] = []
    but = f", but region {show(subject.spec.region)} allows only {list_text(allowed)}"
    product = label_value(mapping_of(pod_spec.get("nodeSelector")), GPU_PRODUCT_LABEL)
    if product is not None and product not in allowed:
        findings.append(
            subject.finding(
                Rule.GPU_PRODUCT,
                f" asks for GPU product {show(product)} (nodeSelector {GPU_PRODUCT_LABEL}={show(product)})"
                + but,
                found=product,
                allowed=allowed,
            )
        )
    for index, term in enumerate(required_terms(pod_spec), start=1):
        for req in parse_reqs(mapping_of(term).get("matchExpressions")):
            if req[0] != GPU_PRODUCT_LABEL or req[1] != "In":
                continue
            outside = [v for v in req[2] if v not in allowed]
            if outside:
                findings.append(
                    subject.finding(
                        Rule.GPU_PRODUCT,
                        f" asks for GPU product {list_text(outside)} "
                        f"(required node affinity term {index}: {req_text(req)})" + but,
                        found=", ".join(outside),
                        allowed=allowed,
                    )
                )
    node_name, nodes = pod_spec.get("nodeName"), subject.region.nodes
    if nodes and isinstance(node_name, str) and node_name in nodes and gpus_in_pod_spec(pod_spec) > 0:
        product = label_value(nodes[node_name].labels, GPU_PRODUCT_LABEL)
        if product is not None and product not in allowed:
            findings.append(
                subject.finding(
                    Rule.GPU_PRODUCT,
                    f" is pinned to node {show(node_name)} with GPU product {show(product)} (spec.nodeName)"
                    + but,
                    found=product,
                    allowed=allowed,
                )
            )
    return findings


def classification_findings(
    subject: Subject, sources: Sequence[tuple[str, Mapping[str, str] | None]]
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
        value = label_value(labels, label)
        if value is not None:
            found.setdefault(value, []).append(description)
    if not found:
        for description, labels in fallback:
            value = label_value(labels, label)
            if value is not None:
                found.setdefault(value, []).append(description)
    return [
        subject.finding(
            Rule.DATA_CLASSIFICATION,
            f" carries data classification {show(value)} (label {show(label)} on {' and '.join(where)})"
            f", but region {show(subject.spec.region)} allows only {list_text(allowed)}",
            found=value,
            allowed=allowed,
        )
        for value, where in found.items()
        if value not in allowed
    ]


def evaluate_pod_template(
    workload: TemplatedWorkload, region: PreparedRegion, namespace_labels: Mapping[str, str] | None
) -> list[Finding]:
    """What a workload (or bare pod) explicitly asks for that its namespace's region does not allow.

    Region: nodeSelector or required node affinity on the region label (or a key of the region's node
    selector) naming a value outside the region, or a term that excludes the region altogether
    (NotIn, DoesNotExist, ...); with known nodes, also spec.nodeName or matchFields pinning to a node
    outside the region. GPUProduct: nodeSelector/affinity on nvidia.com/gpu.product naming a product
    not allowed. DataClassification: the label on the pod template and the workload (or else on the
    namespace) not allowed. Preferred (soft) affinity is not judged: it cannot place a pod outside a
    region its required affinity confines it to. A workload that says nothing is no finding:
    admission confines it with ``merge_required_affinity``."""
    subject = Subject(workload.namespace, workload.kind, workload.name, region)
    spec = mapping_of(workload.pod_spec)
    sources: list[tuple[str, Mapping[str, str] | None]] = []
    if workload.kind != "Pod":
        sources.append(("the pod template", workload.template_labels))
    sources.append((f"the {show(subject.kind)}", workload.labels))
    sources.append((f"namespace {show(subject.namespace)}", namespace_labels))
    return [
        *_placement_findings(subject, spec),
        *_gpu_findings(subject, spec),
        *classification_findings(subject, sources),
    ]
