"""Carbon accounting: energy time series × intensity time series, exactly and vectorised.

Model. A device's meter gives cumulative energy ``E(t_i)`` at sample times ``t_i``. Within one
sample interval ``(t_{i-1}, t_i]`` the power is taken as constant, ``P = ΔE / Δt`` (that is all
the samples say), so the interval's emissions are

    CO₂e_i = P · ∫ I(t) dt over the interval / 3.6e6   [g]   (I in g/kWh, E in J, t in s)

which equals ``ΔE × mean intensity over the interval / 3.6e6``: an interval straddling an
intensity step is time-weighted exactly (:meth:`IntensitySeries.integral`, no interpolation).
A phase ``[p0, p1]`` gets the part of each interval that overlaps it, by the same formula on the
clipped interval. Facility energy = device energy × PUE, so every figure is multiplied by PUE.

All functions are pure (numpy in, numbers out). 604,800 one-second samples against an hourly
series take a few milliseconds (``benchmarks/bench_carbon.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ConfigError, IntensityDataError
from greentrack.units import J_PER_KWH

__all__ = [
    "J_PER_KWH",
    "CarbonAccount",
    "account_samples",
    "co2e_g",
    "interval_co2e_g",
    "predict_final",
    "predict_final_s",
    "static_co2e_g",
]


def co2e_g(
    t0_s: np.ndarray | float,
    t1_s: np.ndarray | float,
    energy_j: np.ndarray | float,
    series: IntensitySeries,
) -> np.ndarray:
    """Emissions of energy ``energy_j`` used uniformly over each interval ``[t0_s, t1_s]``.

    Args:
        t0_s, t1_s: interval bounds, epoch seconds (arrays broadcast together).
        energy_j: energy per interval (facility energy: apply PUE first). Units: J.
        series: intensity, g CO₂e/kWh.

    Returns:
        g CO₂e per interval: ``energy_j × series.mean(t0_s, t1_s) / 3.6e6`` (zero-width
        intervals use the intensity at ``t0_s``).
    """
    return np.asarray(energy_j, dtype=np.float64) * series.mean(t0_s, t1_s) / J_PER_KWH


#: Alias of :func:`co2e_g` (the name the tracker uses).
interval_co2e_g = co2e_g


def static_co2e_g(energy_kwh: float, g_per_kwh: float) -> float:
    """Static-annual figure: ``energy_kwh × g_per_kwh`` (g CO₂e). For reports showing both."""
    return float(energy_kwh) * float(g_per_kwh)


@dataclass(frozen=True)
class CarbonAccount:
    """Emissions of one run (or a what-if of it).

    Attributes:
        co2e_g: total, g CO₂e (facility energy × intensity).
        device_energy_j: sum of device energy, J.
        facility_energy_j: ``device_energy_j × pue``, J.
        pue: power usage effectiveness applied.
        mean_g_per_kwh: energy-weighted mean intensity, g/kWh.
        per_device: device label -> g CO₂e.
        per_device_energy_j: device label -> device energy, J.
        per_phase: phase name -> g CO₂e (all devices; a name used twice is summed).
        per_phase_energy_j: phase name -> device energy, J.
        start_s, end_s: first and last sample time, epoch seconds.
        provenance: of the intensity series used.
    """

    co2e_g: float
    device_energy_j: float
    facility_energy_j: float
    pue: float
    mean_g_per_kwh: float
    per_device: dict[str, float]
    per_device_energy_j: dict[str, float]
    per_phase: dict[str, float]
    per_phase_energy_j: dict[str, float]
    start_s: float
    end_s: float
    provenance: Provenance
    per_device_phase: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def energy_kwh(self) -> float:
        """Facility energy in kWh."""
        return self.facility_energy_j / J_PER_KWH

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (provenance as its dict under ``source``)."""
        return {
            "co2e_g": self.co2e_g,
            "device_energy_j": self.device_energy_j,
            "facility_energy_j": self.facility_energy_j,
            "pue": self.pue,
            "mean_g_per_kwh": self.mean_g_per_kwh,
            "per_device": dict(self.per_device),
            "per_device_energy_j": dict(self.per_device_energy_j),
            "per_phase": dict(self.per_phase),
            "per_phase_energy_j": dict(self.per_phase_energy_j),
            "per_device_phase": {k: dict(v) for k, v in self.per_device_phase.items()},
            "start_s": self.start_s,
            "end_s": self.end_s,
            "source": self.provenance.to_dict(),
        }


