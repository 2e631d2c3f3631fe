"""Replay the demand traces through the anomaly detector with anomalies injected at known times.

    python benchmarks/anomalies.py                 # every trace, 3 seeds (`make bench`)
    python benchmarks/anomalies.py --seeds 0 1 2 3 4

Demand is real (benchmarks/traces/, NASA aggregated to 5 minutes as in the replay). GPU utilisation
and the GPUs held are SIMULATED from it: one GPU per replica serves the trace's p95 / 10 (the replay's
capacity model), an HPA on GPU utilisation (target 60 %, 10 % tolerance) sizes the replicas from the
last interval, each GPU shows 3 % background utilisation, the work has lognormal noise (sigma 0.08)
and the utilisation reading additive noise (0.02). Scrape faults on top: 1 % of utilisation samples
and 0.5 % of demand samples missing, 0.5 % single-sample glitches (utilisation reads 0 or 1), and two
one-hour outages per trace with no sample at all.

Injected, one kind per run, from day 3 every 53 hours, so the starts fall at every time of day (the
detector warms up for 1 day):
- busy: GPUs pegged at 95 % whatever the demand (a stuck job, a miner), 8 hours;
- step: GPU time per request x1.6 from one interval to the next (batching lost), 8 hours;
- leak: GPU time per request growing linearly to x1.75 over 24 hours, then reset;
- collapse: utilisation falls to 2 % while the replicas are held at their count, 8 hours.
An injection is detected when an anomaly is raised between its start and its end plus two sustained
durations (time to raise plus time to clear); every other raise is a false alarm. The clean runs
(the same faults, nothing injected) give false alarms per week after the warm-up. Each configuration
also runs with the demand signal hidden (the detector falls back to the hour-of-day profile).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecasting.anomaly import AnomalyConfig, AnomalyKind, AnomalySample, AnomalyState, detect
from forecasting.models import FloatArray
from forecasting.replay import ReplaySettings, prepare_trace

TRACES = Path(__file__).resolve().parent / "traces"
DAY = 86400.0
HOUR = 3600.0
TARGET_UTILIZATION = 0.6
TOLERANCE = 0.1
BACKGROUND_UTILIZATION = 0.03
WORK_NOISE = 0.08
READ_NOISE = 0.02
MISSING_UTILIZATION = 0.01
MISSING_DEMAND = 0.005
GLITCHES = 0.005
OUTAGES = 2
FIRST_INJECTION = 3 * DAY
INJECTION_EVERY = 2 * DAY + 5 * HOUR  # 53 h: successive starts walk around the clock
KINDS = ("busy", "step", "leak", "collapse")
DURATION = {"busy": 8 * HOUR, "step": 8 * HOUR, "leak": 24 * HOUR, "collapse": 8 * HOUR}
EXPECTED_KIND = {
    True: {
        "busy": AnomalyKind.BUSY_WITHOUT_DEMAND,
        "step": AnomalyKind.COST_OUTPACING_DEMAND,
        "leak": AnomalyKind.COST_OUTPACING_DEMAND,
        "collapse": AnomalyKind.UTILIZATION_COLLAPSE,
    },
    False: {  # without a demand signal: the hour-of-day profile's kinds
        "busy": AnomalyKind.ABOVE_PROFILE,
        "step": AnomalyKind.ABOVE_PROFILE,
        "leak": AnomalyKind.ABOVE_PROFILE,
        "collapse": AnomalyKind.BELOW_PROFILE,
    },
}
SUSTAINS = (1800.0, 7200.0)


@dataclass(frozen=True)
class Job:
    trace: Path
    kind: str  # "clean" or one of KINDS
    seed: int
    sustain: float
    demand_signal: bool


@dataclass(frozen=True)
class Outcome:
    job: Job
    injections: tuple[tuple[float, float], ...]
    raises: tuple[tuple[float, AnomalyKind], ...]
    judged_seconds: float


def simulate_gpus(
    demand: FloatArray, step: float, kind: str, rng: np.random.Generator, capacity: float
) -> tuple[FloatArray, FloatArray, tuple[tuple[float, float], ...]]:
    """Utilisation and GPUs held per interval (the simulated DCGM side), and the injected windows."""
    n = len(demand)
    times = np.arange(n) * step
    windows: list[tuple[float, float]] = []
    if kind != "clean":
        start = FIRST_INJECTION
        while start + DURATION[kind] <= n * step:
            windows.append((start, start + DURATION[kind]))
            start += INJECTION_EVERY
    per_request = np.ones(n)
    pegged = np.zeros(n, dtype=bool)
    for begin, end in windows:
        inside = (times >= begin) & (times < end)
        if kind == "step":
            per_request[inside] = 1.6
        elif kind == "leak":
            per_request[inside] = 1.0 + 0.75 * (times[inside] - begin) / (end - begin)
        else:
            pegged |= inside
    max_replicas = max(1, math.ceil(1.5 * np.nanmax(demand) / capacity / TARGET_UTILIZATION))
    gpus = np.zeros(n)
    utilization = np.zeros(n)
    replicas = max(1, math.ceil(np.nan_to_num(demand[0]) / capacity / TARGET_UTILIZATION))
    work_noise = rng.lognormal(0.0, WORK_NOISE, n)
    read_noise = rng.normal(0.0, READ_NOISE, n)
    held = False
    for k in range(n):
        if k > 0 and not held:  # the HPA sizes this interval from the last one's utilisation
            ratio = utilization[k - 1] / TARGET_UTILIZATION
            if abs(ratio - 1.0) > TOLERANCE:
                replicas = min(max(1, math.ceil(ratio * gpus[k - 1] - 1e-9)), max_replicas)
        collapsing = kind == "collapse" and pegged[k]
        held = collapsing  # replicas stay where they were while the pods are hung
        work = np.nan_to_num(demand[k]) * per_request[k] / capacity * work_noise[k]
        busy = min(work, replicas) + BACKGROUND_UTILIZATION * replicas
        util = busy / replicas + read_noise[k]
        if collapsing:
            util = 0.02 + read_noise[k] / 4
        elif pegged[k]:
            util = 0.95 + read_noise[k] / 4
        gpus[k] = replicas
        utilization[k] = min(max(util, 0.0), 1.0)
    return utilization, gpus, tuple(windows)


def add_faults(
    utilization: FloatArray, demand: FloatArray, step: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Scrape faults: missing samples, single-sample glitches, two one-hour outages (no sample)."""
    utilization, demand = utilization.copy(), demand.copy()
    n = len(utilization)
    utilization[rng.random(n) < MISSING_UTILIZATION] = np.nan
    demand[rng.random(n) < MISSING_DEMAND] = np.nan
    glitch = rng.random(n) < GLITCHES
    utilization[glitch] = rng.choice([0.0, 1.0], size=int(glitch.sum()))
    width = int(HOUR / step)
    for at in rng.integers(int(DAY / step), n - width, size=OUTAGES):
        utilization[at : at + width] = np.inf  # marker: no call at all during the outage
    return utilization, demand


