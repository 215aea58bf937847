"""Carbon inputs checked before the user's code runs, per-phase CO2e stored, and a run accounted
on the same intensity source as its plan — as a user touches them (``track``, ``greentrack run``,
``greentrack schedule``, ``show --format json``)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.carbon.static import static_intensity
from greentrack.cli import main
from greentrack.errors import ConfigError, IntensityDataError
from greentrack.meters import ReplayMeter
from greentrack.report.model import methods_label
from greentrack.store import queries
from greentrack.units import J_PER_KWH

DATA = Path(__file__).resolve().parent / "data"
EIA_SLICE = DATA / "CISO_NG_avgCI_2022-01-04_3d.csv"
EM_SLICE = DATA / "em_ES_2022-03-01_4d.csv"
POWER_W = {"cpu:package-0": 40.0}


def replay() -> ReplayMeter:
    return ReplayMeter([(0.0, POWER_W)])


def stored(url: str, run_id: str) -> dict:
    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id)
    finally:
        conn.close()


def rewrite_eia(dest: Path, *, shift_to_now: bool, utc_offset_h: int = -8) -> Path:
    """The EIA-930 slice rewritten as a user's own export: columns ``ts``/``gco2`` and local
    times with their offset (Pacific standard time in January); optionally moved by whole days
    so that it covers now (its first day holds now)."""
    with EIA_SLICE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = datetime.fromisoformat(rows[0]["timestamp"])
    shift = timedelta(0)
    if shift_to_now:
        shift = timedelta(days=math.floor((datetime.now(UTC) - first).total_seconds() / 86400))
    off = timedelta(hours=utc_offset_h)
    sign = "-" if utc_offset_h < 0 else "+"
    with dest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "gco2"])
        for r in rows:
            local = datetime.fromisoformat(r["timestamp"]) + shift + off
            w.writerow(
                [local.strftime("%Y-%m-%d %H:%M:%S") + f"{sign}{abs(utc_offset_h):02d}:00",
                 r["avg_CI"]]
            )  # fmt: skip
    return dest


def short_csv(dest: Path, zone_file_name: str, *, before_s: int, after_s: int) -> Path:
    """A custom-layout CSV with 1-second steps from now - before_s to now + after_s."""
    now = math.floor(time.time())
    with dest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "gco2"])
        for t in range(now - before_s, now + after_s + 1):
            w.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "300"])
    return dest


# ---------------------------------------------------------------- 12.9: refused before the body


def test_unknown_region_raises_before_the_decorated_function_runs(sqlite_url):
    ran = []

    @gt.track(region="Spian", db=sqlite_url, meters=[replay()])
    def train() -> None:
        ran.append(1)

    with pytest.raises(ConfigError, match=r"unknown region 'Spian'; closest matches: ES"):
        train()
    assert ran == []


def test_csv_not_covering_the_start_is_refused_before_the_body(sqlite_url):
    tracker = gt.track("x", db=sqlite_url, meters=[replay()], csv=[str(EM_SLICE)])
    with pytest.raises(IntensityDataError, match="not the run's start") as caught, tracker:
        pytest.fail("the body must not run")
    assert "\n" not in str(caught.value)
    assert "2022-03-01T00:00:00Z/2022-03-04T23:00:00Z" in str(caught.value)


def test_csv_zone_that_differs_from_the_region_is_refused(sqlite_url, tmp_path):
    f = rewrite_eia(tmp_path / "US-CAL-CISO.csv", shift_to_now=True)
    opts = {"time_column": "ts", "value_column": "gco2", "zone": "US-CAL-CISO"}
    tracker = gt.track(
        "x", region="FR", db=sqlite_url, meters=[replay()], csv=[str(f)], csv_options=opts
    )
    with pytest.raises(ConfigError, match="region FR is not the zone of the CSV data"), tracker:
        pytest.fail("the body must not run")


def test_csv_ending_during_the_run_says_so_at_stop(sqlite_url, tmp_path):
    f = short_csv(tmp_path / "ES.csv", "ES", before_s=5, after_s=0)  # ends ~1 s after now
    opts = {"time_column": "ts", "value_column": "gco2", "zone": "ES"}
    with gt.track("x", db=sqlite_url, meters=[replay()], csv=[str(f)], csv_options=opts) as run:
        time.sleep(2.2)
    s = run.summary()
    assert s.co2e_g is None
    assert any("the CSV data ends at" in w and "before the run's end" in w for w in s.warnings)


def test_cli_run_with_unknown_region_exits_1_without_starting_the_command(tmp_path):
    made = tmp_path / "made"
    env = {**os.environ, "GREENTRACK_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--region", "Spian", "--",
         sys.executable, "-c", f"open({str(made)!r}, 'w').close()"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert not made.exists(), "the command ran"
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert lines == [lines[0]] and lines[0].startswith("Error: unknown region 'Spian'")
    assert not (tmp_path / "home" / "greentrack.db").exists()


# ------------------------------------------------------------- 12.10: per-phase CO2e is stored


def test_phase_co2e_is_stored_per_row_and_phases_add_up_to_the_run(sqlite_url):
    with gt.track("p", region="ES", db=sqlite_url, meters=[replay()], checkpoint_s=0.05) as run:
        for _ in range(3):
            with run.phase("train"):
                time.sleep(0.05)
            with run.phase("eval"):
                time.sleep(0.02)
        time.sleep(0.12)  # the rows above are delivered before stop: they get CO2e at the end
    code_out = CliRunner().invoke(main, ["show", run.id, "--db", sqlite_url, "--format", "json"])
    assert code_out.exit_code == 0, code_out.output
    shown = json.loads(code_out.stdout)
    totals = {t["name"]: t for t in shown["phase_totals"]}
    assert set(totals) == {"train", "eval"}
    g_per_j = static_intensity("ES")[0] / J_PER_KWH
    for t in totals.values():
        assert t["co2e_g"] == pytest.approx(t["energy_j"] * g_per_j, rel=1e-9)
    rows = shown["phases"]
    assert len(rows) == 6 and all(p["co2e_g"] is not None for p in rows)
    # phases + the energy outside them = the run (exactly, for a constant intensity)
    phase_j = sum(t["energy_j"] for t in totals.values())
    phase_g = sum(t["co2e_g"] for t in totals.values())
    assert phase_g + (shown["energy_j"] - phase_j) * g_per_j == pytest.approx(
        shown["co2e_g"], rel=1e-9
    )
    summary = {p.name: p.co2e_g for p in run.summary().phases}
    assert summary == pytest.approx({k: t["co2e_g"] for k, t in totals.items()}, rel=1e-12)
    # the dashboard's run page shows the stored figure, not n/a
    site = Path(sqlite_url.removeprefix("sqlite:///")).parent / "site"
    r = CliRunner().invoke(main, ["dashboard", "-o", str(site), "--db", sqlite_url, "--all"])
    assert r.exit_code == 0, r.output
    html = (site / "runs" / f"{run.id}.html").read_text()
    phases_table = html[html.index("<h2>Phases</h2>") :].split("</table>")[0]
    assert "n/a" not in phases_table and phases_table.count("<tr><td>") == 2


def test_one_phase_covering_the_run_carries_its_co2e(sqlite_url):
    @gt.track(region="ES", db=sqlite_url, meters=[replay()])
    def train() -> str:
        run = gt.active_runs()[-1]
        with run.phase("all"):
            time.sleep(0.3)
        return run.id

    rid = train()
    shown = stored(sqlite_url, rid)
    (total,) = shown["phase_totals"]
    g_per_j = static_intensity("ES")[0] / J_PER_KWH
    outside_j = shown["energy_j"] - total["energy_j"]  # before the phase opened, after it closed
    assert 0 <= outside_j < total["energy_j"]
    assert total["co2e_g"] + outside_j * g_per_j == pytest.approx(shown["co2e_g"], rel=1e-9)


# ---------------------------------- 12.11 and 17.9: same source as the plan; a closing line


def test_cli_run_accounts_on_a_csv_with_layout_options_and_says_so(tmp_path):
    f = rewrite_eia(tmp_path / "US-CAL-CISO.csv", shift_to_now=True)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "GREENTRACK_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--db", url, "--csv", str(f),
         "--time-column", "ts", "--value-column", "gco2", "--max-gap", "3",
         "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    conn = queries.open_store(url)
    try:
        (row,) = queries.list_runs(conn)
        shown = queries.get_run(conn, row["id"])
    finally:
        conn.close()
    src = shown["intensity_source"]
    assert src["name"] == "csv" and src["zone"] == "US-CAL-CISO" and "'gco2'" in src["detail"]
    assert shown["region"] == "US-CAL-CISO" and shown["co2e_g"] is not None
    # 17.9: one closing line on stderr with the id, energy, method and CO2e
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("greentrack: run ")]
    assert line.startswith(f"greentrack: run {shown['id'][:8]} finished (exit 0) in ")
    assert "[" + methods_label(shown) + "]" in line
    assert "CO2e " in line and "(csv US-CAL-CISO)" in line
    assert line.endswith(f"greentrack show {shown['id'][:8]}")


def test_schedule_with_a_csv_accounts_the_run_on_that_csv(tmp_path):
    f = rewrite_eia(tmp_path / "US-CAL-CISO.csv", shift_to_now=True)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "GREENTRACK_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "greentrack", "schedule", "--db", url, "--csv", str(f),
         "--time-column", "ts", "--value-column", "gco2", "--duration", "1h", "--within", "0h",
         "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    conn = queries.open_store(url)
    try:
        (row,) = queries.list_runs(conn)
        shown = queries.get_run(conn, row["id"])
    finally:
        conn.close()
    src = shown["intensity_source"]
    assert src["name"] == "csv" and src["zone"] == "US-CAL-CISO"  # not codecarbon-static
    assert shown["plan"]["source"]["name"] == "csv"
    assert shown["co2e_g_annual_average"] != pytest.approx(shown["co2e_g"])


def test_schedule_study_reads_a_custom_layout_with_local_offsets(tmp_path):
    f = rewrite_eia(tmp_path / "US-CAL-CISO.csv", shift_to_now=False)
    args = ["--duration", "1h,6h", "--within", "12h", "--format", "json"]
    r = CliRunner().invoke(
        main,
        ["schedule", "study", "--csv", str(f), "--time-column", "ts", "--value-column", "gco2",
         *args],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rewritten = json.loads(r.stdout)
    original = json.loads(CliRunner().invoke(
        main, ["schedule", "study", "--csv", str(EIA_SLICE), *args]
    ).stdout)  # fmt: skip
    assert len(rewritten) == len(original) > 0
    for a, b in zip(rewritten, original, strict=True):
        assert a["zone"] == b["zone"] == "US-CAL-CISO"
        for key in ("mean_reduction_pct", "aggregate_reduction_pct", "submissions"):
            assert a[key] == pytest.approx(b[key], rel=1e-12)


@pytest.mark.parametrize(
    "command", [["intensity"], ["whatif"], ["run"], ["schedule"], ["schedule", "study"]]
)
def test_every_command_taking_csv_takes_the_same_layout_options(command):
    """One option group: --time-column/--value-column/--tz/--signal/--max-gap everywhere."""
    help_text = CliRunner().invoke(main, [*command, "--help"]).output
    for opt in ("--csv", "--time-column", "--value-column", "--tz", "--signal", "--max-gap"):
        assert opt in help_text, f"{' '.join(command)} lacks {opt}"


def test_phase_occurrences_beyond_the_kept_ones_still_count_in_the_total(sqlite_url, monkeypatch):
    """Only the first occurrences of a path are accounted one by one (bounded memory); the rest
    are booked together, so the path's CO2e still covers its whole energy."""
    from greentrack import run as run_module

    monkeypatch.setattr(run_module, "_SPANS_MAX", 4)
    with gt.track("many", region="ES", db=sqlite_url, meters=[replay()]) as run:
        for _ in range(11):
            with run.phase("step"):
                time.sleep(0.005)
    (step,) = run.summary().phases
    assert step.count == 11
    g_per_j = static_intensity("ES")[0] / J_PER_KWH
    assert step.co2e_g == pytest.approx(step.energy_j * g_per_j, rel=1e-9)
    shown = stored(sqlite_url, run.id)
    (total,) = shown["phase_totals"]
    assert total["co2e_g"] == pytest.approx(step.co2e_g, rel=1e-9)
    rows = shown["phases"]
    assert len(rows) == 11 and all(p["co2e_g"] is not None for p in rows)
    assert sum(p["co2e_g"] for p in rows) == pytest.approx(step.co2e_g, rel=1e-9)


def test_stop_waits_for_an_intensity_still_being_resolved(sqlite_url, monkeypatch) -> None:
    """A zone resolved off-thread (cloud metadata, a live provider) that is still resolving when
    the run stops: stop() waits for it (within flush_timeout_s) instead of accounting with no
    context (which gave "CO2e not computed: internal error")."""
    import time

    import greentrack as gt
    from greentrack.carbon import runcarbon

    real_prepare = runcarbon.prepare
    calls = []

    def slow_prepare(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(0.5)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(runcarbon, "needs_network", lambda *a, **k: True)
    monkeypatch.setattr(runcarbon, "prepare", slow_prepare)
    with gt.track("slow-zone", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.1)  # the first checkpoint has started resolving
    s = run.summary()
    assert len(calls) == 1  # resolved once, on the checkpoint thread
    assert s.co2e_g is not None and s.co2e_g > 0, s.warnings
    assert not any("internal error" in w for w in s.warnings)