def account_samples(
    t_s: np.ndarray,
    energy_j: np.ndarray,
    series: IntensitySeries,
    *,
    device: np.ndarray | Sequence[str] | None = None,
    phases: Sequence[tuple[str, float, float]] = (),
    pue: float = 1.0,
    start_s: float | None = None,
) -> CarbonAccount:
    """Account a run's cumulative energy samples against an intensity series.

    Args:
        t_s: sample times, epoch seconds; any order, devices interleaved.
        energy_j: cumulative device energy at each sample (energy since the meter started),
            J. Must not decrease within a device.
        series: intensity, g CO₂e/kWh.
        device: device label of each sample (e.g. ``"gpu:0"``); None: one device ``"total"``.
        phases: ``(name, t0_s, t1_s)`` boundaries; names may repeat (summed).
        pue: facility energy / device energy (>= 1).
        start_s: when the meters started (cumulative energy 0). When None, each device's first
            sample's energy is booked at its own instant (no interval before it), so the total
            always equals the last cumulative readings.

    Returns:
        Total, per-device, per-phase and per-device-per-phase CO₂e (g) and energy.

    Raises:
        IntensityDataError: mismatched arrays or decreasing cumulative energy.
        ConfigError: PUE < 1.
    """
    t = np.asarray(t_s, dtype=np.float64)
    e = np.asarray(energy_j, dtype=np.float64)
    if t.shape != e.shape or t.ndim != 1:
        raise IntensityDataError("t_s and energy_j must be 1-D arrays of the same length")
    if pue < 1.0:
        raise ConfigError(f"PUE must be >= 1.0 (got {pue}); 1.0 means no facility overhead")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(e))):
        raise IntensityDataError("energy samples contain NaN or infinite values")
    if device is None:
        labels = np.zeros(t.size, dtype=np.int64)
        names: list[str] = ["total"]
    else:
        dev = np.asarray(device)
        if dev.shape != t.shape:
            raise IntensityDataError("device must have one label per sample")
        if dev.dtype.kind == "O":
            dev = dev.astype(str)  # sorting fixed-width strings is several times faster
        uniq, labels = np.unique(dev, return_inverse=True)
        names = [str(u) for u in uniq]

    per_device: dict[str, float] = {}
    per_device_e: dict[str, float] = {}
    per_phase: dict[str, float] = {name: 0.0 for name, _, _ in phases}
    per_phase_e: dict[str, float] = dict.fromkeys(per_phase, 0.0)
    per_dev_phase: dict[str, dict[str, float]] = {}
    monotone = bool(np.all(series.g_per_kwh >= 0))
    for k, name in enumerate(names):
        if len(names) > 1:
            sel = np.flatnonzero(labels == k)
            td, ed = t[sel], e[sel]
        else:
            td, ed = t, e
        if td.size > 1 and np.any(np.diff(td) < 0):
            order = np.argsort(td, kind="stable")
            td, ed = td[order], ed[order]
        if start_s is not None:
            t_prev = np.concatenate(([min(float(start_s), td[0])], td[:-1]))
        else:
            t_prev = np.concatenate((td[:1], td[:-1]))
        e_prev = np.concatenate(([0.0], ed[:-1]))
        de = ed - e_prev
        tol = 1e-9 * max(1.0, float(np.max(np.abs(ed))))
        if np.any(de < -tol):
            i = int(np.argmax(de < -tol))
            raise IntensityDataError(
                f"cumulative energy of {name} decreases at sample {i} (t={td[i]:.3f}); "
                "samples must be cumulative energy since the meter started"
            )
        de = np.maximum(de, 0.0)
        dt = td - t_prev
        wide = dt > 0
        all_wide = bool(wide.all())
        power_w = np.divide(de, dt, out=np.zeros_like(de), where=wide)
        # Integral of intensity up to each sample time, (g/kWh)·s; t_prev[k] = td[k-1] for k >= 1.
        i_now = series.integral(td)
        i_first = series.integral(t_prev[0]) if start_s is not None else i_now[0]
        i_prev = np.concatenate(([i_first], i_now[:-1]))
        # Zero-width intervals (first reading without start_s, repeated times): point value.
        point = np.zeros_like(de)
        if not all_wide:
            narrow = np.flatnonzero(~wide)
            point[narrow] = de[narrow] * series.at(td[narrow])
        grams = (power_w * (i_now - i_prev) + point) * pue / J_PER_KWH
        per_device[name] = float(grams.sum())
        per_device_e[name] = float(de.sum())
        dev_phase: dict[str, float] = {}
        for pname, p0, p1 in phases:
            if monotone:
                # I is non-decreasing (intensity >= 0), so I(clip(t)) = clip(I(t)): no new lookups.
                ip0, ip1 = series.integral(np.array([p0, p1], dtype=np.float64))
                i_c1 = np.clip(i_now, ip0, ip1)
                i_c0 = np.clip(i_prev, ip0, ip1)
            else:
                i_c1 = series.integral(np.clip(td, p0, p1))
                i_c0 = series.integral(np.clip(t_prev, p0, p1))
            g = power_w * (i_c1 - i_c0)
            overlap_s = np.clip(td, p0, p1) - np.clip(t_prev, p0, p1)
            ej = power_w * overlap_s
            if not all_wide:
                inside_point = (~wide) & (td >= p0) & (td < p1)
                g = g + np.where(inside_point, point, 0.0)
                ej = ej + np.where(inside_point, de, 0.0)
            gsum = float(g.sum()) * pue / J_PER_KWH
            esum = float(ej.sum())
            per_phase[pname] += gsum
            per_phase_e[pname] += esum
            dev_phase[pname] = dev_phase.get(pname, 0.0) + gsum
        if phases:
            per_dev_phase[name] = dev_phase

    total = float(sum(per_device.values()))
    dev_energy = float(sum(per_device_e.values()))
    facility = dev_energy * pue
    t_lo = float(t.min()) if t.size else 0.0
    t_hi = float(t.max()) if t.size else 0.0
    # Energy-weighted mean intensity; without energy, the plain time-weighted mean.
    mean = total / (facility / J_PER_KWH) if facility > 0 else float(series.mean(t_lo, t_hi))
    return CarbonAccount(
        co2e_g=total,
        device_energy_j=dev_energy,
        facility_energy_j=facility,
        pue=float(pue),
        mean_g_per_kwh=mean,
        per_device=per_device,
        per_device_energy_j=per_device_e,
        per_phase=per_phase,
        per_phase_energy_j=per_phase_e,
        start_s=t_lo,
        end_s=t_hi,
        provenance=series.provenance,
        per_device_phase=per_dev_phase,
    )


