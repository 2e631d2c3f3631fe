"""Every Prometheus metric the operator exports, in one place, with the ``finops_`` prefix.

Callers use the ``record_*``/``forget_*`` helpers, never the metric objects, so label sets stay
consistent and series of deleted objects are removed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

RECONCILE_SECONDS = Histogram(
    "finops_reconcile_duration_seconds",
    "Time spent reconciling one object. Labels: kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GOVERNED_WORKLOADS = Gauge(
    "finops_governed_workloads",
    "Deployments governed by a FinOpsPolicy. Labels: namespace, policy.",
    ["namespace", "policy"],
)
GPU_HOURS_USED = Gauge(
    "finops_gpu_hours_used",
    "GPU-hours used in the current budget window. Labels: namespace, policy.",
    ["namespace", "policy"],
)
COST_USED = Gauge(
    "finops_cost_used",
    "Cost of the GPU-hours used in the current window. Labels: namespace, policy.",
    ["namespace", "policy"],
)
BUDGET_RATIO = Gauge(
    "finops_budget_ratio",
    "Used share of the tightest daily budget (1 = exhausted). Labels: namespace, policy.",
    ["namespace", "policy"],
)
IDLE_WORKLOADS = Gauge(
    "finops_idle_workloads",
    "Governed Deployments currently idle. Labels: namespace, policy.",
    ["namespace", "policy"],
)
ALERT_ROUTES = Gauge(
    "finops_policy_alert_route",
    "Always 1: who hears about one kind of event of a FinOpsPolicy (spec.alerting), for alert rules to "
    "join recipient_group onto their alerts. Labels: namespace, policy, event (thresholdExceeded, "
    "budgetExhausted, idleShutdown, capViolation, anomalyDetected), severity, recipient_group.",
    ["namespace", "policy", "event", "severity", "recipient_group"],
)
ALERT_EVENTS = ("thresholdExceeded", "budgetExhausted", "idleShutdown", "capViolation", "anomalyDetected")
ACTIONS = Counter(
    "finops_actions_total",
    "Changes made to workloads. Labels: namespace, policy, action (Event reason).",
    ["namespace", "policy", "action"],
)
GPU_HOURS_TOTAL = Counter(
    "finops_gpu_hours",
    "GPU-hours used by governed workloads since the operator started, from the policy's monthly ledger "
    "(showback). Labels: namespace, workload, policy.",
    ["namespace", "workload", "policy"],
)
COST_TOTAL = Counter(
    "finops_cost",
    "Cost of those GPU-hours at the policy's pricing. Labels: namespace, workload, policy.",
    ["namespace", "workload", "policy"],
)
IDLE_GPU_HOURS_TOTAL = Counter(
    "finops_idle_gpu_hours",
    "Of those GPU-hours, the ones held but unused (1 - GPU utilisation). Labels: namespace, workload, "
    "policy.",
    ["namespace", "workload", "policy"],
)
UsageFigures = Mapping[str, tuple[float, float, float]]
"""Per workload: GPU-hours, cost, idle GPU-hours."""
_usage_seen: dict[tuple[str, str], tuple[datetime, dict[str, tuple[float, float, float]]]] = {}
_usage_lock = threading.Lock()
API_REQUESTS = Counter(
    "finops_api_requests_total",
    "Kubernetes API requests the operator's handlers made outside Kopf's watches and patches. "
    "Labels: verb, resource.",
    ["verb", "resource"],
)
STATUS_WRITES = Counter(
    "finops_status_writes_total",
    "Status patches written (only when the status changed). Labels: kind.",
    ["kind"],
)


def record_reconcile(kind: str, seconds: float) -> None:
    RECONCILE_SECONDS.labels(kind=kind).observe(seconds)


def record_api_request(verb: str, resource: str) -> None:
    API_REQUESTS.labels(verb=verb, resource=resource).inc()


def record_status_write(kind: str) -> None:
    STATUS_WRITES.labels(kind=kind).inc()


def record_policy(
    namespace: str,
    policy: str,
    *,
    governed: int,
    gpu_hours: float,
    cost: float,
    budget_percent: float,
    idle: int,
    alerting: Mapping[str, Any] | None = None,
) -> None:
    """The policy's gauges, and its alert routes (``alerting``: spec.alerting as written)."""
    GOVERNED_WORKLOADS.labels(namespace=namespace, policy=policy).set(governed)
    GPU_HOURS_USED.labels(namespace=namespace, policy=policy).set(gpu_hours)
    COST_USED.labels(namespace=namespace, policy=policy).set(cost)
    BUDGET_RATIO.labels(namespace=namespace, policy=policy).set(budget_percent / 100)
    IDLE_WORKLOADS.labels(namespace=namespace, policy=policy).set(idle)
    _record_alert_routes(namespace, policy, alerting or {})


