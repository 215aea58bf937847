"""What the live providers share: an HTTP client on the standard library (``urllib``), a response
cache on disk, and :class:`LiveSource`, the base class that wires them to a provider's settings.

Settings (``[providers.NAME]`` in ``config.toml``; NAME = electricitymaps, watttime, uk):
``url`` (base URL, e.g. a local test server), ``timeout_s`` (10), ``retries`` (3),
``backoff_s`` (0.5, doubled per retry, at most 8 s), ``max_retry_after_s`` (60: a longer
``Retry-After`` fails at once), ``cache`` (true), ``cache_ttl_s`` (300: latest values, recent
history, forecasts), ``cache_history_ttl_s`` (86400: intervals that ended over 2 h ago).

Retries: timeouts, connection errors, HTTP 429 (waiting ``Retry-After`` when given) and 5xx are
retried with exponential backoff; other HTTP errors and malformed bodies fail at once with a
:class:`~greentrack.errors.ProviderError`. :func:`~greentrack.carbon.registry.get_source` wraps
each provider in a :class:`~greentrack.carbon.base.FallbackSource` so that a failure falls back
to the static source, recorded in provenance and warnings.

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

from greentrack.carbon.base import IntensitySource
from greentrack.carbon.regular import regularise
from greentrack.errors import IntensityDataError, ProviderError, UnknownRegionError
from greentrack.security import mask_secrets
from greentrack.timefmt import iso_utc

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.config import Config

__all__ = [
    "HttpClient",
    "LiveSource",
    "ResponseCache",
    "parse_instant",
    "parse_items",
    "parse_number",
    "provider_zone",
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


def parse_instant(text: Any, provider: str, what: str) -> float:
    if not isinstance(text, str):
        raise ProviderError(f"{provider}: malformed response: {what} is not a time string")
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProviderError(f"{provider}: malformed response: cannot read time {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_number(x: Any, provider: str, what: str) -> float:
    if x is None:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ProviderError(f"{provider}: malformed response: {what} is {x!r}, not a number")
    return float(x)


def parse_items(doc: Any, key: str, provider: str, shown: str) -> list[dict[str, Any]]:
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ProviderError(
            f"{provider}: malformed response from {shown}: no list {key!r} in the body"
        )
    return items


class LiveSource(IntensitySource):
    """Shared plumbing of a live provider: settings, HTTP client, cache policy, building series.

    A provider sets the class attributes below (and ``name``, ``kind``), implements
    :meth:`series` (and, where the API has them, ``at`` and ``forecast``) with ``self.http``,
    and builds its series with :meth:`_series` (regularised, sliced, provenance filled in).
    Built as ``cls(config)`` by :func:`~greentrack.carbon.registry.get_source`.
    """

    #: Its section of ``config.toml``: ``[providers.<settings_name>]``.
    settings_name = ""
    #: The API's base URL (``url`` in the settings replaces it, e.g. with a local test server).
    default_url = ""
    #: The fix shown with HTTP 401/403.
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


def provider_zone(zone: str) -> str:
    """The zone to send: a cloud region's Electricity Maps zone, else the canonical zone."""
    from greentrack.carbon.regions import zone_info

    try:
        info = zone_info(zone)
    except UnknownRegionError:
        return zone
    return info.em_zone or info.zone
