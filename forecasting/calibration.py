"""Online calibration of the predictive margin to a stated service level (pure, no clock reads).

The user states a service level: the largest share of intervals whose demand may exceed the ready
capacity (``target``, e.g. 0.005). The policy sizes capacity on ``plan + margin * unit``, where ``plan``
is the forecaster's demand over the lead time and ``unit`` its own predicted error size for that plan
(e.g. the width of its 80 % interval; 1.0 for a margin in demand units). Scores are normalised by
``unit`` (standard for conformal methods) so one margin fits a quiet night and a busy peak alike:
how errors grow with the level is the forecaster's residual model, chosen on past data. After every
observed interval this module moves ``margin``:

    margin += step * (miss - target),      step = scale / lead

This is online quantile tracking (the "P" term of conformal PID control, Angelopoulos, Candes and
Tibshirani 2023) on the score "demand above the plan, in units". Its long-run guarantee needs no model
of the residuals: if the margin stays bounded, the share of misses converges to ``target`` (each miss
pushes the margin up by ``step * (1 - target)``, each covered interval pulls it down by
``step * target``, and the two balance exactly when misses occur at rate ``target``).

Why not adaptive conformal inference (ACI, Gibbs and Candes 2021), which tracks the quantile *level* of
the score distribution instead: at a 0.5 % target one miss moves the level by ``gamma``, and in the
extreme tail a small change of level jumps to the largest score of the window (issue 9 measured, on
the project's traces, one miss sending the margin to the week's worst burst). Tracking the margin
moves it by a bounded, scale-aware amount, and its recovery is linear and predictable: after one miss
the margin is back where it was after ``1 / target`` covered intervals.

The step has no tuned constant. ``scale`` is the typical size of the score (an exponentially weighted
mean of ``|demand - plan| / unit`` with a one-day half-life: a unit, not a fit), so one miss raises the
margin by about one typical error. Dividing by ``lead`` (decision steps until new capacity serves) is the
stability rule of integral control with dead time: a margin change only shows in outcomes ``lead`` steps
later, and one missed burst costs up to ``lead`` consecutive misses before more capacity can arrive,
which should count as one event, not ``lead`` of them.

A miss is the real outcome when the caller knows it (``capacity``: the demand the ready replicas served);
otherwise (e.g. while the policy has fallen back to the reactive autoscaler) it is whether
``plan + margin`` would have covered the demand, so calibration keeps learning while not in control.

The state is small and bounded so it can live in a Kubernetes status: a few floats and at most 24
hourly counters of (intervals, misses), whose sum is the achieved miss rate over the last day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

HOUR_SECONDS = 3600.0
DAY_HOURS = 24
# Half-life of the error scale: one day, the period of the dominant cycle in request traffic, so the
# scale follows the level of the day without forgetting the night. A unit choice, not fitted to a trace.
SCALE_HALF_LIFE_SECONDS = 86400.0
# The margin never goes beyond this many error scales either way: a guard against wind-up after an
# outage, far outside anything a working forecast needs (a 0.5 % tail is ~3 scales for normal errors).
MARGIN_LIMIT_SCALES = 50.0
# Mean absolute error of a normal law per width of its central 80 % interval (0.798 sigma / 2.563
# sigma): the seed scale when the forecaster's interval width is the unit.
NORMAL_MAE_PER_80_WIDTH = 0.7979 / 2.5631
STATE_VERSION = 1


class CalibrationStateError(ValueError):
    """A stored calibration state cannot be read back (the caller restarts from a seed)."""


@dataclass(frozen=True)
class CalibrationState:
    """Immutable calibration of one workload's margin; see the module docstring for the mechanism.

    ``hours`` holds ``(hour_index, intervals, misses)`` for at most the last 24 hours, where
    ``hour_index = floor(epoch_seconds / 3600)``. Times are epoch seconds supplied by the caller.
    """

    target: float
    lead: int
    margin: float
    scale: float
    updated_at: float
    hours: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise CalibrationStateError(f"target must lie strictly between 0 and 1, got {self.target}")
        if self.lead < 1:
            raise CalibrationStateError(f"lead must be >= 1 decision step, got {self.lead}")
        if not (math.isfinite(self.margin) and math.isfinite(self.scale) and self.scale >= 0.0):
            raise CalibrationStateError("margin and scale must be finite, scale >= 0")
        if len(self.hours) > DAY_HOURS:
            raise CalibrationStateError(f"at most {DAY_HOURS} hourly counters, got {len(self.hours)}")

    @classmethod
    def start(cls, *, target: float, lead: int, margin: float, scale: float, now: float) -> CalibrationState:
        """A fresh state seeded from the forecaster's own view, in units: e.g. its (1 - target) quantile
        above the mean at the lead time as ``margin``, its typical absolute error as ``scale``."""
        return cls(target=target, lead=lead, margin=margin, scale=max(scale, 0.0), updated_at=now)

    @property
    def step(self) -> float:
        """How far one miss raises the margin (divided by (1 - target)), in units."""
        return self.scale / self.lead

    def headroom(self, unit: float = 1.0) -> float:
        """Demand to provision above the plan: the margin times the forecaster's current error size."""
        return self.margin * unit

    def miss_rate(self, now: float) -> float | None:
        """Share of the last day's observed intervals that were missed; None before any observation."""
        intervals, misses = self.last_day(now)
        return misses / intervals if intervals else None

    def last_day(self, now: float) -> tuple[int, int]:
        """(intervals, misses) observed in the current hour and the 23 before it."""
        oldest = _hour(now) - DAY_HOURS + 1
        kept = [(n, m) for hour, n, m in self.hours if hour >= oldest]
        return sum(n for n, _ in kept), sum(m for _, m in kept)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for a Kubernetes status (floats round-trip exactly through JSON)."""
        return {
            "version": STATE_VERSION,
            "target": self.target,
            "lead": self.lead,
            "margin": self.margin,
            "scale": self.scale,
            "updatedAt": self.updated_at,
            "hours": [list(entry) for entry in self.hours],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationState:
        """Inverse of ``to_dict``; a clear CalibrationStateError for anything else."""
        if data.get("version") != STATE_VERSION:
            raise CalibrationStateError(f"unsupported calibration state version {data.get('version')!r}")
        try:
            hours = tuple((int(h), int(n), int(m)) for h, n, m in data["hours"])
            return cls(
                target=float(data["target"]),
                lead=int(data["lead"]),
                margin=float(data["margin"]),
                scale=float(data["scale"]),
                updated_at=float(data["updatedAt"]),
                hours=hours,
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, CalibrationStateError):
                raise
            raise CalibrationStateError(f"malformed calibration state: {error!r}") from None


def seeded(
    *, target: float, lead: int, mean: float, tail: float, unit: float, now: float
) -> CalibrationState:
    """A fresh state from one forecast at the lead time: ``tail`` is its (1 - target) quantile, ``unit``
    the width of its 80 % interval (q0.9 - q0.1). The margin starts at the forecaster's own view of the
    tail; anything not finite (no forecast yet, a zero-width interval) starts at zero."""
    margin = (tail - mean) / unit if unit > 0.0 else 0.0
    return CalibrationState.start(
        target=target,
        lead=lead,
        margin=margin if math.isfinite(margin) else 0.0,
        scale=NORMAL_MAE_PER_80_WIDTH,
        now=now,
    )


def observe(
    state: CalibrationState,
    *,
    observed: float,
    plan: float,
    now: float,
    capacity: float | None = None,
    unit: float = 1.0,
) -> CalibrationState:
    """Account for one finished interval and return the updated state (pure).

    ``observed`` is the interval's demand, ``plan`` the forecast demand the capacity serving it was sized
    on (before the margin), ``unit`` the forecaster's error size for that plan (the one the margin was
    applied with), ``capacity`` the demand the ready replicas could serve, if known. Missing data (NaN,
    or a non-positive unit) teaches nothing and returns the state unchanged, and so does a time not
    after the last update: calling twice for the same interval (a retried reconcile) counts it once.
    """
    usable = math.isfinite(observed) and math.isfinite(plan) and math.isfinite(unit) and unit > 0.0
    if not usable or now <= state.updated_at:
        return state
    covered = state.headroom(unit) + plan
    if capacity is not None and math.isfinite(capacity):
        covered = capacity
    missed = observed > covered * (1.0 + 1e-9) + 1e-12
    weight = 1.0 - 0.5 ** ((now - state.updated_at) / SCALE_HALF_LIFE_SECONDS)
    scale = state.scale + weight * (abs(observed - plan) / unit - state.scale)
    step = scale / state.lead
    limit = MARGIN_LIMIT_SCALES * scale
    margin = state.margin + step * ((1.0 if missed else 0.0) - state.target)
    margin = min(max(margin, -limit), limit)
    return replace(
        state, margin=margin, scale=scale, updated_at=now, hours=_count(state.hours, now, missed=missed)
    )


def _hour(now: float) -> int:
    return math.floor(now / HOUR_SECONDS)


def _count(
    hours: tuple[tuple[int, int, int], ...], now: float, *, missed: bool
) -> tuple[tuple[int, int, int], ...]:
    current = _hour(now)
    kept = [entry for entry in hours if current - DAY_HOURS < entry[0] < current]
    previous = next((entry for entry in hours if entry[0] == current), (current, 0, 0))
    kept.append((current, previous[1] + 1, previous[2] + int(missed)))
    return tuple(kept)
