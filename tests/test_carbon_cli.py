"""``greentrack intensity`` and ``greentrack whatif`` as a user runs them (click's CliRunner)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_carbon_providers import LocalServer, uk_data

from greentrack.carbon.static import static_intensity
from greentrack.cli import main

DATA = Path(__file__).resolve().parent / "data"
EM_SLICE = DATA / "em_ES_2022-03-01_4d.csv"
EIA_SLICE = DATA / "CISO_NG_avgCI_2022-01-04_3d.csv"


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_intensity_static_json_has_the_contract_keys():
    code, out, err = invoke("intensity", "esp", "--at", "2022-03-01T19:00Z", "--format", "json")
    assert code == 0, out + err
    data = json.loads(out)
    assert set(data) == {"zone", "at", "g_per_kwh", "kind", "source"}
    assert data["zone"] == "ES" and data["at"] == "2022-03-01T19:00:00Z"
    assert data["g_per_kwh"] == static_intensity("ES")[0] and data["kind"] == "average"
    assert set(data["source"]) == {"name", "zone", "kind", "period", "detail"}
    assert data["source"]["name"] == "codecarbon-static"


def test_intensity_from_csv_at_a_time_with_offset():
    code, out, _ = invoke(
        "intensity", "--csv", EM_SLICE, "--at", "2022-03-01T20:00+01:00", "--format", "json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["zone"] == "ES" and data["g_per_kwh"] == 198.13  # the file's 19:00Z value
    assert data["source"]["name"] == "csv"
    code, out, _ = invoke("intensity", "ES", "--csv", EM_SLICE, "--at", "2022-03-01T19:00")
    assert code == 0 and "ES  198.1 g CO2e/kWh (average)  at 2022-03-01T19:00:00Z" in out
    assert "source: csv ES average 2022-03-01T00:00:00Z/2022-03-04T23:00:00Z" in out


def test_intensity_eia930_slice_table():
    code, out, _ = invoke("intensity", "--csv", EIA_SLICE, "--at", "2022-01-05T10:00Z")
    assert code == 0 and out.startswith("US-CAL-CISO ") and "filled by linear interpolation" in out


def test_intensity_default_region_warns_on_stderr():
    code, out, err = invoke("intensity", "--format", "json")
    assert code == 0 and json.loads(out)["zone"] == "WORLD"
    assert err.startswith("Warning: no region set")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["intensity", "Spian"], "Error: unknown region 'Spian'; closest matches:"),
        (["intensity", "ES", "--forecast", "24h"], "Error: codecarbon-static has no forecasts"),
        (["intensity", "ES", "--forecast", "24"], "Error: cannot read --forecast '24'"),
        (["intensity", "ES", "--at", "tomorrow"], "Error: cannot read the time 'tomorrow'"),
        (["intensity", "ES", "--source", "wattime"], "did you mean watttime?"),
        (
            ["intensity", "FR", "--csv", str(EM_SLICE), "--at", "2022-03-01T00:00Z"],
            "Error: the CSV data is for ES, not FR",
        ),
        (["intensity", "--csv", "/nonexistent.csv"], "Error: /nonexistent.csv: cannot open"),
        (["intensity", "--csv", str(EM_SLICE)], "Error: the CSV data covers"),
    ],
)
def test_intensity_errors_are_one_line(args, message):
    code, _, err = invoke(*args)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_intensity_forecast_from_a_local_uk_server(gt_home):
    now = time.time()
    slot = now - now % 1800
    with LocalServer() as server:
        server.add("/intensity/*", (200, uk_data(slot, [(None, 100 + i) for i in range(48)])))
        gt_home.mkdir(parents=True, exist_ok=True)
        (gt_home / "config.toml").write_text(f'[providers.uk]\nurl = "{server.url}"\n')
        code, out, err = invoke("intensity", "GB", "--source", "uk", "--forecast", "2h",
                                "--format", "json")  # fmt: skip
        assert code == 0, err
        data = json.loads(out)
        assert data["zone"] == "GB" and data["step_s"] == 1800.0
        assert [p["g_per_kwh"] for p in data["points"]][:2] == [100.0, 101.0]
        assert data["source"]["name"] == "uk-carbon-intensity"
        assert server.requests[0][1].endswith("/fw24h")
        code, out, _ = invoke("intensity", "GB", "--source", "uk", "--forecast", "1h")
        assert code == 0 and "GB forecast (average, g CO2e/kWh, step 1800 s)" in out


def test_intensity_provider_fallback_is_shown(gt_home):
    with LocalServer() as server:
        server.add("/carbon-intensity/latest", (401, {"message": "Invalid auth-token"}))
        gt_home.mkdir(parents=True, exist_ok=True)
        (gt_home / "config.toml").write_text(
            f'[providers.electricitymaps]\nurl = "{server.url}"\ntoken = "tok-abcdef"\n'
        )
        code, out, err = invoke(
            "intensity", "ES", "--source", "electricitymaps", "--format", "json"
        )
        assert code == 0
        assert "Warning: electricitymaps failed" in err and "HTTP 401" in err
        assert "tok-abcdef" not in out + err
        assert "fallback: codecarbon-static" in json.loads(out)["source"]["detail"]


def test_whatif_command(sqlite_url):
    import greentrack as gt
    from greentrack.meters import ReplayMeter

    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    with gt.track("w", project="cli", db=sqlite_url, meters=[meter], region="ES",
                  interval_s=0.05) as run:  # fmt: skip
        time.sleep(0.2)
    code, out, err = invoke(
        "whatif", run.id, "--region", "SE3", "--db", sqlite_url, "--format", "json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert {"run", "region", "start", "co2e_g", "original_co2e_g"} <= set(data)
    assert data["run"] == run.id and data["region"] == "SE-SE3"
    ratio = static_intensity("SE3")[0] / static_intensity("ES")[0]
    assert data["co2e_g"] == pytest.approx(data["original_co2e_g"] * ratio, rel=1e-6)
    code, out, _ = invoke("whatif", run.id[:6], "--region", "FR", "--db", sqlite_url)
    assert code == 0 and "what-if:" in out and "original:" in out
    code, _, err = invoke("whatif", "nope", "--db", sqlite_url)
    assert code == 1 and err.startswith("Error:")
    code, _, err = invoke("whatif", run.id, "--db", sqlite_url, "--csv", str(EM_SLICE))
    assert code == 1 and "Error: the CSV data covers" in err  # the run is not in March 2022
    code, out, err = invoke("whatif", run.id, "--db", sqlite_url, "--csv", str(EM_SLICE),
                            "--start", "2022-03-02T12:00Z", "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["start"] == "2022-03-02T12:00:00Z"


def test_help_has_examples():
    for cmd in ("intensity", "whatif"):
        code, out, _ = invoke(cmd, "--help")
        assert code == 0 and "Example:" in out
