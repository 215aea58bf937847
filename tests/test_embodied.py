"""Embodied emissions and SCI: the tricky math, the table, config.toml, and a tracked run
whose price tag (`greentrack show`, table and JSON) says operational + embodied = total."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from greentrack.carbon.embodied import (
    SECONDS_PER_YEAR,
    DeviceUse,
    amortised_g,
    embodied_for_run,
    load_table,
    saving_sentence,
    sci,
)
from greentrack.errors import ConfigError

HOUR = 3600.0


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


# -- the math ----------------------------------------------------------------------------------
def test_m_is_te_times_time_over_lifetime_times_share() -> None:
    # 150 kg, one hour of a 4-year life, half the device: 150e3 g x 3600 / (4 x 365 x 86400) / 2
    expected = 150e3 * HOUR / (4 * 365 * 86400) / 2
    assert amortised_g(150.0, HOUR, 4 * SECONDS_PER_YEAR, 0.5) == pytest.approx(expected, rel=1e-15)
    assert amortised_g(150.0, 0.0, 4 * SECONDS_PER_YEAR) == 0.0
    for bad in ({"share": 1.5}, {"share": -0.1}):
        with pytest.raises(ValueError, match="share"):
            amortised_g(150.0, HOUR, SECONDS_PER_YEAR, **bad)
    with pytest.raises(ValueError, match="lifetime"):
        amortised_g(150.0, HOUR, 0.0)


def test_utilisation_shortens_the_in_use_life_and_counts_multiply() -> None:
    one = embodied_for_run([DeviceUse("gpu", "NVIDIA L4", 1, HOUR)], lifetime_years=4)
    four = embodied_for_run(
        [DeviceUse("gpu", "NVIDIA L4", 4, HOUR)], lifetime_years=4, utilisation=0.5
    )
    assert one.embodied_g == pytest.approx(57.5e3 * HOUR / (4 * SECONDS_PER_YEAR), rel=1e-12)
    assert four.embodied_g == pytest.approx(8 * one.embodied_g, rel=1e-12)  # 4 boards / 0.5 use
    assert four.shares[0].row == "gpu:l4" and four.shares[0].utilisation == 0.5


def test_a_device_without_a_row_is_left_out_and_named_never_guessed() -> None:
    emb = embodied_for_run(
        [
            DeviceUse("gpu", "NVIDIA H200", 8, HOUR),  # no source found for the H200
            DeviceUse("gpu", "NVIDIA H100 PCIe", 1, HOUR),
        ]
    )
    assert emb.missing == ("gpu NVIDIA H200",)
    assert [s.row for s in emb.shares] == ["gpu:h100 pcie"]
    assert (
        "not counted (no embodied figure for this model; add one with [embodied.kg]): "
        "gpu NVIDIA H200" in emb.note()
    )


def test_the_longest_match_wins_and_every_row_has_a_source() -> None:
    table = load_table()
    assert table.lookup("gpu", "NVIDIA A100-PCIE-40GB").key == "gpu:a100 pcie 40gb"
    assert table.lookup("gpu", "NVIDIA A100-SXM4-80GB").key == "gpu:a100"
    assert table.lookup("gpu", "NVIDIA L40S") is None  # "l4" is a whole word, not a prefix
    assert table.lookup("dram").key == "dram:*" and table.lookup("dram").unit == "per_gib"
    for row in table.rows:
        assert row.source and row.scope and row.uncertainty, row.key


def test_cpu_by_die_area_follows_boavizta() -> None:
    emb = embodied_for_run([DeviceUse("cpu", "AMD EPYC 7543", 2, HOUR, die_mm2=1000.0)])
    assert emb.shares[0].te_kg_each == pytest.approx(9.14 + 0.0197 * 1000.0)
    assert emb.shares[0].row == "cpu_die_base:* + cpu_die:* x 1000 mm2"


def test_sci_per_functional_unit() -> None:
    s = sci(2.0, 50.0, 1000, "inference", intensity_g_per_kwh=100.0)
    assert s.operational_g == 200.0 and s.total_g == 250.0
    assert s.sci_g_per_unit == pytest.approx(0.25)
    # A time-resolved run: I is reported as operational / E.
    s2 = sci(2.0, 50.0, 10, "image", operational_g=150.0)
    assert s2.intensity_g_per_kwh == 75.0 and s2.sci_g_per_unit == 20.0
    assert s2.to_dict()["M_g"] == 50.0 and s2.to_dict()["R"] == 10.0
    with pytest.raises(ValueError, match="R"):
        sci(2.0, 50.0, 0, intensity_g_per_kwh=100.0)


def test_what_if_wording_keeps_embodied_apart() -> None:
    assert saving_sentence(30.0, 100.0, 12.5) == "saves 30 g of 112.5 g; embodied 12.5 g unchanged"


# -- config.toml -------------------------------------------------------------------------------
def test_every_figure_is_overridable_in_config_toml(gt_home: Path) -> None:
    from greentrack.config import load_config

    write_config(
        gt_home,
        "[embodied]\nlifetime_years = 5\nutilisation = 0.9\n"
        '[embodied.kg]\n"gpu:a100" = 200\n"gpu:h100" = 400\n',
    )
    cfg = load_config()
    assert cfg.embodied["lifetime_years"] == 5.0 and cfg.embodied["utilisation"] == 0.9
    table = load_table(kg=cfg.embodied["kg"])
    a100 = table.lookup("gpu", "NVIDIA A100-SXM4-80GB")
    assert a100.kg_co2e == 200.0 and "[embodied.kg]" in a100.source and "150" in a100.notes
    assert table.lookup("gpu", "NVIDIA H100 80GB HBM3").kg_co2e == 400.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[embodied]\nlifetime_years = -1\n", "lifetime_years=-1 must be > 0"),
        ("[embodied]\nutilisation = 1.5\n", r"utilisation=1.5 must be in \(0, 1\]"),
        ('[embodied]\nnode_share = "half"\n', "node_share='half' is not a number"),
    ],
)
def test_bad_embodied_settings_are_one_line_errors(gt_home: Path, text: str, message: str) -> None:
    from greentrack.config import load_config

    write_config(gt_home, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config()
    assert "\n" not in str(info.value)


def test_a_bad_override_key_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="kind:model"):
        load_table(kg={"a100": 3})


# -- a tracked run -----------------------------------------------------------------------------
def test_a_tracked_run_stores_its_embodied_share_and_show_prints_the_total(
    store_url: str, fake_nvml, gt_home: Path
) -> None:
    import greentrack as gt
    from greentrack.cli import main
    from greentrack.store import queries

    write_config(
        gt_home, '[embodied]\nram_gib = 64\ncpu_sockets = 2\nnode = "*"\nnode_share = 0.5\n'
    )
    with fake_nvml, gt.track("embodied", db=store_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.3)
    conn = queries.open_store(store_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    emb = obj["embodied"]
    t = emb["devices"][0]["time_reserved_s"]
    assert all(d["time_reserved_s"] == t for d in emb["devices"])
    assert 0.3 <= t <= obj["duration_s"]  # the sleep, up to the meters' final read
    life_s = 4 * 365 * 86400  # the default lifetime, utilisation 1
    # Independent of greentrack's code: the table's kg x devices x t / life, in grams.
    expected = {
        "gpu:a100": 150.0 * 1,  # the fake's A100-SXM4-80GB
        "gpu:p100 pcie 16gb": 65.3 * 1,  # its Tesla P100-PCIE-16GB
        "cpu:*": 100.0 * 2,  # 2 sockets from config.toml
        "dram:*": 1.388 * 64,  # 64 GiB from config.toml
        "server:*": 1000.0 * 0.5,  # half the node
    }
    got = {d["row"]: d["embodied_g"] for d in emb["devices"]}
    assert got == pytest.approx({k: kg * 1000 * t / life_s for k, kg in expected.items()})
    assert obj["embodied_g"] == pytest.approx(sum(got.values()), rel=1e-12)
    assert obj["co2e_g"] > 0 and obj["total_co2e_g"] == obj["co2e_g"] + obj["embodied_g"]
    assert not emb["missing"]

    shown = CliRunner().invoke(main, ["show", run.id, "--db", store_url])
    assert shown.exit_code == 0, shown.output
    assert "embodied" in shown.output and "= operational" in shown.output
    assert "1 x gpu:a100:" in shown.output and "2211.02001" in shown.output
    as_json = CliRunner().invoke(main, ["show", run.id, "--db", store_url, "--format", "json"])
    data = json.loads(as_json.output)
    assert data["embodied_g"] == pytest.approx(obj["embodied_g"])
    assert data["embodied"]["devices"][0]["source"]


def test_embodied_can_be_switched_off(sqlite_url: str, fake_nvml, gt_home: Path) -> None:
    import greentrack as gt
    from greentrack.store import queries

    write_config(gt_home, "[embodied]\nenabled = false\n")
    with fake_nvml, gt.track("no-embodied", db=sqlite_url, interval_s=0.05) as run:
        time.sleep(0.1)
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    assert obj["embodied_g"] is None and obj["embodied"] is None and obj["total_co2e_g"] is None


# -- SCI per functional unit, from the command line ---------------------------------------------
def test_report_sci_per_unit_logged_or_given(sqlite_url: str, fake_nvml) -> None:
    import greentrack as gt
    from greentrack.cli import main
    from greentrack.store import queries

    with fake_nvml, gt.track("sci", db=sqlite_url, region="FR", interval_s=0.05) as run:
        for _ in range(4):
            run.log_units(16, "images")
            time.sleep(0.05)
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    assert obj["metrics"]["units/images"] == 64.0
    total_g = obj["co2e_g"] + obj["embodied_g"]

    logged = CliRunner().invoke(
        main,
        ["report", run.id, "--sci", "--unit", "images", "--format", "json", "--db", sqlite_url],
    )
    assert logged.exit_code == 0, logged.output
    row = json.loads(logged.output)["sci"][0]
    assert row["R"] == 64.0 and row["unit"] == "images"
    assert row["M_g"] == pytest.approx(obj["embodied_g"])
    assert row["sci_g_per_unit"] == pytest.approx(total_g / 64.0)
    assert "log_units" in row["methods"]["R"] and row["methods"]["M"].startswith("SCI M")

    given = CliRunner().invoke(
        main,
        ["report", run.id, "--sci", "--per", "1000", "--unit", "inference", "--db", sqlite_url],
    )
    assert given.exit_code == 0, given.output
    assert f"| 1000 inference | {total_g / 1000:.4g} |" in given.output
    assert "SCI = ((E x I) + M) / R" in given.output

    missing = CliRunner().invoke(
        main, ["report", run.id, "--sci", "--unit", "tokens", "--db", sqlite_url]
    )
    assert missing.exit_code != 0
    assert 'run.log_units(n, "tokens")' in missing.output and "Traceback" not in missing.output


def test_log_units_rejects_bad_input_at_the_callers_line(sqlite_url: str) -> None:
    import greentrack as gt
    from greentrack.errors import GreentrackError
    from greentrack.meters import ReplayMeter

    with gt.track("bad-units", db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])]) as run:
        with pytest.raises(GreentrackError, match="finite number"):
            run.log_units(float("nan"), "images")
        with pytest.raises(GreentrackError, match="must be a word"):
            run.log_units(1, "my images")


def test_whatif_says_the_embodied_part_does_not_move(sqlite_url: str, fake_nvml) -> None:
    import greentrack as gt
    from greentrack.cli import main

    with fake_nvml, gt.track("moved", db=sqlite_url, region="PL", interval_s=0.05) as run:
        time.sleep(0.2)
    out = CliRunner().invoke(main, ["whatif", run.id, "--region", "FR", "--db", sqlite_url])
    assert out.exit_code == 0, out.output
    data = json.loads(
        CliRunner()
        .invoke(main, ["whatif", run.id, "--region", "FR", "--db", sqlite_url, "--format", "json"])
        .output
    )
    saved = data["original_co2e_g"] - data["co2e_g"]
    assert saved > 0  # Poland's static intensity is above France's
    total = data["original_co2e_g"] + data["embodied_g"]
    line = f"saves {saved:.4g} g of {total:.4g} g; embodied {data['embodied_g']:.4g} g unchanged"
    assert data["saving"] == line and line in out.output


def test_the_price_tag_shows_operational_plus_embodied_equals_total(
    sqlite_url: str, fake_nvml
) -> None:
    import greentrack as gt
    from greentrack.cli import main
    from greentrack.store import queries

    with fake_nvml, gt.track("tag", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.2)
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    md = CliRunner().invoke(main, ["report", run.id, "--db", sqlite_url])
    assert md.exit_code == 0, md.output
    line = next(x for x in md.output.splitlines() if x.startswith("| CO₂e, embodied"))
    assert "gpu:a100 (Luccioni" in line and "SCI M" in line
    assert "| CO₂e, total" in md.output
    js = CliRunner().invoke(main, ["report", run.id, "--db", sqlite_url, "--format", "json"])
    tag = json.loads(js.output)["runs"][0]["pricetag"]
    assert tag["embodied_g"] == pytest.approx(obj["embodied_g"])
    assert tag["total_co2e_g"] == pytest.approx(tag["co2e_g"] + tag["embodied_g"])
    assert {r["row"] for r in tag["embodied_rows"]} >= {"gpu:a100", "gpu:p100 pcie 16gb"}
    for fmt in ("html", "latex"):
        other = CliRunner().invoke(main, ["report", run.id, "--db", sqlite_url, "--format", fmt])
        assert other.exit_code == 0, other.output
        assert "embodied" in other.output and "total" in other.output, fmt


def test_the_scheduler_says_what_it_saves_and_that_embodied_does_not_move(
    shared_data: Path,
) -> None:
    from greentrack.cli import main

    csv = str(shared_data / "electricitymaps" / "ES_2022_hourly.csv")
    args = ["schedule", "--csv", csv, "--at", "2022-03-01T08:00Z", "--duration", "6h"]
    out = CliRunner().invoke(main, [*args, "--within", "24h"])
    assert out.exit_code == 0, out.output
    plan = json.loads(
        CliRunner().invoke(main, [*args, "--within", "24h", "--format", "json"]).output
    )
    saved = plan["run_now_co2e_g"] - plan["expected_co2e_g"]
    assert saved > 0
    assert (
        f"saves {saved:.4g} g of {plan['run_now_co2e_g']:.4g} g (operational only; no embodied "
        "figure for this job); embodied emissions do not move with the start time"
    ) in out.output


def test_a_broken_embodied_table_is_a_warning_never_a_failed_run(
    sqlite_url: str, fake_nvml, gt_home: Path
) -> None:
    import greentrack as gt
    from greentrack.store import queries

    write_config(gt_home, f'[embodied]\ntable = "{gt_home / "missing.csv"}"\n')
    with fake_nvml, gt.track("broken", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.1)
    s = run.summary()
    assert s.status == "finished" and s.co2e_g is not None
    assert any("embodied emissions not computed" in w and "missing.csv" in w for w in s.warnings)
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    assert obj["status"] == "finished" and obj["embodied_g"] is None and obj["co2e_g"] > 0


def test_runs_frame_and_export_carry_embodied_and_total(
    sqlite_url: str, fake_nvml, tmp_path
) -> None:
    import csv as csvmod

    import greentrack as gt
    from greentrack.cli import main
    from greentrack.report.frames import runs_frame

    with fake_nvml, gt.track("frame", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.1)
    df = runs_frame(db=sqlite_url)
    row = df[df["id"] == run.id].iloc[0]
    assert row["embodied_g"] > 0
    assert row["total_co2e_g"] == pytest.approx(row["co2e_g"] + row["embodied_g"])
    out = tmp_path / "runs.csv"
    res = CliRunner().invoke(main, ["export", "-o", str(out), "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    (rec,) = list(csvmod.DictReader(out.open()))
    assert float(rec["embodied_g"]) == pytest.approx(row["embodied_g"])
    tag = CliRunner().invoke(main, ["report", run.id, "--format", "csv", "--db", sqlite_url])
    first = next(csvmod.DictReader(tag.output.splitlines()))
    assert float(first["total_co2e_g"]) == pytest.approx(row["total_co2e_g"])


def test_the_dashboard_shows_operational_and_embodied_side_by_side(
    sqlite_url: str, fake_nvml, tmp_path
) -> None:
    import json as jsonmod

    import greentrack as gt
    from greentrack.cli import main

    with fake_nvml, gt.track("dash", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.1)
    site = tmp_path / "site"
    res = CliRunner().invoke(main, ["dashboard", "-o", str(site), "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    index = (site / "index.html").read_text()
    assert 'data-key="embodied_g">Embodied (g)</th>' in index
    blob = index.split('<script id="runs-data" type="application/json">')[1].split("</script>")[0]
    data = jsonmod.loads(blob)
    cols = data["columns"]
    (row,) = [r for r in data["rows"] if r[cols.index("id")] == run.id]
    assert row[cols.index("embodied_g")] > 0
    page = (site / "runs" / f"{run.id}.html").read_text()
    assert "embodied" in page and "total" in page
