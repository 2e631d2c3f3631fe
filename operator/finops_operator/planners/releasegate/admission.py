"""What admission answers for a pod or pod template in a namespace one or more gates bind. Gates
compose: every gate selecting the workload applies, each with its own mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.api.common import EnforcementMode
from finops_operator.api.modelreleasegate import ModelReleaseGateSpec
from finops_operator.planners.releasegate.evaluation import evaluate
from finops_operator.planners.releasegate.facts import Finding, ModelWorkload, evidence_annotations
from finops_operator.planners.releasegate.gate import VerificationKey, selects
from finops_operator.workloads.templates import POD_TEMPLATE_PATHS, pod_template

MAX_MESSAGE = 4096
MAX_WARNINGS = 16


@dataclass(frozen=True)
class GateState:
    """A gate as admission sees it: its spec and its verification key (None: no signature rule)."""

    spec: ModelReleaseGateSpec
    key: VerificationKey | None


@dataclass(frozen=True)
class AdmissionReview:
    kind: str
    body: Mapping[str, Any]
    old: Mapping[str, Any] | None
    operation: str | None
    namespace_labels: Mapping[str, str] | None
    gates: Mapping[str, GateState]


@dataclass(frozen=True)
class AdmissionAnswer:
    """Rejection message (Enforce), warnings (Warn), findings to log (DryRun)."""

    allowed: bool = True
    message: str = ""
    warnings: tuple[str, ...] = ()
    dry_run_report: tuple[str, ...] = ()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def template_annotations(kind: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template's annotations (a Pod's own), where the evidence travels."""
    node: Mapping[str, Any] = body
    for part in POD_TEMPLATE_PATHS.get(kind, ()):
        node = _mapping(node.get(part))
    return _mapping(_mapping(node.get("metadata")).get("annotations"))


def workload_of(kind: str, body: Mapping[str, Any]) -> ModelWorkload | None:
    """The workload as a gate reads it; None for kinds without a pod template."""
    found = pod_template(kind, body)
    if found is None:
        return None
    metadata = _mapping(body.get("metadata"))
    return ModelWorkload(
        namespace=str(metadata.get("namespace") or ""),
        kind=kind,
        name=str(metadata.get("name") or metadata.get("generateName") or "<unnamed>"),
        template_labels={str(k): str(v) for k, v in found[0].items()},
        evidence=evidence_annotations(template_annotations(kind, body)),
    )


def finding_message(gate: str, workload: ModelWorkload, finding: Finding) -> str:
    """The one wording of a finding, at admission, in status and in Events."""
    return (
        f"ModelReleaseGate {gate}: {workload.kind} {workload.namespace}/{workload.name} "
        f"{finding.message} [rule {finding.rule}]"
    )


def _cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unchanged(review: AdmissionReview) -> bool:
    """Scaling, rollbacks and annotation edits outside the template are never judged."""
    if review.operation != "UPDATE" or review.old is None:
        return False
    old_labels = _mapping(review.old.get("metadata")).get("labels")
    same_labels = old_labels == _mapping(review.body.get("metadata")).get("labels")
    return (
        same_labels
        and pod_template(review.kind, review.old) == pod_template(review.kind, review.body)
        and template_annotations(review.kind, review.old) == template_annotations(review.kind, review.body)
    )


def plan_admission(review: AdmissionReview) -> AdmissionAnswer:
    """Judge the workload against every gate selecting it: Enforce gates reject (every finding in
    the message), Warn gates add warnings, DryRun gates only report."""
    workload = workload_of(review.kind, review.body)
    if workload is None or not workload.namespace or _unchanged(review):
        return AdmissionAnswer()
    denials: list[str] = []
    warnings: list[str] = []
    report: list[str] = []
    for name in sorted(review.gates):
        gate = review.gates[name]
        if not selects(gate.spec, review.namespace_labels, workload.template_labels):
            continue
        messages = [
            finding_message(name, workload, f) for f in evaluate(gate.spec, workload.evidence, gate.key)
        ]
        mode = gate.spec.enforcement_mode
        if mode == EnforcementMode.ENFORCE:
            denials.extend(messages)
        elif mode == EnforcementMode.WARN:
            warnings.extend(_cap(m, 1024) for m in messages)
        else:
            report.extend(messages)
    if len(warnings) > MAX_WARNINGS:
        warnings = [*warnings[:MAX_WARNINGS], f"... and {len(warnings) - MAX_WARNINGS} more gate finding(s)"]
    if denials:
        return AdmissionAnswer(allowed=False, message=_cap("; ".join(denials)), warnings=tuple(warnings))
    return AdmissionAnswer(warnings=tuple(warnings), dry_run_report=tuple(report))
