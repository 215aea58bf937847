"""Run now (the baseline) and Flexible Start: the best uninterrupted run inside the window.

**Run now**: one run on ``[a, a + D]``.

**Flexible Start** is exact over *continuous* start times in ``[a, a + W]``: the cost
``E(t) = Σ_k P_k (I(t + τ_{k+1}) - I(t + τ_k))`` is piecewise linear in ``t``, with breakpoints
where some profile breakpoint ``t + τ_k`` meets a step boundary of the series. A minimum of a
piecewise-linear function lies at a breakpoint or at an end of the interval, so evaluating ``E``
at ``a``, ``a + W`` and every ``t = boundary - τ_k`` in the window is exact. For constant power
(``τ ∈ {0, D}``) the two candidate families are "start on a boundary" and "end on a boundary".
Starts are therefore *not* restricted to step boundaries; ties go to the earliest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from greentrack.carbon.series import IntensitySeries
from greentrack.scheduling.cost import contiguous_g
from greentrack.scheduling.plan import Plan, Segment
from greentrack.scheduling.profile import EPS_S, PowerProfile, binned_for, job_profile
from greentrack.scheduling.window import check_window, resolve_slack, window_warnings
from greentrack.units import J_PER_KWH

__all__ = ["best_start", "flexible_start", "make_plan", "run_now"]


def make_plan(
    strategy: str,
    segments: Sequence[tuple[float, float]],
    series: IntensitySeries,
    job: PowerProfile,
    at_s: float,
    deadline_s: float,
    expected_g: float,
    run_now_g: float,
    *,
    alternatives: Mapping[str, float],
    method: str,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    pause_power_w: float = 0.0,
    warnings: Sequence[str] = (),
) -> Plan:
    """The :class:`Plan` of ``segments`` with the figures computed for it. Units: g CO₂e."""
    saving = 100.0 * (1.0 - expected_g / run_now_g) if run_now_g > 0 else 0.0
    return Plan(
        strategy=strategy,
        start_s=float(segments[0][0]),
        segments=tuple(Segment(float(s), float(e)) for s, e in segments),
        expected_co2e_g=float(expected_g),
        run_now_co2e_g=float(run_now_g),
        saving_pct=float(saving),
        provenance=series.provenance,
        submitted_s=float(at_s),
        deadline_s=float(deadline_s),
        duration_s=job.duration_s,
        energy_kwh=job.energy_j / J_PER_KWH,
        power_w=job.mean_power_w,
        min_run_s=min_run_s,
        max_pauses=max_pauses,
        pause_power_w=pause_power_w,
        alternatives=dict(alternatives),
        method=method,
        warnings=tuple(warnings),
    )


def run_now(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
) -> Plan:
    """The baseline: start at submission time ``at_s`` and run without pause."""
    job = job_profile(duration_s, power_w, profile)
    _, deadline = check_window(series, at_s, job.duration_s, 0.0)
    e0 = float(contiguous_g(series, np.array([at_s]), job)[0])
    return make_plan(
        "run_now",
        [(at_s, at_s + job.duration_s)],
        series,
        job,
        at_s,
        deadline,
        e0,
        e0,
        alternatives={"run_now": e0},
        method="exact integral of the step series",
        warnings=window_warnings(series, at_s, deadline),
    )


def _fs_candidates(series: IntensitySeries, a: float, w: float, job: PowerProfile) -> np.ndarray:
    """Every start where the job's cost can change slope, plus the window's ends (sorted)."""
    step, s0 = series.step_s, float(series.start_s[0])
    residues = np.unique(np.round(np.mod(-job.breakpoints_s(), step), 6))
    j0 = np.floor((a - residues - s0) / step)  # first index at or before a, per residue
    count = math.floor(w / step) + 2
    grid = s0 + residues[:, None] + (j0[:, None] + np.arange(count)[None, :]) * step
    cand = np.concatenate(([a, a + w], grid.ravel()))
    cand = cand[(cand >= a - EPS_S) & (cand <= a + w + EPS_S)]
    return np.unique(np.clip(cand, a, a + w))


def best_start(
    series: IntensitySeries, a: float, w: float, job: PowerProfile
) -> tuple[float, float]:
    """``(start_s, g)``: the earliest start in ``[a, a + w]`` of least emissions (exact)."""
    cand = _fs_candidates(series, a, w, job)
    costs = contiguous_g(series, cand, job)
    best = float(costs.min())
    tol = 1e-9 * max(abs(best), 1e-12)
    i = int(np.flatnonzero(costs <= best + tol)[0])  # earliest among the minima
    return float(cand[i]), float(costs[i])


def flexible_start(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    within_s: float | None = None,
    deadline_s: float | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
) -> Plan:
    """Best uninterrupted run starting in ``[at_s, at_s + W]``; exact over continuous starts."""
    job = binned_for(job_profile(duration_s, power_w, profile), series.step_s)
    w = resolve_slack(at_s, job.duration_s, within_s, deadline_s)
    w, deadline = check_window(series, at_s, job.duration_s, w)
    e0 = float(contiguous_g(series, np.array([at_s]), job)[0])
    t, e = best_start(series, at_s, w, job)
    if e >= e0:
        t, e = at_s, e0
    return make_plan(
        "flexible_start",
        [(t, t + job.duration_s)],
        series,
        job,
        at_s,
        deadline,
        e,
        e0,
        alternatives={"run_now": e0, "flexible_start": e},
        method=(
            "exact over continuous start times (every start where the job's start or a power "
            "change meets a step boundary, and the window's ends)"
        ),
        warnings=window_warnings(series, at_s, deadline),
    )
