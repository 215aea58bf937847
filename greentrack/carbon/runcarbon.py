"""CO2e of a tracked run: resolve the zone, fetch the intensity series, account every interval.

Emissions are time-weighted: each interval between two kept samples of a device contributes its
facility energy (device energy × PUE) times the mean intensity over exactly that interval. The
static annual figure for the same zone is computed beside it, so reports can show both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrack.carbon.provenance import Provenance
from greentrack.config import Config
from greentrack.errors import ConfigError, GreentrackError, IntensityDataError
from greentrack.units import J_PER_KWH

__all__ = ["CarbonContext", "RunCarbon", "account_run", "prepare"]

#: device -> (wall times in epoch s, cumulative device energy in J)
DeviceSeries = Mapping[str, tuple[Sequence[float], Sequence[float]]]
#: phase path -> [(t0_s, t1_s, device energy J)], one per occurrence
PhaseSpans = Mapping[str, Sequence[tuple[float, float, float]]]


@dataclass
class RunCarbon:
    """The carbon figures of one run. Units: grams CO2e."""

    region: str
    region_origin: str
    co2e_g: float
    co2e_g_annual: float | None
    provenance: dict[str, Any]
    series_json: dict[str, Any]
    device_co2e_g: dict[str, float] = field(default_factory=dict)
    phase_co2e_g: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CarbonContext:
    """The zone and intensity source of a run, resolved once (at start, off the training thread)."""

    region: str
    region_origin: str
    source: Any
    warnings: list[str] = field(default_factory=list)

    def g_per_kwh_at(self, t_s: float) -> float:
        """Intensity at one instant (used for CO2e budgets and forecasts). Units: g/kWh."""
        return float(self.source.at(self.region, t_s).g_per_kwh)


def prepare(
    region: str | None, source: str | None, csv: Sequence[str], config: Config
) -> CarbonContext:
    """Resolve the run's zone and intensity source.

    Args:
        region: the zone asked for (None: environment, config file, then the default).
        source: intensity source name (None: CSV when files are given, else the configured one).
        csv: CSV files with an hourly (or finer) series.
    """
    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.sources import get_source

    resolved = resolve_region(region, config)
    warnings = [resolved.warning] if resolved.warning else []
    src = get_source(source, config, csv=[*csv] or None)
    if src.constant(resolved.zone) is None:
        import numpy  # noqa: F401 - imported here, off the training thread, for account_run
    return CarbonContext(resolved.zone, resolved.origin, src, warnings)


def account_run(
    ctx: CarbonContext,
    *,
    series: DeviceSeries,
    phases: PhaseSpans,
    t0_s: float,
    t1_s: float,
    pue: float,
) -> RunCarbon:
    """Account a run.

    Args:
        ctx: the run's zone and source (:func:`prepare`).
        series: device -> (wall times in epoch s, cumulative device energy in J).
        phases: phase path -> [(t0_s, t1_s, device energy J)] occurrences.
        t0_s, t1_s: the run's start and end, epoch seconds.
        pue: facility overhead multiplier.
    """
    constant = ctx.source.constant(ctx.region)
    if constant is not None:
        return _account_constant(ctx, constant, series, phases, t0_s, t1_s, pue)

    import numpy as np

    from greentrack.carbon.accounting import account_samples, interval_co2e_g

    warnings = list(ctx.warnings)
    intensity = ctx.source.series(ctx.region, t0_s, max(t1_s, t0_s + 1.0))
    warnings.extend(ctx.source.pop_warnings())
    if not intensity.covers(t0_s, t1_s) and len(intensity) > 1:
        warnings.append(
            f"intensity data ({intensity.provenance.label()}) does not cover the whole run; "
            "its edge values were extended"
        )
    devices = [d for d, (t, _) in series.items() if len(t)]
    account = account_samples(
        np.concatenate([np.asarray(series[d][0], dtype=np.float64) for d in devices] or [[]]),
        np.concatenate([np.asarray(series[d][1], dtype=np.float64) for d in devices] or [[]]),
        intensity,
        device=np.concatenate(
            [np.full(len(series[d][0]), d, dtype=object) for d in devices]
            or [np.array([], dtype=object)]
        ),
        pue=pue,
        start_s=t0_s,
    )
    device_g = dict(account.per_device)
    # Phase energy is measured at the phase boundaries; it is booked at the phase's mean intensity.
    phase_g: dict[str, float] = {}
    for path, spans in phases.items():
        if spans:
            arr = np.asarray(spans, dtype=np.float64)
            phase_g[path] = float(
                interval_co2e_g(arr[:, 0], arr[:, 1], arr[:, 2] * pue, intensity).sum()
            )
    window = intensity.slice(t0_s, max(t1_s, t0_s + 1.0))
    return RunCarbon(
        region=ctx.region,
        region_origin=ctx.region_origin,
        co2e_g=sum(device_g.values()),
        co2e_g_annual=_annual_g(ctx.region, series, pue, warnings),
        provenance=intensity.provenance.to_dict(),
        series_json={
            "start_s": float(window.start_s[0]),
            "step_s": float(window.step_s),
            "g_per_kwh": [round(float(v), 3) for v in window.g_per_kwh[:10_000]],
        },
        device_co2e_g=device_g,
        phase_co2e_g=phase_g,
        warnings=warnings,
    )


def _account_constant(
    ctx: CarbonContext,
    constant: tuple[float, Provenance],
    series: DeviceSeries,
    phases: PhaseSpans,
    t0_s: float,
    t1_s: float,
    pue: float,
) -> RunCarbon:
    """Account a run against an intensity that is the same at every instant (the static source).

    The time-weighted integral of a constant is the constant times the energy, so this is the
    same figure :func:`account_samples` computes — checks included — in plain Python: the default
    (offline) path of every run never loads numpy.
    """
    g_per_kwh, provenance = constant
    if pue < 1.0:
        raise ConfigError(f"PUE must be >= 1.0 (got {pue}); 1.0 means no facility overhead")
    g_per_j = pue / J_PER_KWH * g_per_kwh
    device_g: dict[str, float] = {}
    for device, (t, e) in series.items():
        if not len(t):
            continue
        if len(t) != len(e):
            raise IntensityDataError("t_s and energy_j must be 1-D arrays of the same length")
        pairs = sorted(zip(map(float, t), map(float, e), strict=True), key=lambda p: p[0])
        if not all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
            raise IntensityDataError("energy samples contain NaN or infinite values")
        tol = 1e-9 * max(1.0, max(abs(b) for _, b in pairs))
        booked_j, prev_j = 0.0, 0.0
        for i, (t_i, e_i) in enumerate(pairs):
            if e_i - prev_j < -tol:
                raise IntensityDataError(
                    f"cumulative energy of {device} decreases at sample {i} (t={t_i:.3f}); "
                    "samples must be cumulative energy since the meter started"
                )
            booked_j += max(e_i - prev_j, 0.0)
            prev_j = e_i
        device_g[device] = booked_j * g_per_j
    phase_g = {
        path: sum(energy_j for _, _, energy_j in spans) * g_per_j
        for path, spans in phases.items()
        if spans
    }
    warnings = list(ctx.warnings)
    return RunCarbon(
        region=ctx.region,
        region_origin=ctx.region_origin,
        co2e_g=sum(device_g.values()),
        co2e_g_annual=_annual_g(ctx.region, series, pue, warnings),
        provenance=provenance.to_dict(),
        series_json={
            "start_s": float(t0_s),
            "step_s": float(max(t1_s, t0_s + 1.0) - t0_s),
            "g_per_kwh": [round(float(g_per_kwh), 3)],
        },
        device_co2e_g=device_g,
        phase_co2e_g=phase_g,
        warnings=warnings,
    )


def _annual_g(
    zone: str,
    series: DeviceSeries,
    pue: float,
    warnings: list[str],
) -> float | None:
    """The run's CO2e at the zone's static annual average (the figure reports show beside the
    time-resolved one); None, with a warning, where there is none. Units: g."""
    from greentrack.carbon.sources import static_annual

    total_j = sum(float(e[-1]) for _, e in series.values() if len(e))
    try:
        annual_g_per_kwh, _ = static_annual(zone)
    except GreentrackError as e:
        warnings.append(f"no static annual figure for {zone}: {e}")
        return None
    return total_j * pue / J_PER_KWH * annual_g_per_kwh
