"""One gate, prepared for judging: its parsed spec, the evidence keys it requires, whom it selects, and
its verification key."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from finops_operator.api.modelreleasegate import (
    ARTIFACT_DIGEST,
    EVIDENCE_PREFIX,
    SIGNATURE,
    ModelReleaseGateSpec,
    SignatureRule,
)
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.releasegate.facts import KeyMaterial
from finops_operator.planners.releasegate.signature import PublicKey, PublicKeyError, load_public_key


def parse_spec(raw: Mapping[str, Any]) -> ModelReleaseGateSpec:
    """The one parser of a gate's spec (raises pydantic's ValidationError)."""
    return ModelReleaseGateSpec.model_validate(dict(raw))


def annotation(evidence: str) -> str:
    return EVIDENCE_PREFIX + evidence


def required_annotations(spec: ModelReleaseGateSpec) -> list[str]:
    """Every annotation the gate needs, in a stable order: the listed evidence, then what thresholds,
    allowed values and the signature read."""
    names = [
        *spec.required_evidence,
        *(t.evidence for t in spec.thresholds),
        *(a.evidence for a in spec.allowed_values),
        *((ARTIFACT_DIGEST, SIGNATURE) if spec.signature is not None else ()),
    ]
    return [annotation(name) for name in dict.fromkeys(names)]


def selects(
    spec: ModelReleaseGateSpec, namespace_labels: Mapping[str, str] | None, template_labels: Mapping[str, str]
) -> bool:
    """Whether the gate governs a workload: its namespace is bound and its pod template selected."""
    if namespace_labels is None:
        return False
    return selector_matches(spec.namespace_selector, namespace_labels) and selector_matches(
        spec.workload_selector, template_labels
    )


def gated_namespaces(
    specs: Iterable[ModelReleaseGateSpec], namespaces: Mapping[str, Mapping[str, str]]
) -> frozenset[str]:
    """The namespaces (name -> labels) some gate's namespaceSelector selects: where its webhooks are
    registered."""
    selectors = [spec.namespace_selector for spec in specs]
    return frozenset(
        name for name, labels in namespaces.items() if any(selector_matches(s, labels) for s in selectors)
    )


def key_text(rule: SignatureRule) -> str:
    ref = rule.public_key.config_map
    return f"ConfigMap {ref.namespace}/{ref.name} key {ref.key}"


@dataclass(frozen=True)
class VerificationKey:
    """The parsed key, or why the gate has none (then every signature check fails)."""

    key: PublicKey | None
    problem: str = ""


@functools.lru_cache(maxsize=256)
def _parsed(pem: str) -> PublicKey:
    return load_public_key(pem)


def verification_key(rule: SignatureRule, material: KeyMaterial | None) -> VerificationKey:
    """Parse the key material the indexes found (parsed keys are cached by their text)."""
    where = key_text(rule)
    if material is None or material.pem is None:
        why = material.problem if material is not None and material.problem else "not found"
        return VerificationKey(None, f"public key {where}: {why}")
    try:
        return VerificationKey(_parsed(material.pem))
    except PublicKeyError as error:
        return VerificationKey(None, f"public key {where}: {error}")
