"""Forecasting models split into a slow fit (statsmodels) and a cheap numpy state update.

Refitting statsmodels costs 0.1-1 s per series; a fleet re-forecast every few minutes cannot afford that.
Each fit returns a small picklable state object whose `step()` applies the model's own recursions with
the fitted parameters frozen, and whose `path()` gives the mean forecast from the current state.
"""

from __future__ import annotations

import copy
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from statsmodels.tsa.statespace.sarimax import SARIMAX

FloatArray = npt.NDArray[np.float64]

# Negative residuals beyond this many robust standard deviations are clipped in the state update, so an
# outage (a run of zeros in the middle of traffic) does not drag the level down for the next day.
OUTLIER_SIGMAS = 6.0


def _robust_bound(residuals: FloatArray) -> float | None:
    finite = residuals[np.isfinite(residuals)]
    if finite.size < 10:
        return None
    mad = float(np.median(np.abs(finite - np.median(finite))))
    return OUTLIER_SIGMAS * 1.4826 * mad if mad > 0 else None


def _clip(residual: float, bound: float | None) -> float:
    """Clip only downward surprises: a drop far below the forecast is an outage or a scrape failure,
    while a jump above it is demand that capacity must follow (bursts persist for several intervals)."""
    if bound is None:
        return residual
    return max(residual, -bound)


class StateModel(ABC):
    """A fitted model positioned just after the last observation it has seen."""

    name: str

    @abstractmethod
    def step(self, y: float) -> None:
        """Absorb one observation; NaN advances time without correcting the state (a gap)."""

    @abstractmethod
    def path(self, horizon: int) -> FloatArray:
        """Mean forecast for the next `horizon` steps."""

    def copy(self) -> StateModel:
        return copy.deepcopy(self)


@dataclass
class NaiveModel(StateModel):
    """Last value carried forward: the baseline every other model must beat."""

    last: float
    name: str = "naive"

    def step(self, y: float) -> None:
        if math.isfinite(y):
            self.last = y

    def path(self, horizon: int) -> FloatArray:
        return np.full(horizon, self.last, dtype=np.float64)


@dataclass
class SeasonalNaiveModel(StateModel):
    """Value one season ago; `buffer[pos]` is the observation one period before the next step."""

    buffer: FloatArray
    pos: int = 0
    name: str = "seasonal_naive"

    def step(self, y: float) -> None:
        if math.isfinite(y):
            self.buffer[self.pos] = y
        self.pos = (self.pos + 1) % len(self.buffer)

    def path(self, horizon: int) -> FloatArray:
        idx = (self.pos + np.arange(horizon)) % len(self.buffer)
        return np.asarray(self.buffer[idx], dtype=np.float64)


@dataclass
class HoltWintersModel(StateModel):
    """Additive Holt-Winters (optionally damped trend / no seasonality) with statsmodels' recursions."""

    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    season: FloatArray = field(default_factory=lambda: np.zeros(0))
    pos: int = 0
    clip: float | None = None
    name: str = "holt_winters"

    def step(self, y: float) -> None:
        m = len(self.season)
        s = float(self.season[self.pos]) if m else 0.0
        predicted_level = self.level + self.phi * self.trend
        if not math.isfinite(y):
            self.level, self.trend = predicted_level, self.phi * self.trend
        else:
            y = predicted_level + s + _clip(y - predicted_level - s, self.clip)
            new_level = self.alpha * (y - s) + (1.0 - self.alpha) * predicted_level
            self.trend = self.beta * (new_level - self.level) + (1.0 - self.beta) * self.phi * self.trend
            if m:
                self.season[self.pos] = self.gamma * (y - predicted_level) + (1.0 - self.gamma) * s
            self.level = new_level
        if m:
            self.pos = (self.pos + 1) % m

    def path(self, horizon: int) -> FloatArray:
        damp = np.cumsum(self.phi ** np.arange(1, horizon + 1, dtype=np.float64))
        out = self.level + damp * self.trend
        m = len(self.season)
        if m:
            out = out + self.season[(self.pos + np.arange(horizon)) % m]
        return np.asarray(out, dtype=np.float64)