def record_usage(namespace: str, policy: str, windows: Sequence[tuple[datetime, UsageFigures]]) -> None:
    """Advance the usage counters to the policy's monthly ledgers: ``windows`` as (start, figures), oldest
    first (the closed month, then the current one).

    Counters only grow by what the ledger grew since it was last seen by this process: a sample
    planned from a stale status (a ledger value seen before) adds nothing, a new month adds its
    figures, and what was used before the process started is not added again after a restart (a
    counter restarts at 0; the ledger, not the counter, is the record).
    """
    if windows:
        with _usage_lock:
            _advance_usage(namespace, policy, windows)


def _advance_usage(namespace: str, policy: str, windows: Sequence[tuple[datetime, UsageFigures]]) -> None:
    key = (namespace, policy)
    newest_start, newest = windows[-1]
    seen = _usage_seen.get(key)
    if seen is None:
        for workload in newest:
            for counter in (GPU_HOURS_TOTAL, COST_TOTAL, IDLE_GPU_HOURS_TOTAL):
                counter.labels(namespace=namespace, workload=workload, policy=policy).inc(0)
        _usage_seen[key] = (newest_start, dict(newest))
        return
    seen_start, seen_values = seen
    for start, figures in windows:
        if start < seen_start:
            continue
        base = seen_values if start == seen_start else {}
        for workload, values in figures.items():
            before = base.get(workload, (0.0, 0.0, 0.0))
            for counter, now, then in zip(
                (GPU_HOURS_TOTAL, COST_TOTAL, IDLE_GPU_HOURS_TOTAL), values, before, strict=True
            ):
                counter.labels(namespace=namespace, workload=workload, policy=policy).inc(
                    max(now - then, 0.0)
                )
    if newest_start == seen_start:
        kept = dict(seen_values)
        for workload, (gpu_hours, cost, idle) in newest.items():
            old = seen_values.get(workload, (0.0, 0.0, 0.0))
            kept[workload] = (max(gpu_hours, old[0]), max(cost, old[1]), max(idle, old[2]))
        _usage_seen[key] = (newest_start, kept)
    elif newest_start > seen_start:
        _usage_seen[key] = (newest_start, dict(newest))


def _record_alert_routes(namespace: str, policy: str, alerting: Mapping[str, Any]) -> None:
    """One series per configured route of spec.alerting; a changed or removed route loses its series."""
    wanted = set()
    for event in ALERT_EVENTS:
        route = alerting.get(event)
        if isinstance(route, Mapping) and route.get("recipientGroup"):
            wanted.add((event, str(route.get("severity", "WARNING")), str(route["recipientGroup"])))
    for labels in _alert_routes_of(namespace, policy) - wanted:
        ALERT_ROUTES.remove(namespace, policy, *labels)
    for event, severity, group in wanted:
        ALERT_ROUTES.labels(namespace, policy, event, severity, group).set(1)


def _alert_routes_of(namespace: str, policy: str) -> set[tuple[str, str, str]]:
    return {
        (sample.labels["event"], sample.labels["severity"], sample.labels["recipient_group"])
        for metric in ALERT_ROUTES.collect()
        for sample in metric.samples
        if sample.labels["namespace"] == namespace and sample.labels["policy"] == policy
    }


def record_action(namespace: str, policy: str, action: str) -> None:
    ACTIONS.labels(namespace=namespace, policy=policy, action=action).inc()


def forget_policy(namespace: str, policy: str) -> None:
    """Remove a deleted policy's series so dashboards do not show stale values."""
    for gauge in (GOVERNED_WORKLOADS, GPU_HOURS_USED, COST_USED, BUDGET_RATIO, IDLE_WORKLOADS):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, policy)
    _record_alert_routes(namespace, policy, {})
    _forget_usage(namespace, policy)
    record_prediction(namespace, policy, peak=None, replicas=None, mae=None)
    record_demand(namespace, policy, observed=None, forecast=None)
    record_anomalies(namespace, policy, {})


def _forget_usage(namespace: str, policy: str) -> None:
    with _usage_lock:
        _usage_seen.pop((namespace, policy), None)
    for counter in (GPU_HOURS_TOTAL, COST_TOTAL, IDLE_GPU_HOURS_TOTAL):
        for metric in counter.collect():
            for sample in metric.samples:
                labels = sample.labels
                if labels.get("namespace") == namespace and labels.get("policy") == policy:
                    with contextlib.suppress(KeyError):
                        counter.remove(namespace, labels["workload"], policy)


