"""Judging one workload's evidence against one gate: presence, numeric thresholds, allowed values and
the signature of the artifact digest. Pure; hostile annotation values never raise."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from finops_operator.api.modelreleasegate import ARTIFACT_DIGEST, SIGNATURE, ModelReleaseGateSpec
from finops_operator.planners.releasegate.facts import Finding, Rule
from finops_operator.planners.releasegate.gate import VerificationKey, annotation, required_annotations
from finops_operator.planners.releasegate.signature import signature_problem

NUMBER = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
"""A metric's value: the same grammar the ValidatingAdmissionPolicy accepts (no NaN, no inf)."""
_NUMBER = re.compile(NUMBER)
MAX_VALUE = 256
"""Characters of an annotation value quoted in a finding."""


def shown(value: str) -> str:
    text = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def number(value: str) -> float | None:
    """The metric as a float, or None when it is not a plain finite decimal number."""
    if len(value) > 64 or not _NUMBER.match(value):
        return None
    parsed = float(value)
    return parsed if math.isfinite(parsed) else None


def _bounds_text(low: float | None, high: float | None) -> str:
    parts = [f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else ""]
    return " and ".join(p for p in parts if p)


def evaluate(
    spec: ModelReleaseGateSpec, evidence: Mapping[str, str], key: VerificationKey | None
) -> list[Finding]:
    """Every rule the evidence fails, missing evidence first. ``key`` is the gate's verification key
    (None: the signature is not checked here, e.g. by the ValidatingAdmissionPolicy's static rules)."""
    findings = [
        Finding(Rule.REQUIRED_EVIDENCE, name, "", f"lacks evidence annotation {name}")
        for name in required_annotations(spec)
        if name not in evidence
    ]
    for threshold in spec.thresholds:
        name = annotation(threshold.evidence)
        if name not in evidence:
            continue
        raw = evidence[name]
        value = number(raw)
        bounds = _bounds_text(threshold.min, threshold.max)
        if value is None:
            message = f"{name}={shown(raw)!r} is not a number (required {bounds})"
        elif (threshold.max is not None and value > threshold.max) or (
            threshold.min is not None and value < threshold.min
        ):
            message = f"{name}={shown(raw)} is outside the threshold (required {bounds})"
        else:
            continue
        findings.append(Finding(Rule.THRESHOLD, name, shown(raw), message))
    for allowed in spec.allowed_values:
        name = annotation(allowed.evidence)
        if name in evidence and evidence[name] not in allowed.values:
            raw = evidence[name]
            message = f"{name}={shown(raw)!r} is not allowed (allowed: {', '.join(allowed.values)})"
            findings.append(Finding(Rule.ALLOWED_VALUE, name, shown(raw), message))
    if spec.signature is not None and key is not None:
        found = _signature_finding(evidence, key)
        if found is not None:
            findings.append(found)
    return findings


def _signature_finding(evidence: Mapping[str, str], key: VerificationKey) -> Finding | None:
    digest_key, signature_key = annotation(ARTIFACT_DIGEST), annotation(SIGNATURE)
    if digest_key not in evidence or signature_key not in evidence:
        return None  # reported as missing evidence
    digest = evidence[digest_key]
    if key.key is None:
        problem: str | None = key.problem
    else:
        problem = signature_problem(key.key, digest, evidence[signature_key])
    if problem is None:
        return None
    return Finding(
        Rule.SIGNATURE,
        signature_key,
        shown(digest),
        f"the signature of {digest_key}={shown(digest)} is not valid: {problem}",
    )
