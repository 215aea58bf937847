"""Static annual averages read from codecarbon's shipped data files (checked against the files)."""

from __future__ import annotations

import csv
import json

import pytest

from greentrack.carbon._data import codecarbon_data_dir
from greentrack.carbon.registry import get_source
from greentrack.carbon.static import StaticSource, static_annual, static_intensity
from greentrack.errors import IntensityError, ProviderError, UnknownRegionError

DATA = codecarbon_data_dir()
LB = 0.45359237


def js(rel: str):
    return json.loads((DATA / rel).read_text(encoding="utf-8"))


def test_country_from_global_energy_mix_with_its_year():
    mix = js("private_infra/global_energy_mix.json")
    for iso2, iso3 in (("ES", "ESP"), ("FR", "FRA"), ("IN", "IND"), ("BR", "BRA")):
        g, p = static_intensity(iso2)
        assert g == mix[iso3]["carbon_intensity"]
        assert p.source == "codecarbon-static" and p.zone == iso2 and p.kind == "average"
        assert p.period == str(mix[iso3]["year"]) and iso3 in p.detail


def test_country_without_a_figure_is_computed_from_its_mix():
    mix = js("private_infra/global_energy_mix.json")["CAF"]
    factors = js("private_infra/carbon_intensity_per_source.json")
    assert not mix["carbon_intensity"]
    expected = (
        sum(
            twh * factors[k[:-4]]
            for k, twh in mix.items()
            if k.endswith("_TWh") and k[:-4] in factors
        )
        / mix["total_TWh"]
    )
    g, p = static_intensity("CF")
    assert g == pytest.approx(expected) and "computed from its generation mix" in p.detail


def test_us_state_converts_lbs_per_mwh():
    usa = js("private_infra/2023/usa_emissions.json")
    assert usa["_unit"]["emissions"] == "lbs/MWh"
    g, p = static_intensity("US-CA")
    assert g == pytest.approx(usa["california"]["emissions"] * LB, rel=1e-12)
    assert p.period == str(usa["_source"]["year"])
    assert "lbs/MWh x 0.45359237" in p.detail


def test_canadian_province_from_its_generation_mix():
    mix = js("private_infra/2023/canada_energy_mix.json")["ontario"]
    f = js("private_infra/carbon_intensity_per_source.json")
    expected = (
        mix["coal"] * f["coal"]
        + mix["naturalGas"] * f["natural_gas"]
        + mix["petroleum"] * f["petroleum"]
        + mix["nuclear"] * f["nuclear"]
        + mix["hydro"] * f["hydroelectricity"]
        + mix["wind"] * f["wind"]
        + mix["solar"] * f["solar"]
        + mix["biomass"] * f["biomass"]
    ) / mix["total"]
    g, p = static_intensity("CA-ON")
    assert g == pytest.approx(expected, rel=1e-12)
    assert p.period == "2023" and "life-cycle factors" in p.detail


def test_chinese_province_nordic_zone_world():
    cn = js("private_infra/2023/china_provincial_emissions.json")["data"]["CN-GD"]
    g, p = static_intensity("CN-GD")
    assert g == cn["emission_factor"] and p.period == "2023" and "CO2 only" in p.detail
    nordic = js("private_infra/nordic_emissions.json")["data"]["SE3"]
    g, p = static_intensity("SE3")
    assert g == nordic["emission_factor"] and p.zone == "SE-SE3" and p.period == str(nordic["year"])
    g, p = static_intensity("WORLD")
    assert g == js("private_infra/carbon_intensity_per_source.json")["world_average"]


def test_cloud_regions():
    with (DATA / "cloud" / "impact.csv").open(encoding="utf-8-sig", newline="") as fh:
        impact = {r["region"]: float(r["impact"]) for r in csv.DictReader(fh)}
    g, p = static_intensity("gcp:europe-west1")
    assert g == impact["europe-west1"] and "Google-reported" in p.detail
    g, p = static_intensity("aws:us-east-1")
    assert g == static_intensity("US-VA")[0]
    assert p.zone == "aws:us-east-1" and "location US-VA" in p.detail
    assert static_intensity("azure:westeurope")[0] == static_intensity("NL")[0]


def test_subnational_zone_uses_a_named_stand_in():
    g, p = static_intensity("US-TEX-ERCO")
    assert g == static_intensity("US-TX")[0]
    assert p.zone == "US-TEX-ERCO" and "stand-in: US-TX figure for US-TEX-ERCO" in p.detail
    assert static_annual("US-TEX-ERCO") == (g, p)


def test_source_interface():
    src = get_source("static")
    assert isinstance(src, StaticSource) and src.kind == "average"
    s = src.series("ES", 1000.0, 5000.0)
    assert s.covers(1000.0, 5000.0) and len(s) == 1
    assert s.mean(1000.0, 5000.0) == static_intensity("ES")[0]
    point = src.at("esp", 1234.0)
    assert point.zone == "ES" and point.t_s == 1234.0 and point.kind == "average"
    assert point.to_dict()["at"] == "1970-01-01T00:20:34Z"
    with pytest.raises(ProviderError, match="codecarbon-static has no forecasts"):
        src.forecast("ES", 3600)


def test_unknown_and_uncovered_zones():
    with pytest.raises(UnknownRegionError):
        static_intensity("Atlantis")
    with pytest.raises(IntensityError, match="no data for AQ"):
        static_intensity("AQ")  # Antarctica: a country code, no energy-mix row
