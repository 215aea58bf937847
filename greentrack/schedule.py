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
  jobs on hourly data). It chooses the cells the job runs in so that every run segment lasts at
  least ``min_run`` (rounded up to whole cells, clipped to ``D``), there are at most
  ``max_pauses`` pauses, and the emissions — plus ``pause_power_w`` drawn while paused between
  segments — are minimal. State: (cells done, segments used, running / paused); the work cell
  ``w`` carries energy ``E_w`` so power profiles are exact too. It is exact over plans whose
  starts and pauses fall on the cell grid; with the submission time on the grid (always in the
  study), the grid optimum is the optimum over *all* plans: the problem is linear in the segment
  end points inside each choice of steps, its constraints are bounds on grid points, differences
  of consecutive end points (lengths ≥ ``min_run``, pauses ≥ 0) and one total (= ``D``), so the
  vertices lie on the grid (tests check this against finer grids). The DP is run on the grid
  aligned to the data's steps and on the same grid shifted to the submission time, and the better
  plan — or the Flexible Start plan, which has no pause and is always feasible — is returned, so
  ``pause_resume ≤ flexible_start ≤ run_now`` always holds.
* **Duration not a whole number of cells**: when ``q`` would be too fine for the DP's size budget,
  the quantum drops ``W`` then ``D`` from the gcd; the job then occupies ``ceil(D / q)`` cells and
  its last cell is used only for the remainder (the plan's final segment ends early by that much).
  For very long jobs on fine data the cells may span several steps (the ``method`` text says so).

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
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ScheduleError

__all__ = [
    "DEFAULT_MIN_RUN_S",
    "DEFAULT_POWER_W",
    "Plan",
    "PowerProfile",
    "Segment",
    "StudyResult",
    "StudyRow",
    "evaluate_segments",
    "flexible_start",
    "format_plan",
    "format_study",
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
    "save_study_plot",
    "should_pause",
    "study",
    "study_series",
]

DEFAULT_POWER_W = 1000.0
"""Power of the job when none is given: 1 kW, so figures read as g per kWh-hour of running."""
DEFAULT_MIN_RUN_S = 3600.0
"""Shortest run segment of a Pause & Resume plan (real jobs cannot stop every 5 minutes)."""
J_PER_KWH = 3.6e6
MAX_PROFILE_BINS = 256
"""A power profile is averaged into at most about this many equal bins."""
_DP_BUDGET = 3_000_000
"""Largest DP size (cells × work cells × segment counts) before the planning quantum coarsens."""
_EPS_S = 1e-6


# --------------------------------------------------------------------------------------------
# Parsing and formatting of times and durations
# --------------------------------------------------------------------------------------------

_DUR_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(w|d|h|min|m|s)", re.IGNORECASE)
_ISO_DUR_RE = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(value: float | int | str, what: str = "duration") -> float:
    """A duration in seconds from ``6h``, ``90m``, ``1h30m``, ``3600s``, ``2d``, ``PT6H`` or seconds.

    Numbers (int/float) are seconds; strings need a unit. Raises ScheduleError on bad input.
    """
    if isinstance(value, bool):
        raise ScheduleError(f"{what} {value!r} is not a duration; write e.g. 6h, 90m or 3600s")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        iso = _ISO_DUR_RE.fullmatch(text)
        if text.upper().startswith("P") and iso and any(iso.groupdict().values()):
            seconds = sum(
                float(v) * {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}[k]
                for k, v in iso.groupdict().items()
                if v
            )
        else:
            compact = text.replace(" ", "")
            parts = _DUR_RE.findall(compact)
            if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
                raise ScheduleError(
                    f"{what} {text!r} is not a duration; write e.g. 6h, 90m, 1h30m or 3600s"
                )
            seconds = sum(float(n) * _DUR_UNITS[u.lower()] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ScheduleError(f"{what} must be a finite, non-negative duration (got {value!r})")
    return seconds


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Madrid or UTC"
        ) from None


def _localize(naive: datetime, tz_name: str) -> datetime:
    """Attach an IANA zone to a naive local time, refusing DST gaps and ambiguous times."""
    zone = _zone(tz_name)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        stamp = naive.isoformat(timespec="minutes")
        if back != naive:
            raise ScheduleError(
                f"{stamp} does not exist in {tz_name} (clocks jump forward); "
                "give an explicit offset or a time outside the DST gap"
            )
        raise ScheduleError(
            f"{stamp} happens twice in {tz_name} (clocks go back); add the offset you mean, "
            f"e.g. {stamp}{_fmt_offset(first)} or {stamp}{_fmt_offset(second)}"
        )
    return first


def _fmt_offset(dt: datetime) -> str:
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_time(
    value: float | int | str | datetime | None,
    *,
    tz: str | None = None,
    now_s: float | None = None,
    what: str = "time",
) -> float:
    """Epoch seconds (UTC) from ISO 8601 text, a datetime, epoch seconds, or ``now``/None.

    Text may end in ``Z``, an offset, or a ``[Area/City]`` zone; naive text and naive datetimes
    are in ``tz`` when given, else UTC. DST gaps and ambiguous local times raise ScheduleError.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "now"):
        return float(time.time() if now_s is None else now_s)
    if isinstance(value, bool):
        raise ScheduleError(f"{what} {value!r} is not a time; write e.g. 2022-03-01T08:00Z")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ScheduleError(f"{what} must be finite (got {value!r})")
        return float(value)
    if isinstance(value, datetime):
        dt = value
        zone_name = tz
    else:
        text = str(value).strip()
        zone_name = tz
        m = re.fullmatch(r"(.*?)\s*\[([A-Za-z0-9_+\-/]+)\]", text)
        if m:
            text, zone_name = m.group(1), m.group(2)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{what} {value!r} is not an ISO 8601 time; write e.g. 2022-03-01T08:00Z "
                "or 2022-03-01T09:00+01:00"
            ) from None
    if dt.tzinfo is None:
        dt = _localize(dt, zone_name) if zone_name else dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_time(t_s: float) -> str:
    """ISO 8601 UTC with ``Z``, to the second: ``2022-03-01T08:00:00Z``."""
    return datetime.fromtimestamp(round(float(t_s)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt_dur(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if s:
        return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
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
    return [(a[1], b[0]) for a, b in zip(segs, segs[1:], strict=False) if b[0] > a[1]]


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
        for (_, e0), (s1, _) in zip(segs, segs[1:], strict=False):
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
    count = int(math.floor(w / step)) + 2
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
    """Best single uninterrupted run starting in ``[at_s, at_s + W]``; exact over continuous starts."""
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
) -> tuple[np.ndarray, list[int] | None]:
    """Minimum emissions of running N work cells in T time cells, for S windows at once.

    Args:
        cell_c: (S, T) intensity of each time cell. Units: g/kWh.
        energy_kwh: (N,) energy of each work cell (the job's elapsed-time chunks). Units: kWh.
        min_cells: shortest segment, in cells (1 ≤ min_cells ≤ N).
        max_segments: cap on segments (None: unlimited).
        idle_g: (S, T) emissions of a paused cell between segments, or None. Units: g.
        backtrack: return the used time cells (S must be 1).

    Returns:
        (S,) minimum emissions in g (inf where infeasible), and the used cells when asked.
    """
    s_count, t_count = cell_c.shape
    n_work, m = energy_kwh.size, min_cells
    kd = (max_segments + 1) if max_segments is not None else 1
    k_step = 1 if max_segments is not None else 0
    # layout (work done n, segments k, window s): the windows axis is contiguous
    c_t = np.ascontiguousarray(cell_c.T)  # (T, S)
    idle_t = None if idle_g is None else np.ascontiguousarray(idle_g.T)
    shape = (n_work + 1, kd, s_count)
    off = np.full(shape, np.inf)  # cell i-1 idle: not started, paused or finished
    off[0, 0, :] = 0.0
    on = np.full(shape, np.inf)  # cell i-1 runs, in a segment already >= m cells long
    pending: dict[int, np.ndarray] = {}  # blocks of m cells arriving at a later i
    hank = _hankel(energy_kwh, m)  # (m, N - m + 1)
    width = n_work - m + 1
    src_on_block: list[np.ndarray] = []
    src_off_from_on: list[np.ndarray] = []
    for i in range(t_count):
        # a new segment of exactly m cells starting at cell i, after a pause (or at the start)
        if i + m <= t_count:
            block = hank.T @ c_t[i : i + m]  # (N - m + 1, S): its emissions per work done
            arrive = off[:width, : kd - k_step, :] + block[:, None, :]
            prev = pending.get(i + m)
            pending[i + m] = arrive if prev is None else np.minimum(prev, arrive, out=prev)
        if backtrack:
            src_off_from_on.append((on < off)[:, :, 0])
        np.minimum(off, on, out=off)  # cell i idle
        if idle_t is not None and n_work > 1:
            off[1:n_work] += idle_t[i][None, None, :]  # paused between segments
        # cell i extends the running segment (numpy buffers the overlapping shift)
        on[1:] = on[:-1] + (energy_kwh[:, None] * c_t[i][None, :])[:, None, :]
        on[0] = np.inf
        arrived = pending.pop(i + 1, None)
        target = on[m:, k_step:, :]
        if backtrack:
            by_block = np.zeros(shape, dtype=bool)
            if arrived is not None:
                by_block[m:, k_step:, :] = arrived < target
            src_on_block.append(by_block[:, :, 0])
        if arrived is not None:
            np.minimum(target, arrived, out=target)
    final = np.minimum(off[n_work], on[n_work])  # (kd, S)
    best = final.min(axis=0)
    if not backtrack:
        return best, None
    if not np.isfinite(best[0]):
        return best, None
    k = int(np.argmin(final[:, 0]))  # fewest segments among equal costs
    state = "on" if on[n_work, k, 0] <= off[n_work, k, 0] else "off"
    used: list[int] = []
    i, n = t_count, n_work
    while i > 0:
        if state == "off":
            state = "on" if src_off_from_on[i - 1][n, k] else "off"
            i -= 1
        elif src_on_block[i - 1][n, k]:
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
    return best, sorted(used)


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


def _pr_on_grid(
    series: IntensitySeries,
    g0: float,
    t_hi: float,
    q: float,
    job: PowerProfile,
    min_run_s: float,
    max_pauses: int | None,
    pause_power_w: float,
) -> list[tuple[float, float]] | None:
    """The DP plan on cells ``[g0 + iq, g0 + (i+1)q)`` up to ``t_hi``; None when infeasible."""
    t_count = int(math.floor((t_hi - g0) / q + 1e-9))
    energy = _work_energy_kwh(job, q)
    n_work = energy.size
    if t_count < n_work:
        return None
    m = min(n_work, max(1, math.ceil(min_run_s / q - 1e-9)))
    edges = g0 + np.arange(t_count + 1) * q
    cell_c = series.mean(edges[:-1], edges[1:])[None, :]
    idle = cell_c * (pause_power_w * q / J_PER_KWH) if pause_power_w > 0 else None
    kcap = None if max_pauses is None else max_pauses + 1
    best, used = _pr_dp(cell_c, energy, m, kcap, idle, backtrack=True)
    if used is None or not np.isfinite(best[0]):
        return None
    rem = job.duration_s - (n_work - 1) * q
    segs: list[list[float]] = []
    for c in used:
        start = g0 + c * q
        if segs and abs(segs[-1][1] - start) < _EPS_S:
            segs[-1][1] = start + q
        else:
            segs.append([start, start + q])
    segs[-1][1] -= q - rem  # the last cell holds only the remainder of the job
    return [(a, b) for a, b in segs]


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
        for g0 in grids:
            segs = _pr_on_grid(series, g0, deadline, q_used, job, m_eff, max_pauses, pause_power_w)
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
            raise ScheduleError(
                "--min-run, --max-pauses and --pause-power-w need --pause-resume"
            )
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
        f"  expected    {p.expected_co2e_g:,.1f} gCO2e",
        f"  run now     {p.run_now_co2e_g:,.1f} gCO2e",
        f"  saving      {p.saving_pct:.1f} %",
    ]
    if p.strategy == "pause_resume" and "flexible_start" in p.alternatives:
        lines.append(f"  (Flexible Start alone: {p.alternatives['flexible_start']:,.1f} gCO2e)")
    lines += [f"  note: {w}" for w in p.warnings]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The study: every submission time in a series
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyRow:
    """One strategy for one (duration, within) over every submission time of a series.

    ``mean_reduction_pct`` is the mean over submissions of ``100 · (1 - E / E₀)``;
    ``aggregate_reduction_pct`` is ``100 · (1 - ΣE / ΣE₀)`` (total emissions of all jobs), where
    ``E₀`` is running at submission time.
    """

    duration_h: float
    within_h: float
    strategy: str
    mean_reduction_pct: float
    aggregate_reduction_pct: float
    submissions: int
    zone: str = ""
    min_run_h: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_h": self.duration_h,
            "within_h": self.within_h,
            "strategy": self.strategy,
            "mean_reduction_pct": self.mean_reduction_pct,
            "aggregate_reduction_pct": self.aggregate_reduction_pct,
            "submissions": self.submissions,
            "zone": self.zone,
            "min_run_h": self.min_run_h,
        }


@dataclass(frozen=True)
class StudyResult:
    """Rows of a study plus the per-submission reductions (for plots)."""

    rows: tuple[StudyRow, ...]
    provenance: Provenance
    reductions_pct: Mapping[tuple[float, float, str], np.ndarray] = field(repr=False)

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]


def _sliding_min(x: np.ndarray, width: int, count: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(x, width)[:count].min(axis=1)


def study_series(
    series: IntensitySeries,
    durations_s: Sequence[float],
    within_s: float | Sequence[float],
    *,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    strategies: Sequence[str] = ("flexible_start", "pause_resume"),
) -> StudyResult:
    """Evaluate the strategies for every whole-step submission where the window fits the data.

    Jobs start on step boundaries; Flexible Start picks the best step-boundary start in the window
    (sliding minimum of cumulative-sum window costs), Pause & Resume runs the exact DP (cells of
    ``gcd(step, D, min_run)``) for all submissions at once. Constant power (it cancels out).
    """
    withins = [float(within_s)] if isinstance(within_s, int | float) else [float(x) for x in within_s]
    step = series.step_s
    s0 = float(series.start_s[0])
    n = len(series)
    m_s = DEFAULT_MIN_RUN_S if min_run_s is None else float(min_run_s)
    rows: list[StudyRow] = []
    red: dict[tuple[float, float, str], np.ndarray] = {}
    for d in durations_s:
        if not d > 0:
            raise ScheduleError(f"study durations must be positive (got {d} s)")
        starts = s0 + np.arange(n) * step
        f_all = series.integral(starts + d) - series.integral(starts)  # (g/kWh)·s per start
        for w in withins:
            if w < 0:
                raise ScheduleError(f"--within must not be negative (got {w} s)")
            count = int(math.floor((series.end_s - s0 - d - w) / step + 1e-9)) + 1
            if count <= 0:
                raise ScheduleError(
                    f"the data ({_fmt_dur(n * step)}) is shorter than one "
                    f"{_fmt_dur(d)} job plus {_fmt_dur(w)} of slack"
                )
            e0 = f_all[:count]
            k_max = int(math.floor(w / step + 1e-9))
            results: dict[str, np.ndarray] = {}
            if "flexible_start" in strategies:
                results["flexible_start"] = np.minimum(_sliding_min(f_all, k_max + 1, count), e0)
            if "pause_resume" in strategies:
                results["pause_resume"] = np.minimum(
                    _study_pr(series, d, w, m_s, max_pauses, count),
                    results.get("flexible_start", e0),
                )
            for name, e in results.items():
                valid = e0 > 0
                per = np.where(valid, 100.0 * (1.0 - e / np.where(valid, e0, 1.0)), np.nan)
                agg = 100.0 * (1.0 - e.sum() / e0.sum()) if e0.sum() > 0 else 0.0
                rows.append(
                    StudyRow(
                        duration_h=d / 3600.0,
                        within_h=w / 3600.0,
                        strategy=name,
                        mean_reduction_pct=float(np.nanmean(per)) if valid.any() else 0.0,
                        aggregate_reduction_pct=float(agg),
                        submissions=count,
                        zone=series.provenance.zone,
                        min_run_h=(min(m_s, d) / 3600.0) if name == "pause_resume" else None,
                    )
                )
                red[(d / 3600.0, w / 3600.0, name)] = per
    return StudyResult(tuple(rows), series.provenance, red)


def _study_pr(
    series: IntensitySeries,
    d: float,
    w: float,
    min_run_s: float,
    max_pauses: int | None,
    count: int,
) -> np.ndarray:
    """Pause & Resume cost ((g/kWh)·s at 1 W) for the first ``count`` submissions, vectorised."""
    from numpy.lib.stride_tricks import sliding_window_view

    m_eff = min(min_run_s, d)
    kd = 1 if max_pauses is None else max_pauses + 2
    q = None
    for cand, _ in _quantum_options(series.step_s, d, m_eff, w):
        if cand > series.step_s:
            break  # the study keeps to the data's resolution
        if int(series.step_s) % int(cand) != 0:
            continue
        t_count = math.floor((d + w) / cand + 1e-9)
        n_work = math.ceil(d / cand - 1e-9)
        if count * t_count * (n_work + 1) * kd <= 200_000_000:
            q = cand
            break
    if q is None:
        q = series.step_s
    r = round(series.step_s / q)
    t_count = math.floor((d + w) / q + 1e-9)
    n_work = math.ceil(d / q - 1e-9)
    energy = np.diff(np.minimum(np.arange(n_work + 1) * q, d))  # seconds at 1 W: E in W·s units
    if t_count < n_work:
        return np.full(count, np.inf)
    m = min(n_work, max(1, math.ceil(m_eff / q - 1e-9)))
    cells = np.repeat(series.g_per_kwh, r)
    need = (count - 1) * r + t_count
    if need > cells.size:
        cells = np.concatenate((cells, np.full(need - cells.size, series.g_per_kwh[-1])))
    cell_c = sliding_window_view(cells, t_count)[: (count - 1) * r + 1 : r]
    kcap = None if max_pauses is None else max_pauses + 1
    if m == 1 and kcap is None and np.all(energy == energy[0]):
        # no constraint binds: the N cheapest cells of each window (exact, O(S·T))
        part = np.partition(cell_c, n_work - 1, axis=1)[:, :n_work]
        return part.sum(axis=1) * energy[0]
    out = np.empty(count)
    chunk = max(256, 8192_00 // ((n_work + 1) * (1 if kcap is None else kcap + 1)))
    for i in range(0, count, chunk):
        best, _ = _pr_dp(cell_c[i : i + chunk], energy, m, kcap)
        out[i : i + chunk] = best
    return out


def study(
    data: IntensitySeries | str | Path | Sequence[str | Path],
    durations: Sequence[float | str] | float | str,
    within: Sequence[float | str] | float | str,
    *,
    min_run: float | str | None = None,
    max_pauses: int | None = None,
) -> StudyResult:
    """The study over a series or CSV file(s): see :func:`study_series`.

    Example::

        r = study("ES_2022_hourly.csv", ["1h", "6h", "24h"], "24h")
        print(format_study([r]))
    """
    series = data if isinstance(data, IntensitySeries) else _load_csv(data, None)  # type: ignore[arg-type]
    ds = [durations] if isinstance(durations, int | float | str) else list(durations)
    ws = [within] if isinstance(within, int | float | str) else list(within)
    return study_series(
        series,
        [parse_duration(x) for x in ds],
        [parse_duration(x, "--within") for x in ws],
        min_run_s=None if min_run is None else parse_duration(min_run, "--min-run"),
        max_pauses=max_pauses,
    )


def format_study(results: Sequence[StudyResult], fmt: str = "markdown") -> str:
    """A markdown (or plain) table of study rows: mean per-submission and aggregate reductions."""
    header = [
        "zone",
        "data",
        "duration",
        "within",
        "strategy",
        "mean reduction per submission",
        "aggregate reduction (1 − ΣE/ΣE₀)",
        "submissions",
    ]
    body = []
    for res in results:
        for r in res.rows:
            body.append(
                [
                    r.zone or res.provenance.zone,
                    res.provenance.period or res.provenance.source,
                    _fmt_dur(r.duration_h * 3600),
                    _fmt_dur(r.within_h * 3600),
                    "Flexible Start" if r.strategy == "flexible_start" else (
                        f"Pause & Resume (min run {_fmt_dur((r.min_run_h or 0) * 3600)})"
                    ),
                    f"{r.mean_reduction_pct:.1f} %",
                    f"{r.aggregate_reduction_pct:.1f} %",
                    f"{r.submissions:,}",
                ]
            )
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(out)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    lines = ["  ".join(h.ljust(wd) for h, wd in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def save_study_plot(results: Sequence[StudyResult], path: str | Path) -> Path:
    """Bar chart of mean and aggregate reductions per zone, duration and strategy (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(results), figsize=(4.2 * max(1, len(results)), 3.6), squeeze=False, sharey=True
    )
    for ax, res in zip(axes[0], results, strict=True):
        labels, mean_fs, agg_fs, mean_pr, agg_pr = [], [], [], [], []
        keys = sorted({(r.duration_h, r.within_h) for r in res.rows})
        for d, w in keys:
            labels.append(f"{_fmt_dur(d * 3600)}\n+{_fmt_dur(w * 3600)}")
            by = {r.strategy: r for r in res.rows if (r.duration_h, r.within_h) == (d, w)}
            fs, pr = by.get("flexible_start"), by.get("pause_resume")
            mean_fs.append(fs.mean_reduction_pct if fs else np.nan)
            agg_fs.append(fs.aggregate_reduction_pct if fs else np.nan)
            mean_pr.append(pr.mean_reduction_pct if pr else np.nan)
            agg_pr.append(pr.aggregate_reduction_pct if pr else np.nan)
        x = np.arange(len(labels))
        wd = 0.2
        ax.bar(x - 1.5 * wd, mean_fs, wd, label="Flexible Start, mean", color="#8fbc8f")
        ax.bar(x - 0.5 * wd, agg_fs, wd, label="Flexible Start, aggregate", color="#2e8b57")
        ax.bar(x + 0.5 * wd, mean_pr, wd, label="Pause & Resume, mean", color="#87ceeb")
        ax.bar(x + 1.5 * wd, agg_pr, wd, label="Pause & Resume, aggregate", color="#4682b4")
        ax.set_xticks(x, labels)
        ax.set_title(f"{res.provenance.zone} {res.provenance.period}".strip(), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("emission reduction vs run now (%)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Carbon-aware scheduling, every hourly submission "
        "(mean = mean per job; aggregate = 1 − ΣE/ΣE₀)",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
