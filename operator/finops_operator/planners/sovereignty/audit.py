"""The continuous audit: what already runs and is stored in the namespaces a region governs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from finops_operator.api.common import GPU_PRODUCT_LABEL, EnforcementMode
from finops_operator.api.sovereignregion import REGION_LABEL, SovereigntyViolation
from finops_operator.planners.sovereignty.evaluation import (
    Subject,
    classification_findings,
    evaluate_pod_template,
)
from finops_operator.planners.sovereignty.facts import (
    ClusterNode,
    Finding,
    Inventory,
    PlacedPod,
    PodRef,
    PvcFacts,
    PvFacts,
    Rule,
)
from finops_operator.planners.sovereignty.region import PreparedRegion, meets
from finops_operator.planners.sovereignty.requirements import (
    HOSTNAME_LABEL,
    LEGACY_REGION_LABEL,
    LEGACY_ZONE_LABEL,
    ZONE_LABEL,
    Req,
    parse_reqs,
    req_ok,
    req_text,
    satisfiable,
)
from finops_operator.planners.sovereignty.text import (
    MAX_NOTES,
    MAX_VIOLATION_MESSAGE,
    MAX_VIOLATIONS,
    cap_text,
    label_value,
    list_of,
    list_text,
    mapping_of,
    show,
)

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
NEVER_EVICTED_KINDS = frozenset({"DaemonSet", "Node"})
"""DaemonSet pods come back on the same node, static pods cannot be evicted: evicting them only churns."""


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


def _is_zone_like(key: str) -> bool:
    return key in (ZONE_LABEL, LEGACY_ZONE_LABEL, HOSTNAME_LABEL) or key.endswith(("/zone", "/region"))


def _pv_terms(pv: PvFacts) -> list[list[Req]]:
    """The PV's required node affinity terms, or, for a PV without node affinity, its legacy topology
    labels as one term."""
    required = mapping_of(mapping_of(pv.node_affinity).get("required"))
    terms = [
        parse_reqs(mapping_of(t).get("matchExpressions")) for t in list_of(required.get("nodeSelectorTerms"))
    ]
    terms = [t for t in terms if t]
    if terms:
        return terms
    labelled: list[Req] = [
        (key, "In", (str(value),))
        for key, value in sorted(pv.labels.items())
        if value is not None and (key in (REGION_LABEL, LEGACY_REGION_LABEL) or _is_zone_like(key))
    ]
    return [labelled] if labelled else []


def _pv_outside(region: PreparedRegion, pv: PvFacts) -> tuple[str | None, bool]:
    """(where the PV's data lives outside the region, or None; whether its topology was judged)."""
    constraints = region.constraints
    judged = False
    for index, term in enumerate(_pv_terms(pv), start=1):
        region_reqs = [r for r in term if r[0] in constraints]
        if region_reqs:
            judged = True
            for req in region_reqs:
                outside = [v for v in req[2] if req[1] == "In" and not meets(constraints[req[0]], v)]
                if outside or not satisfiable([req, *constraints[req[0]]]):
                    return f"node affinity term {index}: {req_text(req)}", True
            continue
        topology = [r for r in term if r[1] == "In" and _is_zone_like(r[0])]
        if not topology:
            continue
        reachable = [
            (name, node)
            for name, node in sorted(region.nodes.items())
            if all(req_ok(op, vals, label_value(node.labels, key)) for key, op, vals in term)
        ]
        if not reachable:
            continue  # no node in that zone: nothing to say where it is
        judged = True
        for name, node in reachable:
            if name not in region.inside:
                label = label_value(node.labels, REGION_LABEL)
                region_text = f"region {show(label)}" if label is not None else f"node {show(node.name)}"
                return (
                    f"node affinity term {index}: {req_text(topology[0])}, which is in {region_text}",
                    True,
                )
    return None, judged


@dataclass
class _Audit:
    """What one audit run knows, and what it has found so far."""

    region: PreparedRegion
    bound: Mapping[str, Mapping[str, str]]
    findings: list[Finding] = field(default_factory=list)
    violating: set[tuple[str, str, str]] = field(default_factory=set)
    evictions: list[PodRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _audit_pods(out: _Audit, pods: Sequence[PlacedPod]) -> None:
    spec, bound, nodes = out.region.spec, out.bound, out.region.nodes
    evict = spec.evict_out_of_region_pods and spec.enforcement_mode == EnforcementMode.ENFORCE
    for pod in pods:
        if pod.namespace not in bound or not pod.node_name or pod.phase in TERMINAL_PHASES:
            continue  # unscheduled or finished pods are not judged on placement
        node = nodes.get(pod.node_name)
        subject = Subject(pod.namespace, "Pod", pod.name, out.region)
        if node is None:
            out.notes.append(f"Pod {subject.ref} runs on node {show(pod.node_name)}, which is not known")
            continue
        pod_findings: list[Finding] = []
        if pod.node_name not in out.region.inside:
            pod_findings.append(_running_outside(subject, node))
            if evict and not pod.terminating:
                if pod.workload is None:
                    out.notes.append(f"Pod {subject.ref} is not evicted: no controller would recreate it")
                elif pod.workload[0] not in NEVER_EVICTED_KINDS:
                    out.evictions.append(PodRef(pod.namespace, pod.name))
        product = label_value(node.labels, GPU_PRODUCT_LABEL)
        allowed = spec.allowed_gpu_products
        if pod.gpus > 0 and allowed and product is not None and product not in allowed:
            pod_findings.append(
                subject.finding(
                    Rule.GPU_PRODUCT,
                    f" runs on node {show(node.name)} with GPU product {show(product)}, but region "
                    f"{show(spec.region)} allows only {list_text(allowed)}",
                    found=product,
                    allowed=allowed,
                )
            )
        out.findings.extend(pod_findings)
        if pod_findings and pod.workload is not None:
            out.violating.add((pod.namespace, pod.workload[0], pod.workload[1]))


def _running_outside(subject: Subject, node: ClusterNode) -> Finding:
    region = label_value(node.labels, REGION_LABEL)
    where = f"in region {show(region)}" if region is not None else "without a region label"
    return subject.finding(
        Rule.REGION,
        f" runs on node {show(node.name)} {where}, outside the region's nodes "
        f"({subject.region.selector_text})" + subject.bound_to,
        found=f"node {node.name}" + (f" (region {region})" if region is not None else ""),
        allowed=(subject.region.selector_text,),
    )


def _audit_pvcs(out: _Audit, pvcs: Sequence[PvcFacts]) -> None:
    spec, bound = out.region.spec, out.bound
    for pvc in pvcs:
        if pvc.namespace not in bound:
            continue
        subject = Subject(pvc.namespace, "PersistentVolumeClaim", pvc.name, out.region)
        out.findings.extend(
            classification_findings(
                subject,
                [
                    ("the PersistentVolumeClaim", pvc.labels),
                    (f"namespace {show(pvc.namespace)}", bound[pvc.namespace]),
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
                    f" is bound to PersistentVolume {show(pvc.pv.name)} outside region "
                    f"{show(spec.region)} ({where})" + subject.bound_to,
                    found=where,
                    allowed=(out.region.selector_text,),
                )
            )
        elif not judged:
            out.notes.append(
                f"PersistentVolumeClaim {subject.ref}: PersistentVolume {show(pvc.pv.name)} has no "
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
        message = cap_text(group[0].message, MAX_VIOLATION_MESSAGE - len(more)) + more
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
    region: PreparedRegion,
    inventory: Inventory,
    *,
    previous_violations: Sequence[SovereigntyViolation] = (),
    now: datetime,
    cap: int = MAX_VIOLATIONS,
) -> AuditResult:
    """Audit what already runs and is stored in the namespaces the region governs.

    ``inventory.namespaces`` maps each governed namespace (conflicted ones excluded) to its labels.
    Workloads are judged as admission would judge them; a running pod by its node (outside the
    region's node selector is a violation, unscheduled pods are not judged); a claim by its label and
    its PersistentVolume's topology; the namespace by its label. Evictions are listed only in Enforce
    mode with evictOutOfRegionPods, only for placed, live, controller-owned pods on out-of-region
    nodes (not DaemonSet or static pods, which would come straight back)."""
    bound = dict(inventory.namespaces)
    out = _Audit(region, bound)

    for namespace in sorted(bound):
        subject = Subject(namespace, "Namespace", namespace, out.region)
        out.findings.extend(
            classification_findings(subject, [("the Namespace", bound[namespace]), ("", None)])
        )

    governed = [w for w in inventory.workloads if w.namespace in bound]
    for workload in governed:
        found = evaluate_pod_template(workload, out.region, bound[workload.namespace])
        out.findings.extend(found)
        if found:
            out.violating.add((workload.namespace, workload.kind, workload.name))

    _audit_pods(out, inventory.pods)
    _audit_pvcs(out, inventory.pvcs)

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
