"""SovereignRegion: where the workloads and data of the namespaces bound to it may live."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from finops_operator.api.common import (
    ApiModel,
    ConditionList,
    CustomResource,
    EnforcementMode,
    LabelSelector,
    LabelValue,
    PrinterColumn,
    ResourceMeta,
    age_column,
    ready_column,
)

REGION_LABEL = "topology.kubernetes.io/region"
DATA_CLASSIFICATION_LABEL = "finops.dev/data-classification"


class SovereignRegionSpec(ApiModel):
    """The region bound namespaces are confined to, and what is allowed there."""

    region: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Region name, e.g. eu-west-1."""
    node_selector: LabelSelector | None = None
    """Nodes of the region; defaults to topology.kubernetes.io/region=<region>."""
    namespace_selector: LabelSelector
    """Namespaces bound to this region."""
    allowed_gpu_products: list[LabelValue] = Field(
        default_factory=list, alias="allowedGPUProducts", max_length=64
    )
    """GPU products (nvidia.com/gpu.product) allowed; empty allows any."""
    allowed_data_classifications: list[LabelValue] = Field(default_factory=list, max_length=64)
    """Data classifications allowed; empty allows any."""
    data_classification_label: str = Field(default=DATA_CLASSIFICATION_LABEL, min_length=1, max_length=317)
    """Label carrying the data classification on workloads, PVCs and namespaces."""
    enforcement_mode: EnforcementMode = EnforcementMode.ENFORCE
    """Enforce rejects and repairs, Warn admits with a warning, DryRun only reports."""
    evict_out_of_region_pods: bool = False
    """In Enforce mode, evict running pods found outside the region so they reschedule inside."""


class SovereigntyViolation(ApiModel):
    """A workload, pod or volume found outside what its region allows."""

    namespace: str
    """Namespace of the object."""
    kind: str
    """Kind of the object."""
    name: str
    """Name of the object."""
    rule: str
    """Rule broken: Region, GPUProduct or DataClassification."""
    message: str
    """What was found against what is allowed."""
    since: datetime
    """When the violation was first seen."""


class SovereignRegionStatus(ApiModel):
    """Audit results for the region."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int = 0
    """The .metadata.generation last acted on."""
    conditions: ConditionList
    """Ready, Compliant and NamespaceConflict."""
    bound_namespaces: list[str] = Field(default_factory=list, max_length=1000)
    """Namespaces bound to this region (capped)."""
    bound_namespace_count: int = 0
    """Number of bound namespaces."""
    matching_nodes: int = 0
    """Nodes selected by the region's node selector."""
    compliant_workloads: int = 0
    """Workloads in bound namespaces that comply."""
    violating_workloads: int = 0
    """Workloads in bound namespaces that do not."""
    violations: list[SovereigntyViolation] = Field(default_factory=list, max_length=100)
    """Violations found by the last audit (capped; see violationCount)."""
    violation_count: int = 0
    """Total violations found by the last audit."""
    last_audit_time: datetime | None = None
    """When the last audit finished."""


class SovereignRegion(CustomResource):
    """A SovereignRegion object as stored by the API server."""

    meta: ClassVar[ResourceMeta] = ResourceMeta(
        kind="SovereignRegion",
        plural="sovereignregions",
        singular="sovereignregion",
        short_names=["sovr"],
        scope="Cluster",
        printer_columns=[
            PrinterColumn(name="Region", json_path=".spec.region"),
            PrinterColumn(name="Mode", json_path=".spec.enforcementMode"),
            PrinterColumn(name="Namespaces", json_path=".status.boundNamespaceCount", type="integer"),
            PrinterColumn(name="Compliant", json_path=".status.compliantWorkloads", type="integer"),
            PrinterColumn(name="Violating", json_path=".status.violatingWorkloads", type="integer"),
            ready_column(),
            age_column(),
        ],
    )

    api_version: Literal["finops.dev/v1alpha1"] = "finops.dev/v1alpha1"
    kind: Literal["SovereignRegion"] = "SovereignRegion"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SovereignRegionSpec
    status: SovereignRegionStatus | None = None
