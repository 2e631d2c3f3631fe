"""Walk-forward replay of a demand trace through static, reactive (HPA) and predictive scaling policies.

One capacity model for every policy: `capacity_per_replica` demand units per replica, a start-up delay
(model loading) before new replicas count, and one scaling decision per simulation step. Pods cost GPU
time from the moment they are created. An interval is under-provisioned when its mean demand exceeds
the capacity of the *ready* replicas. Policies only ever receive the demand observed before the decision.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecasting.forecaster import DAY, ForecastConfig, Forecaster
from forecasting.models import FloatArray
from forecasting.series import describe_duration, fill_gaps, load_trace, regularize

IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]
K = TypeVar("K")
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class CapacityModel:
    """What one replica serves and how long it takes to become useful."""

    capacity_per_replica: float
    step_seconds: float
    startup_steps: int = 1
    gpus_per_replica: int = 1

    def replicas_for(self, demand: float, utilization: float = 1.0) -> int:
        return max(1, math.ceil(demand / (self.capacity_per_replica * utilization) - 1e-9))


@dataclass(frozen=True)
class HpaSettings:
    """The HorizontalPodAutoscaler defaults we emulate (autoscaling/v2 behaviour)."""

    target_utilization: float = 0.7
    tolerance: float = 0.1
    scale_down_window_seconds: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 100_000


class Policy(Protocol):
    """Returns the desired replica count at the start of step k, seeing demand[:k] only."""

    def decide(self, k: int, observed: FloatArray, ready: int, current: int) -> int: ...


@dataclass
class StaticPolicy:
    """Fixed fleet sized for a peak: the cost ceiling most teams start from."""

    replicas: int

    def decide(self, k: int, observed: FloatArray, ready: int, current: int) -> int:
        return self.replicas


@dataclass
class HpaPolicy:
    """Kubernetes HPA: desired = ceil(ready * util/target), 10 % tolerance, scale-down stabilisation.

    The metric is the mean demand of the last completed step divided by the ready replicas' capacity.
    Stabilisation keeps the maximum raw recommendation of the window (timestamps strictly inside it, as
    the controller does). Scale-up rate limits are not modelled: at one decision per 5-10 minutes the real
    controller, evaluating every 15 s, could reach any target within the step.
    """

    settings: HpaSettings
    capacity: CapacityModel
    floors: IntArray | None = None
    floor_offset: int = 0
    _history: deque[tuple[float, int]] = field(default_factory=deque)

    def decide(self, k: int, observed: FloatArray, ready: int, current: int) -> int:
        cfg = self.settings
        now = k * self.capacity.step_seconds
        metric = float(observed[-1]) if len(observed) else math.nan
        if not math.isfinite(metric) or ready == 0:
            raw = current
        else:
            ratio = metric / (ready * self.capacity.capacity_per_replica) / cfg.target_utilization
            raw = current if abs(ratio - 1.0) <= cfg.tolerance else math.ceil(ratio * ready - 1e-9)
        cutoff = now - cfg.scale_down_window_seconds
        while self._history and self._history[0][0] <= cutoff:
            self._history.popleft()
        down_max = max([raw, *(r for _, r in self._history)])
        self._history.append((now, raw))
        desired = max(min(current, down_max), raw)
        minimum = cfg.min_replicas
        if self.floors is not None:
            minimum = max(minimum, int(self.floors[k - self.floor_offset]))
        return min(max(desired, minimum), cfg.max_replicas)


@dataclass
class PredictivePolicy:
    """Capacity floor from the forecast, optionally with a reactive HPA on top as a safety net.

    `floors[k - floor_offset]` is the replica count that covers the forecast's upper quantile over every
    step the decision at k is responsible for (computed from demand[:k] only). Without a safety net the
    floor is the only scaler: it scales down as soon as the forecast allows, because the forecast already
    accounts for the start-up delay. The safety net reacts to the last observed interval when it exceeds
    what the floor provides (a burst the forecast missed).
    """

    floors: IntArray
    floor_offset: int
    safety: HpaPolicy | None = None

    def decide(self, k: int, observed: FloatArray, ready: int, current: int) -> int:
        floor = int(self.floors[k - self.floor_offset])
        if self.safety is None:
            return max(floor, 1)
        return max(floor, self.safety.decide(k, observed, ready, current))


@dataclass(frozen=True)
class PolicyRun:
    """Outcome of one policy over one window; arrays are per simulation step."""

    name: str
    knob: str
    replicas: IntArray
    ready: IntArray
    gpu_hours: float
    under_intervals: float
    under_demand: float
    scaling_actions: int


def simulate(
    demand: FloatArray,
    policy: Policy,
    capacity: CapacityModel,
    start: int,
    end: int,
    *,
    initial_replicas: int,
    name: str = "policy",
    knob: str = "",
) -> PolicyRun:
    """Step the fleet from `start` to `end`; the policy sees a read-only copy of demand[:k] only."""
    ready = initial_replicas
    pending: list[list[int]] = []  # [ready_at_step, count], oldest first
    totals = np.zeros(end - start, dtype=np.int64)
    readies = np.zeros(end - start, dtype=np.int64)
    actions = 0
    observed_all = np.array(demand[:end], dtype=np.float64)
    for k in range(start, end):
        while pending and pending[0][0] <= k:
            ready += pending.pop(0)[1]
        current = ready + sum(c for _, c in pending)
        observed = observed_all[:k]
        observed.flags.writeable = False
        desired = policy.decide(k, observed, ready, current)
        if desired > current:
            pending.append([k + capacity.startup_steps, desired - current])
        elif desired < current:
            excess = current - desired
            while excess and pending:  # cancel pods still loading before killing serving ones
                take = min(excess, pending[-1][1])
                pending[-1][1] -= take
                excess -= take
                if pending[-1][1] == 0:
                    pending.pop()
            ready -= excess
        actions += desired != current
        totals[k - start] = desired
        readies[k - start] = ready
    return _score(demand[start:end], totals, readies, capacity, name=name, knob=knob, actions=actions)


def oracle_run(demand: FloatArray, capacity: CapacityModel, start: int, end: int) -> PolicyRun:
    """Perfect foresight at 100 % utilisation, no start-up cost: the physical lower bound."""
    window = np.nan_to_num(demand[start:end])
    replicas = np.array([capacity.replicas_for(float(d)) for d in window], dtype=np.int64)
    actions = int(np.count_nonzero(np.diff(replicas)))
    return _score(
        demand[start:end],
        replicas,
        replicas,
        capacity,
        name="oracle",
        knob="perfect foresight",
        actions=actions,
    )


def _score(
    demand: FloatArray,
    totals: IntArray,
    readies: IntArray,
    capacity: CapacityModel,
    *,
    name: str,
    knob: str,
    actions: int,
) -> PolicyRun:
    demand = np.nan_to_num(demand)
    served = readies * capacity.capacity_per_replica
    short = np.maximum(demand - served, 0.0)
    under = demand > served * (1 + 1e-9)
    total_demand = float(demand.sum())
    return PolicyRun(
        name=name,
        knob=knob,
        replicas=totals,
        ready=readies,
        gpu_hours=float(totals.sum()) * capacity.gpus_per_replica * capacity.step_seconds / 3600.0,
        under_intervals=float(under.mean()) if len(under) else 0.0,
        under_demand=float(short.sum()) / total_demand if total_demand > 0 else 0.0,
        scaling_actions=actions,
    )


@dataclass(frozen=True)
class ForecastTable:
    """Walk-forward forecasts: row i was issued at step start+i from demand[:start+i] only."""

    start: int
    mean: FloatArray
    quantiles: dict[float, FloatArray]
    models: tuple[str, ...]


def walk_forward_forecasts(
    series: pd.Series,
    start: int,
    end: int,
    *,
    horizon: int,
    quantiles: Sequence[float],
    config: ForecastConfig,
    refit_every: int,
) -> ForecastTable:
    """Refit (with model selection) every `refit_every` steps, cheap state updates in between."""
    values = series.to_numpy(dtype=np.float64)
    qs = sorted(set(quantiles))
    n = end - start
    mean = np.zeros((n, horizon))
    table = {q: np.zeros((n, horizon)) for q in qs}
    models: list[str] = []
    forecaster: Forecaster | None = None
    max_steps = int(config.max_history / (series.index[1] - series.index[0]))
    for i, k in enumerate(range(start, end)):
        if forecaster is None or i % refit_every == 0:
            forecaster = Forecaster(config).fit(series.iloc[max(0, k - max_steps) : k], previous=forecaster)
            models.append(forecaster.model_name)
        else:
            forecaster.update_values(values[k - 1 : k])
        result = forecaster.forecast(horizon, qs)
        mean[i] = result.mean
        for q in qs:
            table[q][i] = result.quantiles[q]
    return ForecastTable(start, mean, table, tuple(models))


@dataclass(frozen=True)
class HorizonAccuracy:
    """Forecast quality at one lead time over the test window (MASE scaled by in-sample naive MAE)."""

    steps_ahead: int
    mae_model: float
    mae_naive: float
    mae_seasonal_naive: float
    mase_model: float
    mase_naive: float
    mase_seasonal_naive: float
    coverage_80: float
    coverage_95: float


@dataclass(frozen=True)
class ReplaySettings:
    """Defaults make figures comparable across runs (see benchmarks/replay.py)."""

    capacity_per_replica: float | None = None
    gpus_per_replica: int = 1
    decision_interval: pd.Timedelta | None = None
    startup_delay: pd.Timedelta | None = None
    history: pd.Timedelta = WEEK
    service_level: float = 0.005
    default_target: float = 0.7
    default_quantile: float = 0.9
    hpa_targets: tuple[float, ...] = tuple(round(0.1 + 0.025 * i, 3) for i in range(37))
    static_multipliers: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(31))
    # The headroom lives in the calibrated quantile; the floor target is a coarse multiplicative trim.
    # Low quantiles with a low target (a purely multiplicative margin) fit the validation window's
    # bursts and do not transfer to the test window on bursty traces, so they are not offered.
    predictive_quantiles: tuple[float, ...] = (0.8, 0.9, 0.95, 0.975, 0.99, 0.995)
    predictive_floor_targets: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 1.0)
    # HPA safety-net targets on top of the floor; None = the floor is the only scaler.
    predictive_targets: tuple[float | None, ...] = (None, 0.9, 1.0)
    accuracy_horizon: int = 6
    refit_every: pd.Timedelta = DAY
    forecast: ForecastConfig = field(default_factory=ForecastConfig)


@dataclass(frozen=True)
class PolicyChoice:
    """A policy's knob chosen on the validation window and its outcome on the test window."""

    validation: PolicyRun
    test: PolicyRun


