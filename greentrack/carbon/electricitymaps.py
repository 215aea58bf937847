"""Electricity Maps API v3: average (flow-traced) carbon intensity, history and forecasts.

``/carbon-intensity/latest|history|past-range|forecast?zone=``, header ``auth-token``; token
from ``[providers.electricitymaps] token`` or ``ELECTRICITYMAPS_TOKEN``. The HTTP client, its
retries and cache, and the settings every provider takes are :mod:`greentrack.carbon.http`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from greentrack.carbon.base import IntensityPoint
from greentrack.carbon.http import (
    LiveSource,
    parse_instant,
    parse_items,
    parse_number,
    provider_zone,
)
from greentrack.errors import ProviderError
from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries

__all__ = ["ElectricityMapsSource"]


class ElectricityMapsSource(LiveSource):
    """Electricity Maps API v3: average (flow-traced) intensity, history and forecasts."""

    name = "electricitymaps"
    kind = "average"
    settings_name = "electricitymaps"
    default_url = "https://api.electricitymaps.com/v3"
    auth_hint = "check ELECTRICITYMAPS_TOKEN or [providers.electricitymaps] token"
    #: Past-range requests are limited to 10 days of hourly data per call.
    chunk_s = 10 * 86400.0

    def _headers(self) -> dict[str, str]:
        token = self.opts.get("token")
        if not token:
            raise ProviderError(
                "electricitymaps: no API token; set ELECTRICITYMAPS_TOKEN or token in "
                "[providers.electricitymaps] of config.toml"
            )
        return {"auth-token": str(token)}

    def _extra(self) -> dict[str, str]:
        eft = self.opts.get("emission_factor_type")
        return {"emissionFactorType": str(eft)} if eft else {}

    def _points(
        self, items: list[dict[str, Any]]
    ) -> tuple[list[float], list[float], set[str], int]:
        t, v, efts, estimated = [], [], set(), 0
        for it in items:
            t.append(parse_instant(it.get("datetime"), self.name, "datetime"))
            v.append(parse_number(it.get("carbonIntensity"), self.name, "carbonIntensity"))
            if it.get("emissionFactorType"):
                efts.add(str(it["emissionFactorType"]))
            estimated += bool(it.get("isEstimated"))
        return t, v, efts, estimated

    def _detail(self, endpoint: str, z: str, efts: set[str], estimated: int) -> str:
        bits = [f"Electricity Maps {endpoint} zone {z}"]
        if efts:
            bits.append(f"emissionFactorType {', '.join(sorted(efts))}")
        if estimated:
            bits.append(f"{estimated} estimated point{'s' if estimated > 1 else ''}")
        return "; ".join(bits)

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        z = provider_zone(zone)
        headers = self._headers()
        now = self.clock()
        items: list[dict[str, Any]] = []
        if t0_s >= now - 23 * 3600.0:
            endpoint = "/carbon-intensity/history"
            doc = self.http.get_json(
                endpoint, {"zone": z, **self._extra()}, headers=headers, ttl_s=self.ttl_recent_s
            )
            items = parse_items(doc, "history", self.name, endpoint)
        else:
            endpoint = "/carbon-intensity/past-range"
            c0 = math.floor(t0_s / 3600.0) * 3600.0
            end = math.ceil(max(t1_s, t0_s + 1.0) / 3600.0) * 3600.0
            while c0 < end:
                c1 = min(c0 + self.chunk_s, end)
                params = {"zone": z, "start": iso_utc(c0), "end": iso_utc(c1), **self._extra()}
                doc = self.http.get_json(endpoint, params, headers=headers, ttl_s=self._ttl(c1))
                items.extend(parse_items(doc, "data", self.name, endpoint))
                c0 = c1
        t, v, efts, est = self._points(items)
        if not t:
            raise ProviderError(f"electricitymaps: no data for {z} from {endpoint}")
        return self._series(
            zone,
            t,
            v,
            kind="average",
            detail=self._detail(endpoint, z, efts, est),
            t0_s=t0_s,
            t1_s=t1_s,
        )

    def at(self, zone: str, t_s: float) -> IntensityPoint:
        if abs(self.clock() - t_s) > 3600.0:
            return super().at(zone, t_s)
        from greentrack.carbon.series import Provenance

        z = provider_zone(zone)
        endpoint = "/carbon-intensity/latest"
        doc = self.http.get_json(
            endpoint,
            {"zone": z, **self._extra()},
            headers=self._headers(),
            ttl_s=self.ttl_recent_s,
        )
        if not isinstance(doc, dict):
            raise ProviderError(f"electricitymaps: malformed response from {endpoint}")
        t, v, efts, est = self._points([doc])
        if math.isnan(v[0]):
            raise ProviderError(f"electricitymaps: no current value for {z} (carbonIntensity null)")
        prov = Provenance(
            self.name, zone, "average", iso_utc(t[0]), self._detail(endpoint, z, efts, est)
        )
        return IntensityPoint(zone, float(t_s), v[0], "average", prov)

    def forecast(self, zone: str, horizon_s: float) -> IntensitySeries:
        z = provider_zone(zone)
        endpoint = "/carbon-intensity/forecast"
        doc = self.http.get_json(
            endpoint,
            {"zone": z, **self._extra()},
            headers=self._headers(),
            ttl_s=self.ttl_recent_s,
        )
        t, v, efts, est = self._points(parse_items(doc, "forecast", self.name, endpoint))
        if not t:
            raise ProviderError(f"electricitymaps: empty forecast for {z}")
        now = self.clock()
        t0 = max(now, min(t))
        return self._series(
            zone,
            t,
            v,
            kind="average",
            detail=self._detail(endpoint, z, efts, est) + "; forecast",
            t0_s=t0,
            t1_s=t0 + horizon_s,
        )
