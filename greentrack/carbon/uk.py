"""The GB Carbon Intensity API (National Energy System Operator): half-hourly, no API key.

``/intensity``, ``/intensity/{from}/{to}``, ``/intensity/{from}/fw24h``; zone ``GB`` only. The
HTTP client, its retries and cache are :mod:`greentrack.carbon.http`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from greentrack.carbon.base import IntensityPoint
from greentrack.carbon.http import LiveSource, parse_instant, parse_items, parse_number
from greentrack.errors import ProviderError, UnknownRegionError
from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries

__all__ = ["UKCarbonIntensitySource"]


class UKCarbonIntensitySource(LiveSource):
    """GB Carbon Intensity API (National Energy System Operator): half-hourly, no API key."""

    name = "uk-carbon-intensity"
    kind = "average"
    settings_name = "uk"
    default_url = "https://api.carbonintensity.org.uk"
    #: ``/intensity/{from}/{to}`` answers at most 14 days; ask for 13 at a time.
    chunk_s = 13 * 86400.0

    def _check(self, zone: str) -> None:
        from greentrack.carbon.regions import zone_info

        try:
            location = zone_info(zone).location
        except UnknownRegionError:
            location = zone
        if location != "GB":
            raise ProviderError(
                f"uk-carbon-intensity covers Great Britain (GB) only, not {zone}; use another "
                "source for that zone"
            )

    @staticmethod
    def _stamp(t_s: float) -> str:
        return datetime.fromtimestamp(t_s, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")

    def _points(
        self, items: list[dict[str, Any]], prefer: str
    ) -> tuple[list[float], list[float], int]:
        t, v, used_forecast = [], [], 0
        for it in items:
            t.append(parse_instant(it.get("from"), self.name, "from"))
            intensity = it.get("intensity")
            if not isinstance(intensity, dict):
                raise ProviderError(f"{self.name}: malformed response: no 'intensity' object")
            value = intensity.get(prefer)
            if value is None and prefer == "actual":
                value = intensity.get("forecast")
                used_forecast += value is not None
            v.append(parse_number(value, self.name, prefer))
        return t, v, used_forecast

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        self._check(zone)
        t: list[float] = []
        v: list[float] = []
        used = 0
        c0 = math.floor(t0_s / 1800.0) * 1800.0
        end = math.ceil(max(t1_s, t0_s + 1.0) / 1800.0) * 1800.0
        while c0 < end:
            c1 = min(c0 + self.chunk_s, end)
            path = f"/intensity/{self._stamp(c0)}/{self._stamp(c1)}"
            doc = self.http.get_json(path, ttl_s=self._ttl(c1))
            ti, vi, ui = self._points(parse_items(doc, "data", self.name, path), "actual")
            t.extend(ti)
            v.extend(vi)
            used += ui
            c0 = c1
        if not t:
            raise ProviderError(f"{self.name}: no data for {iso_utc(t0_s)}/{iso_utc(t1_s)}")
        detail = "GB Carbon Intensity API /intensity/{from}/{to}, national, actual values"
        if used:
            plural = "s" if used > 1 else ""
            detail += f"; {used} half-hour{plural} without an actual value use the forecast"
        return self._series(
            zone, t, v, kind="average", detail=detail, t0_s=t0_s, t1_s=t1_s, step_s=1800.0
        )

    def at(self, zone: str, t_s: float) -> IntensityPoint:
        if abs(self.clock() - t_s) > 1800.0:
            return super().at(zone, t_s)
        self._check(zone)
        doc = self.http.get_json("/intensity", ttl_s=self.ttl_recent_s)
        t, v, used = self._points(parse_items(doc, "data", self.name, "/intensity"), "actual")
        if not t or math.isnan(v[0]):
            raise ProviderError(f"{self.name}: no current value in /intensity")
        from greentrack.carbon.series import Provenance

        detail = "GB Carbon Intensity API /intensity (current half-hour)"
        if used:
            detail += "; forecast value (no actual yet)"
        prov = Provenance(self.name, zone, "average", iso_utc(t[0]), detail)
        return IntensityPoint(zone, float(t_s), v[0], "average", prov)

    def forecast(self, zone: str, horizon_s: float) -> IntensitySeries:
        self._check(zone)
        now = self.clock()
        window = "fw48h" if horizon_s > 24 * 3600.0 else "fw24h"
        path = f"/intensity/{self._stamp(now)}/{window}"
        doc = self.http.get_json(path, ttl_s=self.ttl_recent_s)
        t, v, _ = self._points(parse_items(doc, "data", self.name, path), "forecast")
        if not t:
            raise ProviderError(f"{self.name}: empty forecast from {path}")
        t0 = max(now, min(t))
        return self._series(
            zone,
            t,
            v,
            kind="average",
            detail=f"GB Carbon Intensity API {path}; forecast",
            t0_s=t0,
            t1_s=t0 + horizon_s,
            step_s=1800.0,
        )
