"""Live providers against a local HTTP server: parsing, auth, retries, timeouts, cache, fallback.

Every test starts its own server on 127.0.0.1 (port 0); nothing touches the internet.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from greentrack.carbon.base import FallbackSource
from greentrack.carbon.electricitymaps import ElectricityMapsSource
from greentrack.carbon.registry import get_source
from greentrack.carbon.static import static_intensity
from greentrack.carbon.uk import UKCarbonIntensitySource
from greentrack.carbon.watttime import WattTimeSource
from greentrack.config import load_config
from greentrack.errors import ProviderError

TOKEN = "sekrit-em-token-123"
PASSWORD = "hunter2-wt-password"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class LocalServer:
    """A JSON HTTP server in a thread. ``add(path, *responses)`` queues responses for a path.

    A path ending in ``*`` matches by prefix. A response is ``(status, body)`` or
    ``(status, body, headers)`` or ``(status, body, headers,
    delay_s)``; ``body`` is JSON-encoded unless it is ``bytes``. The last response of a path
    repeats. Requests are recorded as ``(method, path, query, headers)`` (header names lower-case).
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                server.requests.append(
                    (
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
                queue = server.routes.get(parts.path)
                if queue is None:  # "prefix*" routes
                    for key, value in server.routes.items():
                        if key.endswith("*") and parts.path.startswith(key[:-1]):
                            queue = value
                if not queue:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "not found"}')
                    return
                resp = queue.pop(0) if len(queue) > 1 else queue[0]
                status, body = resp[0], resp[1]
                headers = resp[2] if len(resp) > 2 else {}
                if len(resp) > 3:
                    time.sleep(resp[3])
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_PUT = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, *responses: tuple) -> None:
        self.routes[path] = list(responses)

    def hits(self, path: str) -> list[tuple]:
        return [r for r in self.requests if r[1] == path]

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


def config_for(server: LocalServer, name: str, **opts: Any):
    cfg = load_config()
    cfg.providers[name] = {"url": server.url, "backoff_s": 0.5, **opts}
    return cfg


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def iso(t: float) -> str:
    from greentrack.timefmt import iso_utc

    return iso_utc(t)


def em_points(t0: float, values: list[float | None]) -> list[dict[str, Any]]:
    return [
        {
            "zone": "DE",
            "carbonIntensity": v,
            "datetime": iso(t0 + 3600 * i).replace("Z", ".000Z"),
            "updatedAt": "2023-11-14T22:00:00.000Z",
            "emissionFactorType": "lifecycle",
            "isEstimated": i == 0,
        }
        for i, v in enumerate(values)
    ]


# -- Electricity Maps -------------------------------------------------------------------------


def test_electricitymaps_history_latest_and_forecast(server):
    h0 = NOW - (NOW % 3600) - 5 * 3600
    server.add(
        "/carbon-intensity/history",
        (200, {"zone": "DE", "history": em_points(h0, [300, 310, None, 330, 340, 350])}),
    )
    server.add("/carbon-intensity/latest", (200, em_points(h0 + 5 * 3600, [355])[0]))
    f0 = NOW - (NOW % 3600)
    server.add(
        "/carbon-intensity/forecast",
        (200, {"zone": "DE", "forecast": em_points(f0, [200, 210, 220, 230]), "updatedAt": "x"}),
    )
    src = ElectricityMapsSource(
        config_for(server, "electricitymaps", token=TOKEN), clock=lambda: NOW
    )
    s = src.series("DE", h0 + 1800, h0 + 4 * 3600)
    assert s.step_s == 3600 and s.start_s[0] == h0
    assert list(s.g_per_kwh) == [300, 310, 320, 330]  # the null hour interpolated
    p = s.provenance
    assert p.source == "electricitymaps" and p.zone == "DE" and p.kind == "average"
    assert "emissionFactorType lifecycle" in p.detail and "1 estimated point" in p.detail
    assert "1 missing step filled" in p.detail
    ((_, _, query, headers),) = server.hits("/carbon-intensity/history")
    assert query == {"zone": ["DE"]} and headers["auth-token"] == TOKEN
    point = src.at("DE", NOW)
    assert point.g_per_kwh == 355 and point.provenance.source == "electricitymaps"
    fc = src.forecast("DE", 2 * 3600)
    assert list(fc.g_per_kwh) == [200, 210, 220] and "forecast" in fc.provenance.detail
    for text in (p.detail, point.provenance.detail, fc.provenance.detail):
        assert TOKEN not in text


