"""What the FinOpsPolicy planner is given: the namespace's workloads (Deployments, StatefulSets, Jobs,
CronJobs), their GPU pods, the other policies, HPAs, GPU utilisation, the forecast and the anomaly
detector's demand signal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from finops_operator.api.common import LabelSelector
from finops_operator.api.finopspolicy import (
    FinOpsPolicySpec,
    FinOpsPolicyStatus,
)
from finops_operator.planners.labelselectors import selector_matches
from finops_operator.planners.policy.bounds import HpaFacts
from finops_operator.planners.policy.budget import (
    GovernedWorkload,
)
from finops_operator.planners.policy.caps import PodTemplateFacts
from finops_operator.planners.policy.ledger import LedgerPod
from finops_operator.planners.policy.predictive import (
    PredictionInput,
)
from finops_operator.planners.policy.scaleup import BudgetPosition

SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet"})
"""Kinds governed through their replica count: budget scale-downs, HPA bounds, idle shutdown, anomalies."""
SUSPENDABLE_KINDS = frozenset({"Job", "CronJob"})
"""Kinds a budget breach suspends (``spec.suspend``, as Kueue does): a run cannot shrink, only pause."""
BARE_POD = "Pod"
"""A pod created directly (no controller): accounted and reported, never changed."""


@dataclass(frozen=True)
class WorkloadFacts:
    """What the planners need to know about one workload (taken from a Kopf index, or, for a bare
    pod, from the pod itself)."""

    namespace: str
    name: str
    """``workload_key``: the object name for a Deployment, ``<kind>/<name>`` for the other kinds."""
    labels: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    replicas: int = 0
    ready_replicas: int = 0
    gpus_per_pod: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod_selector: LabelSelector | None = None
    template: PodTemplateFacts = field(default_factory=PodTemplateFacts)
    kind: str = "Deployment"
    suspended: bool = False
    """spec.suspend of a Job or CronJob."""
    finished: bool = False
    """A Job that completed or failed: nothing left to suspend."""
    parent: str | None = None
    """The CronJob (``workload_key``) that made this Job: the Job is part of it, as a ReplicaSet is part
    of its Deployment (accounted under the CronJob, suspended with it)."""

    @property
    def object_name(self) -> str:
        return self.name.split("/", 1)[1] if self.kind != "Deployment" else self.name

    def as_workload(self) -> GovernedWorkload:
        return GovernedWorkload(
            self.name,
            self.replicas,
            self.annotations,
            suspended=self.suspended if self.kind in SUSPENDABLE_KINDS else None,
        )

    def owns(self, pod: LedgerPod) -> bool:
        """Ownership as Kubernetes records it (pod -> ReplicaSet -> Deployment, pod -> StatefulSet,
        pod -> Job); the selector is only consulted for pods without an owner record."""
        if pod.owner is not None:
            return pod.owner == self.name
        selector = self.pod_selector
        return (
            self.kind in SCALABLE_KINDS
            and selector is not None
            and bool(selector.match_labels or selector.match_expressions)
            and selector_matches(selector, pod.labels)
        )


def selection_labels(workload: WorkloadFacts, by_name: Mapping[str, WorkloadFacts]) -> Mapping[str, str]:
    """The labels a policy selects ``workload`` by: its CronJob's for a Job a CronJob made."""
    parent = by_name.get(workload.parent) if workload.parent is not None else None
    return parent.labels if parent is not None else workload.labels


@dataclass(frozen=True)
class PeerPolicy:
    """A FinOpsPolicy of the namespace, as indexed: for overlap detection and admission."""

    name: str
    selector: LabelSelector
    spec: FinOpsPolicySpec | None = None
    position: BudgetPosition | None = None
    """Its budgets at its last sample, for the scale-up check at admission."""


@dataclass(frozen=True)
class DemandReading:
    """The anomaly detector's demand signal now (the query's series summed), or why there is none."""

    value: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class PolicyObservation:
    name: str
    generation: int
    current_status: FinOpsPolicyStatus
    workloads: Sequence[WorkloadFacts]
    """Deployments, StatefulSets, Jobs and CronJobs of the namespace (GPU pods come in ``pods``)."""
    peers: Sequence[PeerPolicy] = ()
    pods: Sequence[LedgerPod] = ()
    gpu_product_of_node: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""
    uid: str = ""
    hpas: Sequence[HpaFacts] = ()
    pod_utilization: Mapping[str, float] | None = None
    """GPU utilisation (percent) per pod name; None when no Prometheus is configured or reachable."""
    prediction: PredictionInput | None = None
    """The demand forecast (or why there is none), when predictive scaling is enabled."""
    metrics_error: str | None = None
    anomaly_demand: DemandReading | None = None
    """The demand signal of spec.anomalyDetection (None: no demand query, or no Prometheus)."""
    sample_interval_seconds: float = 60.0
    """The operator's sample interval: one anomaly-detector sample each."""