@dataclass(frozen=True)
class ComparisonReport:
    trace: str
    step: pd.Timedelta
    capacity: CapacityModel
    validation_window: tuple[pd.Timestamp, pd.Timestamp]
    test_window: tuple[pd.Timestamp, pd.Timestamp]
    service_level: float
    at_service_level: dict[str, PolicyChoice]
    at_default: dict[str, PolicyRun]
    accuracy: tuple[HorizonAccuracy, ...]
    model_usage: dict[str, int]
    test_demand: FloatArray
    test_timestamps: pd.DatetimeIndex

    def ratio(self, policy: str, against: str, *, default: bool = False) -> float:
        runs = self.at_default if default else {k: v.test for k, v in self.at_service_level.items()}
        return runs[policy].gpu_hours / runs[against].gpu_hours

    def targets(self) -> dict[str, tuple[float, bool]]:
        """The project's acceptance targets at the service level: predictive vs HPA and vs oracle."""
        vs_hpa = self.ratio("predictive", "hpa")
        vs_oracle = self.ratio("predictive", "oracle")
        meets_sl = self.at_service_level["predictive"].test.under_intervals <= self.service_level
        return {
            "predictive/hpa <= 0.75": (vs_hpa, vs_hpa <= 0.75 and meets_sl),
            "predictive/oracle <= 1.25": (vs_oracle, vs_oracle <= 1.25 and meets_sl),
        }

    def to_table(self) -> str:
        cap = self.capacity
        lines = [
            f"== {self.trace}",
            f"step {describe_duration(self.step)}, capacity/replica {cap.capacity_per_replica:.4g}, "
            f"{cap.gpus_per_replica} GPU/replica, start-up {cap.startup_steps} step(s)",
            f"validation {self.validation_window[0]} .. {self.validation_window[1]}, "
            f"test {self.test_window[0]} .. {self.test_window[1]}",
            "",
            f"Cost of the service level (under-provisioned intervals <= {self.service_level:.1%}); "
            "knob chosen on "
            "validation, figures on test:",
            _run_header(),
        ]
        for choice in self.at_service_level.values():
            lines.append(_run_row(choice.test))
        lines.append(
            f"  ratios: predictive/hpa {self.ratio('predictive', 'hpa'):.3f}, "
            f"predictive/oracle {self.ratio('predictive', 'oracle'):.3f}, "
            f"predictive/static {self.ratio('predictive', 'static'):.3f}, "
            f"hpa/oracle {self.ratio('hpa', 'oracle'):.3f}"
        )
        for label, (value, met) in self.targets().items():
            lines.append(f"  target {label}: {value:.3f} -> {'MET' if met else 'NOT MET'}")
        lines += [
            "",
            f"Plain comparison at the HPA default ({self.at_default['hpa'].knob}, test window):",
            _run_header(),
        ]
        lines += [_run_row(run) for run in self.at_default.values()]
        lines.append(
            f"  ratios: predictive/hpa {self.ratio('predictive', 'hpa', default=True):.3f}, "
            f"predictive/static {self.ratio('predictive', 'static', default=True):.3f}, "
            f"predictive/oracle {self.ratio('predictive', 'oracle', default=True):.3f}"
        )
        lines += [
            "",
            "Forecast accuracy on the test window (MAE; MASE vs in-sample naive; central interval coverage):",
            f"  {'h':>3} {'MAE model':>10} {'naive':>10} {'s-naive':>10} {'MASE':>6} {'naive':>6} "
            f"{'s-naive':>7} {'cov80':>6} {'cov95':>6}",
        ]
        for a in self.accuracy:
            lines.append(
                f"  {a.steps_ahead:>3} {a.mae_model:>10.4g} {a.mae_naive:>10.4g} "
                f"{a.mae_seasonal_naive:>10.4g} "
                f"{a.mase_model:>6.3f} {a.mase_naive:>6.3f} {a.mase_seasonal_naive:>7.3f} "
                f"{a.coverage_80:>6.1%} {a.coverage_95:>6.1%}"
            )
        usage = ", ".join(f"{name} x{count}" for name, count in sorted(self.model_usage.items()))
        lines.append(f"  models chosen at daily refits: {usage}")
        return "\n".join(lines)