def serve(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics from a background thread (prometheus_client's own server)."""
    start_http_server(port, addr=addr, registry=registry)


SOVEREIGNTY_VIOLATIONS = Gauge(
    "finops_sovereignty_violations",
    "Sovereignty violations found by the last audit of a SovereignRegion. Labels: region (the "
    "SovereignRegion's name), rule (Region, GPUProduct or DataClassification).",
    ["region", "rule"],
)
SOVEREIGNTY_RULES = ("Region", "GPUProduct", "DataClassification")


def record_sovereignty(region: str, violations_by_rule: dict[str, int]) -> None:
    """Every rule gets a series (0 when clean), so alerts can tell "no violations" from "no data"."""
    for rule in sorted({*SOVEREIGNTY_RULES, *violations_by_rule}):
        SOVEREIGNTY_VIOLATIONS.labels(region=region, rule=rule).set(violations_by_rule.get(rule, 0))


def forget_sovereignty(region: str) -> None:
    for rule in SOVEREIGNTY_RULES:
        with contextlib.suppress(KeyError):
            SOVEREIGNTY_VIOLATIONS.remove(region, rule)


MODEL_GATE_FINDINGS = Gauge(
    "finops_model_gate_findings",
    "Findings of a ModelReleaseGate's last audit. Labels: gate, rule.",
    ["gate", "rule"],
)
MODEL_GATE_RULES = ("RequiredEvidence", "Threshold", "AllowedValue", "Signature")


def record_model_gate(gate: str, findings_by_rule: dict[str, int]) -> None:
    """Every rule gets a series (0 when clean), so alerts can tell "no findings" from "no data"."""
    for rule in sorted({*MODEL_GATE_RULES, *findings_by_rule}):
        MODEL_GATE_FINDINGS.labels(gate=gate, rule=rule).set(findings_by_rule.get(rule, 0))


def forget_model_gate(gate: str) -> None:
    for rule in MODEL_GATE_RULES:
        with contextlib.suppress(KeyError):
            MODEL_GATE_FINDINGS.remove(gate, rule)


RECONCILE_ERRORS = Counter(
    "finops_reconcile_errors_total",
    "Reconciles that failed (an exception; Kopf retries) and writes the API server refused for a "
    'reason other than "nothing to do now". Labels: kind, namespace ("" for cluster-scoped '
    "objects), reason (WriteRefused, or the exception's class). No object name: the log and the "
    "object's Events name it, and namespaces bound the cardinality.",
    ["kind", "namespace", "reason"],
)


def record_reconcile_error(kind: str, namespace: str, reason: str) -> None:
    RECONCILE_ERRORS.labels(kind=kind, namespace=namespace, reason=reason).inc()


FLEET_WAVE = Gauge(
    "finops_edgefleet_current_wave",
    "Wave (1-based) of the EdgeFleet rollout in progress; 0 when idle. Labels: namespace, fleet.",
    ["namespace", "fleet"],
)
FLEET_SITES = Gauge(
    "finops_edgefleet_sites",
    "Sites of an EdgeFleet by state (status.sites*): total, updated (on currentRevision), ready, "
    "offline, failed (failed the current wave). Labels: namespace, fleet, state.",
    ["namespace", "fleet", "state"],
)
FLEET_SITE_STATES = ("total", "updated", "ready", "offline", "failed")
FLEET_DEGRADED = Gauge(
    "finops_edgefleet_degraded",
    "1 while the EdgeFleet's Degraded condition is True (failing sites tolerated, or rolled back), "
    "else 0. Labels: namespace, fleet.",
    ["namespace", "fleet"],
)
FLEET_ROLLBACKS = Counter(
    "finops_edgefleet_rollbacks_total",
    "Automatic rollbacks of an EdgeFleet to its stable revision. Labels: namespace, fleet.",
    ["namespace", "fleet"],
)


def record_fleet(
    namespace: str,
    fleet: str,
    *,
    wave: int,
    sites: Mapping[str, int],
    degraded: bool,
    rolled_back: bool,
) -> None:
    """A fleet's gauges from the status just planned (``sites``: a count per FLEET_SITE_STATES);
    ``rolled_back``: this reconcile rolled the fleet back. The counter starts at 0, so
    ``increase()`` sees the first rollback."""
    FLEET_WAVE.labels(namespace=namespace, fleet=fleet).set(wave)
    for state in FLEET_SITE_STATES:
        FLEET_SITES.labels(namespace=namespace, fleet=fleet, state=state).set(sites.get(state, 0))
    FLEET_DEGRADED.labels(namespace=namespace, fleet=fleet).set(1 if degraded else 0)
    rollbacks = FLEET_ROLLBACKS.labels(namespace=namespace, fleet=fleet)
    if rolled_back:
        rollbacks.inc()


def forget_fleet(namespace: str, fleet: str) -> None:
    for gauge in (FLEET_WAVE, FLEET_DEGRADED, FLEET_ROLLBACKS):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, fleet)
    for state in FLEET_SITE_STATES:
        with contextlib.suppress(KeyError):
            FLEET_SITES.remove(namespace, fleet, state)


DEMAND_FORECAST_PEAK = Gauge(
    "finops_prediction_demand_peak",
    "Highest forecast demand within the horizon, at the quantile replicas are sized on "
    "(status.prediction.nextPeak), in the demand query's units. Labels: namespace, policy.",
    ["namespace", "policy"],
)
PREDICTED_REPLICAS = Gauge(
    "finops_prediction_recommended_replicas",
    "Minimum replicas the forecast asks for over the lead time (status.prediction."
    "recommendedReplicas), the HPA floor predictive scaling sets. Labels: namespace, policy.",
    ["namespace", "policy"],
)
DEMAND_FORECAST_MAE = Gauge(
    "finops_prediction_backtest_mae",
    "Backtest mean absolute error of the forecaster in use (status.prediction.mae), in demand "
    "units: the width to expect around the forecast. Labels: namespace, policy.",
    ["namespace", "policy"],
)
PREDICTION_GAUGES = (DEMAND_FORECAST_PEAK, PREDICTED_REPLICAS, DEMAND_FORECAST_MAE)


DEMAND_OBSERVED = Gauge(
    "finops_demand_observed",
    "Demand now, as the policy's spec.predictiveScaling.demandQuery answers it (several series "
    "summed): what the forecast is judged on. Labels: namespace, policy.",
    ["namespace", "policy"],
)
DEMAND_FORECAST = Gauge(
    "finops_demand_forecast",
    "The forecaster's demand forecast for its next step (at most 5 minutes ahead), in the demand "
    "query's units: bound=plan is the mean, lower and upper its 80 % interval (the 10 % and 90 % "
    "quantiles). Labels: namespace, policy, bound.",
    ["namespace", "policy", "bound"],
)
FORECAST_BOUNDS = ("lower", "plan", "upper")


def record_demand(
    namespace: str,
    policy: str,
    *,
    observed: float | None,
    forecast: tuple[float, float, float] | None,
) -> None:
    """Demand now and the next step's forecast (lower, plan, upper); None loses the series, so a
    forecast that could not be made is never shown as current."""
    if observed is None:
        with contextlib.suppress(KeyError):
            DEMAND_OBSERVED.remove(namespace, policy)
    else:
        DEMAND_OBSERVED.labels(namespace=namespace, policy=policy).set(observed)
    for index, bound in enumerate(FORECAST_BOUNDS):
        if forecast is None:
            with contextlib.suppress(KeyError):
                DEMAND_FORECAST.remove(namespace, policy, bound)
        else:
            DEMAND_FORECAST.labels(namespace=namespace, policy=policy, bound=bound).set(forecast[index])


def record_prediction(
    namespace: str,
    policy: str,
    *,
    peak: float | None,
    replicas: int | None,
    mae: float | None,
) -> None:
    """The policy's latest forecast; a value that is None (no forecast now) loses its series, so a
    stale forecast is never shown as current."""
    for gauge, value in zip(PREDICTION_GAUGES, (peak, replicas, mae), strict=True):
        if value is None:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, policy)
        else:
            gauge.labels(namespace=namespace, policy=policy).set(value)


