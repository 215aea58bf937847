"""CO2e of a tracked run: resolve the zone, fetch the intensity series, account every interval.

Emissions are time-weighted: each interval between two kept samples of a device contributes its
facility energy (device energy × PUE) times the mean intensity over exactly that interval. The
static annual figure for the same zone is computed beside it, so reports can show both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrack.carbon.provenance import Provenance
from greentrack.config import Config
from greentrack.errors import ConfigError, GreentrackError, IntensityDataError, UnknownRegionError
from greentrack.units import J_PER_KWH

__all__ = ["CarbonContext", "RunCarbon", "account_run", "needs_network", "prepare", "warm"]

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
    #: device -> its CO2e at the zone's static annual average (g); empty without one
    device_co2e_g_annual: dict[str, float] = field(default_factory=dict)
    #: whether ``co2e_g`` is of the node's energy (its BMC) rather than the components'
    node_basis: bool = False
    phase_co2e_g: dict[str, float] = field(default_factory=dict)
    #: phase path -> CO2e of each occurrence, in the order of the spans given (g)
    phase_span_co2e_g: dict[str, list[float]] = field(default_factory=dict)
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
    region: str | None,
    source: str | None,
    csv: Sequence[str],
    config: Config,
    *,
    csv_options: Mapping[str, Any] | None = None,
    start_s: float | None = None,
) -> CarbonContext:
    """Resolve the run's zone and intensity source; raise on bad input (called by ``start()``).

    Rules (each raises a one-line :class:`~greentrack.errors.GreentrackError`):

    * an unknown region (argument, ``GREENTRACK_REGION`` or config file) names the closest zones;
    * CSV files without a region account the run in the files' zone; with a region that is
      another zone, the mismatch is an error (never silently the wrong grid);
    * CSV files must cover ``start_s`` (the run's start); whether they cover its end can only
      be known at the end: :func:`account_run` then says so instead of extending the data.

    Args:
        region: the zone asked for (None: the CSV's zone, else environment, config file, default).
        source: intensity source name (None: CSV when files are given, else the configured one).
        csv: CSV files with an hourly (or finer) series.
        csv_options: CSV layout options, passed to ``load_csv`` (``time_column``, ``tz``...).
        start_s: the run's start, epoch seconds; None skips the CSV coverage check.
    """
    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.registry import get_source

    files = [*csv]
    src = get_source(
        source, config, csv=files or None, **(dict(csv_options or {}) if files else {})
    )
    warnings: list[str] = []
    if files and (region is None or not str(region).strip()):
        zone, origin = str(src.zone), "csv file"  # type: ignore[attr-defined]
    else:
        try:
            resolved = resolve_region(region, config)
            zone, origin = resolved.zone, resolved.origin
            if resolved.warning:
                warnings.append(resolved.warning)
        except UnknownRegionError:
            # A WattTime region name, or a CSV zone greentrack does not list: taken as given.
            csv_zone = str(getattr(src, "zone", "") or "")
            given = str(region or "").strip()
            if not given or not (src.accepts_native_zones or given.upper() == csv_zone.upper()):
                raise
            zone, origin = csv_zone or given, "argument"
        if files:
            from greentrack.carbon.csvsource import _same_zone
            from greentrack.carbon.regions import zone_info

            csv_zone = str(src.zone)  # type: ignore[attr-defined]
            if not _same_zone(zone, csv_zone):
                try:
                    zone_info(csv_zone)
                except UnknownRegionError:  # only a file name (custom layout): the region names it
                    csv_zone = ""
                if csv_zone:
                    names = ", ".join(Path(f).name for f in files)
                    raise ConfigError(
                        f"region {zone} is not the zone of the CSV data ({csv_zone} in {names}); "
                        f"pass a CSV for {zone}, or drop the region to account the run in "
                        f"{csv_zone}"
                    )
    if files and start_s is not None:
        data = src.data  # type: ignore[attr-defined]
        if not data.covers(start_s, start_s):
            from greentrack.timefmt import iso_utc

            raise IntensityDataError(
                f"the CSV data covers {data.provenance.period} (+ one step), not the run's start "
                f"{iso_utc(start_s)}; pass a CSV that covers the run's time (the run is "
                "accounted on it), or drop the CSV"
            )
    return CarbonContext(zone, origin, src, warnings)


def needs_network(region: str | None, csv: Sequence[str], config: Config) -> bool:
    """True when resolving the zone would ask the cloud metadata servers (``cloud_metadata =
    true``, no region anywhere, no CSV): ``start()`` then leaves it to the checkpoint thread."""
    return bool(
        config.cloud_metadata
        and not (region and str(region).strip())
        and not config.region
        and not csv
    )


def warm(ctx: CarbonContext) -> None:
    """Import what :func:`account_run` needs for this source, off the training thread."""
    if ctx.source.constant(ctx.region) is None:
        import numpy  # noqa: F401 - imported here, off the training thread, for account_run


def account_run(
    ctx: CarbonContext,
    *,
    series: DeviceSeries,
    phases: PhaseSpans,
    t0_s: float,
    t1_s: float,
    pue: float,
    node_basis: bool = False,
) -> RunCarbon:
    """Account a run.

    Args:
        ctx: the run's zone and source (:func:`prepare`).
        series: device -> (wall times in epoch s, cumulative device energy in J); a node's
            own figure (``node:bmc``) may be among them: it is accounted, never added to the
            components.
        phases: phase path -> [(t0_s, t1_s, energy J)] occurrences (of the basis below).
        t0_s, t1_s: the run's start and end, epoch seconds.
        pue: facility overhead multiplier.
        node_basis: the run's CO2e is the node devices' (their whole-node energy × PUE);
            False: the components' sum.
    """
    constant = ctx.source.constant(ctx.region)
    if constant is not None:
        result = _account_constant(ctx, constant, series, phases, t0_s, t1_s, pue)
    else:
        result = _account_series(ctx, series, phases, t0_s, t1_s, pue)
    return _totals(result, series, pue, node_basis)


def _totals(result: RunCarbon, series: DeviceSeries, pue: float, node_basis: bool) -> RunCarbon:
    """Set the run's totals from its devices': the node's or the components' (never both)."""
    from greentrack.meters.nodepower import is_node

    counted = [d for d in result.device_co2e_g if is_node(d) == node_basis]
    result.node_basis = node_basis
    result.co2e_g = sum(result.device_co2e_g[d] for d in counted)
    annual = _annual_g_per_j(result.region, pue, result.warnings)
    if annual is not None:
        result.device_co2e_g_annual = {
            d: float(e[-1]) * annual for d, (_, e) in series.items() if len(e)
        }
        result.co2e_g_annual = sum(
            g for d, g in result.device_co2e_g_annual.items() if is_node(d) == node_basis
        )
    return result


def _account_series(
    ctx: CarbonContext,
    series: DeviceSeries,
    phases: PhaseSpans,
    t0_s: float,
    t1_s: float,
    pue: float,
) -> RunCarbon:
    """Account a run against an intensity that varies (a CSV, a live provider)."""
    import numpy as np

    from greentrack.carbon.accounting import account_samples, interval_co2e_g

    warnings = list(ctx.warnings)
    data = getattr(ctx.source, "data", None)  # a CSV source: refuses to extend its data
    if data is not None and not data.covers(t0_s, max(t1_s, t0_s + 1.0)):
        from greentrack.timefmt import iso_utc

        raise IntensityDataError(
            f"the CSV data ends at {iso_utc(data.end_s)}, before the run's end {iso_utc(t1_s)}; "
            "pass a CSV that covers the whole run (greentrack whatif RUN --csv FILE accounts it)"
        )
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
    span_g: dict[str, list[float]] = {}
    for path, spans in phases.items():
        if spans:
            arr = np.asarray(spans, dtype=np.float64)
            each = interval_co2e_g(arr[:, 0], arr[:, 1], arr[:, 2] * pue, intensity)
            span_g[path] = [float(g) for g in each]
            phase_g[path] = float(each.sum())
    window = intensity.slice(t0_s, max(t1_s, t0_s + 1.0))
    return RunCarbon(
        region=ctx.region,
        region_origin=ctx.region_origin,
        co2e_g=0.0,  # set by _totals
        co2e_g_annual=None,
        provenance=intensity.provenance.to_dict(),
        series_json={
            "start_s": float(window.start_s[0]),
            "step_s": float(window.step_s),
            "g_per_kwh": [round(float(v), 3) for v in window.g_per_kwh[:10_000]],
        },
        device_co2e_g=device_g,
        phase_co2e_g=phase_g,
        phase_span_co2e_g=span_g,
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
    span_g = {
        path: [energy_j * g_per_j for _, _, energy_j in spans]
        for path, spans in phases.items()
        if spans
    }
    phase_g = {path: sum(each) for path, each in span_g.items()}
    warnings = list(ctx.warnings)
    return RunCarbon(
        region=ctx.region,
        region_origin=ctx.region_origin,
        co2e_g=0.0,  # set by _totals
        co2e_g_annual=None,
        provenance=provenance.to_dict(),
        series_json={
            "start_s": float(t0_s),
            "step_s": float(max(t1_s, t0_s + 1.0) - t0_s),
            "g_per_kwh": [round(float(g_per_kwh), 3)],
        },
        device_co2e_g=device_g,
        phase_co2e_g=phase_g,
        phase_span_co2e_g=span_g,
        warnings=warnings,
    )


def _annual_g_per_j(zone: str, pue: float, warnings: list[str]) -> float | None:
    """g CO2e per device joule at the zone's static annual average, PUE included (the figure
    reports show beside the time-resolved one); None, with a warning, where there is none."""
    from greentrack.carbon.static import static_annual

    try:
        annual_g_per_kwh, _ = static_annual(zone)
    except GreentrackError as e:
        warnings.append(f"no static annual figure for {zone}: {e}")
        return None
    return pue / J_PER_KWH * annual_g_per_kwh
