"""Per-series forecaster: slow fit with model choice by backtest, cheap update, calibrated quantiles."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from forecasting.errors import ForecastError, InsufficientHistoryError, NotFittedError
from forecasting.models import (
    FloatArray,
    StateModel,
    fit_ar,
    fit_fourier_arma,
    fit_holt_winters,
    fit_naive,
    fit_seasonal_naive,
)
from forecasting.series import describe_duration, fill_gaps, infer_step, regularize, to_series

MODEL_NAMES = (
    "naive",
    "seasonal_naive",
    "seasonal_naive_weekly",
    "holt_damped",
    "hw_additive",
    "hw_damped",
    "hw_weekly",
    "sarimax_fourier",
    "ar",
    "ar_fourier",
)
DAY = pd.Timedelta(days=1)
TWO_DAYS = pd.Timedelta(days=2)
FOUR_WEEKS = pd.Timedelta(days=28)
# Residual scale ~ forecast**power: 0 = additive noise, 0.5 = Poisson-like counts, 1 = multiplicative bursts.
SCALE_POWERS = (0.0, 0.5, 1.0)
# Quantiles whose pinball loss chooses the residual scaling (the ones a capacity floor is sized on).
UPPER_TAIL = (0.9, 0.99)


@dataclass(frozen=True)
class ForecastConfig:
    """Knobs with defaults suited to request-rate metrics sampled every 1-10 minutes."""

    model: str = "auto"
    step: pd.Timedelta | None = None
    min_history: pd.Timedelta = TWO_DAYS
    max_history: pd.Timedelta = FOUR_WEEKS
    season: pd.Timedelta = DAY
    weekly: bool = True
    backtest: pd.Timedelta = DAY
    horizon: int = 12
    calibration_window: int = 2016
    daily_harmonics: int = 6
    weekly_harmonics: int = 3
    # Lead times (1..select_horizon) whose backtest MAE picks the model; None = the whole horizon. A
    # capacity planner only acts on the first few steps, so it should not pick a model for step 12.
    select_horizon: int | None = None

    def __post_init__(self) -> None:
        if self.model != "auto" and self.model not in MODEL_NAMES:
            raise ValueError(
                f"unknown model {self.model!r}; choose 'auto' or one of {', '.join(MODEL_NAMES)}"
            )
        if self.horizon < 1 or self.calibration_window < 10:
            raise ValueError("horizon must be >= 1 and calibration_window >= 10")
        if self.select_horizon is not None and not 1 <= self.select_horizon <= self.horizon:
            raise ValueError("select_horizon must lie between 1 and horizon")


@dataclass(frozen=True)
class BacktestScore:
    """Rolling-origin accuracy on the most recent history (origins every step)."""

    model_name: str
    mae: float
    mase: float
    mae_by_horizon: tuple[float, ...]
    origins: int


@dataclass(frozen=True)
class Forecast:
    """Mean and quantile paths; `quantiles[q][i]` is the q-quantile for `timestamps[i]`."""

    timestamps: pd.DatetimeIndex
    mean: FloatArray
    quantiles: dict[float, FloatArray]
    model_name: str
    backtest: BacktestScore

    def upper(self, q: float) -> float:
        """Largest q-quantile over the whole horizon: what a capacity floor must cover."""
        return float(np.max(self.quantiles[q]))


@dataclass
class _Candidate:
    model: StateModel
    errors: FloatArray
    predictions: FloatArray
    score: BacktestScore


@dataclass
class Forecaster:
    """Fit on a slow cadence, then `update()` + `forecast()` cheaply with the fitted parameters frozen.

    Plain data only (numpy arrays, deques, dataclasses), so instances pickle and can be handed to a
    worker thread or process; no module-level state is touched.
    """

    config: ForecastConfig = field(default_factory=ForecastConfig)
    model: StateModel | None = None
    scores: tuple[BacktestScore, ...] = ()
    step: pd.Timedelta | None = None
    last_timestamp: pd.Timestamp | None = None
    nonnegative: bool = True
    scale_floor: float = 1.0
    scale_power: float = 0.0
    # Resolved forecast errors per lead time and the predictions they were made against (raw units, so a
    # refit can re-normalise them with a different scale power and keep the history).
    _errors: list[deque[float]] = field(default_factory=list)
    _predictions: list[deque[float]] = field(default_factory=list)
    _pending: deque[FloatArray] = field(default_factory=deque)

    @property
    def model_name(self) -> str:
        return self.model.name if self.model is not None else "unfitted"

    @property
    def backtest(self) -> BacktestScore:
        if self.model is None:
            raise NotFittedError("NotFitted: call fit() first")
        return next(s for s in self.scores if s.model_name == self.model.name)

    def fit(self, series: pd.Series, previous: Forecaster | None = None) -> Forecaster:
        """Regularise, refuse short history, backtest the candidates and keep the most accurate.

        `previous` (the forecaster this one replaces, on the same series and step) hands over its resolved
        out-of-sample errors, so a daily refit does not shrink the calibration pool to one backtest day.
        """
        cfg = self.config
        raw = to_series(series)
        raw = raw[np.isfinite(raw.to_numpy())]
        if len(raw) < 2:
            raise InsufficientHistoryError(describe_duration(cfg.min_history), f"{len(raw)} usable samples")
        step = cfg.step or infer_step(raw)
        grid = regularize(raw, step)
        grid = grid[grid.index > grid.index[-1] - cfg.max_history]
        values = grid.to_numpy(dtype=np.float64)
        usable = step * int(np.isfinite(values).sum())
        if usable < cfg.min_history:
            raise InsufficientHistoryError(describe_duration(cfg.min_history), describe_duration(usable))
        self.step = step
        self.last_timestamp = grid.index[-1]
        finite = values[np.isfinite(values)]
        self.nonnegative = bool(np.all(finite >= 0))
        self.scale_floor = max(0.1 * float(np.mean(np.abs(finite))), 1e-9)
        period = _steps(cfg.season, step)
        week = _steps(pd.Timedelta(days=7), step) if cfg.weekly else None
        n_bt = min(_steps(cfg.backtest, step) or 1, len(values) // 3)
        train = fill_gaps(values[: len(values) - n_bt], period)
        test = values[len(values) - n_bt :]
        t0 = int(grid.index[0].value // step.value)
        builders = self._builders(train, period, week, t0)
        if cfg.model != "auto":
            if cfg.model not in builders:
                raise ForecastError(
                    f"ModelUnavailable: {cfg.model} needs more history than "
                    f"{describe_duration(step * len(train))} of training data"
                )
            builders = {cfg.model: builders[cfg.model]}
        mase_scale = _mase_scale(train)
        candidates: list[_Candidate] = []
        for build in builders.values():
            model = build()
            if model is not None:
                candidates.append(self._backtest(model, test, mase_scale))
        if not candidates:
            raise ForecastError(f"FitFailed: no model could be fitted for {cfg.model}")
        best = min(candidates, key=self._selection_loss)
        self.model = best.model
        self.scores = tuple(c.score for c in candidates)
        self._calibrate(best, previous if previous is not None and previous.step == step else None)
        return self

    def update(self, new_points: pd.Series) -> None:
        """Absorb observations newer than the last one; missing grid steps are treated as gaps."""
        if self.model is None or self.step is None or self.last_timestamp is None:
            raise NotFittedError("NotFitted: call fit() first")
        grid = regularize(new_points, self.step)
        grid = grid[grid.index > self.last_timestamp]
        if grid.empty:
            return
        steps = int((grid.index[-1] - self.last_timestamp) / self.step)
        values = np.full(steps, np.nan)
        positions = ((grid.index - self.last_timestamp) / self.step).astype(int) - 1
        values[positions] = grid.to_numpy()
        self.update_values(values)
        self.last_timestamp = grid.index[-1]

    def update_values(self, values: FloatArray) -> None:
        """Fast path for callers that already hold grid-aligned values (the replay, fleet loops)."""
        model = self.model
        if model is None:
            raise NotFittedError("NotFitted: call fit() first")
        horizon = self.config.horizon
        for raw in values:
            y = float(raw)
            if math.isfinite(y):
                for h, path in enumerate(reversed(self._pending), start=1):
                    self._errors[h - 1].append(y - path[h - 1])
                    self._predictions[h - 1].append(path[h - 1])
            model.step(y)
            self._pending.append(model.path(horizon))
        if self.last_timestamp is not None and self.step is not None:
            self.last_timestamp = self.last_timestamp + self.step * len(values)

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> Forecast:
        """Mean path plus quantiles from recent empirical errors of the same lead time."""
        if self.model is None or self.step is None or self.last_timestamp is None:
            raise NotFittedError("NotFitted: call fit() first")
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        qs = sorted({float(q) for q in quantiles})
        if any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        mean = self.model.path(horizon)
        if self.nonnegative:
            mean = np.maximum(mean, 0.0)
        scale = self._scale_array(mean)
        table = self._error_quantiles(qs)
        calibrated = len(table)
        out: dict[float, FloatArray] = {}
        for i, q in enumerate(qs):
            offsets = np.empty(horizon)
            for h in range(horizon):
                if h < calibrated:
                    offsets[h] = table[h, i]
                else:  # beyond the calibrated lead times errors grow roughly like a random walk
                    offsets[h] = table[-1, i] * math.sqrt((h + 1) / calibrated)
            band = mean + offsets * scale
            out[q] = np.maximum(band, 0.0) if self.nonnegative else band
        timestamps = pd.date_range(self.last_timestamp + self.step, periods=horizon, freq=self.step)
        return Forecast(timestamps, mean, out, self.model.name, self.backtest)

    def _builders(
        self, train: FloatArray, period: int | None, week: int | None, t0: int
    ) -> dict[str, Callable[[], StateModel | None]]:
        """Candidates that the available history can support (seasonal fits need two full seasons)."""
        cfg = self.config
        n = len(train)
        builders: dict[str, Callable[[], StateModel | None]] = {"naive": lambda: fit_naive(train)}
        if n >= 50:
            builders["ar"] = lambda: fit_ar(train, t0, (), "ar")
        if n >= 10:
            builders["holt_damped"] = lambda: fit_holt_winters(train, None, "damped", "holt_damped")
        if period is not None and period >= 2 and n >= period:
            builders["seasonal_naive"] = lambda: fit_seasonal_naive(train, period, "seasonal_naive")
        if week is not None and n >= week:
            builders["seasonal_naive_weekly"] = lambda: fit_seasonal_naive(
                train, week, "seasonal_naive_weekly"
            )
        if period is not None and period >= 2 and n >= 2 * period:
            builders["hw_additive"] = lambda: fit_holt_winters(train, period, "add", "hw_additive")
            builders["hw_damped"] = lambda: fit_holt_winters(train, period, "damped", "hw_damped")
            harmonics: tuple[tuple[int, int], ...] = ((period, min(cfg.daily_harmonics, period // 2 - 1)),)
            if week is not None and n >= 2 * week:
                harmonics = (*harmonics, (week, cfg.weekly_harmonics))
            builders["sarimax_fourier"] = lambda: fit_fourier_arma(train, t0, harmonics, "sarimax_fourier")
            builders["ar_fourier"] = lambda: fit_ar(train, t0, harmonics, "ar_fourier")
        if week is not None and n >= 2 * week:
            builders["hw_weekly"] = lambda: fit_holt_winters(train, week, "damped", "hw_weekly")
        return builders

    def _selection_loss(self, candidate: _Candidate) -> float:
        lead = self.config.select_horizon or self.config.horizon
        errors = candidate.errors[:, :lead]
        if not np.isfinite(errors).any():
            return math.inf
        mae = float(np.nanmean(np.abs(errors)))
        return mae if math.isfinite(mae) else math.inf

    def _backtest(self, model: StateModel, test: FloatArray, mase_scale: float) -> _Candidate:
        """Walk the fitted state through the held-out tail, forecasting from every origin."""
        horizon = self.config.horizon
        n = len(test)
        errors = np.full((n, horizon), np.nan)
        predictions = np.full((n, horizon), np.nan)
        for i in range(n):
            path = model.path(horizon)
            width = min(horizon, n - i)
            predictions[i] = path
            errors[i, :width] = test[i : i + width] - path[:width]
            model.step(float(test[i]))
        by_h = tuple(
            float(np.nanmean(np.abs(errors[:, h]))) if np.isfinite(errors[:, h]).any() else math.nan
            for h in range(horizon)
        )
        mae = float(np.nanmean(np.abs(errors))) if np.isfinite(errors).any() else math.nan
        score = BacktestScore(model.name, mae, mae / mase_scale, by_h, n)
        return _Candidate(model, errors, predictions, score)

    def _calibrate(self, best: _Candidate, previous: Forecaster | None = None) -> None:
        """Seed the rolling error pools, then pick the residual scaling with the best interval score."""
        window = self.config.calibration_window
        horizon = self.config.horizon
        self._errors, self._predictions = [], []
        for h in range(horizon):
            errors: deque[float] = deque(maxlen=window)
            predictions: deque[float] = deque(maxlen=window)
            if previous is not None and h < len(previous._errors):
                # The predecessor's live errors already cover the backtest period: do not count it twice.
                errors.extend(previous._errors[h])
                predictions.extend(previous._predictions[h])
            else:
                ok = np.isfinite(best.errors[:, h])
                errors.extend(float(e) for e in best.errors[ok, h])
                predictions.extend(float(p) for p in best.predictions[ok, h])
            self._errors.append(errors)
            self._predictions.append(predictions)
        best_score = math.inf
        chosen = 0.0
        for power in SCALE_POWERS:
            self.scale_power = power
            score = 0.0
            for h in range(horizon):
                actual = np.fromiter(self._errors[h], dtype=np.float64, count=len(self._errors[h]))
                if actual.size < 5:
                    continue
                scale = self._scale_array(
                    np.fromiter(self._predictions[h], dtype=np.float64, count=len(self._predictions[h]))
                )
                # Upper-tail pinball loss: capacity is sized on the upper quantiles, and bursts add load
                # on top of the level (additive tails) even where the bulk of the noise is multiplicative.
                for q in UPPER_TAIL:
                    upper = float(np.quantile(actual / scale, q)) * scale
                    miss = actual - upper
                    score += float(np.mean(np.maximum(q * miss, (q - 1.0) * miss)))
            if score < best_score:
                best_score, chosen = score, power
        self.scale_power = chosen
        # Forecasts issued during the backtest that have not been resolved yet keep feeding the pools.
        self._pending = deque(
            (
                best.predictions[i]
                for i in range(max(0, len(best.predictions) - horizon + 1), len(best.predictions))
            ),
            maxlen=horizon,
        )
        self._pending.append(best.model.path(horizon))

    def _error_quantiles(self, qs: list[float]) -> FloatArray:
        rows = []
        for errors, predictions in zip(self._errors, self._predictions, strict=True):
            if len(errors) < 5:
                break
            actual = np.fromiter(errors, dtype=np.float64, count=len(errors))
            scale = self._scale_array(np.fromiter(predictions, dtype=np.float64, count=len(predictions)))
            rows.append(np.quantile(actual / scale, qs))
        if not rows:  # no resolved errors at all (tiny backtest): degenerate but honest zero-width band
            return np.zeros((1, len(qs)))
        return np.array(rows)

    def _scale_array(self, predictions: FloatArray) -> FloatArray:
        return np.asarray(
            np.maximum(np.abs(predictions), self.scale_floor) ** self.scale_power, dtype=np.float64
        )


def _steps(span: pd.Timedelta, step: pd.Timedelta) -> int | None:
    """Whole number of grid steps in `span`, or None when the span is not a multiple of the step."""
    ratio = span / step
    return round(ratio) if ratio >= 1 and abs(ratio - round(ratio)) < 1e-9 else None


def _mase_scale(train: FloatArray) -> float:
    """In-sample one-step naive MAE, the MASE denominator (guarded for constant series)."""
    diffs = np.abs(np.diff(train))
    scale = float(np.mean(diffs)) if diffs.size else 0.0
    return scale if scale > 0 else max(float(np.mean(np.abs(train))), 1e-9)


def forecast_series(
    series: pd.Series,
    horizon: int,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    config: ForecastConfig | None = None,
) -> Forecast:
    """One-shot fit + forecast for the CLI: models are chosen and calibrated at the lead times asked for."""
    config = config or ForecastConfig()
    config = replace(config, horizon=max(config.horizon, horizon))
    return Forecaster(config).fit(series).forecast(horizon, quantiles)
