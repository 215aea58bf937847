"""Carbon-aware scheduling: Flexible Start and Pause & Resume over an intensity series.

Follows Dodge et al., "Measuring the Carbon Intensity of AI in Cloud Instances" (FAccT 2022),
§5: *Flexible Start* shifts the start of a job inside a window; *Pause & Resume* runs it in the
lowest-intensity time before its deadline. Both are compared with starting at submission time.

Conventions (all times epoch seconds UTC, ``t_s``; all durations seconds):

* ``a`` is the submission time, ``D`` the job's duration, ``W`` the slack (``--within``): the job
  may start up to ``W`` after ``a`` and must finish by the deadline ``a + D + W``. Pause & Resume
  uses the same deadline. An absolute ``deadline_s`` gives ``W = deadline_s - a - D``.
* Emissions of running power ``p(τ)`` (τ = the job's elapsed time) during wall-clock time ``t`` are
  ``∫ p(τ) c(t) dt / 3.6e6`` g with ``c`` in g/kWh — the exact integral of the step series
  (:meth:`IntensitySeries.integral`), so partly covered steps are time-weighted. Every figure a
  :class:`Plan` reports is recomputed this way from its segments.
* The power is constant (1 kW unless ``power_w`` is given), or the power profile of a past run
  (:class:`PowerProfile`, averaged into at most ~256 equal bins, energy kept exactly per bin).

Algorithms:

* **Run now**: one run on ``[a, a + D]``.
* **Flexible Start** (exact over *continuous* start times in ``[a, a + W]``): the cost
  ``E(t) = Σ_k P_k (I(t + τ_{k+1}) - I(t + τ_k))`` is piecewise linear in ``t``, with breakpoints
  where some profile breakpoint ``t + τ_k`` meets a step boundary of the series. A minimum of a
  piecewise-linear function lies at a breakpoint or at an end of the interval, so evaluating
  ``E`` at ``a``, ``a + W`` and every ``t = boundary - τ_k`` in the window is exact. For constant
  power (``τ ∈ {0, D}``) the two candidate families are "start on a boundary" and "end on a
  boundary". Starts are therefore *not* restricted to step boundaries; ties go to the earliest.
* **Pause & Resume**: a dynamic programme over cells of length ``q`` (the planning quantum:
  ``q = gcd(step, D, min_run, W)`` in whole seconds, so ``q`` is the step itself for whole-hour
  jobs on hourly data, 30 min for a 90 min job). It chooses the cells the job runs in so that
  every run segment lasts at least ``min_run`` (rounded up to whole cells, clipped to ``D``),
  there are at most ``max_pauses`` pauses, and the emissions — plus ``pause_power_w`` drawn while
  paused between segments — are minimal. State: (work cells done, segments started, running or
  idle); work cell ``w`` carries its energy ``E_w``, so a power profile costs ``c_i·E_w`` in cell
  ``i``. The DP is exact over plans whose starts and pauses lie on the grid aligned to the data's
  steps (brute-force tested). For constant power with the submission time on that grid (always in
  the study; ``--at`` on the hour for hourly data) that is the optimum over *all* plans: inside
  each choice of steps the cost is linear in the segment end points, and the constraints are
  bounds on grid points, differences of consecutive end points (segments ≥ ``min_run``, pauses
  ≥ 0) and one total (= ``D``), so every vertex lies on the grid (tests also check that finer
  grids never do better). For an off-grid submission time the DP also runs on the same grid
  shifted to the submission time (cells straddling steps, costed at their exact mean), both in
  one vectorised pass; the better plan — or the exact Flexible Start plan, which has no pause and
  is always feasible — is returned, so ``pause_resume ≤ flexible_start ≤ run_now`` always holds.
* **Duration not a whole number of cells**: when ``q`` would be too fine for the DP's size budget
  (e.g. a 3 h 17 min 23 s profiled run), the quantum drops ``W`` then ``D`` from the gcd; the job
  then occupies ``ceil(D / q)`` cells and its last cell is used only for the remainder (the
  plan's final segment ends early by that much and may be shorter than ``min_run`` by less than
  one cell). For very long jobs on fine data the cells may span several steps (costed at their
  mean; the plan's ``warnings`` say so).
* The study (every submission of a history) lives in :mod:`greentrack.schedule_study`; its names
  (``study``, ``study_files``, ``format_study``...) are re-exported here lazily.

Invariants (tested): ``pause_resume ≤ flexible_start ≤ run_now``; ``pause_resume ==
flexible_start`` when the job is no longer than ``min_run`` (one segment; with hourly data and the
default 1 h ``min_run`` this is "the job is one step long") or ``max_pauses == 0``; all three are
equal when ``W == 0`` or the intensity is constant.

Time input: ISO 8601 with ``Z`` or an offset (``2022-03-01T08:00Z``, ``...+01:00``), optionally a
zone suffix (``2022-03-27T09:00[Europe/Madrid]``) or ``tz=``; naive times are UTC unless ``tz`` is
given. A local time that does not exist (spring DST gap) or occurs twice (autumn) is a
:class:`~greentrack.errors.ScheduleError`. Durations are physical seconds: a 24 h window across a
DST change is 24 real hours.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from greentrack import timefmt
from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ScheduleError
from greentrack.timefmt import format_time
from greentrack.units import J_PER_KWH, format_co2e

__all__ = [
    "DEFAULT_MIN_RUN_S",
    "DEFAULT_POWER_W",
    "Plan",
    "PowerProfile",
    "Segment",
    "evaluate_segments",
    "flexible_start",
    "format_plan",
    "format_time",
    "parse_duration",
    "parse_time",
    "pause_resume",
    "pause_windows",
    "plan",
    "plan_series",
    "profile_from_run",
    "profile_from_samples",
    "resume_at",
    "run_now",
    "should_pause",
]


def __getattr__(name: str) -> Any:
    """The study lives in :mod:`greentrack.schedule_study`; its names are re-exported here."""
    if not name.startswith("__"):  # not for dunder probes (copy, pickle, doctest...)
        from greentrack import schedule_study

        if name in schedule_study.__all__:
            return getattr(schedule_study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_POWER_W = 1000.0
"""Power of the job when none is given: 1 kW, so figures read as g per kWh-hour of running."""
DEFAULT_MIN_RUN_S = 3600.0
"""Shortest run segment of a Pause & Resume plan (real jobs cannot stop every 5 minutes)."""
MAX_PROFILE_BINS = 256
"""A power profile is averaged into at most about this many equal bins."""
_DP_BUDGET = 3_000_000
"""Largest DP size (cells × work cells × segment counts) before the planning quantum coarsens."""
_EPS_S = 1e-6


# --------------------------------------------------------------------------------------------
# Parsing and formatting of times and durations
# --------------------------------------------------------------------------------------------


def parse_duration(value: float | int | str, what: str = "duration") -> float:
    """Seconds from ``6h``, ``90m``, ``1h30m``, ``3600s``, ``2d``, ``1w``, ``PT6H`` or a number
    (:func:`greentrack.timefmt.parse_duration`); bad input raises ScheduleError."""
    return timefmt.parse_duration(value, what, error=ScheduleError)


def parse_time(
    value: float | int | str | datetime | None,
    *,
    tz: str | None = None,
    now_s: float | None = None,
    what: str = "time",
) -> float:
    """Epoch seconds (UTC) from ISO 8601 text (``Z``, an offset or a ``[Area/City]`` suffix), a
    datetime, epoch seconds, or ``now``/None; naive times are in ``tz``, else UTC
    (:func:`greentrack.timefmt.parse_time`). Bad input, DST gaps and ambiguous local times
    raise ScheduleError."""
    return timefmt.parse_time(value, tz=tz, now_s=now_s, what=what, error=ScheduleError)


def _fmt_dur(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if s:
        return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
    return f"{h}h{m:02d}m" if h and m else (f"{h}h" if h else f"{m}m")


# --------------------------------------------------------------------------------------------
# The job's power
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerProfile:
    """Power over a job's elapsed time: ``power_w[k]`` holds on ``[k·step_s, (k+1)·step_s)``.

    Attributes:
        power_w: power per bin. Units: W. Non-negative, finite, non-empty.
        step_s: bin length. Units: s. The last bin may be cut short by ``duration_s``.
        duration_s: the job's length; default ``len(power_w) · step_s``. Units: s.
    """

    power_w: np.ndarray
    step_s: float
    duration_s: float = 0.0
    _cum_j: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = np.asarray(self.power_w, dtype=np.float64).ravel()
        if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ScheduleError("a power profile needs finite, non-negative power values")
        if not (self.step_s > 0 and math.isfinite(self.step_s)):
            raise ScheduleError(f"a power profile's step must be positive (got {self.step_s})")
        dur = float(self.duration_s) or p.size * float(self.step_s)
        if dur <= 0 or dur > p.size * self.step_s * (1 + 1e-9):
            raise ScheduleError("a power profile's duration must be within its bins")
        object.__setattr__(self, "power_w", p)
        object.__setattr__(self, "step_s", float(self.step_s))
        object.__setattr__(self, "duration_s", dur)
        object.__setattr__(self, "_cum_j", np.concatenate(([0.0], np.cumsum(p * self.step_s))))

    @classmethod
    def constant(cls, power_w: float, duration_s: float) -> PowerProfile:
        """A constant power for ``duration_s`` seconds."""
        if not (duration_s > 0):
            raise ScheduleError(f"the job's duration must be positive (got {duration_s} s)")
        return cls(np.array([float(power_w)]), float(duration_s), float(duration_s))

    @property
    def energy_j(self) -> float:
        """Total energy. Units: J."""
        return float(self.cumulative_j(self.duration_s))

    @property
    def mean_power_w(self) -> float:
        """Mean power over the job. Units: W."""
        return self.energy_j / self.duration_s

    @property
    def is_constant(self) -> bool:
        return bool(np.all(self.power_w == self.power_w[0]))

    def cumulative_j(self, tau_s: np.ndarray | float) -> np.ndarray:
        """Energy used from elapsed 0 to ``tau_s`` (clipped to the job). Units: J. Vectorised."""
        tau = np.clip(np.asarray(tau_s, dtype=np.float64), 0.0, self.duration_s)
        k = np.clip(np.floor(tau / self.step_s), 0, self.power_w.size - 1).astype(np.int64)
        return self._cum_j[k] + self.power_w[k] * (tau - k * self.step_s)

    def stretched(self, duration_s: float) -> PowerProfile:
        """The same shape and power levels spread over ``duration_s`` (energy scales with it)."""
        scale = duration_s / self.duration_s
        return PowerProfile(self.power_w, self.step_s * scale, duration_s)

    def rebinned(self, bin_s: float) -> PowerProfile:
        """Mean power over bins of ``bin_s`` (energy in every bin kept exactly)."""
        n = max(1, math.ceil(self.duration_s / bin_s - 1e-9))
        edges = np.minimum(np.arange(n + 1) * bin_s, self.duration_s)
        widths = np.diff(edges)
        energy = np.diff(self.cumulative_j(edges))
        power = np.divide(energy, widths, out=np.zeros_like(energy), where=widths > 0)
        return PowerProfile(power, bin_s, self.duration_s)

    def tail(self, done_s: float) -> PowerProfile:
        """The work left after ``done_s`` seconds of it, in bins of the same length whose energy is
        kept exactly (a job re-planned between two of its run segments)."""
        left = self.duration_s - float(done_s)
        if not left > _EPS_S:
            raise ScheduleError(
                f"no work is left after {done_s:g} s of a {self.duration_s:g} s job"
            )
        if self.is_constant:
            return PowerProfile.constant(float(self.power_w[0]), left)
        n = max(1, math.ceil(left / self.step_s - 1e-9))
        edges = np.minimum(done_s + np.arange(n + 1) * self.step_s, self.duration_s)
        widths = np.diff(edges)
        energy = np.diff(self.cumulative_j(edges))
        power = np.divide(energy, widths, out=np.zeros_like(energy), where=widths > 0)
        return PowerProfile(power, self.step_s, left)

    def breakpoints_s(self) -> np.ndarray:
        """Elapsed times where the power may change, with 0 and the duration. Units: s."""
        inner = np.arange(1, self.power_w.size) * self.step_s
        inner = inner[inner < self.duration_s - _EPS_S]
        return np.concatenate(([0.0], inner, [self.duration_s]))


def profile_from_samples(samples: Mapping[str, Any], step_s: float | None = None) -> PowerProfile:
    """The power profile of a past run from its stored samples (``store.queries.run_samples``).

    Uses the cumulative energy counters (``energy_j`` per device), summed over devices on a regular
    grid (default step: the median sampling interval) and differenced, so the profile's energy is
    the run's measured energy.
    """
    t = np.asarray(samples.get("t_s", []), dtype=np.float64)
    if t.size < 2:
        raise ScheduleError("the run has fewer than two power samples; pick a longer run")
    energy = np.asarray(samples["energy_j"], dtype=np.float64)
    keys = [
        f"{r}/{d}"
        for r, d in zip(
            samples.get("rank", np.zeros(t.size, dtype=np.int64)),
            samples.get("device", np.array([""] * t.size, dtype=object)),
            strict=True,
        )
    ]
    t0, t1 = float(t.min()), float(t.max())
    if t1 - t0 <= 0:
        raise ScheduleError("the run's samples span no time; pick a longer run")
    if step_s is None:
        diffs = np.diff(np.sort(np.unique(t)))
        step_s = float(np.median(diffs)) if diffs.size else t1 - t0
    n = max(1, math.ceil((t1 - t0) / step_s - 1e-9))
    grid = t0 + np.minimum(np.arange(n + 1) * step_s, t1 - t0)
    total = np.zeros(n + 1)
    for key in dict.fromkeys(keys):
        sel = np.array([k == key for k in keys])
        order = np.argsort(t[sel])
        td, ed = t[sel][order], energy[sel][order]
        ed = ed - ed[0]  # cumulative since the device's first sample
        total += np.interp(grid, td, ed, left=0.0, right=ed[-1])
    widths = np.diff(grid)
    power = np.divide(np.diff(total), widths, out=np.zeros(n), where=widths > 0)
    return PowerProfile(np.maximum(power, 0.0), step_s, t1 - t0)


def profile_from_run(db_url: str | None, run_id: str) -> PowerProfile:
    """The power profile of a stored run (id or unique prefix)."""
    from greentrack.config import load_config
    from greentrack.store.queries import open_store, resolve_run_id, run_samples

    conn = open_store(db_url or load_config().db_url)
    try:
        samples = run_samples(conn, resolve_run_id(conn, run_id))
    finally:
        conn.close()
    return profile_from_samples(samples)


def _job(duration_s: float | None, power_w: float | None, profile: Any) -> PowerProfile:
    """The job's power model: a (binned) profile or a constant power."""
    if profile is not None:
        if power_w is not None:
            raise ScheduleError("give either a power (power_w) or a power profile, not both")
        if isinstance(profile, PowerProfile):
            prof = profile
        else:  # an array of power over the job's elapsed time, spread evenly over the duration
            values = np.asarray(profile, dtype=np.float64).ravel()
            if duration_s is None:
                raise ScheduleError("a power array needs the job's duration (or a PowerProfile)")
            if values.size == 0:
                raise ScheduleError("a power profile needs at least one power value")
            prof = PowerProfile(values, duration_s / values.size, duration_s)
        if duration_s is not None and abs(duration_s - prof.duration_s) > _EPS_S:
            prof = prof.stretched(duration_s)
        return prof
    if duration_s is None:
        raise ScheduleError("the job's duration is missing; give e.g. --duration 6h")
    p = DEFAULT_POWER_W if power_w is None else float(power_w)
    if not (p > 0 and math.isfinite(p)):
        raise ScheduleError(f"the job's power must be positive (got {power_w} W)")
    return PowerProfile.constant(p, duration_s)


