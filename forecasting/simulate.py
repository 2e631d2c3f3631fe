"""Scaling policies and the fleet simulation behind the replay (static capacity model, pure numpy).

One capacity model for every policy: `capacity_per_replica` demand units per replica, a start-up delay
(model loading) before new replicas count, and one scaling decision per simulation step. Pods cost GPU
time from the moment they are created. An interval is under-provisioned (a miss) when its mean demand
exceeds the capacity of the *ready* replicas. Policies only ever receive the demand observed before the
decision. Two bounds need no policy: `oracle_run` (no start-up cost, not reachable) and `foresight_run`
(perfect knowledge of demand under the same cost model as the policies: the reachable limit).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from forecasting.calibration import CalibrationState, observe
from forecasting.fallback import Fallback, FallbackReason, assess, choose_replicas
from forecasting.models import FloatArray

IntArray = np.ndarray[tuple[int], np.dtype[np.int64]]


@dataclass(frozen=True)
class CapacityModel:
    """What one replica serves and how long it takes to become useful."""

    capacity_per_replica: float
    step_seconds: float
    startup_steps: int = 1
    gpus_per_replica: int = 1

    def replicas_for(self, demand: float, utilization: float = 1.0) -> int:
        return max(1, math.ceil(demand / (self.capacity_per_replica * utilization) - 1e-9))

    def replicas_array(self, demand: FloatArray) -> IntArray:
        need = np.ceil(np.nan_to_num(demand) / self.capacity_per_replica - 1e-9)
        return np.maximum(need, 1).astype(np.int64)


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
class HpaPolicy:
    """Kubernetes HPA: desired = ceil(ready * util/target), 10 % tolerance, scale-down stabilisation.

    The metric is the mean demand of the last completed step divided by the ready replicas' capacity.
    Stabilisation keeps the maximum raw recommendation of the window (timestamps strictly inside it, as
    the controller does). Scale-up rate limits are not modelled (the controller could reach any target
    within one evaluation period of 15 s). A missing metric keeps the current count.
    """

    settings: HpaSettings
    capacity: CapacityModel
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
        return min(max(desired, cfg.min_replicas), cfg.max_replicas)


@dataclass
class PredictivePolicy:
    """Capacity for `plan + margin * unit`, falling back to the user's HPA when the forecast fails.

    `plans[m - first]` is the forecast demand (mean, maximum over the lead time) issued at decision step
    m from demand before m, `units[m - first]` the forecaster's error size for it (the width of its
    80 % interval at the lead time); NaN means the forecaster had nothing. Decisions happen every `substeps`
    simulation steps (the HPA underneath may evaluate more often). At each decision the policy first
    accounts for the interval that just ended in its calibration state (the plan that sized it, the
    capacity that was ready), then asks `fallback.assess` whether the forecast may drive capacity, and
    `fallback.choose_replicas` combines the forecast floor, the reactive need and the HPA's answer.
    """

    plans: FloatArray
    units: FloatArray
    first: int
    capacity: CapacityModel
    substeps: int
    startup_decisions: int
    calibration: CalibrationState
    hpa: HpaPolicy
    min_history_seconds: float
    reasons: list[FallbackReason | None] = field(default_factory=list)
    headrooms: list[float] = field(default_factory=list)
    _floor: int | None = None
    _fallback: Fallback | None = None
    _min_ready: int = 0

    def decide(self, k: int, observed: FloatArray, ready: int, current: int) -> int:
        hpa = self.hpa.decide(k, observed, ready, current)
        last = float(observed[-1]) if len(observed) else math.nan
        boundary = k % self.substeps == 0
        if boundary:
            m = k // self.substeps
            self._account(m - 1, last, self._min_ready, now=k * self.capacity.step_seconds)
            plan, unit = float(self.plans[m - self.first]), float(self.units[m - self.first])
            self._fallback = assess(
                now=k * self.capacity.step_seconds,
                history_seconds=k * self.capacity.step_seconds,
                min_history_seconds=self.min_history_seconds,
                calibration=self.calibration,
                model_error=None if math.isfinite(plan) else "no forecast for this decision",
                metrics_error=None if math.isfinite(last) else "the last interval has no demand sample",
            )
            headroom = self.calibration.headroom(unit)
            usable = math.isfinite(plan + headroom)
            self._floor = self.capacity.replicas_for(plan + headroom) if usable else None
            self.reasons.append(self._fallback.reason if self._fallback else None)
            self.headrooms.append(headroom)
        need = self.capacity.replicas_for(last) if math.isfinite(last) else 0
        desired = choose_replicas(
            forecast=self._floor, reactive_need=need, hpa=hpa, current=current, fallback=self._fallback
        )
        # What serves this step: a scale-down takes effect at once (pending pods go first), new pods
        # only after the start-up. The calibration must see the misses its own scale-downs cause.
        serving = min(ready, desired)
        self._min_ready = serving if boundary else min(self._min_ready, serving)
        return desired

    def _account(self, interval: int, observed: float, min_ready: int, *, now: float) -> None:
        """Feed the finished interval to the calibration: real misses while the forecast was in charge,
        would-have-been misses of `plan + margin * unit` while the HPA was."""
        source = interval - self.startup_decisions - self.first
        if interval < self.first or source < 0:
            return
        served = None if self._fallback else min_ready * self.capacity.capacity_per_replica
        self.calibration = observe(
            self.calibration,
            observed=observed,
            plan=float(self.plans[source]),
            unit=float(self.units[source]),
            now=now,
            capacity=served,
        )

    def fallback_counts(self, since_decision: int) -> dict[str, int]:
        """Decisions from `since_decision` on by fallback reason ("" = the forecast was in charge)."""
        counts = Counter(r.value if r else "" for r in self.reasons[since_decision:])
        return dict(counts)


@dataclass(frozen=True)
class PolicyRun:
    """Outcome of one policy over one window; arrays are per simulation step."""

    name: str
    knob: str
    replicas: IntArray
    ready: IntArray
    misses: np.ndarray[tuple[int], np.dtype[np.bool_]]
    gpu_hours: float
    under_intervals: float
    under_demand: float
    scaling_actions: int

    def window(self, offset: int, demand: FloatArray, capacity: CapacityModel) -> PolicyRun:
        """The same run scored on simulation steps `offset` .. `offset + len(demand)` (e.g. the
        validation or the test part of a longer run)."""
        stop = offset + len(demand)
        totals, readies = self.replicas[offset:stop], self.ready[offset:stop]
        actions = int(np.count_nonzero(np.diff(self.replicas[max(0, offset - 1) : stop])))
        return _score(demand, totals, readies, capacity, name=self.name, knob=self.knob, actions=actions)


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
    """Perfect foresight at 100 % utilisation and no start-up cost: a physical bound nothing reaches."""
    replicas = capacity.replicas_array(demand[start:end])
    actions = int(np.count_nonzero(np.diff(replicas)))
    return _score(
        demand[start:end], replicas, replicas, capacity, name="oracle", knob="no start-up", actions=actions
    )


def foresight_run(demand: FloatArray, capacity: CapacityModel, start: int, end: int) -> PolicyRun:
    """Perfect knowledge of future demand under the policies' cost model: the reachable limit.

    Per replica level (the j-th replica is needed wherever demand needs >= j replicas), a replica is
    kept through a gap no longer than the start-up and otherwise released and re-created in time, so
    each gap costs min(gap, start-up) GPU steps; the first run of a level pays the start-up unless the
    level is needed at the window start (provisioned there, like every policy's initial replicas).
    Start-up steps that fall before the window start are still paid, so the cost is not flattered.
    """
    need = capacity.replicas_array(demand[start:end])
    n, startup = len(need), capacity.startup_steps
    totals = np.zeros(n, dtype=np.int64)
    readies = np.zeros(n, dtype=np.int64)
    before_window = 0
    for level in range(1, int(need.max(initial=0)) + 1):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], (need >= level).astype(np.int8), [0]))))
        begins, ends = edges[::2], edges[1::2]
        for i, (begin, stop) in enumerate(zip(begins, ends, strict=True)):
            readies[begin:stop] += 1
            totals[begin:stop] += 1
            if i > 0 and begin - ends[i - 1] <= startup:  # kept (and serving) through a short gap
                readies[ends[i - 1] : begin] += 1
                totals[ends[i - 1] : begin] += 1
            elif begin > 0:  # created start-up steps ahead of the run
                totals[max(0, begin - startup) : begin] += 1
                before_window += max(0, startup - begin)
    actions = int(np.count_nonzero(np.diff(totals)))
    run = _score(
        demand[start:end], totals, readies, capacity, name="foresight", knob="perfect demand", actions=actions
    )
    hours_per_step = capacity.gpus_per_replica * capacity.step_seconds / 3600.0
    return replace(run, gpu_hours=run.gpu_hours + before_window * hours_per_step)


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
        misses=under,
        gpu_hours=float(totals.sum()) * capacity.gpus_per_replica * capacity.step_seconds / 3600.0,
        under_intervals=float(under.mean()) if len(under) else 0.0,
        under_demand=float(short.sum()) / total_demand if total_demand > 0 else 0.0,
        scaling_actions=actions,
    )
