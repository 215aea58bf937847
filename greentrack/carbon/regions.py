"""Grid regions: what users type -> one canonical zone id, and where the run's region comes from.

Accepted forms (case-insensitive on input, canonical form shown):

* ISO 3166-1 countries, 2- or 3-letter or English short name: ``ES``, ``ESP``, ``Spain`` -> ``ES``
  (``UK`` -> ``GB``).
* US states ``US-CA``, Canadian provinces ``CA-ON``, Chinese provinces ``CN-BJ`` (ISO 3166-2).
* Electricity Maps sub-national zone ids listed in ``greentrack/data/zones.csv``:
  balancing authorities (``US-CAL-CISO``, also by EIA code ``CISO``), Nordic bidding zones
  (``SE-SE3``, also ``SE3``; ``NO-NO1``, ``DK-DK1``), Italian, Japanese, Indian, Australian,
  Brazilian regions...
* Cloud regions ``provider:region``: ``gcp:europe-west1``, ``aws:us-east-1``,
  ``azure:westeurope`` (``google:``/``amazon:``/``microsoft:`` also accepted).
* ``WORLD``: the world average (the default, see below).

Precedence of :func:`resolve_region`: explicit argument > ``GREENTRACK_REGION`` > ``region`` in
the config file > the cloud metadata server (only when ``cloud_metadata = true`` in the config;
otherwise no network call is ever made) > the default ``WORLD`` (world average, 475 g/kWh in
codecarbon's table) together with a warning that the caller records on the run.

Cloud metadata (opt-in): GCP (``metadata.google.internal``, header ``Metadata-Flavor: Google``),
AWS (IMDSv2 token, then ``placement/region``) and Azure (``Metadata: true``) are asked in turn
with a short timeout (0.5 s each by default). Their base URLs and the timeout can be changed in
the config file (``[providers.cloud_metadata] gcp_url / aws_url / azure_url / timeout_s``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greentrack.errors import UnknownRegionError

if TYPE_CHECKING:
    from greentrack.carbon._data import CloudRegion
    from greentrack.config import Config

__all__ = [
    "DEFAULT_ZONE",
    "ResolvedRegion",
    "ZoneInfo",
    "canonical_zone",
    "detect_cloud_region",
    "known_zones",
    "resolve_region",
    "zone_info",
]

#: Zone used when nothing says where the run is: the world average.
DEFAULT_ZONE = "WORLD"

_CLOUD_PROVIDER_ALIASES = {
    "gcp": "gcp",
    "google": "gcp",
    "gce": "gcp",
    "aws": "aws",
    "amazon": "aws",
    "ec2": "aws",
    "azure": "azure",
    "microsoft": "azure",
}

# codecarbon's canada_energy_mix.json is keyed by province name.
CANADA_PROVINCES = {
    "alberta": "AB",
    "british columbia": "BC",
    "manitoba": "MB",
    "new brunswick": "NB",
    "newfoundland and labrador": "NL",
    "northwest territories": "NT",
    "nova scotia": "NS",
    "nunavut": "NU",
    "ontario": "ON",
    "prince edward island": "PE",
    "quebec": "QC",
    "saskatchewan": "SK",
    "yukon": "YT",
}

# codecarbon's impact.csv spells one GCP region wrongly; accept both spellings.
GCP_REGION_FIXES = {"me-cenrtal1": "me-central1"}


@dataclass(frozen=True)
class ZoneInfo:
    """What greentrack knows about one zone.

    Attributes:
        zone: canonical id (``ES``, ``US-CA``, ``US-CAL-CISO``, ``gcp:europe-west1``).
        kind: ``world``, ``country``, ``us-state``, ``ca-province``, ``cn-province``,
            ``subnational`` or ``cloud``.
        name: human name.
        static_zone: the zone whose static annual figure stands in for this one (itself when the
            offline data has this zone).
        location: for cloud regions, the grid zone of the site; else the zone itself.
        em_zone: the Electricity Maps zone to ask live providers for.
    """

    zone: str
    kind: str
    name: str
    static_zone: str
    location: str
    em_zone: str


@dataclass(frozen=True)
class ResolvedRegion:
    """The zone a run is accounted in, and how it was chosen.

    Attributes:
        zone: canonical zone id.
        origin: ``argument``, ``environment``, ``config file``, ``cloud metadata`` or ``default``.
        warning: one line to record on the run when the zone is a guess (default), else None.
    """

    zone: str
    origin: str
    warning: str | None = None


class _Catalogue:
    """Every zone and spelling greentrack knows (~575 zones from three CSVs and two of
    codecarbon's JSON files: ~5 ms to build), for the spellings :func:`_quick_lookup` does not
    answer, suggestions and :func:`known_zones`. A zone id wins over an alias (the last section
    naming an id wins); between aliases the first one added wins."""

    def __init__(self) -> None:
        from greentrack.carbon._data import (
            cloud_regions,
            codecarbon_json,
            countries,
            subnational_zones,
        )

        self.zones: dict[str, ZoneInfo] = {}
        self.aliases: dict[str, str] = {}  # normalised spelling -> canonical zone

        def add(info: ZoneInfo, *aliases: str) -> None:
            self.zones[info.zone] = info
            self.aliases[_norm(info.zone)] = info.zone
            for a in aliases:
                self.aliases.setdefault(_norm(a), info.zone)

        add(_WORLD)
        to3, _, names = countries()
        for iso2, iso3 in to3.items():
            add(_country(iso2, names), iso3, names[iso2])
        self.aliases[_norm("UK")] = "GB"

        usa = codecarbon_json("private_infra/2023/usa_emissions.json")
        for key, row in usa.items():
            code = row.get("regionCode", "") if isinstance(row, dict) else ""
            if key.startswith("_") or len(code) != 2:
                continue
            add(_us_state(f"US-{code.upper()}", key))
        for name, code in CANADA_PROVINCES.items():
            add(_ca_province(name, code))
        china = codecarbon_json("private_infra/2023/china_provincial_emissions.json")["data"]
        for z, row in china.items():
            add(_cn_province(z, row))
        for z, row in subnational_zones().items():
            add(_subnational(z, row), *row["aliases"])
        for z, cr in cloud_regions().items():
            add(_cloud(z, cr))

    def lookup(self, text: str) -> ZoneInfo | None:
        zone = self.aliases.get(_key(text))
        return self.zones[zone] if zone else None

    def suggestions(self, text: str, n: int = 5) -> list[str]:
        import difflib  # only for an unknown zone's message (~1 ms to import)

        key = _norm(text)
        candidates = list(self.aliases)
        out: list[str] = []
        for match in difflib.get_close_matches(key, candidates, n=4 * n, cutoff=0.5):
            zone = self.aliases[match]
            if zone not in out:
                out.append(zone)
        return out[:n]


# The zone of each section of the catalogue, built the same way by the catalogue and by the
# fast path (tests/test_carbon_regions_fast.py checks every spelling resolves the same).
_WORLD = ZoneInfo(DEFAULT_ZONE, "world", "World average", DEFAULT_ZONE, DEFAULT_ZONE, "")


def _country(iso2: str, names: dict[str, str]) -> ZoneInfo:
    return ZoneInfo(iso2, "country", names[iso2], iso2, iso2, iso2)


def _us_state(zone: str, key: str) -> ZoneInfo:
    return ZoneInfo(zone, "us-state", key.title(), zone, zone, "US")


def _ca_province(name: str, code: str) -> ZoneInfo:
    zone = f"CA-{code}"
    return ZoneInfo(zone, "ca-province", name.title(), zone, zone, zone)


def _cn_province(zone: str, row: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(zone, "cn-province", row.get("description", zone), zone, zone, "CN")


def _subnational(zone: str, row: dict[str, Any]) -> ZoneInfo:
    return ZoneInfo(zone, "subnational", row["name"], row["static"], zone, zone)


def _cloud(zone: str, cr: CloudRegion) -> ZoneInfo:
    em = cr.em_zone or cr.location
    return ZoneInfo(zone, "cloud", f"{cr.site} ({zone})", zone, cr.location, em)


def _key(text: str) -> str:
    """The catalogue's key for ``text``: :func:`_norm`, cloud provider aliases and codecarbon's
    misspelt GCP region resolved (``google:me-cenrtal1`` -> ``gcp:me-central1``)."""
    key = _norm(text)
    if ":" in key:
        provider, _, region = key.partition(":")
        provider = _CLOUD_PROVIDER_ALIASES.get(provider.lower(), provider.lower())
        region = GCP_REGION_FIXES.get(region.lower(), region.lower())
        key = _norm(f"{provider}:{region}")
    return key


def _quick_lookup(text: str) -> ZoneInfo | None:
    """The zone of the common spellings without building the catalogue, else None.

    ``WORLD`` (the default: no file read), ISO 3166 countries (code, alpha-3, name, ``UK``:
    ``countries.csv``, which the static source reads anyway), cloud regions
    (``cloud_regions.csv``), and the ids of US states, Canadian and Chinese provinces and
    listed sub-national zones (each with the data file the static source reads for it, and
    ``zones.csv``, whose ids win: ``US-AK`` is listed there). Other spellings (sub-national
    aliases such as ``CISO``) return None: the catalogue answers them. Same answer as the
    catalogue for every spelling it knows (tested on all of them).
    """
    key = _key(text)
    if key == DEFAULT_ZONE:
        return _WORLD
    if ":" in key:  # only cloud region ids have a colon: the catalogue's last section
        return _cloud_index().get(key)
    if "-" in key:  # a zone id wins over an alias, the last section naming it first
        for index in (_subnational_index, _cn_index, _ca_index, _us_index):
            info = index().get(key)
            if info is not None:
                return info
    else:
        info = _iso2_index().get(key)
        if info is not None:
            return info
    if key == "UK":
        return _iso2_index()["GB"]
    return _country_alias_index().get(key)


@functools.cache
def _iso2_index() -> dict[str, ZoneInfo]:
    from greentrack.carbon._data import countries

    to3, _, names = countries()
    return {_norm(iso2): _country(iso2, names) for iso2 in to3}


@functools.cache
def _country_alias_index() -> dict[str, ZoneInfo]:
    """Alpha-3 codes and names -> country (the first country naming a spelling wins)."""
    from greentrack.carbon._data import countries

    to3, _, names = countries()
    out: dict[str, ZoneInfo] = {}
    for iso2, iso3 in to3.items():
        info = _country(iso2, names)
        out.setdefault(_norm(iso3), info)
        out.setdefault(_norm(names[iso2]), info)
    return out


@functools.cache
def _us_index() -> dict[str, ZoneInfo]:
    from greentrack.carbon._data import codecarbon_json

    out: dict[str, ZoneInfo] = {}
    for key, row in codecarbon_json("private_infra/2023/usa_emissions.json").items():
        code = row.get("regionCode", "") if isinstance(row, dict) else ""
        if not key.startswith("_") and len(code) == 2:
            info = _us_state(f"US-{code.upper()}", key)
            out[_norm(info.zone)] = info
    return out


@functools.cache
def _ca_index() -> dict[str, ZoneInfo]:
    infos = (_ca_province(name, code) for name, code in CANADA_PROVINCES.items())
    return {_norm(i.zone): i for i in infos}


@functools.cache
def _cn_index() -> dict[str, ZoneInfo]:
    from greentrack.carbon._data import codecarbon_json

    china = codecarbon_json("private_infra/2023/china_provincial_emissions.json")["data"]
    return {_norm(z): _cn_province(z, row) for z, row in china.items()}


@functools.cache
def _subnational_index() -> dict[str, ZoneInfo]:
    from greentrack.carbon._data import subnational_zones

    return {_norm(z): _subnational(z, row) for z, row in subnational_zones().items()}


@functools.cache
def _cloud_index() -> dict[str, ZoneInfo]:
    from greentrack.carbon._data import cloud_regions

    return {_norm(z): _cloud(z, cr) for z, cr in cloud_regions().items()}


def _norm(text: str) -> str:
    """Spelling-insensitive key: upper case, ``_`` and spaces as ``-`` (cloud ids: lower case)."""
    t = text.strip()
    if ":" in t:
        return t.lower()
    return "-".join(t.upper().replace("_", " ").split())


@functools.cache
def _catalogue() -> _Catalogue:
    return _Catalogue()


def _lookup(text: str) -> ZoneInfo | None:
    """The zone ``text`` names: the fast path for the common spellings, else the catalogue."""
    info = _quick_lookup(text)
    return info if info is not None else _catalogue().lookup(text)


def zone_info(text: str) -> ZoneInfo:
    """Look a zone up in any accepted spelling.

    Raises:
        UnknownRegionError: no such zone; the message lists the closest known zones.
    """
    info = _lookup(text) if text and text.strip() else None
    if info is None:
        raise UnknownRegionError(_unknown_message(text))
    return info


def canonical_zone(text: str) -> str:
    """Canonical id: ``"esp"`` -> ``"ES"``, ``"SE3"`` -> ``"SE-SE3"``,
    ``"GCP:europe-west1"`` -> ``"gcp:europe-west1"``."""
    return zone_info(text).zone


def known_zones() -> list[str]:
    """Every canonical zone id greentrack knows, sorted."""
    return sorted(_catalogue().zones)


def _unknown_message(text: str, origin: str = "") -> str:
    close = _catalogue().suggestions(text or "")
    hint = f"closest matches: {', '.join(close)}" if close else "no close match"
    where = f" (from {origin})" if origin else ""
    return (
        f"unknown region {text!r}{where}; {hint}. Use an ISO country code (ES), an Electricity "
        "Maps zone (US-CAL-CISO) or provider:region (gcp:europe-west1)"
    )


def resolve_region(arg: str | None, config: Config | None = None) -> ResolvedRegion:
    """Decide the zone of a run: argument > environment > config file > cloud metadata > default.

    Args:
        arg: the region the caller passed (``track(region=...)``, ``--region``), or None.
        config: settings (``load_config()`` when None). ``config.region`` / ``region_origin``
            carry ``GREENTRACK_REGION`` or the config file's ``region``.

    Returns:
        The canonical zone, where it came from, and a warning when it is the default guess.

    Raises:
        UnknownRegionError: the chosen spelling names no zone (the message says where it came
            from and lists the closest matches).
    """
    if config is None:
        from greentrack.config import load_config

        config = load_config()
    if arg is not None and str(arg).strip():
        return ResolvedRegion(_canonical_from(str(arg), ""), "argument")
    if config.region:
        origin = config.region_origin or "config file"
        label = "GREENTRACK_REGION" if origin == "environment" else "config file region"
        return ResolvedRegion(_canonical_from(config.region, label), origin)
    reason = ""
    if config.cloud_metadata:
        detected, reason = detect_cloud_region(config)
        if detected:
            return ResolvedRegion(detected, "cloud metadata")
    warning = (
        f"no region set{reason}; using the world average ({DEFAULT_ZONE}). Set one with "
        'GREENTRACK_REGION=ES, region = "ES" in config.toml, or track(region=...)'
    )
    return ResolvedRegion(DEFAULT_ZONE, "default", warning)


def _canonical_from(text: str, origin: str) -> str:
    info = _lookup(text) if text.strip() else None
    if info is None:
        raise UnknownRegionError(_unknown_message(text, origin))
    return info.zone


def detect_cloud_region(config: Config) -> tuple[str | None, str]:
    """Ask the cloud metadata servers (GCP, AWS, Azure in turn) which region this machine is in.

    Only call this when ``config.cloud_metadata`` is true: it makes network requests (each with
    a short timeout, ``[providers.cloud_metadata] timeout_s``, default 0.5 s).

    Returns:
        ``(zone, "")`` with a known canonical zone such as ``gcp:europe-west1``, or
        ``(None, reason)`` where ``reason`` (starting with ``"; "``) says why nothing was found.
    """
    import urllib.error
    import urllib.request

    opts = config.provider_settings("cloud_metadata")
    timeout_s = float(opts.get("timeout_s", 0.5))
    gcp = str(opts.get("gcp_url", "http://metadata.google.internal/computeMetadata/v1")).rstrip("/")
    aws = str(opts.get("aws_url", "http://169.254.169.254")).rstrip("/")
    azure = str(opts.get("azure_url", "http://169.254.169.254")).rstrip("/")

    def fetch(url: str, headers: dict[str, str], method: str = "GET") -> str | None:
        req = urllib.request.Request(url, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as rsp:
                return rsp.read(4096).decode("utf-8", "replace").strip()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    found: str | None = None
    text = fetch(f"{gcp}/instance/zone", {"Metadata-Flavor": "Google"})
    if text and "/zones/" in text:
        # "projects/123/zones/europe-west1-b" -> "europe-west1"
        found = "gcp:" + text.rsplit("/", 1)[-1].rsplit("-", 1)[0]
    if found is None:
        token = fetch(
            f"{aws}/latest/api/token",
            {"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            method="PUT",
        )
        if token:
            region = fetch(
                f"{aws}/latest/meta-data/placement/region", {"X-aws-ec2-metadata-token": token}
            )
            if region:
                found = f"aws:{region}"
    if found is None:
        loc = fetch(
            f"{azure}/metadata/instance/compute/location?api-version=2021-02-01&format=text",
            {"Metadata": "true"},
        )
        if loc:
            found = f"azure:{loc}"
    if found is None:
        return None, " (no cloud metadata server answered)"
    info = _lookup(found)
    if info is None:
        return None, f" (cloud metadata says {found}, which greentrack has no data for)"
    return info.zone, ""