def _binned_for(job: PowerProfile, step_s: float) -> PowerProfile:
    """Profiles averaged into ≤ ~MAX_PROFILE_BINS bins whose length divides the series' step."""
    if job.power_w.size == 1 or job.is_constant:
        return PowerProfile.constant(float(job.power_w[0]), job.duration_s)
    target = job.duration_s / MAX_PROFILE_BINS
    r = max(1, math.ceil(step_s / target - 1e-9)) if target < step_s else 1
    bin_s = step_s / r if target < step_s else step_s * max(1, math.floor(target / step_s))
    return job.rebinned(bin_s)


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One run segment ``[start_s, end_s)`` (epoch seconds UTC)."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, str]:
        return {"start": format_time(self.start_s), "end": format_time(self.end_s)}


@dataclass(frozen=True)
class Plan:
    """A scheduling decision and what it is expected to emit.

    Attributes:
        strategy: ``run_now``, ``flexible_start`` or ``pause_resume``.
        start_s: when the job starts (epoch s UTC).
        segments: the run segments, in order (one for run-now / Flexible Start).
        expected_co2e_g: emissions of the plan (job energy during segments, plus the pause power
            between them). Units: g CO₂e.
        run_now_co2e_g: emissions when started at submission time. Units: g CO₂e.
        saving_pct: ``100 · (1 - expected / run_now)``.
        provenance: the intensity data used.
        submitted_s, deadline_s: the window (epoch s). ``deadline_s = submitted_s + D + W``.
        duration_s: the job's run time ``D``. Units: s.
        energy_kwh: the job's energy (pause power excluded). Units: kWh.
        power_w: the job's mean power. Units: W.
        alternatives: emissions of every strategy evaluated (g), e.g. ``{"run_now": ...}``.
        method: how the plan was computed (exactness statement).
        warnings: one-line notes (constant intensity, coarse grid, ...).
    """

    strategy: str
    start_s: float
    segments: tuple[Segment, ...]
    expected_co2e_g: float
    run_now_co2e_g: float
    saving_pct: float
    provenance: Provenance
    submitted_s: float
    deadline_s: float
    duration_s: float
    energy_kwh: float
    power_w: float
    min_run_s: float | None = None
    max_pauses: int | None = None
    pause_power_w: float = 0.0
    alternatives: Mapping[str, float] = field(default_factory=dict)
    method: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def end_s(self) -> float:
        """When the job finishes (epoch s)."""
        return self.segments[-1].end_s

    @property
    def pauses(self) -> int:
        return len(self.segments) - 1

    @property
    def within_s(self) -> float:
        """The slack W. Units: s."""
        return self.deadline_s - self.submitted_s - self.duration_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: strategy, start, segments, expected/run-now g, saving_pct, source."""
        return {
            "strategy": self.strategy,
            "start": format_time(self.start_s),
            "end": format_time(self.end_s),
            "segments": [s.to_dict() for s in self.segments],
            "expected_co2e_g": self.expected_co2e_g,
            "run_now_co2e_g": self.run_now_co2e_g,
            "saving_pct": self.saving_pct,
            "source": self.provenance.to_dict(),
            "submitted": format_time(self.submitted_s),
            "deadline": format_time(self.deadline_s),
            "duration_s": self.duration_s,
            "within_s": self.within_s,
            "energy_kwh": self.energy_kwh,
            "power_w": self.power_w,
            "pauses": self.pauses,
            "min_run_s": self.min_run_s,
            "max_pauses": self.max_pauses,
            "pause_power_w": self.pause_power_w,
            "alternatives": dict(self.alternatives),
            "method": self.method,
            "warnings": list(self.warnings),
            # exact epoch seconds for machines (the ISO strings are rounded to the second)
            "segments_s": [[s.start_s, s.end_s] for s in self.segments],
        }


def _segments_of(plan: Plan | Mapping[str, Any]) -> list[tuple[float, float]]:
    if isinstance(plan, Plan):
        return [(s.start_s, s.end_s) for s in plan.segments]
    exact = plan.get("segments_s")
    if exact:
        return [(float(a), float(b)) for a, b in exact]
    out = []
    for seg in plan.get("segments") or []:
        if isinstance(seg, Mapping):
            out.append((parse_time(seg["start"]), parse_time(seg["end"])))
        else:
            out.append((parse_time(seg[0]), parse_time(seg[1])))
    return out


def pause_windows(plan: Plan | Mapping[str, Any]) -> list[tuple[float, float]]:
    """The pauses of a plan: ``[(start_s, end_s), ...]`` between consecutive run segments."""
    segs = _segments_of(plan)
    return [(a[1], b[0]) for a, b in itertools.pairwise(segs) if b[0] > a[1]]


def should_pause(plan: Plan | Mapping[str, Any], now_s: float) -> bool:
    """True while ``now_s`` is before the plan's first segment or inside one of its pauses.

    After the last segment's end it is False: a job that overruns its plan keeps running. Accepts a
    :class:`Plan` or its ``to_dict()`` form (what ``run.should_pause()`` reads from the run).
    """
    segs = _segments_of(plan)
    if not segs or now_s >= segs[-1][1]:
        return False
    return not any(s <= now_s < e for s, e in segs)


def resume_at(plan: Plan | Mapping[str, Any], now_s: float) -> float | None:
    """When the job should next run, if ``should_pause(plan, now_s)``; else None (epoch s)."""
    if not should_pause(plan, now_s):
        return None
    return min(s for s, _ in _segments_of(plan) if s > now_s)


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


def _contiguous_g(series: IntensitySeries, t_s: np.ndarray, job: PowerProfile) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# Window checks
# --------------------------------------------------------------------------------------------


def _check_slack(duration_s: float, within_s: float) -> float:
    """The slack, refusing a deadline that leaves less than the job's duration."""
    if not (duration_s > 0):
        raise ScheduleError(f"the job's duration must be positive (got {duration_s} s)")
    if within_s < -_EPS_S:
        raise ScheduleError(
            f"the deadline is {_fmt_dur(-within_s)} too early for a {_fmt_dur(duration_s)} job "
            "started at submission; give a later --deadline or a shorter --duration"
        )
    return max(0.0, within_s)


