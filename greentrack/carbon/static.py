"""Static annual-average intensity from codecarbon's shipped data files (the offline default).

Read with :mod:`json` / :mod:`csv` from codecarbon's package directory (codecarbon is never
imported). Source name in provenance: ``codecarbon-static``; kind: ``average``; period: the
data's year where the file states it. Per zone kind:

* countries: ``private_infra/global_energy_mix.json`` (ISO3 keys), field ``carbon_intensity``
  (g CO₂e/kWh) and ``year``. Where the file has no (or a zero) ``carbon_intensity``, the
  figure is computed from the file's generation mix (TWh per source) with the life-cycle factors
  of ``carbon_intensity_per_source.json``, as codecarbon does; provenance says so.
* US states: ``private_infra/2023/usa_emissions.json``, EPA eGRID2023 total-output CO₂e rates
  in **lbs/MWh**, converted with 1 lb/MWh = 0.45359237 g/kWh.
* Canadian provinces: ``private_infra/2023/canada_energy_mix.json`` gives only the generation
  mix (% per source); the figure is the share-weighted sum of the life-cycle factors in
  ``carbon_intensity_per_source.json``. Sources without a factor there (``tidal``, ``other``)
  count as 0, so the figure is a lower bound where they matter (provenance lists them).
* Chinese provinces: ``private_infra/2023/china_provincial_emissions.json`` (MEE/NBS 2023; CO₂
  only, not CO₂e, as that file says).
* Nordic bidding zones (SE-SE1..4, NO-NO1..5): ``private_infra/nordic_emissions.json``.
* GCP regions: ``cloud/impact.csv`` (Google-reported). Other cloud regions and sub-national
  zones without own data use the figure of the zone they lie in (``greentrack/data``); the
  provenance says which stand-in was used.
* ``WORLD``: ``world_average`` of ``carbon_intensity_per_source.json`` (475 g/kWh, IEA).
"""

from __future__ import annotations

import csv
import functools
from typing import TYPE_CHECKING

from greentrack.carbon._data import (
    G_PER_KWH_PER_LB_PER_MWH,
    codecarbon_data_dir,
    codecarbon_json,
    countries,
)
from greentrack.carbon.base import IntensityPoint, IntensitySource
from greentrack.carbon.provenance import Provenance
from greentrack.carbon.regions import CANADA_PROVINCES, GCP_REGION_FIXES, zone_info
from greentrack.errors import IntensityError

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries

__all__ = ["StaticSource", "static_annual", "static_intensity"]

SOURCE = "codecarbon-static"

# carbon_intensity_per_source.json keys for the canada_energy_mix.json keys.
_CANADA_FACTOR_KEYS = {
    "coal": "coal",
    "naturalGas": "natural_gas",
    "petroleum": "petroleum",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "wind": "wind",
    "solar": "solar",
    "biomass": "biomass",
}


@functools.cache
def static_intensity(zone: str) -> tuple[float, Provenance]:
    """Annual average intensity of ``zone`` (any accepted spelling) and its provenance.

    Returns:
        ``(g_per_kwh, provenance)``; units g CO₂e/kWh (g CO₂/kWh for Chinese provinces).

    Raises:
        UnknownRegionError: unknown zone.
        IntensityError: a known zone that codecarbon's data does not cover.
    """
    info = zone_info(zone)
    if info.static_zone != info.zone:
        g, base = static_intensity(info.static_zone)
        detail = f"stand-in: {info.static_zone} figure for {info.zone} ({info.name}); {base.detail}"
        return g, Provenance(SOURCE, info.zone, "average", base.period, detail)
    g, period, detail = _lookup(info.zone, info.kind, info.location)
    return g, Provenance(SOURCE, info.zone, "average", period, detail)


def _lookup(zone: str, kind: str, location: str) -> tuple[float, str, str]:
    if kind == "world":
        per_source = codecarbon_json("private_infra/carbon_intensity_per_source.json")
        return (
            float(per_source["world_average"]),
            "",
            "world average of carbon_intensity_per_source.json "
            f"({per_source.get('world_average_source', 'IEA')})",
        )
    if kind == "country":
        return _country(zone)
    if kind == "us-state":
        return _us_state(zone)
    if kind == "ca-province":
        return _canada(zone)
    if kind == "cn-province":
        data = codecarbon_json("private_infra/2023/china_provincial_emissions.json")
        row = data["data"][zone]
        return (
            float(row["emission_factor"]),
            str(row.get("year", data["metadata"].get("year", ""))),
            f"china_provincial_emissions.json {zone} ({row.get('description', '')}), MEE/NBS "
            "provincial factor, CO2 only (not CO2e)",
        )
    if kind == "subnational" and zone[:3] in ("SE-", "NO-"):
        data = codecarbon_json("private_infra/nordic_emissions.json")
        key = zone[3:]
        if key in data["data"]:
            row = data["data"][key]
            return (
                float(row["emission_factor"]),
                str(row.get("year", "")),
                f"nordic_emissions.json {key} ({row.get('description', '')}), production-based",
            )
    if kind == "cloud":
        if zone.startswith("gcp:"):
            gcp = _gcp_impact()
            region = zone[4:]
            if region in gcp:
                return gcp[region], "", f"cloud/impact.csv, Google-reported figure for {zone}"
        g, base = static_intensity(location)
        return g, base.period, f"location {location} of {zone}; {base.detail}"
    raise IntensityError(
        f"codecarbon's offline data has no figure for {zone}; pass --csv FILE with hourly data "
        "or use a live source (--source electricitymaps)"
    )


