"""CO2e of a tracked run: resolve the zone, fetch the intensity series, account every interval.

Emissions are time-weighted: each interval between two kept samples of a device contributes its
facility energy (device energy × PUE) times the mean intensity over exactly that interval. The
static annual figure for the same zone is computed beside it, so reports can show both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrack.config import Config

__all__ = ["RunCarbon", "account_run"]

J_PER_KWH = 3.6e6


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


def account_run(
    *,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    phases: Mapping[str, Sequence[tuple[float, float, float]]],
    t0_s: float,
    t1_s: float,
    pue: float,
    region: str | None,
    source: str | None,
    csv: Sequence[str],
    config: Config,
) -> RunCarbon:
    """Account a run.

    Args:
        series: device -> (wall times in epoch s, cumulative device energy in J).
        phases: phase path -> [(t0_s, t1_s, device energy J)] occurrences.
        t0_s, t1_s: the run's start and end, epoch seconds.
        pue: facility overhead multiplier.
        region: the zone asked for (None: environment, config, default).
        source: intensity source name (None: the configured one); ``csv``: series files.
    """
    import numpy as np

    from greentrack.carbon.accounting import interval_co2e_g
    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.sources import get_source, static_annual

    warnings: list[str] = []
    resolved = resolve_region(region, config)
    if resolved.warning:
        warnings.append(resolved.warning)
    src = get_source(source, config, csv=[*csv] or None)
    intensity = src.series(resolved.zone, t0_s, max(t1_s, t0_s + 1.0))
    warnings.extend(getattr(intensity, "warnings", []) or [])
    if not intensity.covers(t0_s, t1_s):
        warnings.append(
            f"intensity data ({intensity.provenance.label()}) does not cover the whole run; "
            "its edge values were extended"
        )
    device_g: dict[str, float] = {}
    for device, (t, e) in series.items():
        t_arr = np.asarray(t, dtype=np.float64)
        e_arr = np.asarray(e, dtype=np.float64)
        if t_arr.size < 2:
            device_g[device] = 0.0
            continue
        device_g[device] = float(
            interval_co2e_g(t_arr[:-1], t_arr[1:], np.diff(e_arr) * pue, intensity).sum()
        )
    phase_g: dict[str, float] = {}
    for path, spans in phases.items():
        if spans:
            arr = np.asarray(spans, dtype=np.float64)
            phase_g[path] = float(
                interval_co2e_g(arr[:, 0], arr[:, 1], arr[:, 2] * pue, intensity).sum()
            )
    total_j = sum(float(e[-1]) for _, e in series.values() if len(e))
    annual: float | None = None
    try:
        annual_g_per_kwh, _ = static_annual(resolved.zone)
        annual = total_j * pue / J_PER_KWH * annual_g_per_kwh
    except Exception as e:  # noqa: BLE001 - the annual figure is a comparison, not the result
        warnings.append(f"no static annual figure for {resolved.zone}: {e}")
    window = intensity.slice(t0_s, max(t1_s, t0_s + 1.0))
    return RunCarbon(
        region=resolved.zone,
        region_origin=resolved.origin,
        co2e_g=sum(device_g.values()),
        co2e_g_annual=annual,
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