def predict_final(elapsed_s: float, energy_j: float, progress_fraction: float) -> float:
    """Predicted energy of the whole run by linear extrapolation in progress.

    The run is assumed to keep spending the same energy per unit of progress:
    ``predicted = energy_j / progress_fraction``. ``elapsed_s`` is not needed for the energy
    (it is validated, and :func:`predict_final_s` uses it for the duration).

    Args:
        elapsed_s: time since the run started, seconds (>= 0).
        energy_j: energy so far (device or facility: the result is the same kind), J (>= 0).
        progress_fraction: fraction of the work done, in (0, 1].

    Returns:
        Predicted total energy, J.

    Raises:
        ConfigError: progress outside (0, 1], or negative energy / time.
    """
    _check_progress(elapsed_s, progress_fraction)
    if energy_j < 0 or not np.isfinite(energy_j):
        raise ConfigError(f"energy_j must be a finite number >= 0, got {energy_j}")
    return float(energy_j) / float(progress_fraction)


def predict_final_s(elapsed_s: float, progress_fraction: float) -> float:
    """Predicted total duration, seconds: ``elapsed_s / progress_fraction`` (same assumption)."""
    _check_progress(elapsed_s, progress_fraction)
    return float(elapsed_s) / float(progress_fraction)


def _check_progress(elapsed_s: float, progress_fraction: float) -> None:
    if not (0.0 < progress_fraction <= 1.0):
        raise ConfigError(
            f"progress must be in (0, 1], got {progress_fraction}; call run.progress(step, total) "
            "with 0 < step <= total"
        )
    if elapsed_s < 0 or not np.isfinite(elapsed_s):
        raise ConfigError(f"elapsed_s must be a finite number >= 0, got {elapsed_s}")
