"""Turn messy metric samples into the regular, gap-free grid the models need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def to_series(values: pd.Series) -> pd.Series:
    """Accept a DatetimeIndex or numeric seconds (how the traces store time) and return a float series."""
    if not isinstance(values, pd.Series):
        raise TypeError("expected a pandas Series indexed by time")
    index = values.index
    if not isinstance(index, pd.DatetimeIndex):
        index = pd.to_datetime(np.asarray(index, dtype=np.float64), unit="s")
    out = pd.Series(pd.to_numeric(values.to_numpy(), errors="coerce"), index=index, dtype=np.float64)
    out = out[~out.index.isna()].sort_index()
    return out[~out.index.duplicated(keep="last")]


def infer_step(series: pd.Series) -> pd.Timedelta:
    """Median spacing: robust to a few missing or jittered samples."""
    if len(series) < 2:
        raise ValueError("need at least two samples to infer the sampling step")
    diffs = np.diff(series.index.values).astype("timedelta64[ns]").astype(np.int64)
    positive = diffs[diffs > 0]
    if positive.size == 0:
        raise ValueError("cannot infer the sampling step from identical timestamps")
    return pd.Timedelta(int(np.median(positive)), unit="ns")


def regularize(series: pd.Series, step: pd.Timedelta) -> pd.Series:
    """Bin onto a grid anchored at the epoch (so refits align); empty bins stay NaN for the caller."""
    series = to_series(series)
    grid = series.resample(step, origin="epoch", label="left", closed="left").mean()
    grid[~np.isfinite(grid.to_numpy())] = np.nan
    return grid.astype(np.float64)


def fill_gaps(values: FloatArray, period: int | None) -> FloatArray:
    """Fill NaN for model fitting: short gaps linearly, long gaps from one season earlier.

    Fitting code cannot skip observations; the steady-state update path skips NaN natively instead.
    """
    out = np.array(values, dtype=np.float64)
    missing = ~np.isfinite(out)
    if not missing.any():
        return out
    if missing.all():
        return np.zeros_like(out)
    idx = np.arange(len(out))
    linear = np.interp(idx, idx[~missing], out[~missing])
    if period is not None and period < len(out):
        run_start = 0
        for i in range(len(out) + 1):
            if i < len(out) and missing[i]:
                continue
            if i - run_start > max(3, period // 24):
                for j in range(run_start, i):
                    source = out[j - period] if j >= period else np.nan
                    out[j] = source if np.isfinite(source) else linear[j]
            run_start = i + 1
    still = ~np.isfinite(out)
    out[still] = linear[still]
    return out


def load_trace(path: str | Path) -> pd.Series:
    """Read a `timestamp,value` CSV (timestamp in seconds or ISO 8601) into a time-indexed series."""
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["timestamp", "value"]:
        raise ValueError(f"{path}: expected columns 'timestamp,value', got {list(frame.columns)}")
    raw = frame["timestamp"]
    if pd.api.types.is_numeric_dtype(raw):
        index = pd.to_datetime(raw.to_numpy(dtype=np.float64), unit="s")
    else:
        index = pd.DatetimeIndex(pd.to_datetime(raw, utc=True)).tz_localize(None)
    return to_series(pd.Series(frame["value"].to_numpy(), index=index))


def describe_duration(delta: pd.Timedelta) -> str:
    """Human wording for refusal reasons ("2 days", "5 hours")."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            amount = seconds / size
            text = f"{amount:.0f}" if abs(amount - round(amount)) < 0.05 else f"{amount:.1f}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{seconds:.0f} seconds"
