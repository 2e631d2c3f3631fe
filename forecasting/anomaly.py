"""Cost anomalies: GPU time that demand does not explain (pure, online, no clock reads).

Per workload the caller feeds one sample per evaluation interval: the mean GPU utilisation of the
workload's GPUs, how many GPUs it holds, and its demand (requests per second, or whatever the demand
query measures). ``detect`` returns a pure decision: the updated state, the active anomaly with its
evidence (kind, expected vs observed, since when) and whether it was raised or cleared by this sample.

The residual model. Busy GPUs (utilisation x GPUs held) and held GPUs are each related to demand by a
line ``y = c + k * demand`` fitted by exponentially weighted least squares with a one-week half-life
(five running sums: bounded, and they adapt online to a workload's own GPU cost per request). A
sample's departure is the log ratio of observed to expected, with an additive floor of a tenth of the
workload's typical level so that near-zero load is judged in absolute rather than relative terms:

    x = log((observed + floor) / (expected + floor))

and it is measured in units of its own typical size (an exponentially weighted mean of ``|x|``, one-day
half-life, the interval of the model). Three departures matter, each with its own signal:

- ``BusyWithoutDemand``: GPU work per unit of demand *and* utilisation above their bands (a stuck job,
  a miner, a runaway loop on the workload's GPUs);
- ``CostOutpacingDemand``: GPUs held per unit of demand above its band (GPU-hours growing faster than
  demand: a step in GPU per request the autoscaler pays for, a slow leak);
- ``UtilizationCollapse``: GPU work per unit of demand *and* utilisation below their bands (replicas
  held, GPUs doing nothing: hung pods, a broken model server behind a fixed replica count).

Without a demand signal the departures are taken against the workload's own hour-of-day profile
(24 exponentially weighted means of busy and held GPUs, one-week half-life per hour):
``AboveSeasonalProfile`` (busy GPUs *and* utilisation above the hour's usual: GPUs working harder than
the autoscaler lets them) and ``BelowSeasonalProfile`` (busy GPUs and utilisation below it). More
GPUs held at the usual utilisation is what a legitimate rise in demand looks like under an autoscaler,
so without a demand signal it is not evidence: a step or a leak in GPU per request is only visible
with one.

Sustained. A departure starts a run when it exceeds ``ON_SCALES`` of its typical size, and the run
continues while the same kind stays beyond ``OFF_SCALES`` (hysteresis: an anomaly's noisy samples
do not restart it). It is raised once the run holds ``sustain_seconds`` of *observed* time: every
sample stands for the time since the previous call (capped at ``max_sample_seconds``), and a missing
sample (NaN, None) stands for nothing and neither extends nor ends a run. So a single scrape glitch
is one sample and never fires, and missing data never fires. An active anomaly clears once its kind
has stayed within ``ON_SCALES`` for the same sustained time (raising and clearing are symmetric, so
one normal sample inside an anomaly does not clear it). One replica's GPUs above the expected count
is the autoscaler's rounding and never evidence of GPU-hours outpacing demand.

Learning is gated: samples in a run, or beyond ``ON_SCALES``, teach nothing, so the model does not
learn an anomaly as the new normal while it is judged; scales learn from clipped departures (Huber
style), so one glitch moves them by a bounded amount. The one-week half-life of the expected level is
slower than the hours-to-days over which a leak builds up, so a leak shows as a growing departure
rather than being absorbed. A legitimate change (a new model version costing more per request) stays
flagged: the caller restarts the state (``AnomalyState.start``) when the user says so.

The state is a few dozen floats (the sums, six scales, two 24-hour profiles, the current run and
anomaly) and round-trips through ``to_dict``/``from_dict`` so it can live in a Kubernetes status.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, NamedTuple

STATE_VERSION = 1
DAY_SECONDS = 86400.0
HOURS = 24
# Half-life of the expected level (GPU per unit of demand, and the hour-of-day profile): a week, the
# longest regular cycle in request traffic. Slow next to the hours-to-days a leak takes to build up.
LEVEL_HALF_LIFE_SECONDS = 7 * DAY_SECONDS
# Half-life of the typical departure size: one day, the dominant cycle (as in calibration.py).
SCALE_HALF_LIFE_SECONDS = DAY_SECONDS
# A run starts beyond 3 typical departures (mean absolute deviations, ~2.4 sigma for normal noise) and
# continues while beyond 1: significance levels in the model's own units, not fitted to a trace.
ON_SCALES = 3.0
OFF_SCALES = 1.0
# Levels below a tenth of the workload's typical level are compared in absolute terms (the same floor
# the forecaster puts under its residual scale): 0 vs 0.01 busy GPUs is not a 100-fold departure.
FLOOR_SHARE = 0.1
# Numerical guard: with demand this constant (relative variance) the slope is unidentifiable and the
# relation falls back to a ratio through the origin.
FLAT_DEMAND_RELATIVE_VARIANCE = 1e-6
# The smallest typical departure a model may claim (log units, ~1 %): the resolution of the readings
# (DCGM reports utilisation in whole percent), so a model that has never seen a departure (GPUs that
# always matched the rounding) still judges in finite units.
MIN_SCALE = 0.01


class AnomalyKind(StrEnum):
    """What kind of GPU time demand does not explain (condition reasons)."""

    BUSY_WITHOUT_DEMAND = "BusyWithoutDemand"
    COST_OUTPACING_DEMAND = "CostOutpacingDemand"
    UTILIZATION_COLLAPSE = "UtilizationCollapse"
    ABOVE_PROFILE = "AboveSeasonalProfile"
    BELOW_PROFILE = "BelowSeasonalProfile"


class NotJudged(StrEnum):
    """Why a sample was not judged (the anomaly state is then unchanged)."""

    WARMING_UP = "WarmingUp"
    MISSING_SAMPLE = "MissingSample"
    NO_GPUS = "NoGpus"
    ALREADY_SEEN = "AlreadySeen"


# Which signal each kind's evidence is about, and in which unit.
SIGNALS: dict[AnomalyKind, tuple[str, str]] = {
    AnomalyKind.BUSY_WITHOUT_DEMAND: ("gpuUtilization", "fraction"),
    AnomalyKind.COST_OUTPACING_DEMAND: ("allocatedGpus", "GPUs"),
    AnomalyKind.UTILIZATION_COLLAPSE: ("gpuUtilization", "fraction"),
    AnomalyKind.ABOVE_PROFILE: ("gpuUtilization", "fraction"),
    AnomalyKind.BELOW_PROFILE: ("gpuUtilization", "fraction"),
}


class AnomalyStateError(ValueError):
    """A stored anomaly state cannot be read back (the caller restarts from ``AnomalyState.start``)."""


@dataclass(frozen=True)
class AnomalyConfig:
    """What the user configures: how long a departure must last, and whether a demand signal exists.

    ``max_sample_seconds`` caps how much time one sample stands for (after an outage of the operator,
    one sample must not stand for the whole gap); set it to about twice the evaluation interval.
    ``warmup_seconds`` of learnt samples come before any judgement: one day sees every load level.
    ``gpus_per_replica``: GPUs are held in whole replicas, so one replica's GPUs above the expected
    count is the autoscaler's rounding, not evidence of GPU-hours outpacing demand.
    """

    sustain_seconds: float = 1800.0
    demand_signal: bool = True
    max_sample_seconds: float = 600.0
    warmup_seconds: float = DAY_SECONDS
    gpus_per_replica: float = 1.0

    def __post_init__(self) -> None:
        if not self.sustain_seconds > 0.0 or not self.max_sample_seconds > 0.0:
            raise ValueError("sustain_seconds and max_sample_seconds must be > 0")
        if not self.gpus_per_replica > 0.0:
            raise ValueError("gpus_per_replica must be > 0")
        if not self.warmup_seconds >= 0.0:
            raise ValueError("warmup_seconds must be >= 0")


@dataclass(frozen=True)
class AnomalySample:
    """One evaluation interval of one workload; None or NaN marks a missing value.

    ``at`` is when the interval ended (epoch seconds, from the caller's clock), ``utilization`` the mean
    busy fraction (0..1) of the workload's GPUs, ``gpus`` how many it held over the interval (their sum
    over time is its GPU-hours), ``demand`` the demand signal's value (ignored when the config has no
    demand signal). A missing value is "no data", never zero.
    """

    at: float
    utilization: float | None
    gpus: float | None
    demand: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ValueError(f"a sample needs a finite time (epoch seconds), got {self.at}")


@dataclass(frozen=True)
class Anomaly:
    """The evidence the operator reports: what, expected vs observed (means over the run), since when.

    ``expected_low``/``expected_high`` bound the model's band (``ON_SCALES`` typical departures).
    ``demand`` is the mean demand over the run (None without a demand signal).
    """

    kind: AnomalyKind
    signal: str
    unit: str
    since: float
    last_seen: float
    expected: float
    expected_low: float
    expected_high: float
    observed: float
    demand: float | None
    sustained_seconds: float

    def message(self) -> str:
        """One line for a condition message, an Event or an alert."""
        per = f" at demand {self.demand:.4g}" if self.demand is not None else ""
        return (
            f"{self.kind.value}: {self.signal} {self.observed:.3g} {self.unit} observed, expected "
            f"{self.expected:.3g} ({self.expected_low:.3g}..{self.expected_high:.3g}){per}, "
            f"sustained {_minutes_or_seconds(self.sustained_seconds)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "signal": self.signal,
            "unit": self.unit,
            "since": self.since,
            "lastSeen": self.last_seen,
            "expected": self.expected,
            "expectedLow": self.expected_low,
            "expectedHigh": self.expected_high,
            "observed": self.observed,
            "demand": self.demand,
            "sustainedSeconds": self.sustained_seconds,
        }


@dataclass(frozen=True)
class Run:
    """A departure of one kind being accumulated: sums of the evidence over its samples."""

    kind: AnomalyKind
    since: float
    last_seen: float
    seconds: float = 0.0
    samples: int = 0
    expected: float = 0.0
    low: float = 0.0
    high: float = 0.0
    observed: float = 0.0
    demand: float = 0.0

    def add(self, evidence: _Evidence, at: float, seconds: float) -> Run:
        return replace(
            self,
            last_seen=at,
            seconds=self.seconds + seconds,
            samples=self.samples + 1,
            expected=self.expected + evidence.expected,
            low=self.low + evidence.low,
            high=self.high + evidence.high,
            observed=self.observed + evidence.observed,
            demand=self.demand + evidence.demand,
        )

    def anomaly(self, *, demand_signal: bool) -> Anomaly:
        n = max(self.samples, 1)
        signal, unit = SIGNALS[self.kind]
        return Anomaly(
            kind=self.kind,
            signal=signal,
            unit=unit,
            since=self.since,
            last_seen=self.last_seen,
            expected=self.expected / n,
            expected_low=self.low / n,
            expected_high=self.high / n,
            observed=self.observed / n,
            demand=self.demand / n if demand_signal else None,
            sustained_seconds=self.seconds,
        )


@dataclass(frozen=True)
class Active:
    """A raised anomaly; ``clear_seconds`` of observed time with its kind back within ON so far."""

    run: Run
    raised_at: float
    clear_seconds: float = 0.0


class Expected(NamedTuple):
    """What a model expects of busy and held GPUs; below the floors levels compare in absolute terms."""

    busy: float
    gpus: float
    busy_floor: float
    gpus_floor: float


@dataclass(frozen=True)
class Relation:
    """Exponentially weighted sums of (demand, busy GPUs, held GPUs): two lines ``y = c + k * demand``."""

    w: float = 0.0
    d: float = 0.0
    dd: float = 0.0
    b: float = 0.0
    db: float = 0.0
    g: float = 0.0
    dg: float = 0.0

    def learn(self, weight: float, demand: float, busy: float, gpus: float) -> Relation:
        keep = 1.0 - weight
        return Relation(
            w=keep * self.w + weight,
            d=keep * self.d + weight * demand,
            dd=keep * self.dd + weight * demand * demand,
            b=keep * self.b + weight * busy,
            db=keep * self.db + weight * demand * busy,
            g=keep * self.g + weight * gpus,
            dg=keep * self.dg + weight * demand * gpus,
        )

    def expected(self, demand: float) -> Expected:
        """Busy and held GPUs the relation expects at this demand, with their floors."""
        mean_d, mean_b, mean_g = self.d / self.w, self.b / self.w, self.g / self.w
        variance = self.dd / self.w - mean_d * mean_d
        if variance > FLAT_DEMAND_RELATIVE_VARIANCE * max(mean_d * mean_d, 1e-300):
            busy = mean_b + (self.db / self.w - mean_d * mean_b) / variance * (demand - mean_d)
            gpus = mean_g + (self.dg / self.w - mean_d * mean_g) / variance * (demand - mean_d)
        elif mean_d > 0.0:
            busy, gpus = mean_b * demand / mean_d, mean_g * demand / mean_d
        else:
            busy, gpus = mean_b, mean_g
        return Expected(max(busy, 0.0), max(gpus, 0.0), FLOOR_SHARE * mean_b, FLOOR_SHARE * mean_g)


@dataclass(frozen=True)
class Profile:
    """Hour-of-day (UTC) exponentially weighted sums of busy and held GPUs, 24 of each."""

    w: tuple[float, ...] = (0.0,) * HOURS
    b: tuple[float, ...] = (0.0,) * HOURS
    g: tuple[float, ...] = (0.0,) * HOURS

    def learn(self, hour: int, weight: float, busy: float, gpus: float) -> Profile:
        keep = 1.0 - weight

        def put(values: tuple[float, ...], value: float) -> tuple[float, ...]:
            return (*values[:hour], keep * values[hour] + weight * value, *values[hour + 1 :])

        return Profile(w=put(self.w, 1.0), b=put(self.b, busy), g=put(self.g, gpus))

    def expected(self, hour: int) -> Expected | None:
        """Busy and held GPUs of this hour of the day, with their floors; None if never seen."""
        if self.w[hour] <= 0.0:
            return None
        seen = [h for h in range(HOURS) if self.w[h] > 0.0]
        typical_b = sum(self.b[h] / self.w[h] for h in seen) / len(seen)
        typical_g = sum(self.g[h] / self.w[h] for h in seen) / len(seen)
        return Expected(
            self.b[hour] / self.w[hour],
            self.g[hour] / self.w[hour],
            FLOOR_SHARE * typical_b,
            FLOOR_SHARE * typical_g,
        )


@dataclass(frozen=True)
class Scale:
    """Exponentially weighted mean absolute departure (bias-corrected by its own weight)."""

    total: float = 0.0
    w: float = 0.0

    @property
    def value(self) -> float:
        return self.total / self.w if self.w > 0.0 else math.nan

    def learn(self, weight: float, departure: float) -> Scale:
        size = abs(departure)
        if math.isfinite(self.value):
            size = min(size, ON_SCALES * self.value)  # Huber-style: one outlier moves it boundedly
        keep = 1.0 - weight
        return Scale(total=keep * self.total + weight * size, w=keep * self.w + weight)


SCALE_NAMES = ("work", "cost", "util", "profileBusy", "profileGpus", "profileUtil")


@dataclass(frozen=True)
class Scales:
    """Typical departure size of each signal (log ratios): the width of each model's interval."""

    work: Scale = field(default_factory=Scale)
    cost: Scale = field(default_factory=Scale)
    util: Scale = field(default_factory=Scale)
    profile_busy: Scale = field(default_factory=Scale)
    profile_gpus: Scale = field(default_factory=Scale)
    profile_util: Scale = field(default_factory=Scale)

    def items(self) -> Iterator[tuple[str, Scale]]:
        for name, f in zip(SCALE_NAMES, fields(self), strict=True):
            yield name, getattr(self, f.name)


