"""WattTime API v3: marginal operating emissions rate (``co2_moer``) by WattTime region.

``/login`` with HTTP basic auth gives a bearer token (kept in memory only), then
``/v3/historical`` and ``/v3/forecast``; values in lbs/MWh are converted to g/kWh. WattTime names
its own regions (``CAISO_NORTH``); map greentrack zones in ``[providers.watttime.regions]``.
Credentials: ``WATTTIME_USERNAME`` / ``WATTTIME_PASSWORD`` or ``[providers.watttime]``. The
HTTP client, its retries and cache are :mod:`greentrack.carbon.http`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from greentrack.carbon._data import G_PER_KWH_PER_LB_PER_MWH
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
    from greentrack.config import Config

__all__ = ["WattTimeSource"]


class WattTimeSource(LiveSource):
    """WattTime API v3: marginal operating emissions rate (``co2_moer``) by WattTime region."""

    name = "watttime"
    kind = "marginal"
    accepts_native_zones = True
    settings_name = "watttime"
    default_url = "https://api.watttime.org"
    auth_hint = "check WATTTIME_USERNAME / WATTTIME_PASSWORD or [providers.watttime]"
    #: Historical requests are limited to 30 days per call.
    chunk_s = 30 * 86400.0
    #: WattTime login tokens are valid for 30 minutes; renew a little earlier.
    token_life_s = 25 * 60.0

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._token: str | None = None
        self._token_until = 0.0
        self.signal_type = str(self.opts.get("signal_type", "co2_moer"))
        self.kind = "marginal" if self.signal_type == "co2_moer" else "average"

    def _region(self, zone: str) -> str:
        regions = self.opts.get("regions") or {}
        if zone in regions:
            return str(regions[zone])
        return provider_zone(zone) if ":" in zone else zone

    def _login(self) -> str:
        user, pw = self.opts.get("username"), self.opts.get("password")
        if not user or not pw:
            raise ProviderError(
                "watttime: no credentials; set WATTTIME_USERNAME and WATTTIME_PASSWORD or "
                "username/password in [providers.watttime] of config.toml"
            )
        doc = self.http.get_json("/login", basic_auth=(str(user), str(pw)))
        token = doc.get("token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("watttime: malformed response from /login (no token)")
        self.http.secrets = (*self.http.secrets, token)
        self._token, self._token_until = token, self.clock() + self.token_life_s
        return token

    def _get(self, path: str, params: dict[str, Any], ttl_s: float) -> Any:
        if self._token is None or self.clock() >= self._token_until:
            self._login()
        try:
            return self.http.get_json(
                path, params, headers={"Authorization": f"Bearer {self._token}"}, ttl_s=ttl_s
            )
        except ProviderError as e:
            if getattr(e, "status", None) != 401:
                raise
            self._login()  # token expired early: log in again once
            return self.http.get_json(
                path, params, headers={"Authorization": f"Bearer {self._token}"}, ttl_s=ttl_s
            )

    def _points(self, doc: Any, path: str) -> tuple[list[float], list[float], float | None, str]:
        items = parse_items(doc, "data", self.name, path)
        meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
        units = str(meta.get("units", "lbs_co2_per_mwh")).lower()
        if units == "lbs_co2_per_mwh":
            factor = G_PER_KWH_PER_LB_PER_MWH
            note = f"units lbs_co2_per_mwh x {G_PER_KWH_PER_LB_PER_MWH} = g/kWh"
        elif units in ("g_co2_per_kwh", "kg_co2_per_mwh"):
            factor, note = 1.0, f"units {units}"
        else:
            raise ProviderError(
                f"watttime: unexpected units {units!r} from {path}; greentrack reads "
                "lbs_co2_per_mwh (signal co2_moer / co2_aoer)"
            )
        t = [parse_instant(i.get("point_time"), self.name, "point_time") for i in items]
        v = [parse_number(i.get("value"), self.name, "value") * factor for i in items]
        period = meta.get("data_point_period_seconds")
        step = float(period) if isinstance(period, int | float) and period > 0 else None
        return t, v, step, note

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        region = self._region(zone)
        path = "/v3/historical"
        t: list[float] = []
        v: list[float] = []
        step: float | None = None
        note = ""
        c0, end = float(t0_s), max(float(t1_s), float(t0_s) + 300.0)
        while c0 < end:
            c1 = min(c0 + self.chunk_s, end)
            params = {
                "region": region,
                "signal_type": self.signal_type,
                "start": iso_utc(math.floor(c0)),
                "end": iso_utc(math.ceil(c1)),
            }
            doc = self._get(path, params, ttl_s=self._ttl(c1))
            ti, vi, step, note = self._points(doc, path)
            t.extend(ti)
            v.extend(vi)
            c0 = c1
        if not t:
            raise ProviderError(f"watttime: no data for {region} from {path}")
        detail = f"WattTime {path} region {region} signal {self.signal_type}; {note}"
        return self._series(
            zone, t, v, kind=self.kind, detail=detail, t0_s=t0_s, t1_s=t1_s, step_s=step
        )

    def forecast(self, zone: str, horizon_s: float) -> IntensitySeries:
        region = self._region(zone)
        path = "/v3/forecast"
        hours = max(1, min(72, math.ceil(horizon_s / 3600.0)))
        params = {"region": region, "signal_type": self.signal_type, "horizon_hours": hours}
        doc = self._get(path, params, ttl_s=self.ttl_recent_s)
        t, v, step, note = self._points(doc, path)
        if not t:
            raise ProviderError(f"watttime: empty forecast for {region}")
        detail = f"WattTime {path} region {region} signal {self.signal_type}; {note}; forecast"
        t0 = max(self.clock(), min(t))
        return self._series(
            zone, t, v, kind=self.kind, detail=detail, t0_s=t0, t1_s=t0 + horizon_s, step_s=step
        )
