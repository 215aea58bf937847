"""``greentrack intensity``: one library call that resolves the zone, picks the source and asks it.

:func:`lookup_intensity` returns an :class:`IntensityLookup` holding either a point (intensity at
one instant) or a forecast series, plus the warnings to show (default region, provider fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.base import IntensityPoint
    from greentrack.carbon.series import IntensitySeries
    from greentrack.config import Config

__all__ = ["IntensityLookup", "lookup_intensity"]


@dataclass
class IntensityLookup:
    """What ``greentrack intensity`` prints.

    Attributes:
        zone: canonical zone.
        origin: where the zone came from (``argument``, ``environment``, ``csv file``...).
        point: intensity at the asked instant (None for a forecast).
        forecast: forecast series (None for a point).
        warnings: one-line warnings (default region, provider fallback).
    """

    zone: str
    origin: str
    point: IntensityPoint | None = None
    forecast: IntensitySeries | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Point: ``{zone, at, g_per_kwh, kind, source}``; forecast: ``{zone, kind, source,
        step_s, points: [{at, g_per_kwh}]}``."""
        if self.point is not None:
            return self.point.to_dict()
        assert self.forecast is not None, "a lookup holds a point or a forecast"
        s = self.forecast
        return {
            "zone": self.zone,
            "kind": s.provenance.kind,
            "source": s.provenance.to_dict(),
            "step_s": s.step_s,
            "points": [
                {"at": iso_utc(t), "g_per_kwh": float(v)}
                for t, v in zip(s.start_s, s.g_per_kwh, strict=True)
            ],
        }


def lookup_intensity(
    zone: str | None = None,
    *,
    at_s: float | None = None,
    source: str | None = None,
    csv: Sequence[str | Path] | None = None,
    forecast_s: float | None = None,
    config: Config | None = None,
    **csv_options: Any,
) -> IntensityLookup:
    """Intensity of ``zone`` at ``at_s`` (default now), or its forecast over ``forecast_s``.

    Args:
        zone: any accepted spelling; None: the CSV's zone, else the run-region precedence of
            :func:`~greentrack.carbon.regions.resolve_region` (environment, config, default).
        at_s: instant, epoch seconds (default: now; a CSV source needs a time inside its data).
        source: source name (see :func:`~greentrack.carbon.registry.get_source`).
        csv: CSV files (source ``csv``).
        forecast_s: horizon, seconds; when given a forecast is returned instead of a point.
        config: settings (``load_config()`` when None).
        **csv_options: passed to ``load_csv`` (``max_gap_steps``, ``tz``, ``signal``...).
    """
    import time

    from greentrack.carbon.regions import resolve_region
    from greentrack.carbon.registry import get_source
    from greentrack.errors import UnknownRegionError

    if config is None:
        from greentrack.config import load_config

        config = load_config()
    src = get_source(source, config, csv=list(csv) if csv else None, **csv_options)
    warnings: list[str] = []
    if zone is None and csv:
        the_zone, origin = src.zone, "csv file"  # type: ignore[attr-defined]
    else:
        try:
            resolved = resolve_region(zone, config)
            the_zone, origin = resolved.zone, resolved.origin
            if resolved.warning:
                warnings.append(resolved.warning)
        except UnknownRegionError:
            # A WattTime region name, or a CSV zone greentrack does not list: taken as given.
            if zone is None:
                raise
            csv_zone = str(getattr(src, "zone", "") or "")
            if not (src.accepts_native_zones or zone.strip().upper() == csv_zone.upper()):
                raise
            the_zone, origin = csv_zone or zone.strip(), "argument"
    out = IntensityLookup(the_zone, origin)
    if forecast_s is not None:
        out.forecast = src.forecast(the_zone, forecast_s)
    else:
        out.point = src.at(the_zone, time.time() if at_s is None else at_s)
    out.warnings = warnings + src.pop_warnings()
    return out
