"""ModelReleaseGate: the evidence a model workload must carry before it may run in the namespaces the
gate binds (provenance, a signature of the artifact digest, an SBOM, responsible-AI metrics, model
card fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from finops_operator.api.common import (
    ApiModel,
    ConditionList,
    CustomResource,
    EnforcementMode,
    LabelSelector,
    PrinterColumn,
    ResourceMeta,
    age_column,
    ready_column,
)

EVIDENCE_PREFIX = "model.finops.dev/"
"""Evidence is read from pod-template annotations ``model.finops.dev/<evidence name>``."""
ARTIFACT_DIGEST = "artifact-digest"
"""The model artifact's digest, e.g. ``sha256:<64 hex>``: the exact string that is signed."""
SIGNATURE = "signature"
"""base64 signature of the artifact-digest string, as ``cosign sign-blob --key`` prints it."""
SIGNING_KEY_LABEL = "finops.dev/model-signing-key"
"""Label a ConfigMap must carry (any value) for the operator to watch it as a public key."""

EVIDENCE_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
"""The name part of an annotation key (at most 63 characters)."""


EvidenceName = Annotated[str, Field(min_length=1, max_length=63, pattern=EVIDENCE_NAME)]
"""An evidence name: the annotation model.finops.dev/<name> holds the evidence."""


class ThresholdRule(ApiModel):
    """A numeric responsible-AI metric and its bounds, e.g. bias.demographicParityDifference <= 0.1."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.max) || has(self.min)", "message": "a threshold needs max or min"},
                {
                    "rule": "!has(self.max) || !has(self.min) || self.min <= self.max",
                    "message": "min must not exceed max",
                },
            ]
        }
    )

    evidence: EvidenceName
    """Evidence name: the annotation model.finops.dev/<evidence> holds a number."""
    max: float | None = None
    """The metric must be at most this."""
    min: float | None = None
    """The metric must be at least this."""


class AllowedValuesRule(ApiModel):
    """A model-card field (licence, source, ...) and the values allowed for it."""

    evidence: EvidenceName
    """Evidence name, e.g. card.license: the annotation model.finops.dev/<evidence>."""
    values: list[str] = Field(min_length=1, max_length=64)
    """Allowed values (exact match)."""


class NamespacedKey(ApiModel):
    """One key of a ConfigMap."""

    namespace: str = Field(min_length=1, max_length=63)
    """Namespace of the object."""
    name: str = Field(min_length=1, max_length=253)
    """Name of the object."""
    key: str = Field(default="cosign.pub", min_length=1, max_length=253)
    """Key within the object."""


class KeySource(ApiModel):
    """Where the PEM public key lives: a key of a ConfigMap labelled finops.dev/model-signing-key.
    A public key is not secret, so the operator never lists or watches Secrets for it."""

    config_map: NamespacedKey
    """A ConfigMap key holding the PEM public key (cosign.pub)."""


class SignatureRule(ApiModel):
    """The artifact digest must be signed by the holder of the private key matching ``publicKey``
    (ECDSA P-256 / SHA-256, base64, as ``cosign sign-blob --key cosign.key`` produces)."""

    public_key: KeySource
    """The public key signatures are verified against."""


class ModelReleaseGateSpec(ApiModel):
    """Which workloads the gate governs and the evidence they must carry."""

    namespace_selector: LabelSelector
    """Namespaces the gate binds."""
    workload_selector: LabelSelector = Field(default_factory=LabelSelector)
    """Pod-template labels of the model workloads governed (empty: every workload in the namespaces)."""
    enforcement_mode: EnforcementMode = EnforcementMode.ENFORCE
    """Enforce rejects, Warn admits with a warning, DryRun only reports."""
    required_evidence: list[EvidenceName] = Field(default_factory=list, max_length=32)
    """Evidence names that must be present (thresholds, allowed values and the signature imply theirs)."""
    thresholds: list[ThresholdRule] = Field(default_factory=list, max_length=32)
    """Numeric metrics and their bounds."""
    allowed_values: list[AllowedValuesRule] = Field(default_factory=list, max_length=32)
    """Model-card fields and their allowed values."""
    signature: SignatureRule | None = None
    """Verify the signature of the artifact digest (in the operator's webhook and audit)."""


class GateFinding(ApiModel):
    """A workload found without the evidence the gate requires."""

    namespace: str
    """Namespace of the workload."""
    kind: str
    """Kind of the workload."""
    name: str
    """Name of the workload."""
    rule: str
    """Rule broken: RequiredEvidence, Threshold, AllowedValue or Signature."""
    evidence: str
    """The annotation the rule reads."""
    value: str = ""
    """What the annotation held (cut to 256 characters; empty when missing)."""
    message: str
    """What was found against what is required."""
    since: datetime
    """When the finding was first seen."""


class ModelReleaseGateStatus(ApiModel):
    """Audit results of the gate."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int = 0
    """The .metadata.generation last acted on."""
    conditions: ConditionList
    """Ready and Compliant."""
    public_key_fingerprint: str = ""
    """SHA-256 of the DER public key signatures are verified against."""
    governed_workloads: int = 0
    """Workloads the gate selects."""
    compliant_workloads: int = 0
    """Selected workloads that pass every rule."""
    failing_workloads: int = 0
    """Selected workloads that fail at least one rule."""
    findings: list[GateFinding] = Field(default_factory=list, max_length=100)
    """What the last audit found (capped; see findingCount)."""
    finding_count: int = 0
    """Total findings of the last audit."""
    last_audit_time: datetime | None = None
    """When the last audit finished."""


class ModelReleaseGate(CustomResource):
    """A ModelReleaseGate object as stored by the API server."""

    meta: ClassVar[ResourceMeta] = ResourceMeta(
        kind="ModelReleaseGate",
        plural="modelreleasegates",
        singular="modelreleasegate",
        short_names=["mrg"],
        scope="Cluster",
        printer_columns=[
            PrinterColumn(name="Mode", json_path=".spec.enforcementMode"),
            PrinterColumn(name="Governed", json_path=".status.governedWorkloads", type="integer"),
            PrinterColumn(name="Compliant", json_path=".status.compliantWorkloads", type="integer"),
            PrinterColumn(name="Failing", json_path=".status.failingWorkloads", type="integer"),
            ready_column(),
            age_column(),
        ],
    )

    api_version: Literal["finops.dev/v1alpha1"] = "finops.dev/v1alpha1"
    kind: Literal["ModelReleaseGate"] = "ModelReleaseGate"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelReleaseGateSpec
    status: ModelReleaseGateStatus | None = None
