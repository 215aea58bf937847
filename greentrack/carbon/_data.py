"""Static tables: greentrack's own (``greentrack/data/``) and codecarbon's shipped data files.

codecarbon's files are read with :mod:`json` / :mod:`csv` straight from its package directory,
located with :func:`importlib.util.find_spec` so that codecarbon itself (slow to import) is never
imported. Everything here is cached: each file is parsed at most once per process.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from greentrack.errors import IntensityError

__all__ = [
    "CloudRegion",
    "cloud_regions",
    "codecarbon_data_dir",
    "codecarbon_json",
    "countries",
    "greentrack_data_dir",
    "subnational_zones",
]

#: 1 lb/MWh in g/kWh: 453.59237 g / 1000 kWh.
G_PER_KWH_PER_LB_PER_MWH = 0.45359237


def greentrack_data_dir() -> Path:
    """``greentrack/data``: the static mapping files shipped with greentrack."""
    return Path(__file__).resolve().parent.parent / "data"


@functools.cache
def codecarbon_data_dir() -> Path:
    """codecarbon's ``data`` directory (found without importing codecarbon)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise IntensityError(
            "codecarbon is not installed, so the offline intensity data is missing; "
            "run `pip install codecarbon` (a greentrack dependency)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.cache
def codecarbon_json(relpath: str) -> Any:
    """Parse one of codecarbon's JSON data files, e.g. ``private_infra/global_energy_mix.json``."""
    path = codecarbon_data_dir() / relpath
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IntensityError(
            f"cannot read codecarbon's data file {path} ({e}); reinstall codecarbon"
        ) from None


def _read_table(name: str) -> list[dict[str, str]]:
    path = greentrack_data_dir() / name
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [line for line in fh if line.strip() and not line.startswith("#")]
    return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(lines)]


@functools.cache
def countries() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """ISO 3166-1 tables: (iso2 -> iso3, iso3 -> iso2, iso2 -> name)."""
    to3: dict[str, str] = {}
    to2: dict[str, str] = {}
    names: dict[str, str] = {}
    for row in _read_table("countries.csv"):
        to3[row["iso2"]] = row["iso3"]
        to2[row["iso3"]] = row["iso2"]
        names[row["iso2"]] = row["name"]
    return to3, to2, names


@functools.cache
def subnational_zones() -> dict[str, dict[str, Any]]:
    """Listed sub-national zones: zone -> {name, static, aliases: list[str]}."""
    out: dict[str, dict[str, Any]] = {}
    for row in _read_table("zones.csv"):
        aliases = [a.strip() for a in row["aliases"].split("|") if a.strip()]
        out[row["zone"]] = {"name": row["name"], "static": row["static"], "aliases": aliases}
    return out


class CloudRegion:
    """Where one cloud region is: ``location`` grid zone, optional Electricity Maps zone, site."""

    __slots__ = ("em_zone", "location", "provider", "region", "site")

    def __init__(self, provider: str, region: str, location: str, em_zone: str, site: str):
        self.provider = provider
        self.region = region
        self.location = location
        self.em_zone = em_zone or None
        self.site = site

    @property
    def zone(self) -> str:
        return f"{self.provider}:{self.region}"


@functools.cache
def cloud_regions() -> dict[str, CloudRegion]:
    """``provider:region`` -> :class:`CloudRegion`."""
    out: dict[str, CloudRegion] = {}
    for row in _read_table("cloud_regions.csv"):
        cr = CloudRegion(
            row["provider"], row["region"], row["location"], row["em_zone"], row["site"]
        )
        out[cr.zone] = cr
    return out