def test_electricitymaps_past_range_in_chunks_and_cloud_zone(server):
    t0 = 1_640_995_200.0  # 2022-01-01T00:00Z
    server.add(
        "/carbon-intensity/past-range",
        (200, {"zone": "US-MIDA-PJM", "data": em_points(t0, [400.0] * 240)}),
        (200, {"zone": "US-MIDA-PJM", "data": em_points(t0 + 240 * 3600, [500.0] * 48)}),
    )
    src = ElectricityMapsSource(
        config_for(server, "electricitymaps", token=TOKEN), clock=lambda: NOW
    )
    s = src.series("aws:us-east-1", t0, t0 + 12 * 86400)
    hits = server.hits("/carbon-intensity/past-range")
    assert len(hits) == 2  # 10 days per request
    assert hits[0][2]["zone"] == ["US-MIDA-PJM"]  # the cloud region's Electricity Maps zone
    assert hits[0][2]["start"] == ["2022-01-01T00:00:00Z"]
    assert hits[0][2]["end"] == ["2022-01-11T00:00:00Z"] == hits[1][2]["start"]
    assert s.provenance.zone == "aws:us-east-1"
    assert s.at(t0 + 3600) == 400.0 and s.at(t0 + 11 * 86400) == 500.0
    assert "edge values extended" not in s.provenance.detail  # 288 hourly steps cover 12 days


def test_401_falls_back_to_static_and_says_why_without_the_token(server):
    server.add("/carbon-intensity/history", (401, {"message": f"bad token {TOKEN}"}))
    cfg = config_for(server, "electricitymaps", token=TOKEN)
    src = get_source("electricitymaps", cfg)
    assert isinstance(src, FallbackSource)
    src.primary.clock = lambda: NOW
    s = src.series("ES", NOW - 3600, NOW)
    g, _ = static_intensity("ES")
    assert s.g_per_kwh[0] == g and s.provenance.source == "codecarbon-static"
    assert "fallback: codecarbon-static (reason: electricitymaps: HTTP 401" in s.provenance.detail
    assert "ELECTRICITYMAPS_TOKEN" in s.provenance.detail  # the fix
    (warning,) = src.pop_warnings()
    assert "HTTP 401" in warning and "codecarbon-static" in warning
    assert src.pop_warnings() == []
    for text in (s.provenance.detail, warning):
        assert TOKEN not in text and "***" in text
    assert len(server.hits("/carbon-intensity/history")) == 1  # 401 is not retried


def test_missing_token_falls_back_without_a_request(server):
    src = get_source("electricitymaps", config_for(server, "electricitymaps"))
    point = src.at("FR", NOW)
    assert "no API token" in point.provenance.detail
    assert server.requests == []


def test_429_waits_retry_after_then_succeeds(server):
    h0 = NOW - (NOW % 3600) - 3600
    ok = (200, {"zone": "DE", "history": em_points(h0, [100, 200])})
    server.add("/carbon-intensity/history", (429, {"m": "slow down"}, {"Retry-After": "7"}), ok)
    sleeps = Sleeps()
    src = ElectricityMapsSource(
        config_for(server, "electricitymaps", token=TOKEN), clock=lambda: NOW, sleep=sleeps
    )
    s = src.series("DE", h0, h0 + 7200)
    assert sleeps == [7.0] and list(s.g_per_kwh) == [100, 200]


def test_429_with_a_long_retry_after_gives_up_at_once(server):
    server.add("/carbon-intensity/history", (429, {}, {"Retry-After": "3600"}))
    sleeps = Sleeps()
    src = ElectricityMapsSource(
        config_for(server, "electricitymaps", token=TOKEN), clock=lambda: NOW, sleep=sleeps
    )
    with pytest.raises(ProviderError, match="Retry-After 3600 s is longer than"):
        src.series("DE", NOW - 3600, NOW)
    assert sleeps == []


def test_5xx_retries_with_exponential_backoff_then_fails_and_falls_back(server):
    server.add("/carbon-intensity/history", (503, {"m": "down"}))
    sleeps = Sleeps()
    cfg = config_for(server, "electricitymaps", token=TOKEN, retries=3)
    live = ElectricityMapsSource(cfg, clock=lambda: NOW, sleep=sleeps)
    with pytest.raises(ProviderError, match=r"HTTP 503 .* gave up after 4 attempts"):
        live.series("DE", NOW - 3600, NOW)
    assert sleeps == [0.5, 1.0, 2.0]
    fb = FallbackSource(live, get_source("static", cfg))
    s = fb.series("DE", NOW - 3600, NOW)
    assert "fallback: codecarbon-static (reason: electricitymaps: HTTP 503" in s.provenance.detail


