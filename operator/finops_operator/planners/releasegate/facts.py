"""What a ModelReleaseGate reconcile and its admission work on: workloads as evidence, findings, the
observation handed to the planner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finops_operator.api.modelreleasegate import EVIDENCE_PREFIX, ModelReleaseGateStatus


class Rule:
    """The rules a gate applies, as named in messages, findings and metrics."""

    REQUIRED_EVIDENCE = "RequiredEvidence"
    THRESHOLD = "Threshold"
    ALLOWED_VALUE = "AllowedValue"
    SIGNATURE = "Signature"


@dataclass(frozen=True)
class ModelWorkload:
    """A pod or pod-template workload reduced to what a gate reads: its pod-template labels and the
    evidence annotations (those under model.finops.dev/)."""

    namespace: str
    kind: str
    name: str
    template_labels: Mapping[str, str]
    evidence: Mapping[str, str]


def evidence_annotations(annotations: Mapping[str, object] | None) -> dict[str, str]:
    """Only the annotations under model.finops.dev/: keeps indexes small whatever else is there."""
    if not isinstance(annotations, Mapping):
        return {}
    return {str(k): str(v) for k, v in annotations.items() if str(k).startswith(EVIDENCE_PREFIX)}


@dataclass(frozen=True)
class Finding:
    """One rule a workload fails: ``evidence`` is the annotation key, ``value`` what it held."""

    rule: str
    evidence: str
    value: str
    message: str


@dataclass(frozen=True)
class KeyMaterial:
    """The public key text found where the gate points (None: not found, ``problem`` says why)."""

    pem: str | None
    problem: str = ""


@dataclass(frozen=True)
class GateObservation:
    """Everything one reconcile of one gate reads, copied from the indexes."""

    name: str
    uid: str
    generation: int
    current_status: ModelReleaseGateStatus
    namespaces: Mapping[str, Mapping[str, str]]
    """Every namespace's labels."""
    workloads: tuple[ModelWorkload, ...]
    key: KeyMaterial | None = None
    """None when the gate verifies no signature."""
    admission_hashes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(kind, name) -> spec hash of the gate's ValidatingAdmissionPolicy and binding as stored."""
