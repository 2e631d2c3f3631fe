"""Matplotlib figures for the CLI; matplotlib is imported lazily so the library does not require it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.forecaster import Forecast
from forecasting.replay import ComparisonReport


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency, only needed when plotting
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("plotting needs matplotlib: pip install 'finops-operator[plot]'") from exc
    matplotlib.use("Agg")  # headless: the CLI writes files, never opens windows
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_forecast(
    history: pd.Series, forecast: Forecast, path: str | Path, *, tail: pd.Timedelta | None = None
) -> Path:
    """History, forecast mean and the widest quantile band (plus the inner one when there are several)."""
    plt = _pyplot()
    span = tail or pd.Timedelta(days=2)
    shown = history[history.index > history.index[-1] - span]
    fig, ax = plt.subplots(figsize=(11, 4.5), layout="constrained")
    ax.plot(shown.index, shown.to_numpy(), color="0.35", lw=0.9, label="history")
    qs = sorted(forecast.quantiles)
    pairs = [(qs[i], qs[-1 - i]) for i in range(len(qs) // 2)]
    for alpha, (lo, hi) in zip((0.18, 0.32, 0.45), pairs, strict=False):
        ax.fill_between(
            forecast.timestamps,
            forecast.quantiles[lo],
            forecast.quantiles[hi],
            color="tab:blue",
            alpha=alpha,
            lw=0,
            label=f"{lo:g}-{hi:g} quantiles",
        )
    ax.plot(forecast.timestamps, forecast.mean, color="tab:blue", lw=1.6, label="forecast mean")
    score = forecast.backtest
    ax.set_title(f"{forecast.model_name}: backtest MAE {score.mae:.3g}, MASE {score.mase:.2f}")
    ax.set_ylabel("demand")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_replay(report: ComparisonReport, path: str | Path) -> Path:
    """Demand and the ready capacity of HPA / predictive / foresight over the test window, every miss marked.

    Capacity is drawn in demand units (ready replicas x capacity per replica), so a miss is visibly an
    interval where the demand rises above a policy's line; misses are also ticked under the axis.
    """
    plt = _pyplot()
    head = report.headline
    per = report.capacity.capacity_per_replica
    times = report.test_timestamps
    fig, ax = plt.subplots(figsize=(14, 5.5), layout="constrained")
    ax.fill_between(times, 0, report.test_demand, color="0.78", step="post", lw=0, label="demand")
    runs = (
        (report.foresight, "tab:green", 1.0),
        (head.hpa, "tab:orange", 0.9),
        (head.predictive, "tab:blue", 1.1),
    )
    top = float(max(report.test_demand.max(), *(r.ready.max() * per for r, _, _ in runs)))
    for offset, (run, color, width) in enumerate(runs):
        ax.step(
            times,
            run.ready * per,
            where="post",
            color=color,
            lw=width,
            label=f"{run.name} ({run.knob}): {run.gpu_hours:.0f} GPU-h, {int(run.misses.sum())} misses "
            f"({run.under_intervals:.2%})",
        )
        missed = times[run.misses]
        if len(missed):
            ax.scatter(missed, report.test_demand[run.misses], marker="x", color=color, s=28, zorder=5)
            ax.scatter(
                missed, np.full(len(missed), -0.03 * (offset + 1) * top), marker="|", color=color, s=60
            )
    ax.set_ylim(-0.12 * top, 1.05 * top)
    ax.set_title(
        f"{report.name}: ready capacity vs demand on the test window at "
        f"{report.service_level:.2%} stated (x = a miss, ticks below = misses)"
    )
    ax.set_ylabel("demand (trace units); capacity = ready replicas x capacity/replica")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
