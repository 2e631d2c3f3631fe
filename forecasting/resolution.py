"""The resolution the replay forecasts capacity at (pure). At a 5-minute start-up it is the operator's
own 5-minute query grid; the operator keeps that grid at every lead (docs/BENCHMARKS.md).

A replica asked for now serves only after the start-up, so demand that rises and falls within one
start-up cannot be followed: capacity started for it arrives too late. For the decision such
variation is noise, which the calibrated margin covers; what the forecast must get right is the
level over windows of the start-up. So the forecaster is fed bins as long as the start-up (in
whole steps of the data it is given, at least one): smoother series with a stronger daily cycle,
and fits that cost a fraction of a fine grid's. Each decision then reads the forecast through the
bins its lead window overlaps. No constant: the bin is the start-up itself.
"""

from __future__ import annotations

import math


def steps_per_bin(startup_seconds: float, data_step_seconds: float) -> int:
    """Whole data steps in one start-up, at least one (a start-up shorter than the data's step, or
    none, forecasts the data's own grid)."""
    if data_step_seconds <= 0:
        raise ValueError(f"the data step must be positive, got {data_step_seconds} s")
    return max(1, math.floor(max(startup_seconds, 0.0) / data_step_seconds + 1e-9))
