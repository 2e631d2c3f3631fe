"""Walk-forward replay of a demand trace: the user's HPA, the calibrated predictive policy, the limits.

For every trace: a week of history before the first decision, then a validation window and a test
window of equal length. The HPA's target is chosen on validation as a user tuning from history would
(the cheapest target meeting the service level there); the predictive policy has no knob: the user
states the service level and it calibrates its margin online from the first decision on (validation
is its warm-up), so the same run is reported on test. Every figure is on the test window, against
`foresight` (the reachable limit) and, as a secondary line, the `oracle` (no start-up cost).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecasting.calibration import seeded
from forecasting.errors import ForecastError
from forecasting.forecaster import DAY, ForecastConfig, Forecaster
from forecasting.models import FloatArray
from forecasting.resolution import steps_per_bin
from forecasting.series import describe_duration, fill_gaps, load_trace, regularize
from forecasting.simulate import (
    CapacityModel,
    HpaPolicy,
    HpaSettings,
    PolicyRun,
    PredictivePolicy,
    foresight_run,
    oracle_run,
    simulate,
)

WEEK = pd.Timedelta(days=7)
# Quantiles of the forecaster's own intervals used for the accuracy report (80 % and 95 % central).
REPORTED_QUANTILES = (0.025, 0.1, 0.9, 0.975)


@dataclass(frozen=True)
class ForecastTable:
    """Walk-forward forecasts: row i was issued at step start+i from demand[:start+i] only.

    Rows are NaN where no model was available (every fit so far failed): the policy then falls back.
    """

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
    """Refit (with model selection) every `refit_every` steps, cheap state updates in between.

    A failed refit keeps the previous model (as the operator keeps its last good forecaster).
    """
    values = series.to_numpy(dtype=np.float64)
    qs = sorted(set(quantiles))
    n = end - start
    mean = np.full((n, horizon), np.nan)
    table = {q: np.full((n, horizon), np.nan) for q in qs}
    models: list[str] = []
    forecaster: Forecaster | None = None
    max_steps = int(config.max_history / (series.index[1] - series.index[0]))
    for i, k in enumerate(range(start, end)):
        if forecaster is None or i % refit_every == 0:
            try:
                fitted = Forecaster(config).fit(series.iloc[max(0, k - max_steps) : k], previous=forecaster)
            except ForecastError:
                models.append("failed")
                fitted = None
            if fitted is not None:
                forecaster = fitted
                models.append(fitted.model_name)
            elif forecaster is not None:
                forecaster.update_values(values[k - 1 : k])
        else:
            forecaster.update_values(values[k - 1 : k])
        if forecaster is None:
            continue
        result = forecaster.forecast(horizon, qs)
        mean[i] = result.mean
        for q in qs:
            table[q][i] = result.quantiles[q]
    return ForecastTable(start, mean, table, tuple(models))


def at_decisions(
    table: ForecastTable, *, per_bin: int, offset: int, start: int, end: int, horizon: int
) -> ForecastTable:
    """Forecasts made on a grid of `per_bin` decisions, read at every decision in [start, end).

    Decision m lies in bin (m + offset) // per_bin; it uses the forecast issued when that bin began
    (from complete bins only: the partial bin's first decisions are not seen, as in the operator,
    whose forecaster is fed a coarser grid than its decisions), and lead h of it is the forecast
    of the bin holding decision m + h - 1. Row i of the result is decision start + i.
    """
    decisions = np.arange(start, end)
    bins = (decisions + offset) // per_bin
    rows = bins - table.start
    columns = (decisions[:, None] + np.arange(horizon) + offset) // per_bin - bins[:, None]

    def read(values: FloatArray) -> FloatArray:
        return np.asarray(values[rows[:, None], columns], dtype=np.float64)

    quantiles = {q: read(v) for q, v in table.quantiles.items()}
    return ForecastTable(start, read(table.mean), quantiles, table.models)


def forecast_grid(series: pd.Series, per_bin: int) -> tuple[pd.Series, int]:
    """The demand on bins of `per_bin` decisions (means, anchored at the epoch like every grid here)
    and the offset of the first decision within its bin."""
    step = series.index[1] - series.index[0]
    if per_bin == 1:
        return series, 0
    coarse = regularize(series, step * per_bin)
    return coarse, int((series.index[0] - coarse.index[0]) / step)


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
    """One scenario; the defaults are the project's headline settings (see docs/BENCHMARKS.md).

    `hpa_sync` is how often the HPA re-evaluates (None: once per decision); the predictive policy
    decides every `decision_interval` with the HPA evaluating underneath at `hpa_sync`.
    """

    label: str = ""
    capacity_per_replica: float | None = None
    gpus_per_replica: int = 1
    decision_interval: pd.Timedelta | None = None
    startup_delay: pd.Timedelta | None = None
    hpa_sync: pd.Timedelta | None = None
    history: pd.Timedelta = WEEK
    service_level: float = 0.005
    service_levels: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02)
    hpa_targets: tuple[float, ...] = tuple(round(0.1 + 0.025 * i, 3) for i in range(37))
    accuracy_horizon: int = 6
    refit_every: pd.Timedelta = DAY
    forecast: ForecastConfig = field(default_factory=ForecastConfig)


@dataclass(frozen=True)
class LevelResult:
    """One service level: the HPA tuned for it on validation, and the predictive policy stating it.

    `predictive_validation` is the same predictive run scored on the validation window (its warm-up):
    what a change to the policy is chosen on, so that the test window is only ever reported."""

    service_level: float
    hpa_validation: PolicyRun
    hpa: PolicyRun
    predictive: PolicyRun
    predictive_validation: PolicyRun
    fallbacks: dict[str, int]
    final_margin: float
    final_day_miss_rate: float | None


@dataclass(frozen=True)
class ComparisonReport:
    trace: str
    label: str
    step: pd.Timedelta
    substeps: int
    capacity: CapacityModel
    validation_window: tuple[pd.Timestamp, pd.Timestamp]
    test_window: tuple[pd.Timestamp, pd.Timestamp]
    service_level: float
    levels: tuple[LevelResult, ...]
    foresight: PolicyRun
    foresight_validation: PolicyRun
    oracle: PolicyRun
    accuracy: tuple[HorizonAccuracy, ...]
    model_usage: dict[str, int]
    test_demand: FloatArray
    test_timestamps: pd.DatetimeIndex

    @property
    def name(self) -> str:
        return f"{self.trace} [{self.label}]" if self.label else self.trace

    @property
    def headline(self) -> LevelResult:
        return next(r for r in self.levels if math.isclose(r.service_level, self.service_level))

    def targets(self) -> dict[str, tuple[float, bool]]:
        """The acceptance targets at the stated service level (issue 9)."""
        head = self.headline
        vs_foresight = head.predictive.gpu_hours / self.foresight.gpu_hours
        vs_hpa = head.predictive.gpu_hours / head.hpa.gpu_hours
        achieved = head.predictive.under_intervals
        return {
            "predictive/foresight <= 1.45": (vs_foresight, vs_foresight <= 1.45),
            f"achieved under-provisioned <= {self.service_level:.2%}": (
                achieved,
                achieved <= self.service_level,
            ),
            "predictive/hpa <= 1.00": (vs_hpa, vs_hpa <= 1.0),
        }

    def summary_line(self) -> str:
        head = self.headline
        pred, hpa = head.predictive, head.hpa
        met = all(ok for _, ok in self.targets().values())
        return (
            f"{self.name}: predictive {pred.gpu_hours:.1f} GPU-h (under {pred.under_intervals:.2%}), "
            f"hpa {hpa.gpu_hours:.1f} ({hpa.knob}, under {hpa.under_intervals:.2%}), "
            f"foresight {self.foresight.gpu_hours:.1f}; "
            f"predictive/hpa {pred.gpu_hours / hpa.gpu_hours:.3f}, "
            f"predictive/foresight {pred.gpu_hours / self.foresight.gpu_hours:.3f}, "
            f"hpa/foresight {hpa.gpu_hours / self.foresight.gpu_hours:.3f} -> {'MET' if met else 'NOT MET'}"
        )

    def validation_line(self) -> str:
        """The predictive policy on the validation window (its warm-up), every level, against foresight
        there: the figures a change to the policy is chosen on, without looking at the test window."""
        limit = self.foresight_validation.gpu_hours
        levels = "; ".join(
            f"{r.service_level:.2%}: {r.predictive_validation.gpu_hours:.1f} GPU-h, under "
            f"{r.predictive_validation.under_intervals:.2%}, /foresight "
            f"{r.predictive_validation.gpu_hours / limit:.3f}"
            for r in self.levels
        )
        return f"{self.name} (validation, foresight {limit:.1f} GPU-h): {levels}"

    def to_table(self) -> str:
        cap = self.capacity
        decision = describe_duration(self.step)
        hpa_every = describe_duration(self.step / self.substeps) if self.substeps > 1 else decision
        foresight, oracle = self.foresight.gpu_hours, self.oracle.gpu_hours
        lines = [
            f"== {self.name}",
            f"decisions every {decision}, HPA every {hpa_every}, capacity/replica "
            f"{cap.capacity_per_replica:.4g}, {cap.gpus_per_replica} GPU/replica, start-up "
            f"{describe_duration(pd.Timedelta(seconds=cap.startup_steps * cap.step_seconds))}",
            f"validation {self.validation_window[0]} .. {self.validation_window[1]}, "
            f"test {self.test_window[0]} .. {self.test_window[1]}",
            f"limits on test: foresight {foresight:.1f} GPU-h (reachable), oracle {oracle:.1f} GPU-h "
            f"(no start-up); foresight/oracle {foresight / oracle:.3f}",
            "",
            "Cost of the service level (test window; HPA target chosen on validation, predictive has "
            "no knob):",
            f"  {'level':>6} {'policy':<11} {'knob':<22} {'GPU-h':>9} {'under int.':>10} {'under dem.':>10} "
            f"{'/hpa':>6} {'/foresight':>10} {'/oracle':>7} {'actions':>7}",
        ]
        for level in self.levels:
            for run in (level.hpa, level.predictive):
                lines.append(
                    f"  {level.service_level:>6.2%} {run.name:<11} {run.knob:<22} {run.gpu_hours:>9.1f} "
                    f"{run.under_intervals:>10.2%} {run.under_demand:>10.3%} "
                    f"{run.gpu_hours / level.hpa.gpu_hours:>6.3f} {run.gpu_hours / foresight:>10.3f} "
                    f"{run.gpu_hours / oracle:>7.3f} {run.scaling_actions:>7}"
                )
            shares = ", ".join(
                f"{reason or 'forecast'} {count}" for reason, count in sorted(level.fallbacks.items())
            )
            rate = level.final_day_miss_rate
            lines.append(
                f"  {'':>6} hpa on validation: under {level.hpa_validation.under_intervals:.2%}; "
                f"predictive decisions in charge: {shares}; final margin "
                f"{level.final_margin / cap.capacity_per_replica:+.2f} replicas, last-day miss rate "
                f"{'n/a' if rate is None else f'{rate:.2%}'}"
            )
        for label, (value, met) in self.targets().items():
            shown = f"{value:.2%}" if "under" in label else f"{value:.3f}"
            lines.append(f"  target {label}: {shown} -> {'MET' if met else 'NOT MET'}")
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


def summarize(reports: Sequence[ComparisonReport]) -> str:
    """One line per trace and the geometric means across traces at the stated service level."""
    lines = [report.summary_line() for report in reports]
    if reports:

        def geomean(values: list[float]) -> float:
            return float(math.exp(sum(math.log(v) for v in values) / len(values)))

        heads = [(r.headline, r.foresight.gpu_hours) for r in reports]
        vs_hpa = geomean([h.predictive.gpu_hours / h.hpa.gpu_hours for h, _ in heads])
        vs_foresight = geomean([h.predictive.gpu_hours / f for h, f in heads])
        hpa_foresight = geomean([h.hpa.gpu_hours / f for h, f in heads])
        met = sum(all(ok for _, ok in r.targets().values()) for r in reports)
        lines.append(
            f"geometric mean over {len(reports)} trace(s): predictive/hpa {vs_hpa:.3f}, "
            f"predictive/foresight {vs_foresight:.3f}, hpa/foresight {hpa_foresight:.3f}; "
            f"all targets met on {met} of {len(reports)}"
        )
    return "\n".join(lines)


def summarize_validation(reports: Sequence[ComparisonReport]) -> str:
    """One validation line per trace and the geometric mean of predictive/foresight at the stated level."""
    lines = [report.validation_line() for report in reports]
    if reports:
        ratios = [
            r.headline.predictive_validation.gpu_hours / r.foresight_validation.gpu_hours for r in reports
        ]
        mean = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
        lines.append(
            f"validation geometric mean over {len(reports)} trace(s): predictive/foresight {mean:.3f}"
        )
    return "\n".join(lines)


def prepare_trace(path: str | Path, settings: ReplaySettings) -> tuple[pd.Series, CapacityModel]:
    """Load, aggregate to the decision interval and derive the default capacity model (per decision)."""
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
    """Replay one trace: the HPA tuned on validation, the predictive policy, the limits, on test."""
    settings = settings or ReplaySettings()
    series, coarse = prepare_trace(trace_path, settings)
    step = series.index[1] - series.index[0]
    demand = series.to_numpy(dtype=np.float64)
    first = int(settings.history / step)
    if first >= len(demand) - 2:
        raise ValueError(f"{trace_path}: needs more than {describe_duration(settings.history)} of data")
    middle = first + (len(demand) - first) // 2
    end = len(demand)
    lead = coarse.startup_steps + 1  # new pods arrive after start-up and must last until the next decision
    horizon = max(lead, settings.accuracy_horizon)
    tails = [round(1.0 - level, 6) for level in settings.service_levels]
    # The forecast is made on bins of the start-up (forecasting.resolution), as in the operator.
    per_bin = steps_per_bin(coarse.startup_steps * coarse.step_seconds, coarse.step_seconds)
    grid, offset = forecast_grid(series, per_bin)
    bins = (np.array([first, end - 1]) + offset) // per_bin
    bin_horizon = (per_bin - 1 + horizon - 1) // per_bin + 1
    select = settings.forecast.select_horizon or (per_bin - 1 + lead - 1) // per_bin + 1
    config = ForecastConfig(
        **{
            **settings.forecast.__dict__,
            "horizon": bin_horizon,
            "step": step * per_bin,
            "select_horizon": select,
        }
    )
    table = at_decisions(
        walk_forward_forecasts(
            grid,
            int(bins[0]),
            int(bins[1]) + 1,
            horizon=bin_horizon,
            quantiles=sorted({*REPORTED_QUANTILES, *tails}),
            config=config,
            refit_every=int(settings.refit_every / (step * per_bin)),
        ),
        per_bin=per_bin,
        offset=offset,
        start=first,
        end=end,
        horizon=horizon,
    )
    plans = np.asarray(table.mean[:, :lead].max(axis=1), dtype=np.float64)
    units = np.asarray(
        table.quantiles[0.9][:, lead - 1] - table.quantiles[0.1][:, lead - 1], dtype=np.float64
    )

    # The simulation grid: one step per HPA evaluation, `substeps` per decision.
    substeps = max(1, round(step / settings.hpa_sync)) if settings.hpa_sync else 1
    capacity = CapacityModel(
        capacity_per_replica=coarse.capacity_per_replica,
        step_seconds=coarse.step_seconds / substeps,
        startup_steps=coarse.startup_steps * substeps,
        gpus_per_replica=coarse.gpus_per_replica,
    )
    fine = np.repeat(demand, substeps)
    filled = fill_gaps(demand, int(DAY / step))

    def run_hpa(target: float, lo: int, hi: int) -> PolicyRun:
        hpa = HpaPolicy(HpaSettings(target_utilization=target), capacity)
        initial = capacity.replicas_for(filled[lo - 1], target)
        return simulate(
            fine,
            hpa,
            capacity,
            lo * substeps,
            hi * substeps,
            initial_replicas=initial,
            name="hpa",
            knob=f"target {target:.1%}",
        )

    validation = [run_hpa(t, first, middle) for t in settings.hpa_targets]
    test_cache: dict[float, PolicyRun] = {}
    levels = []
    for level in settings.service_levels:
        target, chosen = _tune_hpa(settings.hpa_targets, validation, level)
        if target not in test_cache:
            test_cache[target] = run_hpa(target, middle, end)
        policy = PredictivePolicy(
            plans=plans,
            units=units,
            first=first,
            capacity=capacity,
            substeps=substeps,
            startup_decisions=coarse.startup_steps,
            calibration=seeded(  # from the forecaster's own first forecast at the lead time
                target=level,
                lead=lead,
                mean=float(table.mean[0, lead - 1]),
                tail=float(table.quantiles[round(1.0 - level, 6)][0, lead - 1]),
                unit=float(units[0]),
                now=first * coarse.step_seconds,
            ),
            hpa=HpaPolicy(HpaSettings(target_utilization=target), capacity),
            min_history_seconds=config.min_history.total_seconds(),
        )
        run = simulate(
            fine,
            policy,
            capacity,
            first * substeps,
            end * substeps,
            initial_replicas=capacity.replicas_for(filled[first - 1], target),
            name="predictive",
            knob=f"states {level:.2%}",
        )
        levels.append(
            LevelResult(
                service_level=level,
                hpa_validation=chosen,
                hpa=test_cache[target],
                predictive=run.window(
                    (middle - first) * substeps, fine[middle * substeps : end * substeps], capacity
                ),
                predictive_validation=run.window(0, fine[first * substeps : middle * substeps], capacity),
                fallbacks=policy.fallback_counts(middle - first),
                final_margin=policy.headrooms[-1],
                final_day_miss_rate=policy.calibration.miss_rate(end * coarse.step_seconds),
            )
        )
    accuracy = _accuracy(demand, table, (first, middle, end), horizon=horizon, season=int(DAY / step))
    return ComparisonReport(
        trace=Path(trace_path).name,
        label=settings.label,
        step=step,
        substeps=substeps,
        capacity=capacity,
        validation_window=(series.index[first], series.index[middle - 1]),
        test_window=(series.index[middle], series.index[end - 1]),
        service_level=settings.service_level,
        levels=tuple(levels),
        foresight=foresight_run(fine, capacity, middle * substeps, end * substeps),
        foresight_validation=foresight_run(fine, capacity, first * substeps, middle * substeps),
        oracle=oracle_run(fine, capacity, middle * substeps, end * substeps),
        accuracy=accuracy,
        model_usage=dict(Counter(table.models)),
        test_demand=fine[middle * substeps : end * substeps],
        test_timestamps=pd.date_range(
            series.index[middle], periods=(end - middle) * substeps, freq=step / substeps
        ),
    )


def _tune_hpa(
    targets: Sequence[float], validation: Sequence[PolicyRun], level: float
) -> tuple[float, PolicyRun]:
    """The cheapest target meeting the service level on validation, else the one missing least."""
    runs = list(zip(targets, validation, strict=True))
    feasible = [(t, r) for t, r in runs if r.under_intervals <= level]
    if feasible:
        return min(feasible, key=lambda tr: tr[1].gpu_hours)
    return min(runs, key=lambda tr: (tr[1].under_intervals, tr[1].gpu_hours))


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
