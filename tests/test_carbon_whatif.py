"""What-if: the same measured energy profile in another region and/or at another time."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from greentrack.carbon.registry import get_source
from greentrack.carbon.static import static_intensity
from greentrack.carbon.whatif import whatif, whatif_run
from greentrack.errors import ConfigError, IntensityDataError

EM_SLICE = Path(__file__).resolve().parent / "data" / "em_ES_2022-03-01_4d.csv"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def em_values() -> dict[float, float]:
    with EM_SLICE.open(encoding="utf-8", newline="") as fh:
        return {
            ts(r["Datetime (UTC)"]): float(r["Carbon Intensity gCO₂eq/kWh (direct)"])
            for r in csv.DictReader(fh)
        }


def two_hours_at_1kw(start: float) -> dict[str, np.ndarray]:
    t = start + np.arange(60.0, 7200.0 + 1, 60.0)
    return {"t_s": t, "energy_j": 1000.0 * (t - start), "device": np.array(["gpu:0"] * t.size)}


def test_other_region_scales_by_the_static_ratio():
    start = ts("2022-03-01T00:00:00")
    samples = two_hours_at_1kw(start)
    src = get_source("static")
    es = whatif(samples, region="ES", source=src, original_co2e_g=None, original_start_s=start)
    fr = whatif(samples, region="france", source=src, original_co2e_g=es.co2e_g, run="r1",
                original_start_s=start)  # fmt: skip
    g_es, g_fr = static_intensity("ES")[0], static_intensity("FR")[0]
    assert es.co2e_g == pytest.approx(2 * g_es, rel=1e-12)  # 2 kWh
    assert fr.co2e_g == pytest.approx(2 * g_fr, rel=1e-12)
    d = fr.to_dict()
    assert d == {
        "run": "r1",
        "region": "FR",
        "start": "2022-03-01T00:00:00Z",
        "co2e_g": fr.co2e_g,
        "original_co2e_g": es.co2e_g,
        "embodied_g": None,  # not from a stored run: no embodied figure
        "saving": f"saves {es.co2e_g - fr.co2e_g:.4g} g of {es.co2e_g:.4g} g (operational only; "
        "no embodied figure for this run)",
        "source": fr.provenance.to_dict(),
    }
    assert fr.shift_s == 0.0 and fr.account is not None
    assert fr.account.per_device["gpu:0"] == pytest.approx(fr.co2e_g)


def test_other_start_time_against_an_hourly_csv_and_phases():
    values = em_values()
    start = ts("2022-03-01T00:00:00")
    new = ts("2022-03-02T12:30:00")
    src = get_source(None, csv=[EM_SLICE])
    out = whatif(
        two_hours_at_1kw(start),
        start_s=new,
        source=src,
        original_co2e_g=123.0,
        run_region="ES",
        original_start_s=start,
        pue=1.2,
        phases=[("first-hour", start, start + 3600)],
    )
    h = ts("2022-03-02T12:00:00")
    # 1 kW from 12:30 to 14:30: half an hour at 12h, a full hour at 13h, half an hour at 14h.
    expected = 1.2 * (0.5 * values[h] + values[h + 3600] + 0.5 * values[h + 7200])
    assert out.co2e_g == pytest.approx(expected, rel=1e-12)
    assert out.start == "2022-03-02T12:30:00Z" and out.shift_s == new - start
    assert out.region == "ES" and out.original_co2e_g == 123.0
    assert out.provenance.source == "csv"
    assert out.account.per_phase["first-hour"] == pytest.approx(
        1.2 * (0.5 * values[h] + 0.5 * values[h + 3600]), rel=1e-12
    )
    assert out.account.mean_g_per_kwh == pytest.approx(expected / (2 * 1.2))


def test_outside_the_csv_or_without_region_is_an_error():
    start = ts("2022-03-01T00:00:00")
    src = get_source(None, csv=[EM_SLICE])
    with pytest.raises(IntensityDataError, match="covers"):
        whatif(two_hours_at_1kw(start), start_s=ts("2023-01-01T00:00:00"), source=src,
               original_co2e_g=None, run_region="ES")  # fmt: skip
    with pytest.raises(ConfigError, match="--region"):
        whatif(two_hours_at_1kw(start), source=src, original_co2e_g=None)
    with pytest.raises(IntensityDataError, match="no energy samples"):
        whatif({"t_s": [], "energy_j": []}, region="ES", source=src, original_co2e_g=None)


def test_whatif_run_from_the_store(sqlite_url):
    import greentrack as gt
    from greentrack.meters import ReplayMeter

    meter = ReplayMeter([(0.0, {"gpu:0": 250.0})])
    with gt.track("w", project="whatif", db=sqlite_url, meters=[meter], region="ES",
                  interval_s=0.05) as run, run.phase("train"):  # fmt: skip
        time.sleep(0.3)
    stored = run.summary()
    out = whatif_run(sqlite_url, run.id[:8], region="FR")
    assert out.run == run.id and out.region == "FR"
    assert out.original_co2e_g == pytest.approx(stored.co2e_g)
    ratio = static_intensity("FR")[0] / static_intensity("ES")[0]
    assert out.co2e_g == pytest.approx(stored.co2e_g * ratio, rel=1e-6)
    assert out.account.device_energy_j == pytest.approx(stored.energy_j, rel=1e-6)
    assert out.account.per_phase["train"] > 0
    same = whatif_run(sqlite_url, run.id)
    assert same.region == "ES" and same.co2e_g == pytest.approx(stored.co2e_g, rel=1e-6)
