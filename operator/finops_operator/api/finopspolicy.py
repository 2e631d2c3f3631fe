"""FinOpsPolicy: GPU-hour and cost budgets, per-workload caps, idle shutdown, autoscale bounds, cost
anomalies and alerting for the Deployments it selects in its namespace."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from finops_operator.api.common import (
    MAX_LABELS,
    ApiModel,
    ConditionList,
    CustomResource,
    DurationText,
    EnforcementMode,
    LabelSelector,
    PrinterColumn,
    ResourceMeta,
    SecretKeyReference,
    age_column,
    duration_bounds,
    parse_duration,
    ready_column,
)


class BudgetAction(StrEnum):
    """What happens to governed workloads once any budget (of any window) is used up."""

    SCALE_TO_MIN = "ScaleToMin"
    SCALE_TO_ZERO = "ScaleToZero"
    BLOCK_SCALE_UP = "BlockScaleUp"
    ALERT_ONLY = "AlertOnly"


class CostLimits(ApiModel):
    """Daily budgets and per-workload resource caps."""

    daily_gpu_hours: float | None = Field(default=None, alias="dailyGPUHours", ge=0)
    """Maximum GPU-hours per budget window for all selected workloads together."""
    daily_cost: float | None = Field(default=None, ge=0)
    """Maximum cost per budget window (in spec.pricing.currency); needs spec.pricing."""
    max_cpu_cores: float | None = Field(default=None, alias="maxCPUCores", gt=0)
    """Maximum CPU cores (sum of container limits, else requests) per pod."""
    max_memory_gb: float | None = Field(default=None, alias="maxMemoryGB", gt=0)
    """Maximum memory in GB (10^9 bytes; sum of container limits, else requests) per pod."""
    max_gpus_per_pod: int | None = Field(default=None, alias="maxGPUsPerPod", ge=0, le=64)
    """Maximum nvidia.com/gpu per pod."""
    max_hourly_cost: float | None = Field(default=None, ge=0)
    """Maximum cost per hour of one workload: GPUs per pod x replicas x the GPU-hour rate (the product
    its nodeSelector pins, else gpuHourlyRate); needs spec.pricing."""
    budget_action: BudgetAction = BudgetAction.SCALE_TO_MIN
    """When any budget is used up (till its reset): ScaleToMin, ScaleToZero, BlockScaleUp or AlertOnly."""
    refuse_budget_breaking_scale_up: bool = False
    """At admission, refuse (Enforce) or warn about (Warn) a Deployment change adding GPUs whose burn,
    with the GPUs running now, would use up a GPU-hour budget before its window ends."""
    alert_thresholds_percent: list[int] = Field(
        default_factory=lambda: [80, 100],
        min_length=1,
        max_length=10,
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": 100}},
    )
    """Budget-use percentages that raise an Event and an alert, once per window each."""


class BudgetPeriod(StrEnum):
    """The calendar windows a budget is counted in."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class Budget(ApiModel):
    """One budget over one calendar window (spec.budgetWindow says where the windows start)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.gpuHours) || has(self.cost)",
                    "message": "a budget needs gpuHours, cost or both",
                }
            ]
        }
    )

    period: BudgetPeriod
    """daily, weekly (starts on budgetWindow.weekStart) or monthly (starts on the 1st)."""
    gpu_hours: float | None = Field(default=None, alias="gpuHours", ge=0)
    """Maximum GPU-hours per window for all selected workloads together."""
    cost: float | None = Field(default=None, ge=0)
    """Maximum cost per window (in spec.pricing.currency); needs spec.pricing."""


class BudgetWindow(ApiModel):
    """Where the budget windows start: time zone, reset time, and the first day of a week."""

    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    """IANA time zone of the window, e.g. Europe/Paris."""
    reset_time: str = Field(default="00:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Local wall-clock time (HH:MM) at which the window resets."""
    week_start: Weekday = Weekday.MONDAY
    """First day of a weekly window (Monday to Sunday); it resets at resetTime on that day."""


