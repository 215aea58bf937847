"""``greentrack schedule`` and ``greentrack schedule study`` through click, and the examples."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from greentrack.cli import main

REPO = Path(__file__).resolve().parent.parent
EM_HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
    "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
    "Data Source,Data Estimated,Data Estimation Method"
)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def es2022(shared_data: Path) -> str:
    return str(shared_data / "electricitymaps" / "ES_2022_hourly.csv")


def _em_csv(path: Path, start_s: float, values) -> str:
    rows = [EM_HEADER]
    for i, v in enumerate(values):
        t = datetime.fromtimestamp(start_s + i * 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{t},Spain,Spain,ES,{v},{v},50,20,test,false,")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- planning


def test_plan_table_and_json_contract(es2022):
    base = [
        "schedule",
        "--csv",
        es2022,
        "--at",
        "2022-03-01T08:00Z",
        "--duration",
        "6h",
        "--within",
        "24h",
    ]
    r = invoke(*base)
    assert r.exit_code == 0, r.output
    assert "Flexible Start plan for a 6h job" in r.output and "saving" in r.output
    r = invoke(*base, "--format", "json")
    d = json.loads(r.output)
    assert {
        "strategy",
        "start",
        "segments",
        "expected_co2e_g",
        "run_now_co2e_g",
        "saving_pct",
        "source",
    } <= d.keys()
    assert d["strategy"] == "flexible_start"
    assert d["start"].endswith("Z") and all(s["end"].endswith("Z") for s in d["segments"])
    assert d["saving_pct"] == pytest.approx(100 * (1 - d["expected_co2e_g"] / d["run_now_co2e_g"]))
    assert d["source"]["name"] == "csv" and d["source"]["zone"] == "ES"
    assert d["submitted"] == "2022-03-01T08:00:00Z" and d["deadline"] == "2022-03-02T14:00:00Z"
    assert d["energy_kwh"] == pytest.approx(6.0)  # 1 kW by default
    # the same window with pauses allowed can only do better
    pr = json.loads(invoke(*base, "--pause-resume", "--min-run", "1h", "--format", "json").output)
    assert pr["strategy"] == "pause_resume"
    assert pr["expected_co2e_g"] <= d["expected_co2e_g"] + 1e-9
    assert pr["run_now_co2e_g"] == pytest.approx(d["run_now_co2e_g"])
    # power scales the figures
    half = json.loads(invoke(*base, "--power-w", "500", "--format", "json").output)
    assert half["expected_co2e_g"] == pytest.approx(d["expected_co2e_g"] / 2)


def test_deadline_and_time_zones(es2022):
    a = json.loads(
        invoke(
            "schedule",
            "--csv",
            es2022,
            "--at",
            "2022-03-01T09:00+01:00",
            "--duration",
            "2h",
            "--deadline",
            "2022-03-01T20:00Z",
            "--format",
            "json",
        ).output
    )
    b = json.loads(
        invoke(
            "schedule",
            "--csv",
            es2022,
            "--at",
            "2022-03-01T09:00",
            "--tz",
            "Europe/Madrid",
            "--duration",
            "2h",
            "--within",
            "10h",
            "--format",
            "json",
        ).output
    )
    assert a["submitted"] == b["submitted"] == "2022-03-01T08:00:00Z"
    assert a["deadline"] == b["deadline"] == "2022-03-01T20:00:00Z"
    assert a["start"] == b["start"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--duration", "6h", "--deadline", "2022-03-01T10:00Z"], "too early"),
        (["--duration", "6", "--within", "1h"], "cannot read the duration"),
        (["--duration", "6h"], "--within"),
        (["--duration", "6h", "--within", "1h", "--deadline", "2022-03-02T00:00Z"], "not both"),
        (
            [
                "--duration",
                "1h",
                "--within",
                "1h",
                "--tz",
                "Europe/Madrid",
                "--at",
                "2022-03-27T02:30",
            ],
            "does not exist in Europe/Madrid",
        ),
        (["--duration", "1h", "--within", "1h", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["--duration", "6h", "--within", "1h", "--min-run", "1h"], "need --pause-resume"),
        (["--duration", "6h", "--within", "40d"], "use --within 730h or less"),
    ],
)
def test_bad_input_is_one_line(es2022, extra, message):
    args = ["schedule", "--csv", es2022]
    if "--at" not in extra:
        args += ["--at", "2022-12-01T08:00Z"]
    r = CliRunner().invoke(main, [*args, *extra])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and message in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_no_region_no_csv_is_a_clear_error():
    r = CliRunner().invoke(main, ["schedule", "--duration", "1h", "--within", "2h"])
    assert r.exit_code == 1 and "no region" in r.output


def test_static_source_has_no_forecast():
    r = CliRunner().invoke(
        main,
        ["schedule", "--region", "ES", "--source", "static", "--duration", "1h", "--within", "2h"],
    )
    assert r.exit_code == 1 and "no forecasts" in r.output


def test_profile_run_from_the_store(tmp_path, es2022):
    from greentrack.store.checkpoint import Checkpoint
    from greentrack.store.writer import StoreWriter

    url = f"sqlite:///{tmp_path / 'store.db'}"
    rid = "cd" * 16
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    samples = []
    energy = 0.0
    for k in range(13):  # 2 h, a sample every 10 min: 300 W for 1 h, then 100 W
        if k:
            energy += (300.0 if k <= 6 else 100.0) * 600.0
        samples.append(
            {
                "device": "gpu:0",
                "component": "gpu",
                "t_s": 1.7e9 + 600.0 * k,
                "energy_j": energy,
                "power_w": None,
            }
        )
    writer = StoreWriter(url)
    writer.write(
        Checkpoint(
            run_id=rid,
            rank=0,
            seq=1,
            run={
                "project": "p",
                "name": "n",
                "status": "finished",
                "started_at": t0,
                "heartbeat_at": t0,
                "duration_s": 7200.0,
                "pue": 1.0,
            },
            components=[
                {
                    "component": "gpu",
                    "device": "gpu:0",
                    "energy_j": energy,
                    "method": "counter",
                    "model": None,
                    "host": "h",
                }
            ],
            samples=samples,
        )
    )
    writer.close()
    r = invoke(
        "schedule",
        "--csv",
        es2022,
        "--at",
        "2022-03-01T08:00Z",
        "--within",
        "12h",
        "--profile-run",
        "cdcd",
        "--db",
        url,
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["duration_s"] == pytest.approx(7200.0)
    assert d["energy_kwh"] == pytest.approx((300 + 100) * 3600 / 3.6e6)
    assert d["power_w"] == pytest.approx(200.0)


# ---------------------------------------------------------------- the command form


def test_command_form_runs_now_and_stores_the_plan(tmp_path):
    hour = math.floor(time.time() / 3600) * 3600
    csv = _em_csv(tmp_path / "future.csv", hour, [10 * (i + 1) for i in range(8)])
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    r = CliRunner().invoke(
        main,
        [
            "schedule",
            "--csv",
            csv,
            "--duration",
            "1m",
            "--within",
            "1h",
            "--db",
            url,
            "--project",
            "sched",
            "--",
            sys.executable,
            "-c",
            "import sys; sys.exit(3)",
        ],
    )
    assert r.exit_code == 3, r.output
    from greentrack.store.queries import get_run, list_runs, open_store

    conn = open_store(url)
    try:
        (row,) = list_runs(conn)
        run = get_run(conn, row["id"])
    finally:
        conn.close()
    plan = run["plan"]
    assert plan["strategy"] == "flexible_start" and plan["saving_pct"] == pytest.approx(0.0)
    assert run["project"] == "sched" and run["region"] == "ES"


def test_command_form_refuses_history(es2022):
    r = CliRunner().invoke(
        main,
        [
            "schedule",
            "--csv",
            es2022,
            "--at",
            "2022-03-01T08:00Z",
            "--duration",
            "2h",
            "--within",
            "12h",
            "--",
            "true",
        ],
    )
    assert r.exit_code == 1 and "in the past" in r.output


def test_both_forms_parse(monkeypatch, es2022):
    seen = {}

    def fake(argv, **kw):
        seen["argv"] = argv
        seen["kw"] = kw
        return 0

    monkeypatch.setattr("greentrack.scheduling.execute.schedule_command", fake)
    r = invoke(
        "schedule",
        "--region",
        "ES",
        "--duration",
        "6h",
        "--within",
        "24h",
        "--pause-resume",
        "--",
        "python",
        "train.py",
        "--lr",
        "3e-4",
    )
    assert r.exit_code == 0, r.output
    assert seen["argv"] == ["python", "train.py", "--lr", "3e-4"]
    assert seen["kw"]["request"].strategy == "pause_resume"
    assert seen["kw"]["request"].region == "ES"
    # without "--": everything from the first word on is the command
    invoke("schedule", "--duration", "1h", "--within", "2h", "python", "x.py", "--flag")
    assert seen["argv"] == ["python", "x.py", "--flag"]
    # "-- study" is a command called study, not the subcommand
    invoke("schedule", "--duration", "1h", "--within", "2h", "--", "study")
    assert seen["argv"] == ["study"]
    # and the subcommand still works
    r = invoke(
        "schedule",
        "study",
        "--csv",
        es2022,
        "--duration",
        "6h",
        "--within",
        "24h",
        "--format",
        "json",
    )
    assert r.exit_code == 0 and json.loads(r.output)[0]["strategy"] == "flexible_start"


# ---------------------------------------------------------------- the study


def test_study_json_markdown_and_plot(tmp_path, es2022):
    r = invoke(
        "schedule",
        "study",
        "--csv",
        es2022,
        "--duration",
        "1h,6h",
        "--duration",
        "24h",
        "--within",
        "24h",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 6
    for row in rows:
        assert {
            "duration_h",
            "within_h",
            "strategy",
            "mean_reduction_pct",
            "aggregate_reduction_pct",
            "submissions",
        } <= row.keys()
        assert row["strategy"] in ("flexible_start", "pause_resume")
        assert row["submissions"] == 8760 - row["duration_h"] - row["within_h"] + 1
    by = {(x["duration_h"], x["strategy"]): x for x in rows}
    for d in (1.0, 6.0, 24.0):
        fs, pr = by[(d, "flexible_start")], by[(d, "pause_resume")]
        assert 0 < fs["aggregate_reduction_pct"] <= pr["aggregate_reduction_pct"] + 1e-9
    assert by[(1.0, "flexible_start")]["mean_reduction_pct"] == pytest.approx(
        by[(1.0, "pause_resume")]["mean_reduction_pct"]
    )  # a one-step job cannot pause
    png = tmp_path / "study.png"
    r = invoke(
        "schedule",
        "study",
        "--csv",
        es2022,
        "--duration",
        "6h",
        "--within",
        "24h",
        "--format",
        "markdown",
        "--plot",
        str(png),
    )
    assert r.exit_code == 0
    assert (
        r.output.startswith("| zone | data |")
        and "| ES | 2022, Electricity Maps | 6h |" in r.output
    )
    assert png.stat().st_size > 5000


def test_study_several_zones(shared_data):
    em = shared_data / "electricitymaps"
    r = invoke(
        "schedule",
        "study",
        "--csv",
        str(em / "NO_2022_hourly.csv"),
        "--csv",
        str(em / "ES_2021_hourly.csv"),
        "--csv",
        str(em / "ES_2022_hourly.csv"),
        "--duration",
        "6h",
        "--within",
        "24h",
        "--format",
        "json",
    )
    rows = json.loads(r.output)
    assert [(x["zone"], x["submissions"]) for x in rows[::2]] == [("NO", 8731), ("ES", 17491)]


def test_help_has_examples():
    for args in (["schedule", "--help"], ["schedule", "study", "--help"]):
        r = invoke(*args)
        assert r.exit_code == 0 and "Example:" in r.output
    assert "schedule study [OPTIONS]\n" in invoke("schedule", "study", "--help").output


def test_cli_module_imports_no_numpy():
    code = "import sys, greentrack.cli.schedule; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("script", ["schedule_plan.py", "schedule_study.py"])
def test_examples_run(tmp_path, script, shared_data):
    env = {**os.environ, "GREENTRACK_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)]
        + (["--out", str(tmp_path)] if script == "schedule_study.py" else []),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "saving" in out.stdout or "aggregate" in out.stdout
    if script == "schedule_study.py":
        assert (tmp_path / "schedule_study.png").stat().st_size > 5000
    np.testing.assert_(len(out.stdout) > 100)


class _FakeSource:
    """A live source stand-in: a forecast from the next full hour, and history."""

    name = "fake"

    def __init__(self, now_s: float):
        self.now_s = now_s
        self.warnings = ["fake provider note"]
        self.calls = []

    def _series(self, t0, n):
        from greentrack.carbon.series import IntensitySeries, Provenance

        v = np.array([300.0, 100.0, 50.0, 400.0] * 20)[:n]
        return IntensitySeries(
            t0 + 3600.0 * np.arange(n), v, 3600.0, Provenance("fake", "ES", "average", "forecast")
        )

    def forecast(self, zone, horizon_s):
        self.calls.append(("forecast", zone, horizon_s))
        start = math.ceil(self.now_s / 3600) * 3600  # starts after "now", as providers do
        return self._series(start, math.ceil(horizon_s / 3600) + 1)

    def series(self, zone, t0, t1):
        self.calls.append(("series", zone, t0, t1))
        return self._series(math.floor(t0 / 3600) * 3600, math.ceil((t1 - t0) / 3600) + 2)

    def pop_warnings(self):
        out, self.warnings = self.warnings, []
        return out


def test_plan_on_a_live_source_forecast_and_history(monkeypatch):
    import greentrack as gt

    now = 1_700_000_000.0 + 1234.0
    fake = _FakeSource(now)
    monkeypatch.setattr("greentrack.carbon.registry.get_source", lambda name, cfg: fake)
    p = gt.plan("2h", within="6h", region="Spain", source="electricitymaps", now_s=now)
    assert fake.calls[0][:2] == ("forecast", "ES")
    assert p.submitted_s == now and p.start_s >= now
    assert any("stands in" in w for w in p.warnings) and "fake provider note" in p.warnings
    assert p.provenance.source == "fake"
    # a window entirely in the past asks for history
    q = gt.plan("2h", within="6h", region="ES", at=now - 86400.0, now_s=now)
    assert fake.calls[-1][:2] == ("series", "ES")
    assert q.expected_co2e_g <= q.run_now_co2e_g
    # half past, half future: refused
    from greentrack.errors import ScheduleError

    with pytest.raises(ScheduleError, match="starts in the past but ends in the future"):
        gt.plan("2h", within="6h", region="ES", at=now - 3600.0, now_s=now)


def test_public_api_plan_and_study(es2022):
    import greentrack as gt

    p = gt.plan("6h", within="24h", csv=es2022, at="2022-03-01T08:00Z", strategy="pause_resume")
    assert p.strategy == "pause_resume" and p.provenance.zone == "ES"
    r = gt.study(es2022, ["6h"], "24h")
    assert {row.strategy for row in r.rows} == {"flexible_start", "pause_resume"}
