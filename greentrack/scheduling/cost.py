"""Exact emissions of a job over an intensity series: run segments, and uninterrupted runs.

Emissions of running power ``p(τ)`` (τ = the job's elapsed time) during wall-clock time ``t`` are
``∫ p(τ) c(t) dt / 3.6e6`` g with ``c`` in g/kWh: the exact integral of the step series
(:meth:`~greentrack.carbon.series.IntensitySeries.integral`), so partly covered steps are
time-weighted. Every figure a plan reports is recomputed this way from its segments.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from greentrack.carbon.series import IntensitySeries
from greentrack.scheduling.plan import Segment
from greentrack.scheduling.profile import PowerProfile
from greentrack.units import J_PER_KWH

__all__ = ["contiguous_g", "evaluate_segments"]


def evaluate_segments(
    series: IntensitySeries,
    segments: Sequence[tuple[float, float]] | Sequence[Segment],
    job: PowerProfile,
    pause_power_w: float = 0.0,
) -> float:
    """Exact emissions of running ``job`` through ``segments`` in order. Units: g CO₂e.

    The job's elapsed time advances only inside segments; ``pause_power_w`` is drawn between them.
    """
    segs = [(s.start_s, s.end_s) if isinstance(s, Segment) else (s[0], s[1]) for s in segments]
    bps = job.breakpoints_s()
    total = 0.0
    elapsed = 0.0
    for start, end in segs:
        length = end - start
        lo, hi = elapsed, elapsed + length
        cuts = np.concatenate(([lo], bps[(bps > lo) & (bps < hi)], [hi]))
        mid = (cuts[:-1] + cuts[1:]) / 2  # bin lookup at piece midpoints: robust to rounding
        k = np.clip(np.floor(mid / job.step_s), 0, job.power_w.size - 1).astype(np.int64)
        walls = start + (cuts - lo)
        ints = series.integral(walls)
        total += float(np.sum(job.power_w[k] * np.diff(ints)))
        elapsed = hi
    if pause_power_w > 0:
        for (_, e0), (s1, _) in itertools.pairwise(segs):
            total += pause_power_w * float(series.integral(s1) - series.integral(e0))
    return total / J_PER_KWH


def contiguous_g(series: IntensitySeries, t_s: np.ndarray, job: PowerProfile) -> np.ndarray:
    """Emissions of one uninterrupted run starting at each ``t_s``. Units: g. Vectorised."""
    t = np.asarray(t_s, dtype=np.float64)
    bps = job.breakpoints_s()
    if bps.size == 2:
        return job.power_w[0] * (series.integral(t + bps[1]) - series.integral(t)) / J_PER_KWH
    powers = job.power_w[: bps.size - 1]
    out = np.zeros(t.shape)
    chunk = max(1, 2_000_000 // bps.size)
    for i in range(0, t.size, chunk):
        ints = series.integral(t[i : i + chunk, None] + bps[None, :])
        out[i : i + chunk] = np.diff(ints, axis=1) @ powers
    return out / J_PER_KWH