def _run_header() -> str:
    return f"  {'policy':<11} {'knob':<24} {'GPU-h':>9} {'under int.':>10} {'under dem.':>10} {'actions':>7}"


def _run_row(run: PolicyRun) -> str:
    return (
        f"  {run.name:<11} {run.knob:<24} {run.gpu_hours:>9.1f} {run.under_intervals:>10.2%} "
        f"{run.under_demand:>10.3%} {run.scaling_actions:>7}"
    )


def prepare_trace(path: str | Path, settings: ReplaySettings) -> tuple[pd.Series, CapacityModel]:
    """Load, aggregate to the decision interval and derive the default capacity model."""
    raw = load_trace(path)
    native = (raw.index[1:] - raw.index[:-1]).median()
    interval = settings.decision_interval or (
        pd.Timedelta(minutes=10) if native >= pd.Timedelta(minutes=10) else pd.Timedelta(minutes=5)
    )
    series = regularize(raw, max(interval, native))
    capacity = settings.capacity_per_replica or float(np.nanpercentile(raw.to_numpy(), 95)) / 10.0
    startup = settings.startup_delay or interval
    model = CapacityModel(
        capacity_per_replica=capacity,
        step_seconds=series.index.freq.nanos / 1e9 if series.index.freq else interval.total_seconds(),
        startup_steps=max(1, math.ceil(startup / interval)),
        gpus_per_replica=settings.gpus_per_replica,
    )
    return series, model


