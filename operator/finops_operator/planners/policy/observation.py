"""What the FinOpsPolicy planner is given: the namespace's Deployments, their GPU pods, the other
policies, HPAs, GPU utilisation, the forecast and the anomaly detector's demand signal."""

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


@dataclass(frozen=True)
class DeploymentFacts:
    """What the planners need to know about one Deployment (taken from a Kopf index)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    replicas: int = 0
    ready_replicas: int = 0
    gpus_per_pod: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod_selector: LabelSelector | None = None
    template: PodTemplateFacts = field(default_factory=PodTemplateFacts)

    def as_workload(self) -> GovernedWorkload:
        return GovernedWorkload(self.name, self.replicas, self.annotations)

    def owns(self, pod: LedgerPod) -> bool:
        """Ownership as Kubernetes records it (pod -> ReplicaSet -> Deployment); the selector is only
        consulted for pods without an owner record."""
        if pod.owner_deployment is not None:
            return pod.owner_deployment == self.name
        selector = self.pod_selector
        return (
            selector is not None
            and bool(selector.match_labels or selector.match_expressions)
            and selector_matches(selector, pod.labels)
        )


@dataclass(frozen=True)
class PeerPolicy:
    """A FinOpsPolicy of the namespace, as indexed: for overlap detection and admission."""

    name: str
    selector: LabelSelector
    spec: FinOpsPolicySpec | None = None


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
    deployments: Sequence[DeploymentFacts]
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