ANOMALIES = Gauge(
    "finops_anomalies",
    "1 while a governed workload has a cost anomaly of this kind (GPU time its demand does not "
    "explain, the AnomalyDetected condition), 0 for the other kinds it is judged on; no series while "
    "a workload is not tracked. Labels: namespace, policy, workload (the Deployment), kind "
    "(BusyWithoutDemand, CostOutpacingDemand, UtilizationCollapse, AboveSeasonalProfile, "
    "BelowSeasonalProfile).",
    ["namespace", "policy", "workload", "kind"],
)


def record_anomalies(namespace: str, policy: str, flags: Mapping[str, Mapping[str, int]]) -> None:
    """The policy's anomaly flags (workload -> kind -> 0/1); series of workloads or kinds no longer
    judged are removed, so alerts can tell "clean" (0) from "not judged" (absent)."""
    wanted = {(workload, kind) for workload, kinds in flags.items() for kind in kinds}
    current = {
        (sample.labels["workload"], sample.labels["kind"])
        for metric in ANOMALIES.collect()
        for sample in metric.samples
        if sample.labels["namespace"] == namespace and sample.labels["policy"] == policy
    }
    for workload, kind in current - wanted:
        ANOMALIES.remove(namespace, policy, workload, kind)
    for workload, kinds in flags.items():
        for kind, value in kinds.items():
            ANOMALIES.labels(namespace=namespace, policy=policy, workload=workload, kind=kind).set(value)