def _window(
    series: IntensitySeries, at_s: float, duration_s: float, within_s: float
) -> tuple[float, float]:
    within_s = _check_slack(duration_s, within_s)
    deadline = at_s + duration_s + within_s
    if len(series) > 1 and not series.covers(at_s + _EPS_S, deadline - _EPS_S):
        room = series.end_s - at_s - duration_s
        fix = (
            f"use --within {_fmt_dur(math.floor(room / 60) * 60)} or less"
            if series.start_s[0] <= at_s and room >= 60
            else "move --at into the data"
        )
        raise ScheduleError(
            f"the intensity data ({series.provenance.source} {series.provenance.zone}) covers "
            f"{format_time(series.start_s[0])}..{format_time(series.end_s)} but the plan needs "
            f"{format_time(at_s)}..{format_time(deadline)}; {fix}, or load more data"
        )
    return within_s, deadline


def _warnings_for(series: IntensitySeries, at_s: float, deadline_s: float) -> list[str]:
    view = series.slice(at_s, deadline_s)
    if len(series) == 1 or np.ptp(view.g_per_kwh) == 0:
        return [
            "the intensity is constant over the window: no schedule can save anything; "
            "use a forecast or a CSV of hourly data"
        ]
    return []


# --------------------------------------------------------------------------------------------
# Run now and Flexible Start
# --------------------------------------------------------------------------------------------