def test_timeout_is_retried_then_recorded_as_fallback(server):
    h0 = NOW - (NOW % 3600)
    server.add("/carbon-intensity/history", (200, {"history": em_points(h0, [1.0])}, {}, 1.0))
    cfg = config_for(server, "electricitymaps", token=TOKEN, timeout_s=0.2, retries=1)
    sleeps = Sleeps()
    live = ElectricityMapsSource(cfg, clock=lambda: NOW, sleep=sleeps)
    t = time.perf_counter()
    s = FallbackSource(live, get_source("static", cfg)).series("DE", NOW - 60, NOW)
    assert time.perf_counter() - t < 1.5
    assert (
        "timed out after 0.2 s" in s.provenance.detail and "gave up after 2" in s.provenance.detail
    )
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"<html>oops</html>", "not JSON"),
        ({"zone": "DE"}, "no list 'history'"),
        ({"history": [{"datetime": "yesterday", "carbonIntensity": 1}]}, "cannot read time"),
        (
            {"history": [{"datetime": "2023-11-14T21:00:00Z", "carbonIntensity": "high"}]},
            "not a number",
        ),
    ],
)
def test_malformed_bodies_fail_once_and_fall_back(server, body, pattern):
    server.add("/carbon-intensity/history", (200, body))
    cfg = config_for(server, "electricitymaps", token=TOKEN, cache=False)
    live = ElectricityMapsSource(cfg, clock=lambda: NOW, sleep=Sleeps())
    with pytest.raises(ProviderError, match=pattern) as e:
        live.series("DE", NOW - 3600, NOW)
    assert "\n" not in str(e.value)
    assert len(server.hits("/carbon-intensity/history")) == 1
    s = FallbackSource(live, get_source("static", cfg)).series("DE", NOW - 3600, NOW)
    assert "fallback: codecarbon-static" in s.provenance.detail


