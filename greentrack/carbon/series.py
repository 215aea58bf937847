"""A regular carbon-intensity series and its exact time-weighted integral.

An :class:`IntensitySeries` is a step function: intensity ``g_per_kwh[i]`` holds on
``[start_s[i], start_s[i] + step_s)``. Every source (static, CSV, live provider) produces one, and
everything downstream (accounting, what-if, scheduling) uses :meth:`IntensitySeries.integral` —
the exact integral of the step function, in (g/kWh)·s — so that an interval straddling a step
boundary is time-weighted exactly, with no interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from greentrack.carbon.provenance import Provenance
from greentrack.errors import IntensityDataError

__all__ = ["IntensitySeries", "Provenance"]


@dataclass(frozen=True)
class IntensitySeries:
    """Evenly spaced step series of grid carbon intensity.

    Attributes:
        start_s: start of each step, seconds since the Unix epoch (UTC), strictly increasing,
            spaced exactly ``step_s`` apart. float64 array of length n.
        g_per_kwh: intensity on each step. Units: g CO₂e per kWh. float64 array of length n.
        step_s: step length. Units: seconds.
        provenance: where the data came from.

    Outside ``[start_s[0], end_s)`` the series is extended with its first / last value (the
    documented edge rule); :meth:`covers` tells whether an interval lies inside.
    """

    start_s: np.ndarray
    g_per_kwh: np.ndarray
    step_s: float
    provenance: Provenance
    _cum: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = np.asarray(self.start_s, dtype=np.float64)
        values = np.asarray(self.g_per_kwh, dtype=np.float64)
        if start.ndim != 1 or start.shape != values.shape or start.size == 0:
            raise IntensityDataError(
                "intensity series needs equal-length, non-empty time and value arrays"
            )
        if self.step_s <= 0:
            raise IntensityDataError(f"intensity series step must be positive, got {self.step_s}")
        if start.size > 1 and not np.allclose(np.diff(start), self.step_s):
            raise IntensityDataError(
                "intensity series is not evenly spaced; load it through a source that fills gaps"
            )
        if not np.all(np.isfinite(values)):
            raise IntensityDataError("intensity series has missing (NaN) values")
        object.__setattr__(self, "start_s", start)
        object.__setattr__(self, "g_per_kwh", values)
        cum = np.concatenate(([0.0], np.cumsum(values * self.step_s)))
        object.__setattr__(self, "_cum", cum)

    @classmethod
    def constant(
        cls, g_per_kwh: float, provenance: Provenance, start_s: float = 0.0, step_s: float = 3600.0
    ) -> IntensitySeries:
        """A one-step series; with the edge rule it is constant everywhere."""
        return cls(np.array([start_s]), np.array([float(g_per_kwh)]), step_s, provenance)

    def __len__(self) -> int:
        return int(self.start_s.size)

    @property
    def end_s(self) -> float:
        """End of the last step (epoch seconds)."""
        return float(self.start_s[-1] + self.step_s)

    def covers(self, t0_s: float, t1_s: float) -> bool:
        """True when ``[t0_s, t1_s]`` lies inside the data (no edge extension needed)."""
        return bool(self.start_s[0] <= t0_s and t1_s <= self.end_s)

    def integral(self, t_s: np.ndarray | float) -> np.ndarray:
        """∫ intensity dt from ``start_s[0]`` to ``t_s``. Units: (g/kWh)·s. Vectorised, exact.

        Before the first step and after the last, the edge values are extended.
        """
        t = np.asarray(t_s, dtype=np.float64)
        x = (t - self.start_s[0]) / self.step_s
        n = self.start_s.size
        idx = np.clip(np.floor(x), 0, n - 1).astype(np.int64)
        frac_s = t - self.start_s[idx]  # may be negative before start or > step after end
        return self._cum[idx] + self.g_per_kwh[idx] * frac_s

    def mean(self, t0_s: np.ndarray | float, t1_s: np.ndarray | float) -> np.ndarray:
        """Time-weighted mean intensity over ``[t0_s, t1_s]``. Units: g/kWh.

        Where ``t1_s == t0_s`` the instantaneous value at ``t0_s`` is returned.
        """
        t0 = np.asarray(t0_s, dtype=np.float64)
        t1 = np.asarray(t1_s, dtype=np.float64)
        width = t1 - t0
        safe = np.where(width > 0, width, 1.0)
        avg = (self.integral(t1) - self.integral(t0)) / safe
        return np.where(width > 0, avg, self.at(t0))

    def at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Intensity at instant ``t_s`` (epoch seconds). Units: g/kWh."""
        t = np.asarray(t_s, dtype=np.float64)
        idx = np.clip(np.floor((t - self.start_s[0]) / self.step_s), 0, len(self) - 1)
        return self.g_per_kwh[idx.astype(np.int64)]

    def slice(self, t0_s: float, t1_s: float) -> IntensitySeries:
        """The steps overlapping ``[t0_s, t1_s)``; at least one step (edge rule applies)."""
        i0 = int(np.clip(np.floor((t0_s - self.start_s[0]) / self.step_s), 0, len(self) - 1))
        i1 = int(np.clip(np.ceil((t1_s - self.start_s[0]) / self.step_s), i0 + 1, len(self)))
        return IntensitySeries(
            self.start_s[i0:i1], self.g_per_kwh[i0:i1], self.step_s, self.provenance
        )
