"""Live carbon-intensity providers: real HTTP clients on the standard library (``urllib``).

* :class:`ElectricityMapsSource` — Electricity Maps API v3, average intensity
  (``/carbon-intensity/latest|history|past-range|forecast?zone=``, header ``auth-token``; token
  from ``[providers.electricitymaps] token`` or ``ELECTRICITYMAPS_TOKEN``).
* :class:`WattTimeSource` — WattTime API v3, marginal intensity (``co2_moer``): ``/login`` with
  HTTP basic auth gives a bearer token (kept in memory only), then ``/v3/historical`` and
  ``/v3/forecast``; values in lbs/MWh are converted to g/kWh. WattTime names its own regions
  (``CAISO_NORTH``); map greentrack zones in ``[providers.watttime.regions]``.
* :class:`UKCarbonIntensitySource` — the GB Carbon Intensity API (no key):
  ``/intensity``, ``/intensity/{from}/{to}``, ``/intensity/{from}/fw24h``; zone ``GB`` only.

Settings (``[providers.NAME]`` in ``config.toml``; NAME = electricitymaps, watttime, uk):
``url`` (base URL, e.g. a local test server), ``timeout_s`` (10), ``retries`` (3),
``backoff_s`` (0.5, doubled per retry, at most 8 s), ``max_retry_after_s`` (60: a longer
``Retry-After`` fails at once), ``cache`` (true), ``cache_ttl_s`` (300: latest values, recent
history, forecasts), ``cache_history_ttl_s`` (86400: intervals that ended over 2 h ago).

Retries: timeouts, connection errors, HTTP 429 (waiting ``Retry-After`` when given) and 5xx are
retried with exponential backoff; other HTTP errors and malformed bodies fail at once with a
:class:`~greentrack.errors.ProviderError`. ``get_source`` wraps each provider in a
:class:`~greentrack.carbon.sources.FallbackSource` so that a failure falls back to the static
source, recorded in provenance and warnings.

Cache: JSON files under ``$GREENTRACK_HOME/cache/intensity/`` (directory 0700, files 0600), named
by a hash of provider, URL path and query — never of a token. Tokens and passwords never
appear in errors, warnings, provenance or cache files.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greentrack.carbon._data import G_PER_KWH_PER_LB_PER_MWH
from greentrack.carbon.regular import regularise
from greentrack.carbon.sources import IntensityPoint, IntensitySource
from greentrack.errors import IntensityDataError, ProviderError, UnknownRegionError
from greentrack.security import mask_secrets
from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.config import Config

__all__ = [
    "ElectricityMapsSource",
    "HttpClient",
    "ResponseCache",
    "UKCarbonIntensitySource",
    "WattTimeSource",
]

_MAX_BODY_BYTES = 20 * 1024 * 1024
_USER_AGENT = "greentrack/0.1 (+https://github.com/greentrack)"


class ResponseCache:
    """Provider responses on disk with an expiry; user-only permissions.

    Files are ``<sha256 of the request key>.json`` holding ``{"stored_at": epoch_s, "body": ...}``.
    """

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.clock = clock

    def _path(self, key: list[Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return self.directory / f"{digest[:40]}.json"

    def get(self, key: list[Any], ttl_s: float) -> Any | None:
        """The stored body when younger than ``ttl_s`` seconds, else None."""
        path = self._path(key)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if self.clock() - float(doc["stored_at"]) <= ttl_s:
                return doc["body"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # corrupt entry: drop it
        return None

    def put(self, key: list[Any], body: Any) -> None:
        """Store ``body`` (JSON-serialisable) atomically with mode 0600."""
        for d in (self.directory.parent, self.directory):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"stored_at": self.clock(), "body": body}, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


class HttpClient:
    """GET JSON with timeouts, bounded retries (exponential backoff, ``Retry-After``) and a cache.

    Args:
        provider: name used in messages.
        base_url: URL prefix of every path.
        timeout_s: per-request timeout, seconds.
        retries: retries after the first attempt (timeouts, connection errors, 429, 5xx).
        backoff_s: first wait; doubled per retry, capped at ``max_backoff_s``.
        max_retry_after_s: a ``Retry-After`` longer than this fails at once.
        sleep: how to wait (injectable so that tests are fast).
        secrets: values masked out of every message (tokens, passwords).
        cache: response cache, or None.
        auth_hint: the fix shown with HTTP 401/403.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        secrets: tuple[str, ...] = (),
        cache: ResponseCache | None = None,
        auth_hint: str = "",
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.sleep = sleep
        self.secrets = tuple(s for s in secrets if s)
        self.cache = cache
        self.auth_hint = auth_hint

    def _fail(self, message: str, status: int | None = None) -> ProviderError:
        err = ProviderError(mask_secrets(f"{self.provider}: {message}", self.secrets))
        err.status = status  # type: ignore[attr-defined]
        return err

    def get_json(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        ttl_s: float | None = None,
    ) -> Any:
        """GET ``base_url + path`` and decode JSON; cached for ``ttl_s`` seconds when given."""
        query = urllib.parse.urlencode(params or {})
        shown = path + (f"?{query}" if query else "")
        url = self.base_url + shown
        key = [self.provider, self.base_url, path, sorted((params or {}).items())]
        if ttl_s and self.cache is not None:
            hit = self.cache.get(key, ttl_s)
            if hit is not None:
                return hit
        hdrs = {"Accept": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
        if basic_auth is not None:
            raw = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            hdrs["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        attempts = self.retries + 1
        for attempt in range(attempts):
            wait: float | None = None
            try:
                req = urllib.request.Request(url, headers=hdrs, method="GET")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as rsp:
                    body = rsp.read(_MAX_BODY_BYTES + 1)
                break
            except urllib.error.HTTPError as e:
                status = e.code
                snippet = _snippet(e)
                if status == 429 or status >= 500:
                    problem = f"HTTP {status} {e.reason} from {shown}{snippet}"
                    wait = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                    if wait is not None and wait > self.max_retry_after_s:
                        raise self._fail(
                            f"{problem}; Retry-After {wait:g} s is longer than "
                            f"max_retry_after_s={self.max_retry_after_s:g}; try again later",
                            status,
                        ) from None
                    last_status: int | None = status
                else:
                    hint = ""
                    if status in (401, 403):
                        hint = f"; {self.auth_hint}" if self.auth_hint else ""
                    elif status in (400, 404):
                        hint = "; check the zone/region name for this provider"
                    raise self._fail(
                        f"HTTP {status} {e.reason} from {shown}{snippet}{hint}", status
                    ) from None
            except (
                TimeoutError,
                urllib.error.URLError,
                ConnectionError,
                http.client.HTTPException,
                OSError,
            ) as e:
                reason = getattr(e, "reason", e)
                is_timeout = isinstance(e, TimeoutError) or isinstance(reason, TimeoutError)
                what = f"timed out after {self.timeout_s:g} s" if is_timeout else f"{reason}"
                problem = f"{what} ({shown})"
                last_status = None
            if attempt == attempts - 1:
                raise self._fail(
                    f"{problem}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}",
                    last_status,
                )
            if wait is None:
                wait = min(self.backoff_s * (2**attempt), self.max_backoff_s)
            self.sleep(wait)
        if len(body) > _MAX_BODY_BYTES:
            raise self._fail(f"response from {shown} is larger than {_MAX_BODY_BYTES} bytes")
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._fail(f"malformed response from {shown} (not JSON)") from None
        if ttl_s and self.cache is not None:
            self.cache.put(key, doc)
        return doc


def _snippet(e: urllib.error.HTTPError) -> str:
    try:
        text = e.read(300).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` seconds (number or HTTP date) -> seconds, or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _parse_instant(text: Any, provider: str, what: str) -> float:
    if not isinstance(text, str):
        raise ProviderError(f"{provider}: malformed response: {what} is not a time string")
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProviderError(f"{provider}: malformed response: cannot read time {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _number(x: Any, provider: str, what: str) -> float:
    if x is None:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ProviderError(f"{provider}: malformed response: {what} is {x!r}, not a number")
    return float(x)


def _items(doc: Any, key: str, provider: str, shown: str) -> list[dict[str, Any]]:
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ProviderError(
            f"{provider}: malformed response from {shown}: no list {key!r} in the body"
        )
    return items


class _LiveSource(IntensitySource):
    """Shared plumbing: settings, HTTP client, cache policy, building series."""

    settings_name = ""
    default_url = ""
    auth_hint = ""

    def __init__(
        self,
        config: Config,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        opts = config.provider_settings(self.settings_name)
        self.opts = opts
        self.clock = clock
        self.secrets = tuple(
            str(v) for k, v in opts.items() if any(w in k.lower() for w in ("token", "password"))
        )
        cache = None
        if opts.get("cache", True) is not False:
            cache = ResponseCache(config.home / "cache" / "intensity", clock)
        self.http = HttpClient(
            self.name,
            str(opts.get("url") or self.default_url),
            timeout_s=float(opts.get("timeout_s", 10.0)),
            retries=int(opts.get("retries", 3)),
            backoff_s=float(opts.get("backoff_s", 0.5)),
            max_retry_after_s=float(opts.get("max_retry_after_s", 60.0)),
            sleep=sleep,
            secrets=self.secrets,
            cache=cache,
            auth_hint=self.auth_hint,
        )
        self.ttl_recent_s = float(opts.get("cache_ttl_s", 300.0))
        self.ttl_past_s = float(opts.get("cache_history_ttl_s", 86400.0))

    def _ttl(self, t1_s: float) -> float:
        return self.ttl_past_s if t1_s < self.clock() - 7200.0 else self.ttl_recent_s

    def _series(
        self,
        zone: str,
        t: list[float],
        v: list[float],
        *,
        kind: str,
        detail: str,
        t0_s: float | None = None,
        t1_s: float | None = None,
        step_s: float | None = None,
    ) -> IntensitySeries:
        from greentrack.carbon.series import IntensitySeries, Provenance

        try:
            reg = regularise(
                np.asarray(t, dtype=np.float64),
                np.asarray(v, dtype=np.float64),
                where=f"{self.name} data for {zone}",
                step_s=step_s,
            )
        except IntensityDataError as e:
            raise ProviderError(str(e)) from None
        notes = list(reg.notes)
        period = f"{iso_utc(reg.start_s[0])}/{iso_utc(reg.start_s[-1])}"
        series = IntensitySeries(
            reg.start_s, reg.g_per_kwh, reg.step_s, Provenance(self.name, zone, kind, period, "")
        )
        if t0_s is not None and t1_s is not None:
            if not series.covers(t0_s, t1_s):
                notes.append(
                    f"data covers {period} (+ one step); edge values extended to "
                    f"{iso_utc(t0_s)}/{iso_utc(t1_s)}"
                )
            series = series.slice(t0_s, t1_s)
        full = "; ".join([detail, *notes])
        return IntensitySeries(
            series.start_s,
            series.g_per_kwh,
            series.step_s,
            Provenance(self.name, zone, kind, period, full),
        )


def _provider_zone(zone: str) -> str:
    """The zone to send: a cloud region's Electricity Maps zone, else the canonical zone."""
    from greentrack.carbon.regions import zone_info

    try:
        info = zone_info(zone)
    except UnknownRegionError:
        return zone
    return info.em_zone or info.zone


class ElectricityMapsSource(_LiveSource):
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
            t.append(_parse_instant(it.get("datetime"), self.name, "datetime"))
            v.append(_number(it.get("carbonIntensity"), self.name, "carbonIntensity"))
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
        z = _provider_zone(zone)
        headers = self._headers()
        now = self.clock()
        items: list[dict[str, Any]] = []
        if t0_s >= now - 23 * 3600.0:
            endpoint = "/carbon-intensity/history"
            doc = self.http.get_json(
                endpoint, {"zone": z, **self._extra()}, headers=headers, ttl_s=self.ttl_recent_s
            )
            items = _items(doc, "history", self.name, endpoint)
        else:
            endpoint = "/carbon-intensity/past-range"
            c0 = math.floor(t0_s / 3600.0) * 3600.0
            end = math.ceil(max(t1_s, t0_s + 1.0) / 3600.0) * 3600.0
            while c0 < end:
                c1 = min(c0 + self.chunk_s, end)
                params = {"zone": z, "start": iso_utc(c0), "end": iso_utc(c1), **self._extra()}
                doc = self.http.get_json(endpoint, params, headers=headers, ttl_s=self._ttl(c1))
                items.extend(_items(doc, "data", self.name, endpoint))
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

        z = _provider_zone(zone)
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
        z = _provider_zone(zone)
        endpoint = "/carbon-intensity/forecast"
        doc = self.http.get_json(
            endpoint,
            {"zone": z, **self._extra()},
            headers=self._headers(),
            ttl_s=self.ttl_recent_s,
        )
        t, v, efts, est = self._points(_items(doc, "forecast", self.name, endpoint))
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


class WattTimeSource(_LiveSource):
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
        return _provider_zone(zone) if ":" in zone else zone

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
        items = _items(doc, "data", self.name, path)
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
        t = [_parse_instant(i.get("point_time"), self.name, "point_time") for i in items]
        v = [_number(i.get("value"), self.name, "value") * factor for i in items]
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


class UKCarbonIntensitySource(_LiveSource):
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
            t.append(_parse_instant(it.get("from"), self.name, "from"))
            intensity = it.get("intensity")
            if not isinstance(intensity, dict):
                raise ProviderError(f"{self.name}: malformed response: no 'intensity' object")
            value = intensity.get(prefer)
            if value is None and prefer == "actual":
                value = intensity.get("forecast")
                used_forecast += value is not None
            v.append(_number(value, self.name, prefer))
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
            ti, vi, ui = self._points(_items(doc, "data", self.name, path), "actual")
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
        t, v, used = self._points(_items(doc, "data", self.name, "/intensity"), "actual")
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
        t, v, _ = self._points(_items(doc, "data", self.name, path), "forecast")
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