def _country(iso2: str) -> tuple[float, str, str]:
    iso3 = countries()[0].get(iso2, "")
    mix = codecarbon_json("private_infra/global_energy_mix.json").get(iso3)
    if mix is None:
        raise IntensityError(
            f"codecarbon's global_energy_mix.json has no data for {iso2} ({iso3}); pass --csv "
            "FILE with hourly data or use a live source (--source electricitymaps)"
        )
    year = str(mix.get("year", ""))
    value = mix.get("carbon_intensity")
    if value:
        return float(value), year, f"global_energy_mix.json {iso3} carbon_intensity"
    per_source = codecarbon_json("private_infra/carbon_intensity_per_source.json")
    total = float(mix.get("total_TWh") or 0.0)
    acc, covered = 0.0, 0.0
    for key, twh in mix.items():
        factor = per_source.get(key[: -len("_TWh")]) if key.endswith("_TWh") else None
        if factor is not None and twh:
            acc += float(twh) * float(factor)
            covered += float(twh)
    if total <= 0 or abs(covered - total) > 1e-6 * max(total, 1.0):
        raise IntensityError(
            f"global_energy_mix.json has no usable figure for {iso2} ({iso3}); pass --csv FILE "
            "or use a live source"
        )
    return (
        acc / total,
        year,
        f"global_energy_mix.json {iso3}: no carbon_intensity in the file, computed from its "
        "generation mix x carbon_intensity_per_source.json",
    )


def _us_state(zone: str) -> tuple[float, str, str]:
    data = codecarbon_json("private_infra/2023/usa_emissions.json")
    code = zone[3:]
    for name, row in data.items():
        if isinstance(row, dict) and str(row.get("regionCode", "")).upper() == code:
            lbs = float(row["emissions"])
            src = data.get("_source", {})
            return (
                lbs * G_PER_KWH_PER_LB_PER_MWH,
                str(src.get("year", "")),
                f"usa_emissions.json {name} ({src.get('name', 'EPA eGRID')}): {lbs:g} lbs/MWh "
                f"x {G_PER_KWH_PER_LB_PER_MWH} = g/kWh",
            )
    raise IntensityError(f"usa_emissions.json has no row for {zone}")


def _canada(zone: str) -> tuple[float, str, str]:
    data = codecarbon_json("private_infra/2023/canada_energy_mix.json")
    code = zone[3:]
    name = next(n for n, c in CANADA_PROVINCES.items() if c == code)
    mix = data.get(name)
    if mix is None:
        raise IntensityError(f"canada_energy_mix.json has no row for {zone} ({name})")
    per_source = codecarbon_json("private_infra/carbon_intensity_per_source.json")
    total = float(mix["total"])
    acc = 0.0
    unfactored = []
    for key, share in mix.items():
        if key == "total":
            continue
        factor_key = _CANADA_FACTOR_KEYS.get(key)
        if factor_key is None or factor_key not in per_source:
            if share:
                unfactored.append(f"{key} {share:g}%")
            continue
        acc += float(share) * float(per_source[factor_key])
    note = f"; no factor (counted as 0): {', '.join(unfactored)}" if unfactored else ""
    return (
        acc / total,
        "2023",
        f"canada_energy_mix.json {name}: generation mix x life-cycle factors of "
        f"carbon_intensity_per_source.json{note}",
    )


@functools.cache
def _gcp_impact() -> dict[str, float]:
    path = codecarbon_data_dir() / "cloud" / "impact.csv"
    out: dict[str, float] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("provider") != "gcp" or not row.get("impact"):
                continue
            region = GCP_REGION_FIXES.get(row["region"], row["region"])
            out[region] = float(row["impact"])
    return out


class StaticSource(IntensitySource):
    """Annual averages from codecarbon's data: constant in time, offline, no forecasts."""

    name = SOURCE
    kind = "average"

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        from greentrack.carbon.series import IntensitySeries

        g, prov = static_intensity(zone)
        step = float(t1_s - t0_s) if t1_s > t0_s else 3600.0
        return IntensitySeries.constant(g, prov, start_s=float(t0_s), step_s=step)

    def at(self, zone: str, t_s: float) -> IntensityPoint:
        g, prov = static_intensity(zone)
        return IntensityPoint(prov.zone, float(t_s), g, "average", prov)

    def constant(self, zone: str) -> tuple[float, Provenance]:
        """The zone's annual average, which holds at every instant. Units: g CO₂e/kWh."""
        return static_intensity(zone)


def static_annual(zone: str) -> tuple[float, Provenance]:
    """Static annual-average intensity of ``zone`` (g CO₂e/kWh) and its provenance.

    The offline figure reports show beside the time-resolved one. Raises
    :class:`~greentrack.errors.UnknownRegionError` or :class:`IntensityError` when unknown.
    """
    return static_intensity(zone)