class Pricing(ApiModel):
    """Prices used to turn GPU-hours into cost."""

    gpu_hourly_rate: float = Field(alias="gpuHourlyRate", ge=0)
    """Default price of one GPU for one hour."""
    gpu_product_rates: dict[str, float] = Field(
        default_factory=dict, alias="gpuProductRates", max_length=MAX_LABELS
    )
    """Per-product prices keyed by the node's nvidia.com/gpu.product label; others use gpuHourlyRate."""
    currency: str = Field(default="USD", min_length=3, max_length=3)
    """ISO 4217 currency code, for display."""


class OptimizationRules(ApiModel):
    """Idle shutdown and model hygiene rules."""

    idle_shutdown_threshold_minutes: int | None = Field(default=None, ge=1, le=10080)
    """Scale a workload to zero after its GPUs stayed below idleGPUUtilizationPercent this long."""
    idle_gpu_utilization_percent: float = Field(default=5, alias="idleGPUUtilizationPercent", ge=0, le=100)
    """GPU utilisation (percent) below which a workload counts as idle."""
    model_quantization_required: bool = False
    """Require workloads to declare a quantized model (label finops.dev/model-quantization)."""


class AutoScale(ApiModel):
    """Bounds for the HorizontalPodAutoscaler the operator owns for each governed Deployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                }
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=10000)
    """Lower bound of the HPA."""
    max_replicas: int = Field(ge=1, le=10000)
    """Upper bound of the HPA."""
    cpu_utilization_percentage: int = Field(default=70, alias="cpuUtilizationPercentage", ge=1, le=100)
    """Target average CPU utilisation of the HPA."""


class ForecastModel(StrEnum):
    AUTO = "auto"
    HOLT_WINTERS = "holtWinters"
    SARIMAX = "sarimax"
    SEASONAL_NAIVE = "seasonalNaive"


class PredictiveScaling(ApiModel):
    """Forecast-driven floor for the HPA: raise minReplicas before predicted demand arrives."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || (has(self.demandQuery) && has(self.targetPerReplica))",
                    "message": (
                        "demandQuery and targetPerReplica are required when predictive scaling is enabled"
                    ),
                }
            ]
        }
    )

    enabled: bool = False
    """Turn predictive scaling on."""
    demand_query: str | None = Field(default=None, min_length=1, max_length=4096)
    """PromQL returning one demand series for the workload (e.g. requests/s)."""
    target_per_replica: float | None = Field(default=None, gt=0)
    """Demand one replica serves at its target load."""
    horizon_minutes: int = Field(default=60, ge=5, le=10080)
    """How far ahead to forecast."""
    lead_time_minutes: int = Field(default=10, ge=0, le=1440)
    """Start-up delay (model loading) to provision ahead by."""
    model: ForecastModel = ForecastModel.AUTO
    """auto, holtWinters, sarimax or seasonalNaive."""
    max_under_provisioned_percent: float = Field(default=0.5, gt=0, le=50)
    """Service level: largest share of intervals (percent) whose demand may exceed ready capacity."""
    minimum_history_hours: int = Field(default=48, ge=1, le=2160)
    """Below this much history the forecaster refuses instead of guessing."""


class AnomalyAction(StrEnum):
    """What happens to a workload whose GPU time demand does not explain."""

    NONE = "None"
    SCALE_TO_MINIMUM = "ScaleToMinimum"


class AnomalyDetection(ApiModel):
    """Cost anomalies: GPU time that demand does not explain, per governed workload (docs/ANOMALIES.md)."""

    demand_query: str | None = Field(default=None, min_length=1, max_length=4096)
    """PromQL for the demand served (series summed); default predictiveScaling.demandQuery, else seasonal."""
    sustained_for: DurationText = Field(
        default="30m", json_schema_extra=duration_bounds("sustainedFor", "10s", "168h")
    )
    """How long a departure must last to be reported, and be gone to clear (e.g. 30m; 10s to 168h)."""
    learning_period: DurationText = Field(
        default="24h", json_schema_extra=duration_bounds("learningPeriod", "10s", "720h")
    )
    """GPU use learnt from a workload before it is judged (e.g. 24h, every load level of a day)."""
    action: AnomalyAction = AnomalyAction.NONE
    """None reports only; ScaleToMinimum (Enforce) holds an anomalous workload at minReplicas till clear."""

    @property
    def sustained_seconds(self) -> float:
        return parse_duration(self.sustained_for).total_seconds()

    @property
    def learning_seconds(self) -> float:
        return parse_duration(self.learning_period).total_seconds()


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class AlertRoute(ApiModel):
    """Who hears about one kind of event, and how loudly."""

    severity: Severity = Severity.WARNING
    """INFO, WARNING or CRITICAL."""
    recipient_group: str = Field(min_length=1, max_length=253)
    """Team or group to notify, carried on Events and alerts."""


