"""Condition types and reasons (constants beside the API types) and the one rule for updating them:
``lastTransitionTime`` moves only when a condition's status flips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from finops_operator.api.common import Condition, ConditionStatus


class ConditionType:
    READY = "Ready"
    BUDGET_EXCEEDED = "BudgetExceeded"
    IDLE = "Idle"
    CONFLICT = "Conflict"
    METRICS_AVAILABLE = "MetricsAvailable"
    PREDICTION_READY = "PredictionReady"
    COMPLIANT = "Compliant"
    NAMESPACE_CONFLICT = "NamespaceConflict"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    ANOMALY_DETECTED = "AnomalyDetected"


class Reason:
    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    INVALID_TIME_ZONE = "InvalidTimeZone"
    NO_MATCHING_WORKLOADS = "NoMatchingWorkloads"
    WITHIN_BUDGET = "WithinBudget"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_BUDGET = "NoBudget"
    SELECTOR_OVERLAP = "SelectorOverlap"
    NO_OVERLAP = "NoOverlap"
    METRICS_NOT_CONFIGURED = "MetricsNotConfigured"
    PREDICTED = "Predicted"
    PREDICTION_DISABLED = "PredictionDisabled"
    NO_ANOMALY = "NoAnomaly"
    MULTIPLE_ANOMALIES = "MultipleAnomalies"
    LEARNING = "Learning"
    DEMAND_UNAVAILABLE = "DemandUnavailable"
    GPU_METRICS_UNAVAILABLE = "GPUMetricsUnavailable"
    # AnomalyDetected=True with one kind: the values of forecasting.AnomalyKind.
    # PredictionReady=False on fallback: the values of forecasting.fallback.FallbackReason
    # (MetricsUnavailable, ModelFailed, InsufficientHistory, CoverageLost).


@dataclass(frozen=True)
class ConditionUpdate:
    """The desired state of one condition, before timestamps are decided."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


def apply_conditions(
    current: Sequence[Condition],
    updates: Sequence[ConditionUpdate],
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Merge ``updates`` into ``current``. Pure; keeps unrelated conditions and their order.

    A condition whose status is unchanged keeps its ``lastTransitionTime``; reason, message and
    ``observedGeneration`` are refreshed. New types are appended in the order given.
    """
    by_type = {condition.type: condition for condition in current}
    merged: dict[str, Condition] = dict(by_type)
    for update in updates:
        previous = by_type.get(update.type)
        transition = previous.last_transition_time if previous and previous.status == update.status else now
        merged[update.type] = Condition(
            type=update.type,
            status=update.status,
            reason=update.reason,
            message=update.message,
            last_transition_time=transition,
            observed_generation=generation,
        )
    return list(merged.values())


def find(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    return next((c for c in conditions if c.type == condition_type), None)
