"""The zone fast path (``regions._quick_lookup``) answers exactly as the full catalogue does.

The catalogue (~575 zones from three CSVs and two codecarbon JSON files) is built only for
spellings the fast path leaves to it; a run in WORLD, a country or a cloud region never builds it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from greentrack.carbon import regions
from greentrack.carbon.regions import _Catalogue, _quick_lookup


@pytest.fixture(scope="module")
def catalogue() -> _Catalogue:
    return _Catalogue()  # built directly: the full path, whatever the fast path does


def _spellings(cat: _Catalogue) -> list[str]:
    """Every key of the catalogue, every zone id, and each in the case and separators a user
    may type (lower case, ``_`` for ``-``, a cloud provider's other name)."""
    out = set(cat.aliases) | set(cat.zones)
    for s in list(out):
        out |= {s.lower(), s.replace("-", "_"), f" {s.title()} "}
        if s.startswith("gcp:"):
            out.add("Google:" + s[4:].upper())
        if s.startswith("aws:"):
            out.add("amazon:" + s[4:])
    return sorted(out | {"uk", "google:me-cenrtal1", "gcp:no-such-region", "XX", "XXX"})


def test_every_spelling_resolves_the_same_through_the_fast_path_and_the_catalogue(catalogue):
    answered = 0
    for text in _spellings(catalogue):
        quick = _quick_lookup(text)
        if quick is not None:
            answered += 1
            assert quick == catalogue.lookup(text), text
        assert regions._lookup(text) == catalogue.lookup(text), text
    assert answered > 1000  # the fast path answers most spellings, not a handful


def test_the_fast_path_answers_every_zone_id_and_country_spelling(catalogue):
    from greentrack.carbon._data import countries

    to3, _, names = countries()
    for z in catalogue.zones:
        assert _quick_lookup(z) == catalogue.zones[z], z
    for iso2, iso3 in to3.items():
        for text in (iso2, iso3, names[iso2]):
            assert _quick_lookup(text) == catalogue.lookup(text), text
    # zones.csv lists US-AK: its id wins over the eGRID state, in both paths
    assert _quick_lookup("US-AK") == catalogue.lookup("US-AK")
    assert catalogue.lookup("US-AK").kind == "subnational"
    # an alias of a listed zone is left to the catalogue, which knows them all
    assert _quick_lookup("CISO") is None and regions.canonical_zone("CISO") == "US-CAL-CISO"


def test_a_run_in_world_a_country_or_a_cloud_region_never_builds_the_catalogue(tmp_path):
    code = (
        "import greentrack as gt\n"
        "from greentrack.carbon import regions, static\n"
        "for r in (None, 'ES', 'esp', 'gcp:europe-west1', 'aws:us-east-1', 'US-CA', 'CA-ON'):\n"
        "    s = gt.track('t', project='p', region=r).start().stop()\n"
        "    assert s.co2e_g is not None and s.co2e_g > 0, (r, s)\n"
        "    assert regions._catalogue.cache_info().currsize == 0, r\n"
        "print(static.static_intensity('aws:us-east-1')[1].detail)\n"
        "regions.canonical_zone('CISO')\n"  # a sub-national alias: the catalogue
        "print(regions._catalogue.cache_info().currsize)\n"
    )
    env = {"GREENTRACK_HOME": str(tmp_path), "GREENTRACK_DB": f"sqlite:///{tmp_path}/r.db"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    detail, built = done.stdout.strip().splitlines()[-2:]
    assert detail.startswith("location US-VA of aws:us-east-1")
    assert built == "1"
