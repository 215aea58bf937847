"""The job's power: a constant power or a profile over its elapsed time (e.g. of a past run).

A :class:`PowerProfile` holds power per equal bin of the job's elapsed time, its energy kept
exactly per bin; planners average it into at most ~:data:`MAX_PROFILE_BINS` bins whose length
divides the data's step (:func:`binned_for`). A stored run's profile is read through the store's
read functions (:func:`greentrack.store.queries.run_samples`) and built from its cumulative energy
counters, so its energy is the run's measured energy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greentrack.errors import ScheduleError

__all__ = [
    "DEFAULT_POWER_W",
    "EPS_S",
    "MAX_PROFILE_BINS",
    "PowerProfile",
    "binned_for",
    "job_profile",
    "profile_from_run",
    "profile_from_samples",
]

DEFAULT_POWER_W = 1000.0
"""Power of the job when none is given: 1 kW, so figures read as g per kWh-hour of running."""
MAX_PROFILE_BINS = 256
"""A power profile is averaged into at most about this many equal bins."""
EPS_S = 1e-6
"""Times closer than this are the same time (rounding of epoch seconds). Units: s."""


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
        if not left > EPS_S:
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
        inner = inner[inner < self.duration_s - EPS_S]
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
        samples = run_samples(conn, resolve_run_id(conn, run_id), basis="co2e")
    finally:
        conn.close()
    return profile_from_samples(samples)


def job_profile(duration_s: float | None, power_w: float | None, profile: Any) -> PowerProfile:
    """The job's power model: a (binned) profile or a constant power (default 1 kW)."""
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
        if duration_s is not None and abs(duration_s - prof.duration_s) > EPS_S:
            prof = prof.stretched(duration_s)
        return prof
    if duration_s is None:
        raise ScheduleError("the job's duration is missing; give e.g. --duration 6h")
    p = DEFAULT_POWER_W if power_w is None else float(power_w)
    if not (p > 0 and math.isfinite(p)):
        raise ScheduleError(f"the job's power must be positive (got {power_w} W)")
    return PowerProfile.constant(p, duration_s)


def binned_for(job: PowerProfile, step_s: float) -> PowerProfile:
    """Profiles averaged into ≤ ~MAX_PROFILE_BINS bins whose length divides the series' step."""
    if job.power_w.size == 1 or job.is_constant:
        return PowerProfile.constant(float(job.power_w[0]), job.duration_s)
    target = job.duration_s / MAX_PROFILE_BINS
    r = max(1, math.ceil(step_s / target - 1e-9)) if target < step_s else 1
    bin_s = step_s / r if target < step_s else step_s * max(1, math.floor(target / step_s))
    return job.rebinned(bin_s)
