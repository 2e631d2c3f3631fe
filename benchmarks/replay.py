"""Replay demand traces through the user's HPA and the calibrated predictive policy; print the costs.

    python benchmarks/replay.py                      # the dev scenarios below (`make bench`)
    python benchmarks/replay.py TRACE.csv --plot out.png

Scenarios: every trace at its default grid (10-minute decisions for 10-minute data, else 5 minutes;
start-up = one decision), plus NASA at 1-minute decisions with a 5-minute start-up and the HPA
re-evaluating every 15 s (closer to production: replicas take minutes to load a model). The simulation
lives in forecasting.replay so `finops simulate` reuses it; this is a thin driver.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from forecasting.forecaster import ForecastConfig
from forecasting.plotting import plot_replay
from forecasting.replay import (
    WEEK,
    ComparisonReport,
    ReplaySettings,
    run_comparison,
    summarize,
    summarize_validation,
)

TRACES = Path(__file__).resolve().parent / "traces"
NASA = TRACES / "web_nasa_jul1995_1min.csv"
# A week of history, as when this scenario forecast the 1-minute grid (a fit there cost ~6 s on a week,
# ~25 s on 4 weeks); it now forecasts 5-minute bins (forecasting.resolution) and keeps the week so the
# scenario is the one measured before.
FINE = ReplaySettings(
    label="1-min decisions, 5-min start-up, HPA every 15 s",
    decision_interval=pd.Timedelta(minutes=1),
    startup_delay=pd.Timedelta(minutes=5),
    hpa_sync=pd.Timedelta(seconds=15),
    forecast=ForecastConfig(max_history=WEEK),
)


def _run(job: tuple[Path, ReplaySettings]) -> ComparisonReport:
    return run_comparison(*job)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay demand traces through scaling policies.")
    parser.add_argument("traces", nargs="*", type=Path, help=f"CSV traces (default: all in {TRACES})")
    parser.add_argument("--plot", type=Path, help="write a capacity-vs-demand PNG (suffixed per scenario)")
    parser.add_argument("--jobs", type=int, default=2, help="scenarios replayed in parallel")
    parser.add_argument("--no-fine", action="store_true", help="skip the 1-minute NASA scenario")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="print only the predictive policy on the validation window (choose changes on it, not on test)",
    )
    args = parser.parse_args(argv)
    jobs = [(path, ReplaySettings()) for path in (args.traces or sorted(TRACES.glob("*.csv")))]
    if not args.traces and not args.no_fine:
        jobs.insert(0, (NASA, FINE))  # the slowest first, so the pool finishes together
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(jobs)))) as pool:
        reports = sorted(pool.map(_run, jobs), key=lambda r: (r.trace, r.label))
    if args.validation:
        print(summarize_validation(reports))
        print(f"replayed {len(reports)} scenario(s) in {time.perf_counter() - started:.0f} s")
        return 0
    for index, report in enumerate(reports):
        print(report.to_table())
        print()
        if args.plot:
            target = args.plot if len(reports) == 1 else args.plot.with_stem(f"{args.plot.stem}-{index}")
            print(f"plot: {plot_replay(report, target)}")
    print(summarize(reports))
    print(f"replayed {len(reports)} scenario(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
