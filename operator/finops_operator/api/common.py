"""Types shared by every kind: label selectors, conditions, enforcement modes, timestamps, the resource
base."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


def parse_timestamp(value: object) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z`` or an offset) as an aware datetime; None when unset."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


GROUP = "finops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "finops"
GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource GPU pods request."""
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
"""Node label naming the GPU model (set by NVIDIA's GPU feature discovery)."""

MAX_LABELS = 64
"""Entries a label map of a spec may hold: far more than any selector needs, few enough that a
hostile spec cannot make admission, CEL or a reconcile slow."""
LabelValue = Annotated[str, Field(max_length=63)]
"""A label value as Kubernetes bounds it: a longer one could never match anything."""
LabelMap = Annotated[dict[str, LabelValue], Field(max_length=MAX_LABELS)]
"""Label key -> value, bounded in entries and value length."""

_DURATION_PART = r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)"
DurationText = Annotated[str, Field(max_length=32, pattern=rf"^({_DURATION_PART})+$")]
"""A duration as Kubernetes and Go write it (``30m``, ``1h30m``, ``1.5h``, ``500ms``): what CEL's
``duration()`` reads, so the schema can bound it."""
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """The value of a DurationText (the schema already refused any other form)."""
    parts = re.findall(_DURATION_PART, text)
    if not parts or "".join(value + unit for value, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30m or 1h30m")
    return timedelta(seconds=sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts))


def duration_bounds(field: str, low: str, high: str) -> dict[str, Any]:
    """Schema extra bounding a DurationText field with CEL (the pattern alone cannot)."""
    return {
        "x-kubernetes-validations": [
            {
                "rule": f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}')",
                "message": f"{field} must be between {low} and {high}",
            }
        ]
    }


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, field docstrings become schema descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """Serialise as the API server stores it: camelCase, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class EnforcementMode(StrEnum):
    """How a policy acts on what it finds."""

    ENFORCE = "Enforce"
    DRY_RUN = "DryRun"
    WARN = "Warn"


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector, as in Kubernetes' metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator in ['In', 'NotIn'] ? "
                    "(has(self.values) && size(self.values) > 0) : "
                    "(!has(self.values) || size(self.values) == 0)",
                    "message": "values must be non-empty for In and NotIn, and empty for Exists and "
                    "DoesNotExist",
                }
            ]
        }
    )

    key: str = Field(min_length=1, max_length=317)
    """The label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """In, NotIn, Exists or DoesNotExist."""
    values: list[LabelValue] = Field(default_factory=list, max_length=64)
    """Values for In and NotIn; must be empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """A Kubernetes label selector. An empty selector selects everything in scope."""

    match_labels: LabelMap = Field(default_factory=dict)
    """Labels that must all be present with these exact values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)
    """Set-based requirements that must all hold."""


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(max_length=316)
    """CamelCase condition type, e.g. Ready or BudgetExceeded."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024)
    """CamelCase programmatic reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable details."""
    last_transition_time: datetime
    """When the status last changed (not when it was last checked)."""
    observed_generation: int = Field(default=0, ge=0)
    """The .metadata.generation the condition was computed from."""


ConditionList = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
"""Conditions keyed by type, so server-side apply and strategic merges treat them as a map."""


class ObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the referenced object."""


class SecretKeyReference(ApiModel):
    """A key within a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""
    key: str = Field(default="url", min_length=1, max_length=253)
    """Key within the Secret."""


class PrinterColumn(BaseModel):
    """An additionalPrinterColumns entry, declared beside the model it describes."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0


class ResourceMeta(BaseModel):
    """CRD facts about a kind that are not part of its schema."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    scope: Literal["Namespaced", "Cluster"]
    printer_columns: list[PrinterColumn]
    spec_validations: list[dict[str, str]] = Field(default_factory=list)


def ready_column() -> PrinterColumn:
    return PrinterColumn(name="Ready", json_path='.status.conditions[?(@.type=="Ready")].status')


def age_column() -> PrinterColumn:
    return PrinterColumn(name="Age", json_path=".metadata.creationTimestamp", type="date")


class CustomResource(ApiModel):
    """Shape shared by the three kinds; subclasses set ``meta`` and narrow spec/status."""

    meta: ClassVar[ResourceMeta]