def run_comparison(trace_path: str | Path, settings: ReplaySettings | None = None) -> ComparisonReport:
    """Replay one trace: tune each policy on validation, report test costs, forecast accuracy."""
    settings = settings or ReplaySettings()
    series, capacity = prepare_trace(trace_path, settings)
    step = series.index[1] - series.index[0]
    demand = series.to_numpy(dtype=np.float64)
    first = int(settings.history / step)
    if first >= len(demand) - 2:
        raise ValueError(f"{trace_path}: needs more than {describe_duration(settings.history)} of data")
    middle = first + (len(demand) - first) // 2
    end = len(demand)
    lead = capacity.startup_steps + 1  # new pods arrive after start-up and must last until the next decision
    horizon = max(lead, settings.accuracy_horizon)
    quantiles = sorted({*settings.predictive_quantiles, settings.default_quantile, 0.025, 0.1, 0.9, 0.975})
    select = settings.forecast.select_horizon or lead
    config = ForecastConfig(
        **{**settings.forecast.__dict__, "horizon": horizon, "step": step, "select_horizon": select}
    )
    table = walk_forward_forecasts(
        series,
        first,
        end,
        horizon=horizon,
        quantiles=quantiles,
        config=config,
        refit_every=int(settings.refit_every / step),
    )
    filled = fill_gaps(demand, int(DAY / step))

    def upper(q: float) -> FloatArray:
        return np.asarray(table.quantiles[q][:, :lead].max(axis=1), dtype=np.float64)

    def run_static(mult: float, lo: int, hi: int) -> PolicyRun:
        replicas = capacity.replicas_for(float(np.nanmax(demand[:lo])) * mult)
        return simulate(
            demand,
            StaticPolicy(replicas),
            capacity,
            lo,
            hi,
            initial_replicas=replicas,
            name="static",
            knob=f"{mult:.2f} x past peak",
        )

    def run_hpa(target: float, lo: int, hi: int) -> PolicyRun:
        hpa = HpaPolicy(HpaSettings(target_utilization=target), capacity)
        initial = capacity.replicas_for(filled[lo - 1], target)
        return simulate(
            demand, hpa, capacity, lo, hi, initial_replicas=initial, name="hpa", knob=f"target {target:.1%}"
        )

    def run_predictive(q: float, floor_target: float, target: float | None, lo: int, hi: int) -> PolicyRun:
        floors = np.ceil(upper(q) / (capacity.capacity_per_replica * floor_target) - 1e-9).astype(np.int64)
        safety = None
        if target is not None:
            safety = HpaPolicy(HpaSettings(target_utilization=target), capacity)
        knob = f"q{q:g}@{floor_target:.0%}" + (f" hpa {target:.0%}" if target is not None else " floor only")
        return simulate(
            demand,
            PredictivePolicy(floors, first, safety),
            capacity,
            lo,
            hi,
            initial_replicas=max(1, int(floors[lo - first])),
            name="predictive",
            knob=knob,
        )

    windows = ((first, middle), (middle, end))
    static_knobs = [(m,) for m in settings.static_multipliers]
    hpa_knobs = [(t,) for t in settings.hpa_targets]
    pred_knobs = [
        (q, f, t)
        for q in settings.predictive_quantiles
        for f in settings.predictive_floor_targets
        for t in settings.predictive_targets
    ]
    at_sl = {
        "static": _choose(
            lambda knob, lo, hi: run_static(knob[0], lo, hi), static_knobs, windows, settings.service_level
        ),
        "hpa": _choose(
            lambda knob, lo, hi: run_hpa(knob[0], lo, hi), hpa_knobs, windows, settings.service_level
        ),
        "predictive": _choose(
            lambda knob, lo, hi: run_predictive(knob[0], knob[1], knob[2], lo, hi),
            pred_knobs,
            windows,
            settings.service_level,
        ),
        "oracle": PolicyChoice(
            oracle_run(demand, capacity, first, middle), oracle_run(demand, capacity, middle, end)
        ),
    }
    target = settings.default_target
    at_default = {
        "static": run_static(1.0 / target, middle, end),
        "hpa": run_hpa(target, middle, end),
        "predictive": run_predictive(settings.default_quantile, target, target, middle, end),
        "oracle": oracle_run(demand, capacity, middle, end),
    }
    accuracy = _accuracy(demand, table, (first, middle, end), horizon=horizon, season=int(DAY / step))
    return ComparisonReport(
        trace=Path(trace_path).name,
        step=step,
        capacity=capacity,
        validation_window=(series.index[first], series.index[middle - 1]),
        test_window=(series.index[middle], series.index[end - 1]),
        service_level=settings.service_level,
        at_service_level=at_sl,
        at_default=at_default,
        accuracy=accuracy,
        model_usage=dict(Counter(table.models)),
        test_demand=demand[middle:end],
        test_timestamps=series.index[middle:end],
    )