def fourier_features(t: npt.NDArray[np.int64], harmonics: tuple[tuple[int, int], ...]) -> FloatArray:
    """Intercept plus sin/cos pairs; `t` is the absolute step index so features survive refits."""
    columns = [np.ones(len(t), dtype=np.float64)]
    for period, count in harmonics:
        phase = 2.0 * np.pi * (t % period) / period
        for k in range(1, count + 1):
            columns.extend((np.sin(k * phase), np.cos(k * phase)))
    return np.column_stack(columns)


@dataclass
class FourierArmaModel(StateModel):
    """Regression on daily/weekly Fourier terms with ARMA(1,1) errors (SARIMAX with exogenous terms).

    A seasonal SARIMAX with a 288-step season is far too slow to estimate; Fourier terms carry the cycle
    and the ARMA part tracks bursts and level shifts, which is what a 1-2 step lead time needs.
    """

    coef: FloatArray
    harmonics: tuple[tuple[int, int], ...]
    t: int
    ar: float
    ma: float
    u: float
    eps: float
    clip: float | None = None
    name: str = "sarimax_fourier"

    def step(self, y: float) -> None:
        x = fourier_features(np.array([self.t], dtype=np.int64), self.harmonics)[0]
        predicted = self.ar * self.u + self.ma * self.eps
        if math.isfinite(y):
            eps = _clip(y - float(x @ self.coef) - predicted, self.clip)
            self.u, self.eps = predicted + eps, eps
        else:
            self.u, self.eps = predicted, 0.0
        self.t += 1

    def path(self, horizon: int) -> FloatArray:
        t = self.t + np.arange(horizon, dtype=np.int64)
        first = self.ar * self.u + self.ma * self.eps
        errors = first * self.ar ** np.arange(horizon, dtype=np.float64)
        return np.asarray(fourier_features(t, self.harmonics) @ self.coef + errors, dtype=np.float64)


@dataclass
class ArModel(StateModel):
    """Seasonal regression (Fourier terms, possibly none) with AR(p) errors, both estimated by OLS.

    For bursty series the last few intervals carry most of the information at a 1-2 step lead time; an
    AR(p) on the deseasonalised series captures the partial mean reversion after a burst that a
    smoothing model (which only tracks a level) cannot. `lags[0]` is the most recent residual.
    """

    coef: FloatArray
    harmonics: tuple[tuple[int, int], ...]
    t: int
    phi: FloatArray
    lags: FloatArray
    clip: float | None = None
    name: str = "ar"

    def step(self, y: float) -> None:
        x = fourier_features(np.array([self.t], dtype=np.int64), self.harmonics)[0]
        predicted = float(self.phi @ self.lags)
        u = (
            predicted + _clip(y - float(x @ self.coef) - predicted, self.clip)
            if math.isfinite(y)
            else predicted
        )
        self.lags = np.concatenate(([u], self.lags[:-1]))
        self.t += 1

    def path(self, horizon: int) -> FloatArray:
        lags = self.lags.copy()
        errors = np.empty(horizon)
        for h in range(horizon):
            errors[h] = float(self.phi @ lags)
            lags = np.concatenate(([errors[h]], lags[:-1]))
        t = self.t + np.arange(horizon, dtype=np.int64)
        return np.asarray(fourier_features(t, self.harmonics) @ self.coef + errors, dtype=np.float64)


def fit_ar(
    y: FloatArray, t0: int, harmonics: tuple[tuple[int, int], ...], name: str, max_order: int = 6
) -> ArModel | None:
    """OLS seasonal regression, then AR(p) on its residuals with p <= max_order chosen by BIC.

    Models whose AR polynomial is not stationary are rejected (their multi-step paths explode).
    """
    t = t0 + np.arange(len(y), dtype=np.int64)
    features = fourier_features(t, harmonics)
    coef = np.linalg.lstsq(features, y, rcond=None)[0]
    u = np.asarray(y - features @ coef, dtype=np.float64)
    n = len(u)
    if n <= 4 * max_order:
        return None
    target = u[max_order:]
    lagged = np.column_stack([u[max_order - j : n - j] for j in range(1, max_order + 1)])
    best: tuple[float, FloatArray] | None = None
    for p in range(1, max_order + 1):
        phi = np.linalg.lstsq(lagged[:, :p], target, rcond=None)[0]
        rss = float(np.sum((target - lagged[:, :p] @ phi) ** 2))
        bic = len(target) * math.log(max(rss / len(target), 1e-300)) + p * math.log(len(target))
        if best is None or bic < best[0]:
            best = (bic, np.asarray(phi, dtype=np.float64))
    if best is None:
        return None
    phi = best[1]
    if not np.all(np.isfinite(phi)):
        return None
    # Stationary iff every root of z^p - phi_1 z^(p-1) - ... - phi_p lies inside the unit circle.
    roots = np.roots(np.concatenate(([1.0], -phi)))
    if roots.size and float(np.max(np.abs(roots))) >= 0.999:
        return None
    p = len(phi)
    innovations = u[p:] - np.column_stack([u[p - j : n - j] for j in range(1, p + 1)]) @ phi
    return ArModel(
        coef=np.asarray(coef, dtype=np.float64),
        harmonics=harmonics,
        t=int(t[-1]) + 1,
        phi=phi,
        lags=np.asarray(u[::-1][:p], dtype=np.float64),
        clip=_robust_bound(innovations),
        name=name,
    )