def _make_plan(
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
    job = _job(duration_s, power_w, profile)
    _, deadline = _window(series, at_s, job.duration_s, 0.0)
    e0 = float(_contiguous_g(series, np.array([at_s]), job)[0])
    return _make_plan(
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
        warnings=_warnings_for(series, at_s, deadline),
    )


def _fs_candidates(series: IntensitySeries, a: float, w: float, job: PowerProfile) -> np.ndarray:
    """Every start where the job's cost can change slope, plus the window's ends (sorted)."""
    step, s0 = series.step_s, float(series.start_s[0])
    residues = np.unique(np.round(np.mod(-job.breakpoints_s(), step), 6))
    j0 = np.floor((a - residues - s0) / step)  # first index at or before a, per residue
    count = math.floor(w / step) + 2
    grid = s0 + residues[:, None] + (j0[:, None] + np.arange(count)[None, :]) * step
    cand = np.concatenate(([a, a + w], grid.ravel()))
    cand = cand[(cand >= a - _EPS_S) & (cand <= a + w + _EPS_S)]
    return np.unique(np.clip(cand, a, a + w))


def _best_start(
    series: IntensitySeries, a: float, w: float, job: PowerProfile
) -> tuple[float, float]:
    cand = _fs_candidates(series, a, w, job)
    costs = _contiguous_g(series, cand, job)
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
    job = _binned_for(_job(duration_s, power_w, profile), series.step_s)
    w = _slack(at_s, job.duration_s, within_s, deadline_s)
    w, deadline = _window(series, at_s, job.duration_s, w)
    e0 = float(_contiguous_g(series, np.array([at_s]), job)[0])
    t, e = _best_start(series, at_s, w, job)
    if e >= e0:
        t, e = at_s, e0
    return _make_plan(
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
        warnings=_warnings_for(series, at_s, deadline),
    )


def _slack(
    at_s: float, duration_s: float, within_s: float | None, deadline_s: float | None
) -> float:
    if within_s is not None and deadline_s is not None:
        raise ScheduleError("give either --within (slack after submission) or --deadline, not both")
    if deadline_s is not None:
        return float(deadline_s) - at_s - duration_s
    if within_s is None:
        raise ScheduleError(
            "how long may the job wait? give --within (e.g. 24h) or --deadline (a finish time)"
        )
    if within_s < 0:
        raise ScheduleError(f"--within must not be negative (got {within_s} s)")
    return float(within_s)


# --------------------------------------------------------------------------------------------
# Pause & Resume: the dynamic programme
# --------------------------------------------------------------------------------------------


def _hankel(energy: np.ndarray, m: int) -> np.ndarray:
    """``H[u, n] = energy[n + u]`` for u < m, n ≤ N - m: block costs as one matrix product."""
    n_work = energy.size
    idx = np.arange(m)[:, None] + np.arange(n_work - m + 1)[None, :]
    return energy[idx]


def _pr_dp(
    cell_c: np.ndarray,
    energy_kwh: np.ndarray,
    min_cells: int,
    max_segments: int | None,
    idle_g: np.ndarray | None = None,
    backtrack: bool = False,
) -> tuple[np.ndarray, list[list[int] | None] | None]:
    """Minimum emissions of running N work cells in T time cells, for S windows at once.

    States after cell ``i``: ``off[n, k, s]`` (cell i-1 idle: not started, paused or finished)
    and ``on[n, k, s]`` (cell i-1 runs, in a segment already ≥ m cells long), with ``n`` work
    cells done and ``k`` segments started. A segment starts from ``off`` with a block of exactly
    ``m`` cells (arriving ``m`` cells later) and then extends one cell at a time; a paused cell
    (0 < n < N) costs ``idle_g``. O(T·N·K·S) time, O(m·N·K·S) memory.

    Args:
        cell_c: (S, T) intensity of each time cell. Units: g/kWh. ``inf`` marks unusable cells.
        energy_kwh: (N,) energy of each work cell (the job's elapsed-time chunks). Units: kWh.
        min_cells: shortest segment, in cells (1 ≤ min_cells ≤ N).
        max_segments: cap on segments (None: unlimited).
        idle_g: (S, T) emissions of a paused cell between segments, or None. Units: g.
        backtrack: also return, per window, the used time cells (None where infeasible).

    Returns:
        (S,) minimum emissions in g (inf where infeasible), and the used cells when asked.
    """
    s_count, t_count = cell_c.shape
    n_work, m = energy_kwh.size, min_cells
    kd = (max_segments + 1) if max_segments is not None else 1
    k_step = 1 if max_segments is not None else 0
    # layout (work done n, segments k, window s): the windows axis is contiguous
    c_t = np.ascontiguousarray(cell_c.T)  # (T, S)
    bad_t = ~np.isfinite(c_t)  # unusable cells (padding): never run in them
    has_bad = bool(bad_t.any())
    if has_bad:  # keep inf out of sums and products (inf - inf, 0 W x inf are NaN)
        c_t = np.where(bad_t, 0.0, c_t)
        cum_bad = np.concatenate((np.zeros((1, s_count)), np.cumsum(bad_t, axis=0)))
    idle_t = None if idle_g is None else np.ascontiguousarray(idle_g.T)
    shape = (n_work + 1, kd, s_count)
    off = np.full(shape, np.inf)
    off[0, 0, :] = 0.0
    on = np.full(shape, np.inf)
    pending: dict[int, np.ndarray] = {}  # blocks of m cells arriving at a later i
    width = n_work - m + 1
    # block costs without BLAS (OpenBLAS threads small products and crawls on busy machines):
    # constant power (but maybe a shorter last cell) is a window sum; a profile accumulates.
    e0 = float(energy_kwh[0])
    constant = bool(np.all(energy_kwh[:-1] == e0))
    cum_c = np.concatenate((np.zeros((1, s_count)), np.cumsum(c_t, axis=0))) if constant else None
    e_last_extra = float(energy_kwh[-1]) - e0
    hank = _hankel(energy_kwh, m)[:, :, None]  # (m, N - m + 1, 1)
    block = np.empty((width, s_count))
    shifted = np.empty((n_work, kd, s_count))
    work = np.empty((n_work, 1, s_count))  # cost of cell i as work cell n
    energy_col = energy_kwh[:, None, None]
    src_block: list[np.ndarray | None] = []  # per i: where on[m:, k_step:] came from a block
    src_off: list[np.ndarray] = []  # per i: where off came from on
    for i in range(t_count):
        # a new segment of exactly m cells starting at cell i, after a pause (or at the start)
        if i + m <= t_count:
            if cum_c is not None:  # block[n] = e0·Σc over the m cells (+ the last cell's excess)
                block[:] = e0 * (cum_c[i + m] - cum_c[i])
                if e_last_extra:
                    block[width - 1] += e_last_extra * c_t[i + m - 1]
            else:  # block[n] = Σ_u E[n + u]·c[i + u]
                np.multiply(hank[0], c_t[i], out=block)
                for u in range(1, m):
                    block += hank[u] * c_t[i + u]
            if has_bad:
                block[:, cum_bad[i + m] > cum_bad[i]] = np.inf
            arrive = off[:width, : kd - k_step, :] + block[:, None, :]
            prev = pending.get(i + m)
            pending[i + m] = arrive if prev is None else np.minimum(prev, arrive, out=prev)
        if backtrack:
            src_off.append(on < off)
        np.minimum(off, on, out=off)  # cell i idle
        if idle_t is not None and n_work > 1:
            off[1:n_work] += idle_t[i]  # paused between segments
        # cell i extends the running segment
        np.multiply(energy_col, c_t[i], out=work)
        if has_bad:
            work[:, :, bad_t[i]] = np.inf
        np.add(on[:-1], work, out=shifted)
        on[1:] = shifted
        on[0] = np.inf
        arrived = pending.pop(i + 1, None)
        if arrived is not None:
            target = on[m:, k_step:, :]
            if backtrack:
                src_block.append(arrived < target)
            np.minimum(target, arrived, out=target)
        elif backtrack:
            src_block.append(None)
    final = np.minimum(off[n_work], on[n_work])  # (kd, S)
    best = final.min(axis=0)
    if not backtrack:
        return best, None
    paths: list[list[int] | None] = []
    for s_i in range(s_count):
        if not np.isfinite(best[s_i]):
            paths.append(None)
            continue
        k = int(np.argmin(final[:, s_i]))  # fewest segments among equal costs
        state = "on" if on[n_work, k, s_i] <= off[n_work, k, s_i] else "off"
        used: list[int] = []
        i, n = t_count, n_work
        while i > 0:
            mask = src_block[i - 1]
            if state == "off":
                state = "on" if src_off[i - 1][n, k, s_i] else "off"
                i -= 1
            elif mask is not None and n >= m and k >= k_step and mask[n - m, k - k_step, s_i]:
                used.extend(range(i - m, i))
                n -= m
                k -= k_step
                i -= m
                state = "off"
            else:
                used.append(i - 1)
                n -= 1
                i -= 1
        assert n == 0, "Pause & Resume backtrack must end with no work left"
        paths.append(sorted(used))
    return best, paths


def _quantum_options(step_s: float, d: float, m: float, w: float) -> list[tuple[float, str]]:
    """Planning quanta from finest (exact) to coarsest, with what each gives up."""

    def s(x: float) -> int:
        return round(x)

    step_i = max(1, s(step_s))
    opts = [
        (math.gcd(step_i, s(d), s(m), s(w)), ""),
        (math.gcd(step_i, s(d), s(m)), "the last partial cell of the window is not used"),
        (math.gcd(step_i, s(m)), "the duration is rounded up to whole cells"),
        (step_i, "segments are whole steps"),
    ]
    mult = 2
    while mult <= 1 << 20:
        opts.append((step_i * mult, f"cells of {mult} steps (mean intensity per cell)"))
        mult *= 2
    out: list[tuple[float, str]] = []
    for q, note in opts:
        if q > 0 and all(q != o for o, _ in out):
            out.append((float(q), note))
    return out


def _work_energy_kwh(job: PowerProfile, q: float) -> np.ndarray:
    n_work = max(1, math.ceil(job.duration_s / q - 1e-9))
    edges = np.minimum(np.arange(n_work + 1) * q, job.duration_s)
    return np.diff(job.cumulative_j(edges)) / J_PER_KWH


def _pr_on_grids(
    series: IntensitySeries,
    origins_s: Sequence[float],
    t_hi: float,
    q: float,
    job: PowerProfile,
    min_run_s: float,
    max_pauses: int | None,
    pause_power_w: float,
) -> list[list[tuple[float, float]] | None]:
    """DP plans on cells ``[g0 + iq, g0 + (i+1)q)`` up to ``t_hi``, one per origin ``g0``.

    All grids go through one vectorised DP (shorter ones padded with unusable cells).
    """
    energy = _work_energy_kwh(job, q)
    n_work = energy.size
    counts = [math.floor((t_hi - g0) / q + 1e-9) for g0 in origins_s]
    t_count = max(counts)
    if t_count < n_work:
        return [None] * len(origins_s)
    m = min(n_work, max(1, math.ceil(min_run_s / q - 1e-9)))
    cell_c = np.full((len(origins_s), t_count), np.inf)
    for row, (g0, count) in enumerate(zip(origins_s, counts, strict=True)):
        edges = g0 + np.arange(count + 1) * q
        cell_c[row, :count] = series.mean(edges[:-1], edges[1:])
    idle = cell_c * (pause_power_w * q / J_PER_KWH) if pause_power_w > 0 else None
    kcap = None if max_pauses is None else max_pauses + 1
    _, paths = _pr_dp(cell_c, energy, m, kcap, idle, backtrack=True)
    rem = job.duration_s - (n_work - 1) * q
    out: list[list[tuple[float, float]] | None] = []
    for g0, used in zip(origins_s, paths or [], strict=True):
        if used is None:
            out.append(None)
            continue
        segs: list[list[float]] = []
        for c in used:
            start = g0 + c * q
            if segs and abs(segs[-1][1] - start) < _EPS_S:
                segs[-1][1] = start + q
            else:
                segs.append([start, start + q])
        segs[-1][1] -= q - rem  # the last cell holds only the remainder of the job
        out.append([(a, b) for a, b in segs])
    return out


def pause_resume(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    within_s: float | None = None,
    deadline_s: float | None = None,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    pause_power_w: float = 0.0,
) -> Plan:
    """Run in the lowest-intensity time before the deadline, in segments of at least ``min_run_s``.

    Args:
        min_run_s: shortest run segment (default :data:`DEFAULT_MIN_RUN_S`, clipped to the job).
        max_pauses: most pauses allowed (None: no cap; 0: equals Flexible Start).
        pause_power_w: power drawn while paused between segments (a stopped process on a GPU
            still draws idle power). Units: W.
    """
    job = _binned_for(_job(duration_s, power_w, profile), series.step_s)
    d = job.duration_s
    w = _slack(at_s, d, within_s, deadline_s)
    w, deadline = _window(series, at_s, d, w)
    m_s = DEFAULT_MIN_RUN_S if min_run_s is None else float(min_run_s)
    if m_s < 0:
        raise ScheduleError(f"--min-run must not be negative (got {min_run_s})")
    if max_pauses is not None and max_pauses < 0:
        raise ScheduleError(f"--max-pauses must be 0 or more (got {max_pauses})")
    if pause_power_w < 0:
        raise ScheduleError(f"--pause-power-w must not be negative (got {pause_power_w})")
    m_eff = min(m_s, d)
    e0 = float(_contiguous_g(series, np.array([at_s]), job)[0])
    t_fs, e_fs = _best_start(series, at_s, w, job)
    if e_fs >= e0:
        t_fs, e_fs = at_s, e0
    best_segs: list[tuple[float, float]] = [(t_fs, t_fs + d)]
    best_e = e_fs
    note = ""
    q_used = None
    kd = 1 if max_pauses is None else max_pauses + 2
    for q, why in _quantum_options(series.step_s, d, m_eff, w):
        n_work = math.ceil(d / q - 1e-9)
        t_count = math.floor((d + w) / q + 1e-9)
        if t_count * (n_work + 1) * kd <= _DP_BUDGET:
            q_used, note = q, why
            break
    warnings = _warnings_for(series, at_s, deadline)
    if q_used is not None:
        s0 = float(series.start_s[0])
        step_grid = s0 + math.ceil((at_s - s0) / q_used - 1e-9) * q_used
        grids = [step_grid]
        if abs(step_grid - at_s) > _EPS_S:
            grids.append(at_s)  # the same grid shifted to the submission time
        plans = _pr_on_grids(series, grids, deadline, q_used, job, m_eff, max_pauses, pause_power_w)
        for segs in plans:
            if segs is None:
                continue
            e = evaluate_segments(series, segs, job, pause_power_w)
            if e < best_e * (1 - 1e-9) - 1e-12:
                best_e, best_segs = e, segs
        if note:
            warnings.append(f"Pause & Resume planned on {q_used:g} s cells: {note}")
    else:  # pragma: no cover - only for absurd sizes
        warnings.append("Pause & Resume grid too large; returned the Flexible Start plan")
    grid_text = f"{q_used:g} s cells" if q_used else "no grid"
    return _make_plan(
        "pause_resume",
        best_segs,
        series,
        job,
        at_s,
        deadline,
        best_e,
        e0,
        alternatives={"run_now": e0, "flexible_start": e_fs, "pause_resume": best_e},
        method=(
            f"dynamic programme over {grid_text} (exact over plans whose starts and pauses fall on "
            "the cells, aligned to the data's steps or to the submission time); never worse than "
            "the exact Flexible Start plan"
        ),
        min_run_s=m_s,
        max_pauses=max_pauses,
        pause_power_w=pause_power_w,
        warnings=warnings,
    )


def plan_series(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    strategy: str = "flexible_start",
    within_s: float | None = None,
    deadline_s: float | None = None,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    pause_power_w: float = 0.0,
) -> Plan:
    """Plan one job on a series with the named strategy (numbers only; see :func:`plan`)."""
    if strategy == "flexible_start":
        if min_run_s is not None or max_pauses is not None or pause_power_w:
            raise ScheduleError("--min-run, --max-pauses and --pause-power-w need --pause-resume")
        return flexible_start(
            series,
            at_s,
            duration_s,
            within_s=within_s,
            deadline_s=deadline_s,
            power_w=power_w,
            profile=profile,
        )
    if strategy == "pause_resume":
        return pause_resume(
            series,
            at_s,
            duration_s,
            within_s=within_s,
            deadline_s=deadline_s,
            min_run_s=min_run_s,
            max_pauses=max_pauses,
            power_w=power_w,
            profile=profile,
            pause_power_w=pause_power_w,
        )
    if strategy == "run_now":
        return run_now(series, at_s, duration_s, power_w=power_w, profile=profile)
    raise ScheduleError(
        f"unknown strategy {strategy!r}; use flexible_start, pause_resume or run_now"
    )


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def _load_csv(csv: str | Path | Sequence[str | Path], zone: str | None) -> IntensitySeries:
    """The whole series in the CSV file(s) (one zone), through the carbon CSV loader."""
    from greentrack.carbon.csvsource import load_csv

    paths = [csv] if isinstance(csv, str | Path) else list(csv)
    if not paths:
        raise ScheduleError("no CSV file given; pass --csv FILE")
    if zone:
        from greentrack.carbon.regions import canonical_zone

        zone = canonical_zone(zone)
    return load_csv(paths, zone=zone) if zone else load_csv(paths)


def _source_series(
    region: str | None,
    source: str | None,
    csv: Any,
    at_s: float,
    deadline_s: float,
    config: Any,
    now_s: float,
) -> tuple[IntensitySeries, list[str]]:
    """Intensity for ``[at_s, deadline_s]``: CSV files, or a source's history or forecast.

    Windows that end in the past use the source's history (:meth:`series`); windows that end in
    the future need a forecast (:meth:`forecast`). A forecast that starts up to one step after the
    submission time has its first value stand in for the minutes before (with a warning).
    """
    if csv:
        if source and source.strip().lower() != "csv":
            raise ScheduleError(f"--csv was given with --source {source}; drop one of them")
        return _load_csv(csv, region), []
    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.sources import get_source
    from greentrack.config import load_config

    cfg = config or load_config()
    if not region and not cfg.region:
        raise ScheduleError(
            "no region: give --region (e.g. ES), set GREENTRACK_REGION, or plan on --csv FILE"
        )
    zone = resolve_region(region, cfg).zone
    src = get_source(source, cfg)
    if deadline_s <= now_s:
        series = src.series(zone, at_s, deadline_s)
        return series, src.pop_warnings()
    if at_s < now_s - 300.0:
        raise ScheduleError(
            "the window starts in the past but ends in the future; plan from now (drop --at) "
            "or entirely in the past against history"
        )
    series = src.forecast(zone, deadline_s - now_s)
    warnings = src.pop_warnings()
    first = float(series.start_s[0])
    if len(series) > 1 and at_s < first <= at_s + series.step_s:
        warnings.append(
            f"the forecast starts at {format_time(first)}; its first value stands in for the "
            f"{_fmt_dur(first - at_s)} before"
        )
        series = IntensitySeries(
            np.concatenate(([first - series.step_s], series.start_s)),
            np.concatenate(([series.g_per_kwh[0]], series.g_per_kwh)),
            series.step_s,
            series.provenance,
        )
    return series, warnings


def plan(
    duration: float | str | None = None,
    *,
    within: float | str | None = None,
    deadline: float | str | datetime | None = None,
    at: float | str | datetime | None = None,
    strategy: str = "flexible_start",
    region: str | None = None,
    source: str | None = None,
    csv: str | Path | Sequence[str | Path] | None = None,
    series: IntensitySeries | None = None,
    min_run: float | str | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    profile_run: str | None = None,
    pause_power_w: float = 0.0,
    tz: str | None = None,
    db_url: str | None = None,
    config: Any = None,
    now_s: float | None = None,
) -> Plan:
    """Plan a job: when to start it (and pause it) for the least emissions before its deadline.

    Args:
        duration: the job's run time (``"6h"`` or seconds); optional with a profile.
        within: slack after submission (``"24h"``); the job must finish by submission + duration +
            within. Or ``deadline``: an absolute finish time.
        at: submission time (default now); ISO text, datetime or epoch seconds.
        strategy: ``flexible_start`` (default), ``pause_resume`` or ``run_now``.
        region/source/csv/series: where the intensity comes from: a series, CSV file(s), or a
            source's forecast (future windows) or history (past windows).
        min_run, max_pauses, pause_power_w: Pause & Resume constraints (see :func:`pause_resume`).
        power_w: the job's constant power (default 1 kW); or ``profile`` (W per elapsed bin) /
            ``profile_run`` (a stored run whose measured power profile is used).
        tz: IANA zone for naive times.

    Example::

        import greentrack as gt
        p = gt.plan("6h", within="24h", csv="ES_2022_hourly.csv", at="2022-03-01T08:00Z")
        print(p.start_s, p.expected_co2e_g, p.run_now_co2e_g, p.saving_pct, p.provenance)
    """
    now = time.time() if now_s is None else float(now_s)
    if tz:
        timefmt.time_zone(tz, error=ScheduleError)  # wrong even when no naive time needs it
    at_s = parse_time(at, tz=tz, now_s=now, what="submission time")
    d_s = None if duration is None else parse_duration(duration)
    if profile_run is not None:
        if profile is not None:
            raise ScheduleError("give either a profile or --profile-run, not both")
        profile = profile_from_run(db_url, profile_run)
    job_d = _job(d_s, power_w, profile).duration_s
    w_s = None if within is None else parse_duration(within, "--within")
    dl_s = None if deadline is None else parse_time(deadline, tz=tz, now_s=now, what="deadline")
    w = _check_slack(job_d, _slack(at_s, job_d, w_s, dl_s))
    m_s = None if min_run is None else parse_duration(min_run, "--min-run")
    notes: list[str] = []
    if series is None:
        series, notes = _source_series(region, source, csv, at_s, at_s + job_d + w, config, now)
    result = plan_series(
        series,
        at_s,
        d_s,
        strategy=strategy,
        within_s=w_s,
        deadline_s=dl_s,
        min_run_s=m_s,
        max_pauses=max_pauses,
        power_w=power_w,
        profile=profile,
        pause_power_w=pause_power_w,
    )
    if notes:
        result = dataclasses.replace(result, warnings=(*result.warnings, *notes))
    return result


def format_plan(p: Plan) -> str:
    """A short human-readable table of a plan."""
    kind = {"flexible_start": "Flexible Start", "pause_resume": "Pause & Resume"}.get(
        p.strategy, "Run now"
    )
    lines = [
        f"{kind} plan for a {_fmt_dur(p.duration_s)} job at {p.power_w:g} W "
        f"({p.energy_kwh:.3g} kWh)",
        f"  submitted   {format_time(p.submitted_s)}   deadline {format_time(p.deadline_s)}",
        f"  intensity   {p.provenance.label()}",
        f"  start       {format_time(p.start_s)}   end {format_time(p.end_s)}",
    ]
    if len(p.segments) > 1:
        for i, s in enumerate(p.segments, 1):
            lines.append(
                f"  segment {i:<3} {format_time(s.start_s)} .. {format_time(s.end_s)} "
                f"({_fmt_dur(s.duration_s)})"
            )
    lines += [
        f"  expected    {format_co2e(p.expected_co2e_g)} CO2e",
        f"  run now     {format_co2e(p.run_now_co2e_g)} CO2e",
        f"  saving      {p.saving_pct:.1f} %",
    ]
    if p.strategy == "pause_resume" and "flexible_start" in p.alternatives:
        lines.append(
            f"  (Flexible Start alone: {format_co2e(p.alternatives['flexible_start'])} CO2e)"
        )
    lines += [f"  note: {w}" for w in p.warnings]
    return "\n".join(lines)