@dataclass(frozen=True)
class AnomalyState:
    """Immutable per-workload detector state; see the module docstring for the mechanism."""

    updated_at: float
    learned_seconds: float = 0.0
    relation: Relation = field(default_factory=Relation)
    profile: Profile = field(default_factory=Profile)
    scales: Scales = field(default_factory=Scales)
    run: Run | None = None
    active: Active | None = None

    @classmethod
    def start(cls, now: float) -> AnomalyState:
        """A fresh state: it learns for ``warmup_seconds`` of samples before judging."""
        return cls(updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for a Kubernetes status (floats round-trip exactly through JSON), 2-2.5 KB:

        ``{"version": 1, "updatedAt": s, "learnedSeconds": s, "relation": [7 sums], "profile": {"w",
        "b", "g": [24 each]}, "scales": {name: [total, weight] for 6 names}, "run": null | {kind, since,
        lastSeen, seconds, samples, expected, low, high, observed, demand}, "active": null | {"run":
        {...}, "raisedAt": s, "clearSeconds": s}}``; run sums are over the run's samples.
        """
        return {
            "version": STATE_VERSION,
            "updatedAt": self.updated_at,
            "learnedSeconds": self.learned_seconds,
            "relation": [getattr(self.relation, f.name) for f in fields(Relation)],
            "profile": {"w": list(self.profile.w), "b": list(self.profile.b), "g": list(self.profile.g)},
            "scales": {name: [s.total, s.w] for name, s in self.scales.items()},
            "run": _run_dict(self.run),
            "active": None
            if self.active is None
            else {
                "run": _run_dict(self.active.run),
                "raisedAt": self.active.raised_at,
                "clearSeconds": self.active.clear_seconds,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnomalyState:
        """Inverse of ``to_dict``; a clear AnomalyStateError for anything else."""
        if data.get("version") != STATE_VERSION:
            raise AnomalyStateError(f"unsupported anomaly state version {data.get('version')!r}")
        try:
            relation = Relation(*(float(v) for v in data["relation"]))
            profile = Profile(**{key: _floats(data["profile"][key], HOURS) for key in ("w", "b", "g")})
            stored = data["scales"]
            scales = Scales(*(Scale(float(stored[n][0]), float(stored[n][1])) for n in SCALE_NAMES))
            active = data["active"]
            run = _run_from(active["run"]) if active is not None else None
            return cls(
                updated_at=float(data["updatedAt"]),
                learned_seconds=float(data["learnedSeconds"]),
                relation=relation,
                profile=profile,
                scales=scales,
                run=_run_from(data["run"]),
                active=None
                if active is None or run is None
                else Active(run, float(active["raisedAt"]), float(active["clearSeconds"])),
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise AnomalyStateError(f"malformed anomaly state: {error!r}") from None


@dataclass(frozen=True)
class AnomalyDecision:
    """What one sample decided: the state to store, the active anomaly (None: nothing to report),
    whether this sample raised or cleared it (the Event/alert edges), a departure still being
    sustained (``pending``, for status), and why the sample was not judged, if it was not."""

    state: AnomalyState
    anomaly: Anomaly | None
    raised: bool = False
    cleared: bool = False
    pending: Anomaly | None = None
    not_judged: NotJudged | None = None


@dataclass(frozen=True)
class _Evidence:
    expected: float
    low: float
    high: float
    observed: float
    demand: float


@dataclass(frozen=True)
class _Judgement:
    """Departures of one sample in typical sizes, the evidence per kind, and how far beyond its band
    each kind is (the smallest of its signals' departures, in typical sizes)."""

    scores: dict[str, float]
    evidence: dict[AnomalyKind, _Evidence]
    kinds: dict[AnomalyKind, float]


def detect(state: AnomalyState, sample: AnomalySample, config: AnomalyConfig) -> AnomalyDecision:
    """Account for one sample and decide (pure). A time not after the last one changes nothing, so a
    retried reconcile counts a sample once; missing values change nothing but the clock."""
    if sample.at <= state.updated_at:
        return _unchanged(state, config, NotJudged.ALREADY_SEEN)
    seconds = min(sample.at - state.updated_at, config.max_sample_seconds)
    clock = replace(state, updated_at=sample.at)
    utilization, gpus = _finite(sample.utilization), _finite(sample.gpus)
    demand = _finite(sample.demand) if config.demand_signal else 0.0
    if utilization is None or gpus is None or demand is None or gpus < 0.0 or demand < 0.0:
        return _unchanged(clock, config, NotJudged.MISSING_SAMPLE)
    if gpus == 0.0:  # scaled to zero: no GPU time at all, nothing to explain, and a run ends
        return _settle(replace(clock, run=None), config, -math.inf, seconds, NotJudged.NO_GPUS)
    busy = min(max(utilization, 0.0), 1.0) * gpus
    hour = math.floor(sample.at / 3600.0) % HOURS
    judgement = _judge(state, config, demand=demand, busy=busy, gpus=gpus, hour=hour)
    if state.learned_seconds < config.warmup_seconds or judgement is None:
        learnt = _learn(clock, seconds, demand=demand, busy=busy, gpus=gpus, hour=hour)
        return _unchanged(learnt, config, NotJudged.WARMING_UP)
    current = state.run or (state.active.run if state.active is not None else None)
    run = _advance(current, judgement, at=sample.at, seconds=seconds)
    active = state.active
    level = -math.inf if active is None else judgement.kinds.get(active.run.kind, -math.inf)
    in_run = run is not None or level >= OFF_SCALES
    quiet = in_run or max((abs(s) for s in judgement.scores.values()), default=0.0) >= ON_SCALES
    learnt = clock if quiet else _learn(clock, seconds, demand=demand, busy=busy, gpus=gpus, hour=hour)
    return _settle(replace(learnt, run=run), config, level, seconds, None)


def _judge(
    state: AnomalyState, config: AnomalyConfig, *, demand: float, busy: float, gpus: float, hour: int
) -> _Judgement | None:
    """Score the sample against the demand relation (or the hour's profile); None if nothing to compare."""
    scales: tuple[Scale, Scale, Scale]
    if config.demand_signal:
        if state.relation.w <= 0.0:
            return None
        expected: Expected | None = state.relation.expected(demand)
        names = ("work", "cost", "util")
        scales = (state.scales.work, state.scales.cost, state.scales.util)
    else:
        expected = state.profile.expected(hour)
        names = ("profileBusy", "profileGpus", "profileUtil")
        scales = (state.scales.profile_busy, state.scales.profile_gpus, state.scales.profile_util)
    if expected is None:
        return None
    if not all(scale.w > 0.0 for scale in scales):
        return _Judgement(scores={}, evidence={}, kinds={})  # scales not seeded yet: learn only
    sizes = tuple(max(scale.value, MIN_SCALE) for scale in scales)
    raw = _log_departures(names, busy, gpus, expected)
    scores = {name: raw[name] / size for name, size in zip(names, sizes, strict=True)}
    s_busy, s_gpus, s_util = (scores[name] for name in names)
    # In order of precedence: GPUs busy with something else also explain a rise in GPUs held.
    if config.demand_signal:
        kinds = {
            AnomalyKind.BUSY_WITHOUT_DEMAND: min(s_busy, s_util),
            # One replica more than the line is the autoscaler's rounding, never evidence on its own.
            AnomalyKind.COST_OUTPACING_DEMAND: s_gpus
            if gpus - expected.gpus > config.gpus_per_replica
            else 0.0,
            AnomalyKind.UTILIZATION_COLLAPSE: min(-s_busy, -s_util),
        }
    else:
        kinds = {
            AnomalyKind.ABOVE_PROFILE: min(s_busy, s_util),
            AnomalyKind.BELOW_PROFILE: min(-s_busy, -s_util),
        }
    expected_util = expected.busy / expected.gpus if expected.gpus > 0.0 else 0.0
    util = _Evidence(*_band(expected_util, 0.0, sizes[2]), observed=busy / gpus, demand=demand)
    util = replace(util, high=min(util.high, 1.0))
    evidence = {
        AnomalyKind.BUSY_WITHOUT_DEMAND: util,
        AnomalyKind.UTILIZATION_COLLAPSE: util,
        AnomalyKind.BELOW_PROFILE: util,
        AnomalyKind.ABOVE_PROFILE: util,
        AnomalyKind.COST_OUTPACING_DEMAND: _Evidence(
            *_band(expected.gpus, expected.gpus_floor, sizes[1]), observed=gpus, demand=demand
        ),
    }
    return _Judgement(scores=scores, evidence=evidence, kinds=kinds)


def _band(expected: float, floor: float, size: float) -> tuple[float, float, float]:
    """(expected, low, high): the levels ``ON_SCALES`` typical departures away, in the signal's unit."""
    factor = math.exp(ON_SCALES * size)
    return expected, max((expected + floor) / factor - floor, 0.0), (expected + floor) * factor - floor


def _advance(run: Run | None, judgement: _Judgement, *, at: float, seconds: float) -> Run | None:
    """Continue the run while its kind stays beyond OFF; otherwise start one for a kind beyond ON."""
    if run is not None and judgement.kinds.get(run.kind, -math.inf) >= OFF_SCALES:
        return run.add(judgement.evidence[run.kind], at, seconds)
    for kind, level in judgement.kinds.items():
        if level >= ON_SCALES:
            return Run(kind=kind, since=at, last_seen=at).add(judgement.evidence[kind], at, seconds)
    return None


def _settle(
    state: AnomalyState,
    config: AnomalyConfig,
    level: float,
    seconds: float,
    not_judged: NotJudged | None,
) -> AnomalyDecision:
    """Raise a run sustained long enough; clear an anomaly whose kind has stayed within ``ON_SCALES``
    (``level``: how far beyond its band this sample was) for as long: raising and clearing are
    symmetric, so one normal sample inside an anomaly does not clear it."""
    active, run = state.active, state.run
    raised = cleared = False
    if active is None and run is not None and run.seconds >= config.sustain_seconds:
        active, run, raised = Active(run=run, raised_at=run.last_seen), None, True
    elif active is not None:
        if run is not None and run.kind == active.run.kind:  # the anomaly's own run goes on
            active, run = replace(active, run=run), None
        if level >= ON_SCALES:
            active = replace(active, clear_seconds=0.0)
        else:
            active = replace(active, clear_seconds=active.clear_seconds + seconds)
            if active.clear_seconds >= config.sustain_seconds:
                active, cleared = None, True
    state = replace(state, active=active, run=run)
    return AnomalyDecision(
        state=state,
        anomaly=None if active is None else active.run.anomaly(demand_signal=config.demand_signal),
        raised=raised,
        cleared=cleared,
        pending=None if run is None else run.anomaly(demand_signal=config.demand_signal),
        not_judged=not_judged,
    )


def _learn(
    state: AnomalyState,
    seconds: float,
    *,
    demand: float,
    busy: float,
    gpus: float,
    hour: int,
) -> AnomalyState:
    """Fold a sample judged normal (or any sample while warming up) into the models and scales."""
    level = 1.0 - 0.5 ** (seconds / LEVEL_HALF_LIFE_SECONDS)
    scale = 1.0 - 0.5 ** (seconds / SCALE_HALF_LIFE_SECONDS)
    # Each hour of the profile sees 1/24 of the samples: its weight keeps the same half-life in days.
    hourly = 1.0 - 0.5 ** (HOURS * seconds / LEVEL_HALF_LIFE_SECONDS)
    relation = state.relation.learn(level, demand, busy, gpus)
    profile = state.profile.learn(hour, hourly, busy, gpus)
    scales = state.scales
    # Departures against the model as it stood before this sample (out-of-sample, like the forecaster's
    # calibration pool): computed from the previous state's expectations.
    raw = _raw_departures(state, demand=demand, busy=busy, gpus=gpus, hour=hour)
    if raw:
        scales = Scales(*(s.learn(scale, raw[name]) if name in raw else s for name, s in scales.items()))
    return replace(
        state,
        learned_seconds=state.learned_seconds + seconds,
        relation=relation,
        profile=profile,
        scales=scales,
    )


def _raw_departures(
    state: AnomalyState, *, demand: float, busy: float, gpus: float, hour: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    if state.relation.w > 0.0:
        relation = state.relation.expected(demand)
        out.update(_log_departures(("work", "cost", "util"), busy, gpus, relation))
    expected = state.profile.expected(hour)
    if expected is not None:
        names = ("profileBusy", "profileGpus", "profileUtil")
        out.update(_log_departures(names, busy, gpus, expected))
    return out


def _log_departures(
    names: tuple[str, str, str], busy: float, gpus: float, expected: Expected
) -> dict[str, float]:
    """Log ratios observed / expected of busy GPUs, held GPUs and their quotient (utilisation)."""
    x_busy = _log_ratio(busy, expected.busy, expected.busy_floor)
    x_gpus = _log_ratio(gpus, expected.gpus, expected.gpus_floor)
    return {names[0]: x_busy, names[1]: x_gpus, names[2]: x_busy - x_gpus}


def _log_ratio(observed: float, expected: float, floor: float) -> float:
    return math.log((observed + floor) / (expected + floor)) if expected + floor > 0.0 else 0.0


def _unchanged(state: AnomalyState, config: AnomalyConfig, reason: NotJudged) -> AnomalyDecision:
    active, run = state.active, state.run
    return AnomalyDecision(
        state=state,
        anomaly=None if active is None else active.run.anomaly(demand_signal=config.demand_signal),
        pending=None if run is None else run.anomaly(demand_signal=config.demand_signal),
        not_judged=reason,
    )


def _minutes_or_seconds(seconds: float) -> str:
    """Minutes, or seconds below two minutes (a short sustainedFor would read "0 min")."""
    return f"{seconds:.0f} s" if seconds < 120.0 else f"{seconds / 60:.0f} min"


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _floats(values: Any, size: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != size:
        raise AnomalyStateError(f"expected {size} hourly values, got {len(out)}")
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _run_dict(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    out: dict[str, Any] = {_camel(f.name): getattr(run, f.name) for f in fields(Run)}
    out["kind"] = run.kind.value
    return out


def _run_from(data: Mapping[str, Any] | None) -> Run | None:
    if data is None:
        return None
    values = {f.name: data[_camel(f.name)] for f in fields(Run)}
    return Run(
        kind=AnomalyKind(values.pop("kind")),
        samples=int(values.pop("samples")),
        **{k: float(v) for k, v in values.items()},
    )