def test_cache_files_are_private_and_reused_and_never_named_by_token(server, gt_home):
    h0 = NOW - (NOW % 3600) - 3600
    server.add("/carbon-intensity/history", (200, {"history": em_points(h0, [100, 200])}))
    cfg = config_for(server, "electricitymaps", token=TOKEN)
    a = ElectricityMapsSource(cfg, clock=lambda: NOW).series("DE", h0, h0 + 7200)
    b = ElectricityMapsSource(cfg, clock=lambda: NOW + 60).series("DE", h0, h0 + 7200)
    assert list(a.g_per_kwh) == list(b.g_per_kwh)
    assert len(server.hits("/carbon-intensity/history")) == 1  # second answer from the cache
    cache = gt_home / "cache" / "intensity"
    files = list(cache.iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(gt_home / "cache").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert TOKEN not in files[0].name and TOKEN not in files[0].read_text()
    # Expired (default 300 s for recent data): asked again.
    ElectricityMapsSource(cfg, clock=lambda: NOW + 1000).series("DE", h0, h0 + 7200)
    assert len(server.hits("/carbon-intensity/history")) == 2


# -- WattTime ---------------------------------------------------------------------------------


def wt_data(t0: float, values: list[float], period: int = 300) -> dict[str, Any]:
    return {
        "data": [
            {"point_time": iso(t0 + period * i).replace("Z", "+00:00"), "value": v, "version": "x"}
            for i, v in enumerate(values)
        ],
        "meta": {
            "region": "CAISO_NORTH",
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "data_point_period_seconds": period,
            "warnings": [],
        },
    }


def test_watttime_login_historical_forecast_and_relogin(server):
    t0 = 1_656_633_600.0  # 2022-07-01T00:00Z
    server.add("/login", (200, {"token": "jwt-1"}), (200, {"token": "jwt-2"}))
    server.add(
        "/v3/historical",
        (200, wt_data(t0, [1000.0, 1100.0, 1200.0])),
        (401, {"error": "expired"}),
        (200, wt_data(t0, [900.0, 900.0, 900.0])),
    )
    server.add("/v3/forecast", (200, wt_data(NOW - (NOW % 300), [800.0] * 24)))
    cfg = config_for(
        server,
        "watttime",
        username="alice",
        password=PASSWORD,
        regions={"US-CAL-CISO": "CAISO_NORTH"},
    )
    src = WattTimeSource(cfg, clock=lambda: NOW, sleep=Sleeps())
    s = src.series("US-CAL-CISO", t0, t0 + 900)
    assert s.step_s == 300.0 and s.provenance.kind == "marginal"
    np.testing.assert_allclose(s.g_per_kwh, np.array([1000.0, 1100.0, 1200.0]) * 0.45359237)
    assert "lbs_co2_per_mwh x 0.45359237" in s.provenance.detail
    ((_, _, _, login_headers),) = server.hits("/login")
    user_pw = base64.b64decode(login_headers["authorization"].split()[1]).decode()
    assert user_pw == f"alice:{PASSWORD}"
    ((_, _, query, headers),) = server.hits("/v3/historical")
    assert headers["authorization"] == "Bearer jwt-1"
    assert query["region"] == ["CAISO_NORTH"] and query["signal_type"] == ["co2_moer"]
    # A 401 on data: log in once more, retry with the new token.
    s2 = src.series("US-CAL-CISO", t0 + 86400 * 40, t0 + 86400 * 40 + 900)
    assert len(server.hits("/login")) == 2
    assert server.hits("/v3/historical")[-1][3]["authorization"] == "Bearer jwt-2"
    assert s2.g_per_kwh[0] == pytest.approx(900 * 0.45359237)
    fc = src.forecast("CAISO_NORTH", 3600)  # WattTime's own region names are accepted
    assert fc.provenance.kind == "marginal" and len(fc) == 13
    assert server.hits("/v3/forecast")[0][2]["horizon_hours"] == ["1"]


def test_watttime_failure_without_static_figure_raises_masked(server):
    server.add("/login", (403, {"error": f"invalid password {PASSWORD} for alice"}))
    cfg = config_for(server, "watttime", username="alice", password=PASSWORD)
    src = get_source("watttime", cfg)
    with pytest.raises(ProviderError) as e:
        src.series("CAISO_NORTH", NOW - 600, NOW)
    msg = str(e.value)
    assert "HTTP 403" in msg and "fallback failed too" in msg
    assert PASSWORD not in msg and "\n" not in msg
    s = src.series("US-CAL-CISO", NOW - 600, NOW)  # a greentrack zone: static stand-in
    assert "fallback: codecarbon-static (reason: watttime: HTTP 403" in s.provenance.detail
    assert PASSWORD not in s.provenance.detail
    assert s.provenance.kind == "average"  # the fallback figure is an average, and says so


# -- UK Carbon Intensity ----------------------------------------------------------------------


def uk_data(t0: float, pairs: list[tuple[float | None, float]]) -> dict[str, Any]:
    out = []
    for i, (actual, forecast) in enumerate(pairs):
        a, b = t0 + 1800 * i, t0 + 1800 * (i + 1)
        out.append(
            {
                "from": iso(a)[:16] + "Z",
                "to": iso(b)[:16] + "Z",
                "intensity": {"forecast": forecast, "actual": actual, "index": "moderate"},
            }
        )
    return {"data": out}


def test_uk_range_current_and_forecast(server):
    t0 = 1_646_092_800.0  # 2022-03-01T00:00Z
    path = "/intensity/2022-03-01T00:00Z/2022-03-01T02:00Z"
    server.add(path, (200, uk_data(t0, [(200, 210), (None, 220), (180, 190), (170, 160)])))
    now_slot = NOW - (NOW % 1800)
    server.add("/intensity", (200, uk_data(now_slot, [(None, 150)])))
    fw = f"/intensity/{iso(NOW)[:16]}Z/fw24h"
    server.add(fw, (200, uk_data(now_slot, [(None, 100 + i) for i in range(48)])))
    src = UKCarbonIntensitySource(config_for(server, "uk"), clock=lambda: NOW)
    s = src.series("uk", t0, t0 + 7200)
    assert s.step_s == 1800 and list(s.g_per_kwh) == [200, 220, 180, 170]
    assert "1 half-hour without an actual value use the forecast" in s.provenance.detail
    point = src.at("GB", NOW)
    assert point.g_per_kwh == 150 and "forecast value" in point.provenance.detail
    fc = src.forecast("GB", 3 * 3600)
    assert fc.g_per_kwh[0] == 100 and len(fc) == 7


def test_uk_other_zone_falls_back(server):
    src = get_source("uk", config_for(server, "uk"))
    point = src.at("FR", NOW)
    assert "covers Great Britain (GB) only" in point.provenance.detail
    assert point.provenance.source == "codecarbon-static"
    assert server.requests == []