def _choose(
    run: Callable[[K, int, int], PolicyRun],
    knobs: Sequence[K],
    windows: tuple[tuple[int, int], tuple[int, int]],
    service_level: float,
) -> PolicyChoice:
    """Cheapest knob meeting the service level on validation (else the safest), replayed on test."""
    (vlo, vhi), (tlo, thi) = windows
    results = [(knob, run(knob, vlo, vhi)) for knob in knobs]
    feasible = [(k, r) for k, r in results if r.under_intervals <= service_level]
    if feasible:
        knob, validation = min(feasible, key=lambda kr: kr[1].gpu_hours)
    else:
        knob, validation = min(results, key=lambda kr: (kr[1].under_intervals, kr[1].gpu_hours))
    return PolicyChoice(validation, run(knob, tlo, thi))


def _accuracy(
    demand: FloatArray, table: ForecastTable, bounds: tuple[int, int, int], *, horizon: int, season: int
) -> tuple[HorizonAccuracy, ...]:
    """Per-lead-time errors of the walk-forward forecasts and the two baselines over the test window."""
    first, middle, end = bounds
    history = demand[:middle]
    history = history[np.isfinite(history)]
    scale = float(np.mean(np.abs(np.diff(history)))) or 1.0
    out = []
    for h in range(1, horizon + 1):
        rows = np.arange(middle - first, end - first - h + 1)
        targets = rows + first + h - 1
        actual = demand[targets]
        ok = np.isfinite(actual)
        model = table.mean[rows, h - 1]
        naive = demand[rows + first - 1]
        seasonal = demand[targets - season]
        lo80, hi80 = table.quantiles[0.1][rows, h - 1], table.quantiles[0.9][rows, h - 1]
        lo95, hi95 = table.quantiles[0.025][rows, h - 1], table.quantiles[0.975][rows, h - 1]

        def mae(pred: FloatArray, actual: FloatArray = actual, ok: npt.NDArray[np.bool_] = ok) -> float:
            valid = ok & np.isfinite(pred)
            return float(np.mean(np.abs(actual[valid] - pred[valid])))

        out.append(
            HorizonAccuracy(
                steps_ahead=h,
                mae_model=mae(model),
                mae_naive=mae(naive),
                mae_seasonal_naive=mae(seasonal),
                mase_model=mae(model) / scale,
                mase_naive=mae(naive) / scale,
                mase_seasonal_naive=mae(seasonal) / scale,
                coverage_80=float(np.mean((actual[ok] >= lo80[ok]) & (actual[ok] <= hi80[ok]))),
                coverage_95=float(np.mean((actual[ok] >= lo95[ok]) & (actual[ok] <= hi95[ok]))),
            )
        )
    return tuple(out)
