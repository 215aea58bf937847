"""The interface every carbon-intensity source implements, and its small types.

::

    IntensitySource (ABC)        base.py             series / at / forecast, kind, warnings
    ├── StaticSource             static.py           codecarbon's annual averages (offline)
    ├── CsvSource                csvsource.py        hourly-or-finer series from CSV files
    ├── ElectricityMapsSource    electricitymaps.py  live, average intensity
    ├── WattTimeSource           watttime.py         live, marginal intensity (MOER)
    ├── UKCarbonIntensitySource  uk.py               live, GB only, no key
    └── FallbackSource           base.py             a live source falling back to the static
                                                     one, recording why

Which sources exist, under which names, is :mod:`greentrack.carbon.registry` (and
:func:`~greentrack.carbon.registry.get_source` builds one). Units everywhere: g CO₂e per kWh;
times are epoch seconds (UTC). Every series and point carries a
:class:`~greentrack.carbon.series.Provenance` (source, zone, kind, period, detail).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greentrack.errors import IntensityError, ProviderError, UnknownRegionError

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries, Provenance

__all__ = ["FallbackSource", "IntensityPoint", "IntensitySource"]


@dataclass(frozen=True)
class IntensityPoint:
    """Grid carbon intensity at one instant.

    Attributes:
        zone: canonical zone id.
        t_s: the instant, epoch seconds (UTC).
        g_per_kwh: intensity. Units: g CO₂e per kWh.
        kind: ``average`` or ``marginal``.
        provenance: where the figure came from.
    """

    zone: str
    t_s: float
    g_per_kwh: float
    kind: str
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        """``{zone, at, g_per_kwh, kind, source}`` with ``at`` in ISO 8601 UTC."""
        from greentrack.timefmt import iso_utc

        return {
            "zone": self.zone,
            "at": iso_utc(self.t_s),
            "g_per_kwh": self.g_per_kwh,
            "kind": self.kind,
            "source": self.provenance.to_dict(),
        }


class IntensitySource(ABC):
    """Where intensity figures come from.

    Subclasses implement :meth:`series`; :meth:`at` and :meth:`forecast` have defaults.
    Warnings (e.g. a recorded fallback) collect in :attr:`warnings`; :meth:`pop_warnings` hands
    them to the caller, who records them on the run.
    """

    #: Source name, as in provenance (``codecarbon-static``, ``csv``, ``electricitymaps``...).
    name: str = "source"
    #: ``average`` or ``marginal``.
    kind: str = "average"
    #: True when the source understands zone names greentrack does not list (WattTime regions).
    accepts_native_zones: bool = False

    def __init__(self) -> None:
        self.warnings: list[str] = []

    @abstractmethod
    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        """A step series covering ``[t0_s, t1_s]`` (epoch seconds). Units: g CO₂e/kWh."""

    def at(self, zone: str, t_s: float) -> IntensityPoint:
        """Intensity at the instant ``t_s`` (epoch seconds)."""
        s = self.series(zone, t_s, t_s + 1.0)
        return IntensityPoint(zone, float(t_s), float(s.at(t_s)), s.provenance.kind, s.provenance)

    def constant(self, zone: str) -> tuple[float, Provenance] | None:
        """``(g_per_kwh, provenance)`` when the source's intensity is the same at every instant
        (then accounting is exact without a series), else None."""
        return None

    def forecast(self, zone: str, horizon_s: float) -> IntensitySeries:
        """Forecast from now to ``now + horizon_s``. Sources without forecasts raise."""
        raise ProviderError(
            f"{self.name} has no forecasts: plan on history with --csv FILE (and --at inside "
            "it), or on a live forecast: --source uk (GB, no key), --source electricitymaps "
            "(ELECTRICITYMAPS_TOKEN) or --source watttime (WATTTIME_USERNAME/WATTTIME_PASSWORD)"
        )

    def pop_warnings(self) -> list[str]:
        """Return and clear the warnings collected so far."""
        out, self.warnings = self.warnings, []
        return out


class FallbackSource(IntensitySource):
    """A live source that falls back to another (static) source when it fails.

    The fallback is recorded, never silent: the returned provenance's ``detail`` ends with
    ``fallback: codecarbon-static (reason: HTTP 401 ...)`` and a one-line warning is added to
    :attr:`warnings`. Forecasts do not fall back (a flat annual average is not a forecast): the
    provider's error is raised.
    """

    def __init__(self, primary: IntensitySource, fallback: IntensitySource) -> None:
        super().__init__()
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.kind = primary.kind
        self.accepts_native_zones = primary.accepts_native_zones

    def _note(self, err: ProviderError) -> str:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        self.warnings.append(
            f"{self.primary.name} failed ({reason}); used {self.fallback.name} instead"
        )
        return f"fallback: {self.fallback.name} (reason: {reason})"

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        try:
            out = self.primary.series(zone, t0_s, t1_s)
            self.warnings.extend(self.primary.pop_warnings())
            return out
        except ProviderError as e:
            note = self._note(e)
            try:
                s = self.fallback.series(zone, t0_s, t1_s)
            except (IntensityError, UnknownRegionError) as e2:
                raise ProviderError(f"{e}; the fallback failed too: {e2}") from e2
            return _with_provenance(s, _add_detail(s.provenance, note))

    def at(self, zone: str, t_s: float) -> IntensityPoint:
        try:
            out = self.primary.at(zone, t_s)
            self.warnings.extend(self.primary.pop_warnings())
            return out
        except ProviderError as e:
            note = self._note(e)
            try:
                p = self.fallback.at(zone, t_s)
            except (IntensityError, UnknownRegionError) as e2:
                raise ProviderError(f"{e}; the fallback failed too: {e2}") from e2
            return dataclasses.replace(p, provenance=_add_detail(p.provenance, note))

    def forecast(self, zone: str, horizon_s: float) -> IntensitySeries:
        out = self.primary.forecast(zone, horizon_s)
        self.warnings.extend(self.primary.pop_warnings())
        return out


def _add_detail(p: Provenance, note: str) -> Provenance:
    return dataclasses.replace(p, detail=f"{p.detail}; {note}" if p.detail else note)


def _with_provenance(s: IntensitySeries, p: Provenance) -> IntensitySeries:
    from greentrack.carbon.series import IntensitySeries

    return IntensitySeries(s.start_s, s.g_per_kwh, s.step_s, p)
