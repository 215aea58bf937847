"""Carbon-intensity sources behind one small interface, and the factory that picks one.

::

    IntensitySource (ABC)          series / at / forecast, kind, warnings
    ├── StaticSource               codecarbon's annual averages (offline default)   static.py
    ├── CsvSource                  hourly-or-finer series from CSV files            csvsource.py
    ├── ElectricityMapsSource      live, average intensity                          providers.py
    ├── WattTimeSource             live, marginal intensity (MOER)                  providers.py
    ├── UKCarbonIntensitySource    live, GB only, no key                            providers.py
    └── FallbackSource             a live source falling back to the static one, recording why

Units everywhere: g CO₂e per kWh; times are epoch seconds (UTC). Every series and point carries a
:class:`~greentrack.carbon.series.Provenance` (source, zone, kind, period, detail).
"""

from __future__ import annotations

import dataclasses
import difflib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greentrack.errors import ConfigError, IntensityError, ProviderError, UnknownRegionError

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries, Provenance
    from greentrack.config import Config

__all__ = [
    "SOURCE_NAMES",
    "FallbackSource",
    "IntensityPoint",
    "IntensitySource",
    "get_source",
    "static_annual",
]


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


def static_annual(zone: str) -> tuple[float, Provenance]:
    """Static annual-average intensity of ``zone`` (g CO₂e/kWh) and its provenance.

    The offline figure reports show beside the time-resolved one. Raises
    :class:`~greentrack.errors.UnknownRegionError` or :class:`IntensityError` when unknown.
    """
    from greentrack.carbon.static import static_intensity

    return static_intensity(zone)


#: Accepted ``--source`` names -> canonical name.
SOURCE_NAMES = {
    "static": "static",
    "codecarbon": "static",
    "codecarbon-static": "static",
    "csv": "csv",
    "electricitymaps": "electricitymaps",
    "electricity-maps": "electricitymaps",
    "em": "electricitymaps",
    "watttime": "watttime",
    "uk": "uk",
    "uk-carbon-intensity": "uk",
    "carbonintensity": "uk",
}


def get_source(
    name: str | None,
    config: Config | None = None,
    *,
    csv: Sequence[str | Path] | None = None,
    fallback: bool = True,
    **csv_options: Any,
) -> IntensitySource:
    """The intensity source called ``name``.

    Args:
        name: ``static`` (codecarbon's annual averages, offline), ``csv``, ``electricitymaps``,
            ``watttime`` or ``uk``; None means ``csv`` when CSV files are given, else
            ``config.provider``.
        config: settings (``load_config()`` when None): provider URLs, tokens, cache directory.
        csv: CSV files for the ``csv`` source (see :func:`greentrack.carbon.csvsource.load_csv`).
        fallback: wrap live providers so that a failure falls back to the static source
            (recorded in provenance and warnings). False: provider errors propagate.
        **csv_options: passed to ``load_csv`` (``zone``, ``time_column``, ``max_gap_steps``...).

    Raises:
        ConfigError: unknown name, or ``csv`` without files, or files with another source.
    """
    if config is None:
        from greentrack.config import load_config

        config = load_config()
    raw = name if name is not None else ("csv" if csv else config.provider)
    key = SOURCE_NAMES.get(str(raw).strip().lower())
    if key is None:
        close = difflib.get_close_matches(str(raw).lower(), list(SOURCE_NAMES), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"unknown intensity source {raw!r}{hint}; choose one of: static, csv, "
            "electricitymaps, watttime, uk"
        )
    if csv and key != "csv":
        raise ConfigError(f"CSV files were given with source {raw!r}; drop --source or use csv")
    if key == "csv":
        if not csv:
            raise ConfigError("the csv source needs files: pass --csv FILE (several allowed)")
        from greentrack.carbon.csvsource import CsvSource

        return CsvSource(list(csv), **csv_options)
    from greentrack.carbon.static import StaticSource

    if key == "static":
        return StaticSource()
    from greentrack.carbon import providers

    live: IntensitySource
    if key == "electricitymaps":
        live = providers.ElectricityMapsSource(config)
    elif key == "watttime":
        live = providers.WattTimeSource(config)
    else:
        live = providers.UKCarbonIntensitySource(config)
    return FallbackSource(live, StaticSource()) if fallback else live