def fit_naive(y: FloatArray) -> NaiveModel:
    return NaiveModel(last=float(y[-1]))


def fit_seasonal_naive(y: FloatArray, period: int, name: str) -> SeasonalNaiveModel:
    # buffer[pos] must hold y one period before the next step; with pos=0 that is y[-period].
    return SeasonalNaiveModel(buffer=np.array(y[-period:], dtype=np.float64), pos=0, name=name)


def fit_holt_winters(
    y: FloatArray, period: int | None, trend: str | None, name: str
) -> HoltWintersModel | None:
    """Estimate parameters with statsmodels; None when the optimiser produces unusable values."""
    damped = trend == "damped"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = ExponentialSmoothing(
                y,
                trend="add" if trend else None,
                damped_trend=damped,
                seasonal="add" if period else None,
                seasonal_periods=period,
                initialization_method="heuristic" if period else "estimated",
            ).fit(use_brute=False)
        except (ValueError, np.linalg.LinAlgError):
            return None
    params = result.params
    alpha = float(params["smoothing_level"])
    beta = float(params["smoothing_trend"]) if trend else 0.0
    gamma = float(params["smoothing_seasonal"]) if period else 0.0
    phi = float(params["damping_trend"]) if damped else 1.0
    level = float(result.level[-1])
    slope = float(result.trend[-1]) if trend else 0.0
    season = np.array(result.season[-period:], dtype=np.float64) if period else np.zeros(0)
    values = [alpha, beta, gamma, phi, level, slope, *season]
    if not all(math.isfinite(v) for v in values):
        return None
    residuals = np.asarray(y - result.fittedvalues, dtype=np.float64)
    return HoltWintersModel(
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        phi=phi,
        level=level,
        trend=slope,
        season=season,
        pos=0,
        clip=_robust_bound(residuals),
        name=name,
    )


def fit_fourier_arma(
    y: FloatArray, t0: int, harmonics: tuple[tuple[int, int], ...], name: str
) -> FourierArmaModel | None:
    """OLS for the seasonal regression, then SARIMAX(1,0,1) on its residuals (two cheap fits)."""
    t = t0 + np.arange(len(y), dtype=np.int64)
    features = fourier_features(t, harmonics)
    coef = np.linalg.lstsq(features, y, rcond=None)[0]
    u = y - features @ coef
    if float(np.std(u)) <= 1e-12 * max(1.0, float(np.abs(y).mean())):
        ar, ma, innovations = 0.0, 0.0, np.zeros_like(u)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = SARIMAX(u, order=(1, 0, 1), trend="n").fit(disp=False)
            except (ValueError, np.linalg.LinAlgError):
                return None
        ar, ma = float(result.params[0]), float(result.params[1])
        innovations = np.asarray(result.resid, dtype=np.float64)
    if not (math.isfinite(ar) and math.isfinite(ma) and abs(ar) < 1.0):
        return None
    return FourierArmaModel(
        coef=np.asarray(coef, dtype=np.float64),
        harmonics=harmonics,
        t=int(t[-1]) + 1,
        ar=ar,
        ma=ma,
        u=float(u[-1]),
        eps=float(innovations[-1]),
        clip=_robust_bound(innovations),
        name=name,
    )
