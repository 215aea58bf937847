"""CSV intensity series: layouts, time zones and DST, gaps, duplicates, malformed files, speed."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from greentrack.carbon.accounting import J_PER_KWH, account_samples
from greentrack.carbon.csvsource import CsvSource, load_csv
from greentrack.errors import IntensityDataError

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "grid-intensity"
EM_SLICE = DATA / "em_ES_2022-03-01_4d.csv"
EIA_SLICE = DATA / "CISO_NG_avgCI_2022-01-04_3d.csv"

needs_shared = pytest.mark.skipif(
    not (SHARED / "electricitymaps").is_dir(), reason="../shared/data/grid-intensity not present"
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- layouts ----------------------------------------------------------------------------------


def test_electricitymaps_export_slice_as_downloaded():
    s = load_csv(EM_SLICE)
    rows = rows_of(EM_SLICE)
    assert len(s) == len(rows) == 96
    assert s.step_s == 3600.0
    assert s.provenance.source == "csv" and s.provenance.zone == "ES"
    assert s.provenance.kind == "average"
    assert s.provenance.period == "2022-03-01T00:00:00Z/2022-03-04T23:00:00Z"
    assert "em_ES_2022-03-01_4d.csv" in s.provenance.detail
    assert "(direct)" in s.provenance.detail
    direct = "Carbon Intensity gCO₂eq/kWh (direct)"
    for row in rows[::13]:
        assert s.at(ts(row["Datetime (UTC)"]) + 1800) == float(row[direct])
    lca = load_csv(EM_SLICE, signal="lca")
    assert lca.g_per_kwh[0] == float(rows[0]["Carbon Intensity gCO₂eq/kWh (LCA)"])
    assert "(LCA)" in lca.provenance.detail


def test_eia930_slice_with_a_real_gap_is_interpolated_and_noted():
    s = load_csv(EIA_SLICE)
    assert s.provenance.zone == "US-CAL-CISO"  # from the file name's balancing-authority code
    rows = {r["timestamp"][:19]: r["avg_CI"] for r in rows_of(EIA_SLICE)}
    assert rows["2022-01-05 10:00:00"] == ""
    before, after = float(rows["2022-01-05 09:00:00"]), float(rows["2022-01-05 11:00:00"])
    assert s.at(ts("2022-01-05T10:00:00")) == pytest.approx((before + after) / 2, rel=1e-12)
    assert "1 empty value treated as gaps" in s.provenance.detail
    assert "1 missing step filled by linear interpolation" in s.provenance.detail
    assert len(s) == 72


@needs_shared
def test_three_years_of_electricitymaps_exports_load_fast():
    files = [SHARED / "electricitymaps" / f"ES_{y}_hourly.csv" for y in (2021, 2022, 2023)]
    s = load_csv(files)
    assert len(s) == 3 * 8760 and s.step_s == 3600.0
    assert s.provenance.period == "2021-01-01T00:00:00Z/2023-12-31T23:00:00Z"
    row = rows_of(files[1])[1234]
    assert s.at(ts(row["Datetime (UTC)"])) == float(row["Carbon Intensity gCO₂eq/kWh (direct)"])
    best = min(_timed(lambda: load_csv(files)) for _ in range(3))
    assert best < 0.5, f"loading three years took {best:.3f} s"


@needs_shared
def test_real_eia930_files_and_a_gap_too_long_to_fill():
    ciso = load_csv(SHARED / "eia930" / "CISO_NG_avgCI.csv")
    assert len(ciso) == 8760 and "3 missing steps filled" in ciso.provenance.detail
    with pytest.raises(IntensityDataError) as e:
        load_csv(SHARED / "eia930" / "PJM_NG_avgCI.csv")
    msg = str(e.value)
    assert "\n" not in msg
    assert "22 missing steps" in msg and "2022-03-13T07:00:00Z" in msg
    assert "max_gap_steps=22" in msg
    pjm = load_csv(SHARED / "eia930" / "PJM_NG_avgCI.csv", max_gap_steps=22)
    assert pjm.provenance.zone == "US-MIDA-PJM" and len(pjm) == 8760


def test_custom_layout_through_options(tmp_path):
    p = write(
        tmp_path,
        "mygrid.csv",
        "when,co2,other\n2022-06-01T00:00Z,100,x\n2022-06-01T00:30Z,200,y\n2022-06-01T01:00Z,150,z\n",
    )
    with pytest.raises(IntensityDataError, match="time_column= and value_column="):
        load_csv(p)
    s = load_csv(p, time_column="when", value_column="co2", zone="FR", kind="marginal")
    assert s.step_s == 1800.0 and list(s.g_per_kwh) == [100.0, 200.0, 150.0]
    assert s.provenance.zone == "FR" and s.provenance.kind == "marginal"
    unnamed = load_csv(p, time_column="WHEN", value_column="co2")
    assert unnamed.provenance.zone == "mygrid"  # a zone greentrack does not list: kept
    with pytest.raises(IntensityDataError, match="no value column 'nope'"):
        load_csv(p, time_column="when", value_column="nope")


def test_offsets_are_honoured(tmp_path):
    p = write(
        tmp_path,
        "x.csv",
        "t,v\n2022-06-01T02:00:00+02:00,10\n2022-06-01T01:00:00+00:00,20\n2022-06-01T02:00Z,30\n",
    )
    s = load_csv(p, time_column="t", value_column="v")
    assert s.start_s[0] == ts("2022-06-01T00:00:00")
    assert list(s.g_per_kwh) == [10.0, 20.0, 30.0]


# -- time zones and DST -----------------------------------------------------------------------


def test_dst_days_through_the_tz_option(tmp_path):
    # Europe/Madrid: 2022-03-27 02:00 does not exist; 2022-10-30 02:00 happens twice.
    spring = ["2022-03-27 00:00", "2022-03-27 01:00", "2022-03-27 03:00", "2022-03-27 04:00"]
    autumn = ["2022-10-30 01:00", "2022-10-30 02:00", "2022-10-30 02:00", "2022-10-30 03:00"]
    p = write(tmp_path, "s.csv", "t,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(spring)))
    s = load_csv(p, time_column="t", value_column="v", tz="Europe/Madrid")
    assert s.start_s[0] == ts("2022-03-26T23:00:00")  # CET = UTC+1
    assert len(s) == 4 and list(s.g_per_kwh) == [0, 1, 2, 3]  # no gap: 03:00 CEST = 01:00Z
    p = write(tmp_path, "a.csv", "t,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(autumn)))
    a = load_csv(p, time_column="t", value_column="v", tz="Europe/Madrid")
    assert a.start_s[0] == ts("2022-10-29T23:00:00")  # 01:00 CEST
    assert len(a) == 4 and list(a.g_per_kwh) == [0, 1, 2, 3]  # first 02:00 CEST, then 02:00 CET
    # The repeated hour listed once leaves a one-step gap, filled and noted.
    p = write(
        tmp_path, "o.csv", "t,v\n2022-10-30 01:00,10\n2022-10-30 02:00,20\n2022-10-30 03:00,40\n"
    )
    o = load_csv(p, time_column="t", value_column="v", tz="Europe/Madrid")
    assert list(o.g_per_kwh) == [10.0, 20.0, 30.0, 40.0]
    assert "1 missing step filled" in o.provenance.detail
    # A local time that does not exist is an error naming the line.
    p = write(tmp_path, "bad.csv", "t,v\n2022-03-27 01:00,1\n2022-03-27 02:00,2\n")
    with pytest.raises(IntensityDataError, match=r"bad.csv:3: .*does not exist in Europe/Madrid"):
        load_csv(p, time_column="t", value_column="v", tz="Europe/Madrid")
    with pytest.raises(IntensityDataError, match="unknown time zone"):
        load_csv(p, time_column="t", value_column="v", tz="Mars/Olympus")


def test_electricitymaps_timestamps_stay_utc_whatever_tz():
    assert load_csv(EM_SLICE, tz="Europe/Madrid").start_s[0] == ts("2022-03-01T00:00:00")


# -- gaps and duplicates: exact values and exact accounting -----------------------------------


def test_gap_filled_linearly_or_forward_and_long_gap_refused(tmp_path):
    rows = (
        "2022-01-01 00:00,100\n2022-01-01 01:00,100\n2022-01-01 03:00,300\n2022-01-01 04:00,300\n"
    )
    p = write(tmp_path, "g.csv", "t,v\n" + rows)
    s = load_csv(p, time_column="t", value_column="v")
    assert list(s.g_per_kwh) == [100.0, 100.0, 200.0, 300.0, 300.0]
    f = load_csv(p, time_column="t", value_column="v", fill="ffill")
    assert list(f.g_per_kwh) == [100.0, 100.0, 100.0, 300.0, 300.0]
    # 1 kWh spread evenly over 01:00-04:00 -> (100 + 200 + 300) / 3 g.
    t = ts("2022-01-01T01:00:00") + np.array([3600.0, 7200.0, 10800.0])
    acct = account_samples(t, np.array([1, 2, 3]) * J_PER_KWH / 3, s, start_s=t[0] - 3600)
    assert acct.co2e_g == pytest.approx(200.0, rel=1e-12)
    # Two rows alone cannot show the step: say it.
    two = write(tmp_path, "two.csv", "t,v\n2022-01-01 00:00,100\n2022-01-01 02:00,300\n")
    assert len(load_csv(two, time_column="t", value_column="v")) == 2
    assert list(load_csv(two, time_column="t", value_column="v", step_s=3600).g_per_kwh) == [
        100.0,
        200.0,
        300.0,
    ]
    p = write(
        tmp_path,
        "long.csv",
        "t,v\n2022-01-01 00:00,100\n2022-01-01 01:00,100\n2022-01-01 06:00,300\n",
    )
    with pytest.raises(IntensityDataError, match=r"4 missing steps .*max_gap_steps=4"):
        load_csv(p, time_column="t", value_column="v")
    assert len(load_csv(p, time_column="t", value_column="v", max_gap_steps=4)) == 7


def test_duplicate_hour_is_averaged_and_noted(tmp_path):
    p = write(
        tmp_path,
        "d.csv",
        "t,v\n2022-01-01 00:00,100\n2022-01-01 01:00,200\n2022-01-01 01:00,400\n"
        "2022-01-01 02:00,50\n",
    )
    s = load_csv(p, time_column="t", value_column="v")
    assert list(s.g_per_kwh) == [100.0, 300.0, 50.0]
    assert "1 duplicate timestamp averaged (first 2022-01-01T01:00:00Z)" in s.provenance.detail
    t0 = ts("2022-01-01T01:00:00")
    acct = account_samples(np.array([t0 + 3600]), np.array([J_PER_KWH]), s, start_s=t0)
    assert acct.co2e_g == pytest.approx(300.0, rel=1e-12)


def test_several_files_concatenate_and_overlaps_average(tmp_path):
    a = write(tmp_path, "a.csv", "t,v\n2022-01-01 00:00,10\n2022-01-01 01:00,20\n")
    b = write(tmp_path, "b.csv", "t,v\n2022-01-01 01:00,40\n2022-01-01 02:00,50\n")
    s = load_csv([b, a], time_column="t", value_column="v", zone="ES")
    assert list(s.g_per_kwh) == [10.0, 30.0, 50.0]
    assert s.provenance.detail.startswith("b.csv, a.csv")
    c = write(tmp_path, "c.csv", "t,v\n2022-01-01 03:00,10\n")
    with pytest.raises(IntensityDataError, match="different zones"):
        load_csv([a, c], time_column="t", value_column="v")


# -- malformed files: one line, file and line number ------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"m.csv: empty file"),
        ("t,v\n", r"m.csv: no data rows"),
        ("t,v\n2022-01-01 00:00,abc\n", r"m.csv:2: 'abc' in column 'v' is not a number"),
        ("t,v\n2022-01-01 00:00,1\n2022-01-01 01:00\n", r"m.csv:3: expected 2 fields"),
        ("t,v\n2022-01-01 00:00,1\nyesterday,2\n", r"m.csv:3: cannot read the time 'yesterday'"),
        ("t,v\n2022-01-01 00:00,-5\n", r"m.csv:2: negative intensity"),
        (
            "t,v\n2022-01-01 00:00,1\n2022-01-01 01:00,1\n2022-01-01 01:45,2\n2022-01-01 02:00,3\n"
            "2022-01-01 03:00,3\n",
            r"m.csv: timestamps are not on a regular 3600 s grid",
        ),
    ],
)
def test_malformed_csv_gives_one_line_error(tmp_path, text, pattern):
    p = write(tmp_path, "m.csv", text)
    with pytest.raises(IntensityDataError, match=pattern) as e:
        load_csv(p, time_column="t", value_column="v")
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(IntensityDataError, match="cannot open"):
        load_csv(tmp_path / "nope.csv")


def test_csv_source_refuses_other_zones_and_times():
    src = CsvSource([EM_SLICE])
    assert src.zone == "ES"
    s = src.series("esp", ts("2022-03-02T00:30:00"), ts("2022-03-02T03:30:00"))
    assert s.start_s[0] == ts("2022-03-02T00:00:00") and len(s) == 4
    assert src.at("ES", ts("2022-03-02T00:30:00")).g_per_kwh == s.g_per_kwh[0]
    with pytest.raises(IntensityDataError, match="for ES, not FR"):
        src.series("FR", ts("2022-03-02T00:00:00"), ts("2022-03-02T01:00:00"))
    with pytest.raises(IntensityDataError, match="covers 2022-03-01T00:00:00Z"):
        src.series("ES", ts("2023-03-02T00:00:00"), ts("2023-03-02T01:00:00"))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
