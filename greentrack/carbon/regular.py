"""Turning irregular (time, value) points into the regular step grid of an IntensitySeries.

One set of rules for every source (CSV files and live providers alike):

* Points are sorted by time. Timestamps label the **start** of each step.
* Missing values (empty cells, ``NaN``, JSON ``null``) are treated like missing rows: gaps.
* Duplicate timestamps (e.g. the repeated hour of a DST fall-back in a local-time file, or
  overlapping files) are **averaged**; the count and the first one go into the notes.
* The step is the most common spacing between consecutive timestamps (unless given); every
  spacing must be a whole number of steps, else :class:`IntensityDataError`.
* Gaps of up to ``max_gap_steps`` missing steps (default 3) are filled, by linear
  interpolation between the neighbours (``fill="linear"``, default) or by carrying the last value
  forward (``fill="ffill"``); the count and the longest go into the notes. A longer gap raises
  :class:`IntensityDataError` naming it and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from greentrack.errors import IntensityDataError, hint
from greentrack.timefmt import iso_utc

__all__ = ["DEFAULT_MAX_GAP_STEPS", "Regular", "regularise"]

#: Longest run of missing steps filled without being asked.
DEFAULT_MAX_GAP_STEPS = 3


@dataclass(frozen=True)
class Regular:
    """A regular grid: step starts (epoch s), values (g/kWh), step (s) and notes for provenance."""

    start_s: np.ndarray
    g_per_kwh: np.ndarray
    step_s: float
    notes: tuple[str, ...]


def _hours(step_s: float, n: int) -> str:
    return f"{n * step_s / 3600:g} h"


def regularise(
    t_s: np.ndarray,
    values: np.ndarray,
    *,
    where: str,
    step_s: float | None = None,
    max_gap_steps: int = DEFAULT_MAX_GAP_STEPS,
    fill: str = "linear",
    fix_hint: str = "",
) -> Regular:
    """Apply the module's rules to points ``(t_s[i], values[i])``.

    Args:
        t_s: timestamps, epoch seconds (any order).
        values: intensities, g/kWh; NaN marks a missing value.
        where: what the data is (file names, provider) for error messages.
        step_s: the step, seconds; inferred when None.
        max_gap_steps: longest run of missing steps to fill (0: fill nothing).
        fill: ``linear`` or ``ffill``.
        fix_hint: how the user raises ``max_gap_steps`` (named in the gap error).

    Raises:
        IntensityDataError: no values, irregular spacing, or a gap longer than allowed.
    """
    if fill not in ("linear", "ffill"):
        raise IntensityDataError(f"fill must be 'linear' or 'ffill', not {fill!r}")
    if max_gap_steps < 0:
        raise IntensityDataError(f"max_gap_steps must be >= 0, got {max_gap_steps}")
    t = np.asarray(t_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    notes: list[str] = []
    ok = np.isfinite(v)
    n_missing = int(t.size - np.count_nonzero(ok))
    if n_missing:
        notes.append(f"{n_missing} empty value{'s' if n_missing > 1 else ''} treated as gaps")
        t, v = t[ok], v[ok]
    if t.size == 0:
        raise IntensityDataError(f"{where}: no intensity values; check the file or the zone")
    if t.size > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    if t.size > 1 and np.any(np.diff(t) == 0):
        uniq, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
        v = np.bincount(inverse, weights=v) / counts
        first_dup = uniq[np.argmax(counts > 1)]
        n_dup = int(np.sum(counts - 1))
        notes.append(
            f"{n_dup} duplicate timestamp{'s' if n_dup > 1 else ''} averaged "
            f"(first {iso_utc(first_dup)})"
        )
        t = uniq
    if t.size == 1:
        step = float(step_s or 3600.0)
        return Regular(t, v, step, tuple(notes))
    diffs = np.diff(t)
    if step_s is None:
        spacings, counts = np.unique(diffs, return_counts=True)
        step = float(spacings[np.argmax(counts)])
    else:
        step = float(step_s)
    ratio = diffs / step
    k = np.rint(ratio)
    bad = np.flatnonzero((np.abs(ratio - k) > 1e-6) | (k < 1))
    if bad.size:
        i = int(bad[0])
        raise IntensityDataError(
            f"{where}: timestamps are not on a regular {step:g} s grid "
            f"({iso_utc(t[i])} to {iso_utc(t[i + 1])} is {diffs[i]:g} s); "
            "resample the data to a fixed step"
        )
    missing = k.astype(np.int64) - 1
    if np.any(missing > 0):
        worst = int(np.argmax(missing))
        longest = int(missing[worst])
        if longest > max_gap_steps:
            first = t[worst] + step
            last = t[worst + 1] - step
            fix = f"{fix_hint}={longest}" if fix_hint else hint("max_gap_steps", longest)
            raise IntensityDataError(
                f"{where}: {longest} missing steps ({_hours(step, longest)}) from "
                f"{iso_utc(first)} to {iso_utc(last)}, more than the {max_gap_steps} filled "
                f"automatically; supply the missing rows or allow it with {fix}"
            )
        idx = np.concatenate(([0], np.cumsum(k.astype(np.int64))))
        full_t = t[0] + step * np.arange(idx[-1] + 1, dtype=np.float64)
        if fill == "linear":
            full_v = np.interp(full_t, t, v)
        else:
            pos = np.zeros(full_t.size, dtype=np.int64)
            pos[idx] = np.arange(idx.size)
            full_v = v[np.maximum.accumulate(pos)]
        n_filled = int(missing.sum())
        how = "linear interpolation" if fill == "linear" else "forward fill"
        notes.append(
            f"{n_filled} missing step{'s' if n_filled > 1 else ''} filled by {how} "
            f"(longest gap {longest}, first at {iso_utc(t[int(np.argmax(missing > 0))] + step)})"
        )
        t, v = full_t, full_v
    else:
        # Re-derive the grid from the first time so that spacing is exact.
        t = t[0] + step * np.arange(t.size, dtype=np.float64)
    return Regular(t, v, step, tuple(notes))