class Alerting(ApiModel):
    """Alert routing per event, plus an optional Alertmanager-compatible webhook."""

    threshold_exceeded: AlertRoute | None = None
    """A budget threshold (alertThresholdsPercent) was crossed."""
    budget_exhausted: AlertRoute | None = None
    """A daily budget was used up and budgetAction applied."""
    idle_shutdown: AlertRoute | None = None
    """A workload was scaled to zero for being idle, or woken."""
    cap_violation: AlertRoute | None = None
    """A workload breaks a per-workload cap."""
    anomaly_detected: AlertRoute | None = None
    """A workload's GPU time departed from what its demand explains (spec.anomalyDetection)."""
    cost_over_expected: AlertRoute | None = None
    """A workload's measured cost per hour runs over its finops.dev/expected-cost-per-hour."""
    webhook_secret_ref: SecretKeyReference | None = None
    """Secret key holding a URL that receives alerts in Alertmanager's webhook JSON format."""


class FinOpsPolicySpec(ApiModel):
    """Desired guardrails for the Deployments selected in this namespace."""

    target_workload_selector: LabelSelector
    """Selects the Deployments in this namespace that the policy governs."""
    enforcement_mode: EnforcementMode = EnforcementMode.ENFORCE
    """Enforce acts, DryRun only reports what it would do, Warn reports and warns."""
    cost_limits: CostLimits | None = None
    """Daily budgets and per-workload caps. Its budgetAction and alertThresholdsPercent serve every budget."""
    budgets: list[Budget] = Field(
        default_factory=list,
        max_length=3,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["period"]},
    )
    """Budgets per calendar window, at most one per period (e.g. 18 GPU-hours daily and 400 monthly)."""
    budget_window: BudgetWindow = Field(default_factory=BudgetWindow)
    """When the budget windows start, and in which time zone."""
    pricing: Pricing | None = None
    """Prices per GPU-hour."""
    optimization_rules: OptimizationRules | None = None
    """Idle shutdown and model hygiene."""
    auto_scale: AutoScale | None = None
    """HPA bounds for each governed Deployment."""
    predictive_scaling: PredictiveScaling | None = None
    """Forecast-driven minimum replicas."""
    anomaly_detection: AnomalyDetection | None = None
    """Cost anomalies: GPU time that demand does not explain."""
    alerting: Alerting | None = None
    """Alert routing."""


class WorkloadState(StrEnum):
    ACTIVE = "Active"
    IDLE_SCALED_DOWN = "IdleScaledDown"
    BUDGET_SCALED_DOWN = "BudgetScaledDown"
    ANOMALY_SCALED_DOWN = "AnomalyScaledDown"
    BUDGET_SUSPENDED = "BudgetSuspended"
    CONFLICT = "Conflict"


class WorkloadStatus(ApiModel):
    """What the policy knows about one governed workload."""

    name: str
    """A Deployment's name; <kind>/<name> for the other kinds (statefulset/db, job/train, pod/notebook)."""
    state: WorkloadState = WorkloadState.ACTIVE
    """Active, IdleScaledDown, BudgetScaledDown, AnomalyScaledDown, BudgetSuspended or Conflict."""
    gpus_per_pod: int = Field(default=0, alias="gpusPerPod", ge=0)
    """GPUs each pod requests."""
    gpu_hours: float = Field(default=0, alias="gpuHours", ge=0)
    """GPU-hours this workload used in the current window."""
    idle_since: datetime | None = None
    """When its GPUs were first seen below the idle threshold (unset when busy or unknown)."""


class Violation(ApiModel):
    """A governed workload that breaks a per-workload cap."""

    name: str
    """Deployment name."""
    rule: str
    """The cap broken, e.g. maxGPUsPerPod."""
    message: str
    """What was found against what is allowed."""


