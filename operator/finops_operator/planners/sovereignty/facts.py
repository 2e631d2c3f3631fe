"""What sovereignty observes and finds: nodes, workloads with pod templates, placed pods, claims and
volumes (small frozen records copied from Kopf indexes), and the findings judged from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from finops_operator.api.sovereignregion import SovereignRegionStatus


class Rule:
    REGION = "Region"
    GPU_PRODUCT = "GPUProduct"
    DATA_CLASSIFICATION = "DataClassification"


@dataclass(frozen=True)
class ClusterNode:
    """A node as the planner sees it (from a Kopf index)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplatedWorkload:
    """A workload with a pod template (Deployment, StatefulSet, Job, CronJob, ... or a bare Pod)."""

    namespace: str
    kind: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    template_labels: Mapping[str, str] = field(default_factory=dict)
    pod_spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlacedPod:
    """A pod, for placement: where it runs and which top-level workload (kind, name) owns it, if any."""

    namespace: str
    name: str
    node_name: str | None = None
    phase: str = "Running"
    gpus: int = 0
    workload: tuple[str, str] | None = None
    terminating: bool = False


@dataclass(frozen=True)
class PvFacts:
    """The PersistentVolume a claim is bound to: its labels and its spec.nodeAffinity as stored."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node_affinity: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PvcFacts:
    """A PersistentVolumeClaim and, when bound, its PersistentVolume."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pv: PvFacts | None = None


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


@dataclass(frozen=True)
class Finding:
    """One rule a workload, pod, volume or namespace breaks, with what was found and what is allowed."""

    namespace: str
    kind: str
    name: str
    rule: str
    message: str
    found: str
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    """What a region governs, as observed: its namespaces (with their labels) and their workloads,
    pods and claims."""

    namespaces: Mapping[str, Mapping[str, str]]
    workloads: Sequence[TemplatedWorkload] = ()
    pods: Sequence[PlacedPod] = ()
    pvcs: Sequence[PvcFacts] = ()


@dataclass(frozen=True)
class SovereigntyObservation:
    """Everything one reconcile of one SovereignRegion plans from."""

    name: str
    uid: str
    generation: int
    current_status: SovereignRegionStatus
    nodes: Mapping[str, ClusterNode]
    inventory: Inventory
    conflicts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Namespaces this region shares with other regions, each with every region binding it."""
    admission_hashes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(kind, name) -> spec hash of the admission objects the operator owns, as the API server has them."""
