"""What admission answers for a pod or pod template in a namespace a region governs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finops_operator.api.common import EnforcementMode
from finops_operator.api.sovereignregion import SovereignRegionSpec
from finops_operator.planners.sovereignty.affinity import merge_required_affinity
from finops_operator.planners.sovereignty.evaluation import evaluate_pod_template
from finops_operator.planners.sovereignty.facts import ClusterNode, Finding, TemplatedWorkload
from finops_operator.planners.sovereignty.region import bound_regions, prepare_region
from finops_operator.planners.sovereignty.text import MAX_WARNINGS, cap_text, list_text, mapping_of, show
from finops_operator.workloads.templates import pod_template


@dataclass(frozen=True)
class Decision:
    """What admission answers: Enforce rejects, Warn admits with warnings, DryRun admits silently and
    hands the findings back for the status report."""

    allowed: bool
    warnings: tuple[str, ...] = ()
    message: str = ""
    dry_run_report: tuple[Finding, ...] = ()


def admission_decision(mode: EnforcementMode, findings: Sequence[Finding]) -> Decision:
    """Enforce rejects with every finding in the message; Warn admits with one warning per finding;
    DryRun admits without a word to the user and returns the findings for the status report."""
    if not findings:
        return Decision(allowed=True)
    messages = [f.message for f in findings]
    if mode == EnforcementMode.ENFORCE:
        return Decision(allowed=False, message=cap_text("; ".join(messages)))
    if mode == EnforcementMode.WARN:
        warnings = [cap_text(m, 1024) for m in messages[:MAX_WARNINGS]]
        if len(messages) > MAX_WARNINGS:
            warnings.append(f"... and {len(messages) - MAX_WARNINGS} more sovereignty finding(s)")
        return Decision(allowed=True, warnings=tuple(warnings))
    return Decision(allowed=True, dry_run_report=tuple(findings))


def namespace_conflict_decision(namespace: str, region_names: Sequence[str]) -> Decision:
    """A namespace bound to several regions is governed by none: admit, but say so."""
    return Decision(
        allowed=True,
        warnings=(
            cap_text(
                f"namespace {show(namespace)} is bound to several SovereignRegions "
                f"{list_text(sorted(region_names))}; none of them enforces on it until the conflict "
                "is resolved",
                1024,
            ),
        ),
    )


@dataclass(frozen=True)
class AdmissionReview:
    """One admission request for a pod or pod template, with what the indexes know around it."""

    kind: str
    body: Mapping[str, Any]
    old: Mapping[str, Any] | None
    operation: str | None
    namespace_labels: Mapping[str, str]
    regions: Mapping[str, SovereignRegionSpec]
    nodes: Mapping[str, ClusterNode]


@dataclass(frozen=True)
class AdmissionAnswer:
    """What the webhook returns: a rejection message, warnings, DryRun findings to log, and the
    required node affinity to merge into the pod spec (None: change nothing)."""

    allowed: bool = True
    message: str = ""
    warnings: tuple[str, ...] = ()
    dry_run_report: tuple[Finding, ...] = ()
    affinity: Mapping[str, Any] | None = None


def plan_admission(review: AdmissionReview) -> AdmissionAnswer:
    """Judge a request on the object as the user sent it, then (Enforce and Warn) confine it.

    Not judged: kinds without a pod template, namespaces no region binds, and UPDATEs that leave the
    pod template and labels as they were (scaling, rollbacks, status-like edits). A namespace bound
    to several regions is governed by none: admitted with a warning. Enforce rejects naming the
    SovereignRegion and the rule; Warn admits with warnings; DryRun only reports and changes nothing.
    """
    kind, body = review.kind, review.body
    metadata = mapping_of(body.get("metadata"))
    namespace = str(metadata.get("namespace") or "")
    found = pod_template(kind, body)
    if not namespace or found is None:
        return AdmissionAnswer()
    if review.operation == "UPDATE" and review.old is not None:
        old_labels = mapping_of(review.old.get("metadata")).get("labels")
        if pod_template(kind, review.old) == found and old_labels == metadata.get("labels"):
            return AdmissionAnswer()
    names = bound_regions(review.namespace_labels, review.regions)
    if not names:
        return AdmissionAnswer()
    if len(names) > 1:
        return AdmissionAnswer(warnings=namespace_conflict_decision(namespace, names).warnings)
    spec = review.regions[names[0]]
    template_labels, pod_spec = found
    workload = TemplatedWorkload(
        namespace=namespace,
        kind=kind,
        name=str(metadata.get("name") or metadata.get("generateName") or "<unnamed>"),
        labels=dict(mapping_of(metadata.get("labels"))),
        template_labels=dict(template_labels),
        pod_spec=pod_spec,
    )
    findings = evaluate_pod_template(
        workload, prepare_region(spec, review.nodes, names[0]), review.namespace_labels
    )
    decision = admission_decision(
        spec.enforcement_mode,
        [dataclasses.replace(f, message=f"{f.message} [rule {f.rule}]") for f in findings],
    )
    if not decision.allowed:
        return AdmissionAnswer(allowed=False, message=decision.message)
    answer = AdmissionAnswer(warnings=decision.warnings, dry_run_report=decision.dry_run_report)
    if spec.enforcement_mode == EnforcementMode.DRY_RUN:
        return answer
    merged, changed = merge_required_affinity(pod_spec, spec)
    return dataclasses.replace(answer, affinity=merged["affinity"]) if changed else answer
