"""Steady-state fleet re-forecast throughput vs. naively refitting statsmodels for every series.

Target: 1,000 series x 7 days at 5-minute resolution re-forecast in <= 60 s on one core. Fitting (model
choice, parameter estimation) happens on a slow cadence; this measures the per-cycle cost in between.

    python benchmarks/forecast_throughput.py [--series 1000] [--baseline-sample 10]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from forecasting import ForecastConfig, Forecaster
from forecasting.synthetic import synthetic_demand

STEP = pd.Timedelta(minutes=5)
HORIZON = 12
QUANTILES = (0.1, 0.5, 0.9, 0.95)


def _fleet(count: int) -> list[pd.Series]:
    rng = np.random.default_rng(42)
    fleet = []
    for i in range(count):
        series = synthetic_demand(
            8,
            STEP,
            seed=i,
            level=float(rng.uniform(5, 500)),
            daily_amplitude=float(rng.uniform(0.1, 0.8)),
            noise=float(rng.uniform(0.03, 0.3)),
        )
        gaps = rng.integers(0, len(series), 3)
        series.iloc[gaps] = np.nan  # scrape failures
        fleet.append(series)
    return fleet


def _naive_refit_seconds(history: pd.Series) -> float:
    """What a straightforward implementation would do every cycle: refit Holt-Winters from scratch."""
    values = history.interpolate(limit_direction="both").to_numpy()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            values,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=288,
            initialization_method="heuristic",
        ).fit()
        fit.forecast(HORIZON)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--baseline-sample", type=int, default=10)
    parser.add_argument(
        "--fit-model",
        default="hw_damped",
        help="model fitted for the fleet set-up (auto is timed on the sample only)",
    )
    args = parser.parse_args(argv)
    per_day = int(pd.Timedelta(days=1) / STEP)
    fleet = _fleet(args.series)
    history = [s.iloc[: 7 * per_day] for s in fleet]
    new_day = [s.iloc[7 * per_day :].to_numpy() for s in fleet]

    started = time.perf_counter()
    forecasters = [Forecaster(ForecastConfig(model=args.fit_model, step=STEP)).fit(h) for h in history]
    fit_fleet = time.perf_counter() - started
    sample = history[: args.baseline_sample]
    started = time.perf_counter()
    for h in sample:
        Forecaster(ForecastConfig(step=STEP)).fit(h)
    fit_auto = (time.perf_counter() - started) / len(sample)

    # Steady state, one cycle = one new 5-minute point per series, then a 1-hour forecast with quantiles.
    cycles = 5
    started = time.perf_counter()
    for c in range(cycles):
        for f, values in zip(forecasters, new_day, strict=True):
            f.update_values(values[c : c + 1])
            f.forecast(HORIZON, QUANTILES)
    cycle = (time.perf_counter() - started) / cycles
    # Catch-up after an outage of the forecaster: a whole day of new points per series, then forecast.
    started = time.perf_counter()
    for f, values in zip(forecasters, new_day, strict=True):
        f.update_values(values[cycles:])
        f.forecast(HORIZON, QUANTILES)
    catch_up = time.perf_counter() - started

    baseline = float(np.mean([_naive_refit_seconds(h) for h in sample]))
    baseline_fleet = baseline * args.series
    print(
        f"fleet: {args.series} series x {7 * per_day} points (5-minute, 7 days), horizon {HORIZON}, "
        f"quantiles {QUANTILES}"
    )
    print(
        f"slow cadence: fit ({args.fit_model}) {fit_fleet:.1f} s for the fleet = "
        f"{fit_fleet / args.series * 1e3:.0f} "
        f"ms/series; auto model choice {fit_auto:.2f} s/series (sample of {len(sample)})"
    )
    print(
        f"steady state: update 1 point + forecast, whole fleet: {cycle:.3f} s per cycle "
        f"({cycle / args.series * 1e6:.0f} us/series)  "
        f"[target <= 60 s: {'MET' if cycle <= 60 else 'NOT MET'}]"
    )
    print(
        f"catch-up: update {per_day - cycles} points + forecast, whole fleet: {catch_up:.2f} s  "
        f"[target <= 60 s: {'MET' if catch_up <= 60 else 'NOT MET'}]"
    )
    print(
        f"naive statsmodels refit baseline: {baseline * 1e3:.0f} ms/series (sample of {len(sample)}) -> "
        f"{baseline_fleet:.0f} s for the fleet"
    )
    print(
        f"speed-up vs naive refit: steady state {baseline_fleet / cycle:.0f}x, "
        f"catch-up {baseline_fleet / catch_up:.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
