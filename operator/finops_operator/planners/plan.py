"""The plan contract every kind shares: ``plan_<kind>(spec, observed, now) -> Plan``.

A Plan is what a planner decided, as data: the status to write, the Events to post and typed write
intents. Planners never write; the handlers' apply module (``handlers.apply``) is the one place that
turns intents into API calls through the thin client. Intents name their target by ``ObjectRef`` and
carry exactly the fields the operator owns, so applying a plan twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from pydantic import ValidationError

from finops_operator.api.common import Condition, ConditionStatus
from finops_operator.api.conditions import ConditionType, ConditionUpdate, Reason, apply_conditions


@dataclass(frozen=True)
class ObjectRef:
    """One Kubernetes object; ``namespace`` is empty for cluster-scoped kinds."""

    api_version: str
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    """Set on Events about a workload, so that ``kubectl describe`` (which matches the UID) shows them."""

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        metadata = manifest.get("metadata") or {}
        return cls(
            str(manifest["apiVersion"]),
            str(manifest["kind"]),
            str(metadata["name"]),
            str(metadata.get("namespace") or ""),
        )

    def text(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


# --- write intents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event: on the reconciled object unless ``regarding`` names another one.

    ``key`` identifies what the Event is about, so an identical repeat is posted once (default: the
    object and the reason)."""

    type: str
    reason: str
    message: str
    regarding: ObjectRef | None = None
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Write:
    event: Event | None = field(default=None, kw_only=True)
    """Posted once the write succeeded (e.g. on the workload it changed)."""


@dataclass(frozen=True)
class PatchWorkload(_Write):
    """Merge-patch a workload's replica count or, for a Job or CronJob, spec.suspend (None: leave it)
    and annotations (None values delete)."""

    target: ObjectRef
    replicas: int | None = None
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    suspend: bool | None = None


@dataclass(frozen=True)
class ApplyManifest(_Write):
    """Server-side apply: the operator owns exactly the fields of ``manifest``, and takes them over."""

    manifest: Mapping[str, Any]

    @property
    def target(self) -> ObjectRef:
        return ObjectRef.of(self.manifest)


@dataclass(frozen=True)
class PatchPodTemplate(_Write):
    """Merge-patch fields of a workload's pod spec (inside its pod template)."""

    target: ObjectRef
    pod_spec: Mapping[str, Any]


@dataclass(frozen=True)
class Evict(_Write):
    """A policy/v1 Eviction of a pod: PodDisruptionBudgets are respected (a refusal is retried by a
    later reconcile, never forced)."""

    target: ObjectRef


@dataclass(frozen=True)
class AddFinalizer(_Write):
    target: ObjectRef
    finalizer: str


@dataclass(frozen=True)
class RemoveFinalizer(_Write):
    target: ObjectRef
    finalizer: str


@dataclass(frozen=True)
class CreateObject(_Write):
    """Create once; an object that exists already is left as it is."""

    manifest: Mapping[str, Any]

    @property
    def target(self) -> ObjectRef:
        return ObjectRef.of(self.manifest)


@dataclass(frozen=True)
class DeleteObject(_Write):
    """Delete; an object that is gone already is fine."""

    target: ObjectRef


Intent = (
    PatchWorkload
    | ApplyManifest
    | PatchPodTemplate
    | Evict
    | AddFinalizer
    | RemoveFinalizer
    | CreateObject
    | DeleteObject
)
"""One write the apply module makes, in plan order."""


# --- the plan ------------------------------------------------------------------------------------------


class PlannedStatus(Protocol):
    """What every kind's status model has: conditions and the generation they judged."""

    conditions: list[Condition]
    observed_generation: int

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...

    def to_wire(self) -> dict[str, Any]: ...


StatusT = TypeVar("StatusT", bound=PlannedStatus)


@dataclass(frozen=True)
class Plan(Generic[StatusT]):
    """Everything one reconcile decided: the status to write, Events to post, writes to make (in
    order), log lines (``notes``) worth a human's attention, and figures for metrics."""

    status: StatusT
    events: tuple[Event, ...] = ()
    intents: tuple[Intent, ...] = ()
    notes: tuple[str, ...] = ()
    counts: Mapping[str, int] | None = None
    """Figures for the kind's metrics (e.g. violations per rule); None when there is nothing to report."""


def spec_error_message(error: ValidationError) -> str:
    """The first problem of an invalid spec, as ``spec.<path>: <message>``."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"spec.{where}: {first['msg']}" if where else f"spec: {first['msg']}"


def invalid_spec(
    current: StatusT, *, generation: int, now: datetime, message: str, reason: str = Reason.INVALID_SPEC
) -> Plan[StatusT]:
    """The one rule for a spec that cannot be planned: Ready=False with the reason and message, the
    rest of the status kept as it was, and no writes (nothing safe to enforce from a bad spec)."""
    status = current.model_copy(deep=True)
    status.conditions = apply_conditions(
        status.conditions,
        [ConditionUpdate(ConditionType.READY, ConditionStatus.FALSE, reason, message)],
        generation,
        now,
    )
    status.observed_generation = generation
    return Plan(status=status)
