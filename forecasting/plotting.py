"""Matplotlib figures for the CLI; matplotlib is imported lazily so the library does not require it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.forecaster import Forecast
from forecasting.simulate import ComparisonReport


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


def plot_replay(report: ComparisonReport, path: str | Path, *, max_days: float = 3.0) -> Path:
    """Ready replicas of each policy (at the service level) against demand expressed in replicas."""
    plt = _pyplot()
    steps = int(pd.Timedelta(days=max_days) / report.step)
    times = report.test_timestamps[:steps]
    demand = report.test_demand[:steps] / report.capacity.capacity_per_replica
    fig, ax = plt.subplots(figsize=(12, 5), layout="constrained")
    ax.fill_between(times, 0, demand, color="0.8", step="post", label="demand (replicas at 100 %)")
    styles = {"static": "tab:gray", "hpa": "tab:orange", "predictive": "tab:blue", "oracle": "tab:green"}
    for name, choice in report.at_service_level.items():
        run = choice.test
        ax.step(
            times,
            run.ready[:steps],
            where="post",
            color=styles.get(name, "black"),
            lw=1.2,
            label=f"{name} ({run.knob}): {run.gpu_hours:.0f} GPU-h, under {run.under_intervals:.2%}",
        )
    ax.set_title(f"{report.trace}: ready replicas vs demand (test window, first {max_days:g} days)")
    ax.set_ylabel("replicas")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
