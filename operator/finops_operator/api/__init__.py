"""The finops.dev/v1alpha1 API: pydantic models are the single source of truth for specs, statuses
and (through :mod:`finops_operator.crdgen`) the CRD schemas in ``crds/``."""

from finops_operator.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    EnforcementMode,
    LabelSelector,
    LabelSelectorRequirement,
)
from finops_operator.api.edgefleet import EdgeFleet, EdgeFleetSpec, EdgeFleetStatus
from finops_operator.api.finopspolicy import FinOpsPolicy, FinOpsPolicySpec, FinOpsPolicyStatus
from finops_operator.api.modelreleasegate import (
    ModelReleaseGate,
    ModelReleaseGateSpec,
    ModelReleaseGateStatus,
)
from finops_operator.api.sovereignregion import SovereignRegion, SovereignRegionSpec, SovereignRegionStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "EdgeFleet",
    "EdgeFleetSpec",
    "EdgeFleetStatus",
    "EnforcementMode",
    "FinOpsPolicy",
    "FinOpsPolicySpec",
    "FinOpsPolicyStatus",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ModelReleaseGate",
    "ModelReleaseGateSpec",
    "ModelReleaseGateStatus",
    "SovereignRegion",
    "SovereignRegionSpec",
    "SovereignRegionStatus",
]