class CostOverrun(ApiModel):
    """A workload whose measured cost runs over the cost it declares (finops.dev/expected-cost-per-hour),
    or whose declaration cannot be read."""

    name: str
    """The workload, as in workloads[].name."""
    expected_cost_per_hour: float | None = Field(default=None, alias="expectedCostPerHour", ge=0)
    """What the annotation declares (unset when it cannot be read)."""
    measured_cost_per_hour: float = Field(default=0, alias="measuredCostPerHour", ge=0)
    """GPUs of its running pods x their price per GPU-hour, now."""
    since: datetime | None = None
    """When it was first seen over (kept while it stays over)."""
    message: str = ""
    """What was found against what was declared, or why the declaration is not valid."""


class PredictionStatus(ApiModel):
    """The latest demand forecast and what it recommends."""

    model: str
    """Forecasting model in use (chosen by backtest when spec.predictiveScaling.model is auto)."""
    mae: float | None = None
    """Backtest mean absolute error, in demand units."""
    mase: float | None = None
    """Backtest error relative to a naive forecast (below 1 beats naive)."""
    next_peak: float | None = None
    """Highest forecast demand (mean) within the horizon."""
    next_peak_time: datetime | None = None
    """When that peak is forecast."""
    recommended_replicas: int | None = None
    """Minimum replicas the forecast asks for over the lead time, after clamping."""
    budget_capped: bool = False
    """The remaining GPU-hour budget lowered the recommendation."""
    computed_at: datetime
    """When the forecast was made."""


class CalibrationHour(ApiModel):
    """Intervals observed and missed in one clock hour."""

    hour: int = Field(ge=0)
    """Hour index: Unix time / 3600, rounded down."""
    intervals: int = Field(ge=0)
    """Intervals observed in that hour."""
    misses: int = Field(ge=0)
    """Of those, intervals whose demand exceeded the capacity (or plan + headroom, during fallback)."""


class CalibrationStatus(ApiModel):
    """Predictive scaling's online calibration: the margin it learned from its own misses, and how it
    does against spec.predictiveScaling.maxUnderProvisionedPercent. Kept here so a restart resumes it."""

    margin: float
    """Margin above the forecast, in forecast error units (widths of its 80 % interval)."""
    headroom: float | None = None
    """Demand added above the forecast plan at the last decision (margin x unit)."""
    miss_rate_percent: float | None = None
    """Achieved share of intervals under-provisioned over the last day, in percent."""
    intervals_last_day: int = 0
    """Intervals observed over the last day."""
    misses_last_day: int = 0
    """Of those, how many were under-provisioned."""
    plan: float | None = None
    """Forecast demand (mean, maximum over the lead time) the last decision was sized on."""
    unit: float | None = None
    """The forecaster's error size for that plan (width of its 80 % interval at the lead time)."""
    forecast_in_charge: bool = False
    """The last decision was the forecast's (false: the reactive HPA was in charge)."""
    target: float = Field(gt=0, lt=1)
    """The service level as a fraction (maxUnderProvisionedPercent / 100)."""
    lead: int = Field(ge=1)
    """Decision intervals until new capacity serves (lead time / sample interval, plus one)."""
    scale: float = Field(ge=0)
    """Typical size of the forecast error in units (one miss moves the margin by about scale / lead)."""
    updated_at: datetime
    """When the last interval was accounted."""
    hours: list[CalibrationHour] = Field(default_factory=list, max_length=24)
    """Counters of the last 24 hours (the source of the miss rate)."""


class AnomalyPhase(StrEnum):
    LEARNING = "Learning"
    NORMAL = "Normal"
    DEPARTING = "Departing"
    ANOMALOUS = "Anomalous"
    NO_DATA = "NoData"


class AnomalyEvidence(ApiModel):
    """A departure of a workload's GPU time: what, expected vs observed (means over it), since when."""

    kind: str
    """BusyWithoutDemand, CostOutpacingDemand, UtilizationCollapse, Above/BelowSeasonalProfile."""
    signal: str
    """The series the evidence is about: gpuUtilization (a fraction) or allocatedGpus."""
    unit: str
    """Unit of observed and expected."""
    observed: float
    """Mean of the signal over the departure."""
    expected: float
    """What the workload's own model expected, mean over the departure."""
    expected_low: float
    """Low end of the expected band."""
    expected_high: float
    """High end of the expected band."""
    demand: float | None = None
    """Mean demand over the departure (unset without a demand signal)."""
    since: datetime
    """When the departure started."""
    sustained_seconds: float = Field(ge=0)
    """Observed time the departure has lasted."""
    message: str = Field(max_length=1024)
    """The evidence in one line."""


