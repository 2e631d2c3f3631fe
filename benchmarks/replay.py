"""Replay demand traces through static, HPA and predictive scaling and print cost/service tables.

    python benchmarks/replay.py                      # every CSV in benchmarks/traces
    python benchmarks/replay.py TRACE.csv --plot out.png

The simulation lives in forecasting.simulate so `finops simulate` can reuse it; this is a thin driver.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from forecasting.plotting import plot_replay
from forecasting.simulate import ComparisonReport, run_comparison

TRACES = Path(__file__).resolve().parent / "traces"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay demand traces through scaling policies.")
    parser.add_argument("traces", nargs="*", type=Path, help=f"CSV traces (default: all in {TRACES})")
    parser.add_argument("--plot", type=Path, help="write a replicas-vs-demand PNG (suffixed per trace)")
    parser.add_argument("--jobs", type=int, default=2, help="traces replayed in parallel")
    args = parser.parse_args(argv)
    traces = args.traces or sorted(TRACES.glob("*.csv"))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(traces)))) as pool:
        reports: list[ComparisonReport] = list(pool.map(run_comparison, traces))
    for report in reports:
        print(report.to_table())
        print()
        if args.plot:
            target = (
                args.plot
                if len(reports) == 1
                else args.plot.with_stem(f"{args.plot.stem}-{Path(report.trace).stem}")
            )
            print(f"plot: {plot_replay(report, target)}")
    print(f"replayed {len(reports)} trace(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
