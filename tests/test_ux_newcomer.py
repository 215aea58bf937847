"""A newcomer's first hour (issue 17): what the user reads is right, as the user touches it.

Significant figures in every human output, options refused with their range, honest empty
results, ``gt.current_run()`` inside ``@gt.track``, hints in the user's language, config typos
reported with the closest key, and a stored schedule plan visible in ``show``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.errors import ConfigError, IntensityDataError
from greentrack.meters import ReplayMeter
from greentrack.units import format_co2e, format_energy, format_sig

REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def tiny_run(url: str, power_w: float = 0.5, **kw: object) -> gt.RunSummary:
    """A real tracked run that uses about ``power_w`` × 50 ms: a few milligrams of CO2e."""
    with gt.track("tiny", db=url, meters=[ReplayMeter([(0.0, {"gpu:0": power_w})])], **kw) as run:
        time.sleep(0.05)
    return run.summary()


# ------------------------------------------------------------------------ 4: significant figures


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0041, "0.00410"),
        (0.02381, "0.0238"),
        (23.84, "23.8"),
        (9.996, "10.0"),  # rounding up adds no digit
        (1234.5, "1,234"),
        (-0.5, "-0.500"),
        (0.0, "0"),
        (4.2e-5, "4.20e-05"),
        (None, "-"),
        (float("nan"), "-"),
    ],
)
def test_format_sig_keeps_significant_digits(value: float | None, text: str) -> None:
    assert format_sig(value) == text


def test_format_energy_units() -> None:
    assert format_energy(0.0412) == "0.0412 J"
    assert format_energy(1234.5) == "1.23 kJ"
    assert format_energy(7.2e6) == "2.00 kWh"
    assert format_co2e(0.0034) == "0.00340 g"


def test_summary_and_show_do_not_round_small_co2e_away(sqlite_url: str) -> None:
    summary = tiny_run(sqlite_url, region="ES")
    assert summary.co2e_g is not None and 0 < summary.co2e_g < 0.005
    text = str(summary)
    assert f"CO2e {format_co2e(summary.co2e_g)}" in text and "CO2e 0.00 g" not in text
    assert format_energy(summary.energy_j) in text
    code, out = invoke("show", summary.id, "--db", sqlite_url)
    assert code == 0, out
    assert f"CO2e {format_co2e(summary.co2e_g)}" in out
    code, out = invoke("runs", "--db", sqlite_url)
    assert code == 0 and format_co2e(summary.co2e_g) in out, out


def test_whatif_prints_significant_figures(sqlite_url: str) -> None:
    summary = tiny_run(sqlite_url, region="ES")
    code, out = invoke("whatif", summary.id, "--region", "NO", "--db", sqlite_url)
    assert code == 0, out
    _, out_j = invoke(
        "whatif", summary.id, "--region", "NO", "--db", sqlite_url, "--format", "json"
    )
    data = json.loads(out_j)
    assert 0 < data["co2e_g"] < 0.01
    assert f"what-if:  {format_co2e(data['co2e_g'])} CO2e" in out
    assert f"original: {format_co2e(data['original_co2e_g'])} CO2e" in out
    assert "0.00 g" not in out


# ---------------------------------------------------------------------- 5: options have ranges


def test_runs_limit_must_be_positive(sqlite_url: str) -> None:
    for bad in ("0", "-1"):
        code, out = invoke("runs", "--db", sqlite_url, "--limit", bad)
        assert code == 2 and "--limit" in out and "x>=1" in out, out


def test_run_interval_is_refused_out_of_range(sqlite_url: str) -> None:
    for bad in ("0.0001", "0", "-1", "7200"):
        code, out = invoke("run", "--db", sqlite_url, "--interval", bad, "--", "true")
        assert code == 2 and "--interval" in out and "0.01<=x<=3600" in out, out
    code, out = invoke("runs", "--db", sqlite_url, "--format", "json")
    assert json.loads(out) == []  # nothing was run


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"interval_s": 0}, "interval_s=0 is out of range: the sampling interval must be 0.01"),
        ({"interval_s": -1.0}, "interval_s=-1.0 is out of range"),
        (
            {"interval_s": 1e-4},
            "interval_s=0.0001 is out of range: the sampling interval must be 0.01 to 3600 s",
        ),
        ({"checkpoint_s": 0}, "checkpoint_s=0 is out of range: the checkpoint interval must be"),
        ({"interval_s": "fast"}, "interval_s='fast' is not a number"),
    ],
)
def test_track_refuses_bad_intervals_before_user_code(
    sqlite_url: str, kw: dict, words: str
) -> None:
    ran = []

    @gt.track(db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])], **kw)
    def train() -> None:
        ran.append(1)

    with pytest.raises(ConfigError) as e:
        train()
    assert words in str(e.value) and "\n" not in str(e.value)
    assert ran == []


def test_interval_from_environment_and_config_file_is_checked(
    sqlite_url: str, gt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENTRACK_INTERVAL_S", "0.001")
    code, out = invoke("run", "--db", sqlite_url, "--", "true")
    assert code == 1 and "GREENTRACK_INTERVAL_S='0.001' is out of range" in out, out
    monkeypatch.delenv("GREENTRACK_INTERVAL_S")
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text("checkpoint_s = 0\n")
    code, out = invoke("run", "--db", sqlite_url, "--", "true")
    assert code == 1 and "config.toml: checkpoint_s=0 is out of range" in out, out


# ----------------------------------------------------------------------- 6: honest empty results


def test_runs_says_which_filter_matched_nothing(sqlite_url: str) -> None:
    code, out = invoke("runs", "--db", sqlite_url, "--project", "nosuch")
    assert code == 0 and out.startswith("no runs yet"), out  # the store is empty
    tiny_run(sqlite_url, project="cifar")
    code, out = invoke("runs", "--db", sqlite_url, "--project", "nosuch")
    assert code == 0 and "no runs match --project nosuch" in out and "no runs yet" not in out
    code, out = invoke("runs", "--db", sqlite_url, "--since", "0s")
    assert code == 0 and "no runs match --since 0s" in out, out
    code, out = invoke("runs", "--db", sqlite_url, "--project", "cifar", "--status", "failed")
    assert "no runs match --project cifar --status failed" in out, out
    code, out = invoke("runs", "--db", sqlite_url, "--project", "cifar")
    assert "cifar" in out and "no runs" not in out


# ---------------------------------------------------------------------- 10: gt.current_run()


def test_current_run_inside_a_decorated_function(sqlite_url: str) -> None:
    meter = ReplayMeter([(0.0, {"gpu:0": 10.0})])
    seen: dict[str, object] = {}

    @gt.track(project="cifar", db=sqlite_url, meters=[meter])
    def train(epochs: int) -> str:
        run = gt.current_run()
        assert run is not None
        seen["outer"] = run
        for epoch in range(epochs):
            with run.phase("epoch"):
                time.sleep(0.01)
            run.log(step=epoch, loss=1.0 / (epoch + 1))
            run.progress(epoch + 1, epochs)
        with gt.track("eval", db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])]):
            seen["inner"] = gt.current_run()
        seen["after_inner"] = gt.current_run()
        box: list[object] = []
        t = threading.Thread(target=lambda: box.append(gt.current_run()))
        t.start()
        t.join()
        seen["thread"] = box[0]
        return run.id

    assert gt.current_run() is None
    run_id = train(3)
    assert gt.current_run() is None
    assert seen["inner"] is not seen["outer"] and seen["after_inner"] is seen["outer"]
    assert seen["thread"] is None  # another thread did not start it
    _, out = invoke("show", run_id, "--db", sqlite_url, "--format", "json")
    obj = json.loads(out)
    assert obj["project"] == "cifar" and obj["name"] == "train"
    assert [p["count"] for p in obj["phase_totals"] if p["name"] == "epoch"] == [3]
    assert obj["metrics"]["loss"] == pytest.approx(1 / 3)


def test_current_run_in_async_tasks(sqlite_url: str) -> None:
    @gt.track(db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])])
    async def job(name: str) -> tuple[str, str]:
        run = gt.current_run()
        assert run is not None
        await asyncio.sleep(0.02)
        again = gt.current_run()
        assert again is run
        return name, run.id

    async def both() -> list[tuple[str, str]]:
        return list(await asyncio.gather(job("a"), job("b")))

    results = asyncio.run(both())
    assert len({rid for _, rid in results}) == 2  # each task saw its own run
    assert "current_run" in gt.__all__ and "active_runs" in gt.__all__
    assert gt.current_run.__doc__ and gt.active_runs.__doc__


# ------------------------------------------------------------ 12: hints in the user's language


def test_csv_gap_hint_names_the_cli_option_under_the_cli(tmp_path: Path) -> None:
    p = tmp_path / "long.csv"
    p.write_text("t,v\n2022-01-01 00:00,100\n2022-01-01 01:00,100\n2022-01-01 06:00,300\n")
    args = ["intensity", "--csv", str(p), "--time-column", "t", "--value-column", "v"]
    code, out = invoke(*args, "--at", "2022-01-01T00:00Z")
    assert code == 1 and "allow it with --max-gap 4" in out and "max_gap_steps" not in out, out
    code, out = invoke(*args, "--at", "2022-01-01T00:00Z", "--max-gap", "4")
    assert code == 0, out
    from greentrack.carbon.csvsource import load_csv

    with pytest.raises(IntensityDataError, match=r"allow it with max_gap_steps=4$"):
        load_csv(p, time_column="t", value_column="v")  # the library names its keyword


def test_detect_states_the_cpu_share_without_contradiction() -> None:
    code, out = invoke("detect")
    assert code == 0, out
    line = next(ln for ln in out.splitlines() if "cpu-estimate" in ln)
    assert "cpu_share=machine, the default" in line
    assert "cpu_share=process: this job's share" not in line


# -------------------------------------------------------------------- 13: config typos are heard


def test_config_typo_is_reported_with_the_closest_key(gt_home: Path, tmp_path: Path) -> None:
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text(
        'regoin = "ES"\ninterval_s = 0.5\nfrobnicate = 1\n'
        '[providers.electricitymap]\ntoken = "x"\n'
        '[providers.watttime]\nusernme = "me"\n'
    )
    db = f"sqlite:///{tmp_path / 'x.db'}"
    env = {**os.environ, "GREENTRACK_HOME": str(gt_home), "GREENTRACK_DB": db}
    proc = subprocess.run(
        [sys.executable, "-m", "greentrack", "runs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "unknown key 'regoin' (ignored); did you mean 'region'?" in err, err
    assert "unknown key 'frobnicate' (ignored); known keys: region" in err
    assert "[providers.electricitymap] (ignored); did you mean 'electricitymaps'?" in err
    assert "'usernme' in [providers.watttime] (ignored); did you mean 'username'?" in err
    assert "key 'interval_s'" not in err  # a known key is not reported
    assert len(err.splitlines()) == 4
    assert err.count("regoin") == 1  # once per process


def test_known_config_is_silent() -> None:
    from greentrack.config import unknown_keys

    data = {
        "region": "ES",
        "pue": 1.2,
        "db": "x",
        "providers": {"electricitymaps": {"token": "t", "url": "u"}, "uk": {}},
    }
    assert unknown_keys(data) == []


# --------------------------------------------------------------------- 16: the plan in `show`


def test_show_prints_the_plan_its_replans_and_the_pauses_applied(sqlite_url: str) -> None:
    from greentrack.carbon.series import IntensitySeries, Provenance
    from greentrack.scheduling.planner import plan_series

    t0 = 1_700_000_000.0
    values = np.array([300, 40, 300, 300, 30, 300, 300, 300], dtype=np.float64)
    series = IntensitySeries(
        t0 + np.arange(values.size) * 3600.0,
        values,
        3600.0,
        Provenance("csv", "ES", "average", "p"),
    )
    p = plan_series(
        series, t0, 2 * 3600.0, strategy="pause_resume", within_s=5 * 3600.0, power_w=300.0
    )
    assert p.pauses >= 1
    plan = p.to_dict()
    plan["pause_mode"] = "stop"
    plan["replans"] = [
        {
            "at": "2023-11-14T22:30:00Z",
            "reason": "forecast moved +3.0 %; kept the plan",
            "start": plan["start"],
        },
        {
            "at": "2023-11-15T01:13:20Z",
            "during": "pause",
            "note": "a new timetable saves 12.0 % of the rest; re-planned",
            "done_s": 3600.0,
            "segments": [{"start": "2023-11-15T03:13:20Z", "end": "2023-11-15T04:13:20Z"}],
        },
    ]
    plan["applied"] = [
        {"event": "pause", "at": "2023-11-15T00:13:20Z"},
        {"event": "resume", "at": "2023-11-15T03:13:20Z"},
    ]
    with gt.track("sched", db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])]) as run:
        run.set_plan(plan)
    code, out = invoke("show", run.id, "--db", sqlite_url)
    assert code == 0, out
    assert f"plan: Pause & Resume, start {plan['start']}, end {plan['end']}" in out
    for i, seg in enumerate(plan["segments"], 1):
        assert f"segment {i}: {seg['start']} .. {seg['end']}" in out
    assert f"expected {format_co2e(plan['expected_co2e_g'])} CO2e" in out
    assert f"{format_co2e(plan['run_now_co2e_g'])} if run now" in out
    assert "intensity csv ES average p" in out
    assert f"pauses planned: {plan['pauses']}, pause mode stop" in out
    assert "re-plan at 2023-11-14T22:30:00Z before the start: forecast moved +3.0 %" in out
    assert "re-plan at 2023-11-15T01:13:20Z during a pause: a new timetable saves 12.0 %" in out
    assert (
        "(after 3,600 s of work); new segments 2023-11-15T03:13:20Z .. 2023-11-15T04:13:20Z" in out
    )
    assert "applied: pause at 2023-11-15T00:13:20Z, resume at 2023-11-15T03:13:20Z" in out
    # the JSON still carries the same plan
    code, out = invoke("show", run.id, "--db", sqlite_url, "--format", "json")
    assert json.loads(out)["plan"]["applied"] == plan["applied"]