class WorkloadAnomaly(ApiModel):
    """Anomaly detection for one governed Deployment; the detector's state is kept here for restarts."""

    name: str
    """Deployment name."""
    phase: AnomalyPhase
    """Learning, Normal, Departing (not sustained yet), Anomalous or NoData."""
    anomaly: AnomalyEvidence | None = None
    """The reported anomaly (phase Anomalous)."""
    pending: AnomalyEvidence | None = None
    """A departure not sustained for sustainedFor yet."""
    source: str = Field(max_length=64)
    """What the detector learnt against (demand query digest, or seasonal): a new one relearns."""
    detector: dict[str, Any] = Field(
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    """The detector's learnt state (forecasting.anomaly, versioned, about 2.5 KB)."""


class WorkloadUsage(ApiModel):
    """What one governed Deployment used in one window."""

    name: str
    """Deployment name."""
    gpu_hours: float = Field(default=0, alias="gpuHours", ge=0)
    """GPU-hours used."""
    cost: float = Field(default=0, ge=0)
    """Their cost at spec.pricing."""
    idle_gpu_hours: float = Field(default=0, alias="idleGPUHours", ge=0)
    """Of gpuHours, the part held but unused (1 - GPU utilisation; 0 where utilisation is unknown)."""


MAX_LISTED_WORKLOADS = 500
"""A window ledger lists this many workloads at most (status size is bounded); its totals count all."""


class WindowLedger(ApiModel):
    """The GPU-hour ledger of one calendar window: the source of budget use and of showback reports."""

    period: BudgetPeriod
    """daily, weekly or monthly."""
    start: datetime
    """Start of the window."""
    end: datetime
    """End of the window (its reset)."""
    ledger_time: datetime
    """Time up to which GPU-hours have been accounted (the end, once the window is closed)."""
    gpu_hours_used: float = Field(default=0, alias="gpuHoursUsed", ge=0)
    """GPU-hours used by governed workloads."""
    cost_used: float = Field(default=0, ge=0)
    """Cost of gpuHoursUsed at spec.pricing."""
    idle_gpu_hours: float = Field(default=0, alias="idleGPUHours", ge=0)
    """Of gpuHoursUsed, the part held but unused."""
    used_percent: int = 0
    """Use of this window's budget in spec.budgets (or costLimits for daily), in percent."""
    thresholds_notified: list[int] = Field(default_factory=list)
    """Budget thresholds already announced in this window."""
    workloads: list[WorkloadUsage] = Field(default_factory=list, max_length=MAX_LISTED_WORKLOADS)
    """Use per workload (the first 500 by name; the totals count every workload)."""


class FinOpsPolicyStatus(ApiModel):
    """Observed state: the GPU-hour ledger of the current window, budget use and workload findings."""

    model_config = ConfigDict(frozen=False)

    observed_generation: int = 0
    """The .metadata.generation last acted on."""
    conditions: ConditionList
    """Ready, BudgetExceeded, Idle, Conflict, MetricsAvailable, PredictionReady and AnomalyDetected."""
    window_start: datetime | None = None
    """Start of the current budget window."""
    window_end: datetime | None = None
    """End of the current budget window (next reset)."""
    gpu_hours_used: float = Field(default=0, alias="gpuHoursUsed")
    """GPU-hours used in the current window by governed workloads."""
    gpu_hours_remaining: float | None = Field(default=None, alias="gpuHoursRemaining")
    """GPU-hours left in the tightest GPU-hour budget of any window (unset without one)."""
    gpus_running: int = Field(default=0, alias="gpusRunning", ge=0)
    """GPUs of the governed pods running at ledgerTime: the burn in GPU-hours per hour."""
    cost_used: float = 0
    """Cost of gpuHoursUsed at spec.pricing."""
    budget_used_percent: int = 0
    """Highest use of any budget of any window, in percent (may exceed 100)."""
    projected_exhaustion_time: datetime | None = None
    """When the budget runs out at the current burn rate (unset if not within the window)."""
    ledger_time: datetime | None = None
    """Time up to which GPU-hours have been accounted."""
    governed_workloads: int = 0
    """Number of Deployments this policy governs."""
    idle_workloads: int = 0
    """Number of governed Deployments currently idle."""
    thresholds_notified: list[int] = Field(default_factory=list)
    """Budget thresholds already announced in this window (so each fires once)."""
    workloads: list[WorkloadStatus] = Field(default_factory=list, max_length=500)
    """Per-workload details (capped)."""
    violations: list[Violation] = Field(default_factory=list, max_length=100)
    """Workloads breaking per-workload caps (capped; see violationCount)."""
    violation_count: int = 0
    """Total number of cap violations."""
    prediction: PredictionStatus | None = None
    """Predictive scaling: the latest forecast and recommendation."""
    calibration: CalibrationStatus | None = None
    """Predictive scaling: the calibrated margin and the achieved miss rate (kept across fallbacks)."""
    anomalies: list[WorkloadAnomaly] = Field(default_factory=list, max_length=50)
    """Anomaly detection per governed workload (the first 50 by name)."""
    cost_overruns: list[CostOverrun] = Field(default_factory=list, alias="costOverruns", max_length=100)
    """Workloads over their finops.dev/expected-cost-per-hour, or with one that cannot be read (first 100)."""
    windows: list[WindowLedger] = Field(default_factory=list, max_length=6)
    """Ledgers of the current and the previous daily, weekly and monthly windows (docs/BUDGETS.md)."""


class FinOpsPolicy(CustomResource):
    """A FinOpsPolicy object as stored by the API server."""

    meta: ClassVar[ResourceMeta] = ResourceMeta(
        kind="FinOpsPolicy",
        plural="finopspolicies",
        singular="finopspolicy",
        short_names=["fop"],
        scope="Namespaced",
        printer_columns=[
            PrinterColumn(name="Mode", json_path=".spec.enforcementMode"),
            PrinterColumn(
                name="Budget-Used",
                json_path=".status.budgetUsedPercent",
                type="integer",
                description="Highest use of any budget, in percent",
            ),
            PrinterColumn(name="GPU-Hours", json_path=".status.gpuHoursUsed", type="number"),
            PrinterColumn(name="Workloads", json_path=".status.governedWorkloads", type="integer"),
            PrinterColumn(name="Idle", json_path=".status.idleWorkloads", type="integer", priority=1),
            ready_column(),
            age_column(),
        ],
        spec_validations=[
            {
                "rule": "!has(self.costLimits) || !has(self.costLimits.dailyCost) || has(self.pricing)",
                "message": "costLimits.dailyCost needs spec.pricing to turn GPU-hours into cost",
            },
            {
                "rule": "!has(self.costLimits) || !has(self.costLimits.maxHourlyCost) || has(self.pricing)",
                "message": "costLimits.maxHourlyCost needs spec.pricing to turn GPUs into cost",
            },
            {
                "rule": "!has(self.budgets) || has(self.pricing) || self.budgets.all(b, !has(b.cost))",
                "message": "budgets[].cost needs spec.pricing to turn GPU-hours into cost",
            },
            {
                "rule": (
                    "!has(self.budgets) || !self.budgets.exists(b, b.period == 'daily') || "
                    "!has(self.costLimits) || "
                    "(!has(self.costLimits.dailyGPUHours) && !has(self.costLimits.dailyCost))"
                ),
                "message": (
                    "the daily budget is set twice, in costLimits.dailyGPUHours/dailyCost and in "
                    "budgets[] (period daily): keep one"
                ),
            },
            {
                "rule": (
                    "!has(self.predictiveScaling) || !self.predictiveScaling.enabled || has(self.autoScale)"
                ),
                "message": "predictiveScaling needs autoScale: it raises the minReplicas of the HPA",
            },
        ],
    )

    api_version: Literal["finops.dev/v1alpha1"] = "finops.dev/v1alpha1"
    kind: Literal["FinOpsPolicy"] = "FinOpsPolicy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FinOpsPolicySpec
    status: FinOpsPolicyStatus | None = None