def run(job: Job) -> Outcome:
    series, coarse = prepare_trace(job.trace, ReplaySettings())
    step = coarse.step_seconds
    demand = series.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(job.seed)
    utilization, gpus, windows = simulate_gpus(demand, step, job.kind, rng, coarse.capacity_per_replica)
    utilization, demand = add_faults(utilization, demand, step, rng)
    config = AnomalyConfig(
        sustain_seconds=job.sustain, demand_signal=job.demand_signal, max_sample_seconds=2 * step
    )
    origin = float(series.index[0].value // 1_000_000_000)
    state = AnomalyState.start(origin)
    raises: list[tuple[float, AnomalyKind]] = []
    for k in range(len(demand)):
        if math.isinf(utilization[k]):
            continue
        # A trace row is the mean over [t, t + step): the operator observes it at the end of the window.
        at = (k + 1) * step
        sample = AnomalySample(at=origin + at, utilization=utilization[k], gpus=gpus[k], demand=demand[k])
        decision = detect(state, sample, config)
        state = decision.state
        if decision.raised and decision.anomaly is not None:
            raises.append((at, decision.anomaly.kind))
    judged = len(demand) * step - config.warmup_seconds
    return Outcome(job, windows, tuple(raises), judged)


@dataclass(frozen=True)
class Score:
    injections: int
    detected: int
    right_kind: int
    delays: tuple[float, ...]
    false_alarms: int
    raises: int
    weeks: float


def score(outcomes: Sequence[Outcome]) -> Score:
    injections = detected = right = false_alarms = raises = 0
    delays: list[float] = []
    weeks = 0.0
    for outcome in outcomes:
        grace = 2 * outcome.job.sustain
        matched = [False] * len(outcome.raises)
        for begin, end in outcome.injections:
            injections += 1
            inside = [
                i for i, (at, _) in enumerate(outcome.raises) if begin <= at <= end + grace and not matched[i]
            ]
            for i in inside:
                matched[i] = True
            if inside:
                detected += 1
                at, kind = outcome.raises[inside[0]]
                delays.append(at - begin)
                right += kind == EXPECTED_KIND[outcome.job.demand_signal][outcome.job.kind]
        raises += len(outcome.raises)
        false_alarms += matched.count(False)
        weeks += outcome.judged_seconds / (7 * DAY)
    return Score(injections, detected, right, tuple(delays), false_alarms, raises, weeks)


def table(outcomes: Sequence[Outcome]) -> list[str]:
    lines = [
        "| trace | demand | sustain | kind | recall | right kind | precision | delay median | delay p90 "
        "| false alarms / week | per seed |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    groups: dict[tuple[str, bool, float, str], list[Outcome]] = {}
    for outcome in outcomes:
        job = outcome.job
        groups.setdefault((job.trace.stem, job.demand_signal, job.sustain, job.kind), []).append(outcome)
    for (trace, signal, sustain, kind), group in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        s = score(group)
        seeds = [score([o]) for o in sorted(group, key=lambda o: o.job.seed)]
        signal_text = "signal" if signal else "hidden"
        if kind == "clean":
            per_seed = " / ".join(str(x.false_alarms) for x in seeds) + " alarms"
            lines.append(
                f"| {trace} | {signal_text} | {sustain / 60:.0f} min | clean | | | | | "
                f"| {s.false_alarms / s.weeks:.2f} ({s.false_alarms} in {s.weeks:.1f} wk) | {per_seed} |"
            )
            continue
        per_seed = " / ".join(f"{x.detected}/{x.injections}" for x in seeds) + " found"
        recall = s.detected / s.injections if s.injections else math.nan
        precision = (s.raises - s.false_alarms) / s.raises if s.raises else math.nan
        delays = np.array(s.delays) / 60.0
        median = f"{np.median(delays):.0f} min" if len(delays) else "-"
        p90 = f"{np.percentile(delays, 90):.0f} min" if len(delays) else "-"
        kind_share = f"{s.right_kind}/{s.detected}" if s.detected else "-"
        lines.append(
            f"| {trace} | {signal_text} | {sustain / 60:.0f} min | {kind} | {recall:.2f} ({s.detected}/"
            f"{s.injections}) | {kind_share} | {precision:.2f} | {median} | {p90} "
            f"| {s.false_alarms / s.weeks:.2f} | {per_seed} |"
        )
    return lines


def _order(key: tuple[str, bool, float, str]) -> tuple[str, bool, float, int]:
    trace, signal, sustain, kind = key
    return trace, not signal, sustain, (("clean", *KINDS).index(kind))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Anomaly detection on real demand with injected faults.")
    parser.add_argument("traces", nargs="*", type=Path, help=f"CSV traces (default: all in {TRACES})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    args = parser.parse_args(argv)
    traces = args.traces or sorted(TRACES.glob("*.csv"))
    jobs = [
        Job(trace, kind, seed, sustain, signal)
        for trace in traces
        for signal in (True, False)
        for sustain in SUSTAINS
        for kind in ("clean", *KINDS)
        for seed in args.seeds
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(run, jobs, chunksize=4))
    print("\n".join(table(outcomes)))
    print(
        f"\n{len(jobs)} runs ({len(traces)} traces x demand signal/hidden x sustain "
        f"{'/'.join(f'{s / 60:.0f}' for s in SUSTAINS)} min x clean+{len(KINDS)} kinds x seeds "
        f"{' '.join(map(str, args.seeds))}) in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
