"""Region names; run-region precedence: argument > env > config file > cloud metadata > default."""

from __future__ import annotations

import urllib.request

import pytest
from test_carbon_providers import LocalServer

from greentrack.carbon.regions import (
    DEFAULT_ZONE,
    ResolvedRegion,
    canonical_zone,
    known_zones,
    resolve_region,
    zone_info,
)
from greentrack.config import load_config
from greentrack.errors import UnknownRegionError


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("ES", "ES"),
        ("es", "ES"),
        ("ESP", "ES"),
        ("Spain", "ES"),
        ("UK", "GB"),
        ("gbr", "GB"),
        ("US-CA", "US-CA"),
        ("us_ca", "US-CA"),
        ("CA-ON", "CA-ON"),
        ("CN-BJ", "CN-BJ"),
        ("SE3", "SE-SE3"),
        ("NO-NO4", "NO-NO4"),
        ("DK1", "DK-DK1"),
        ("US-CAL-CISO", "US-CAL-CISO"),
        ("CISO", "US-CAL-CISO"),
        ("ERCOT", "US-TEX-ERCO"),
        ("gcp:europe-west1", "gcp:europe-west1"),
        ("GCP:Europe-West1", "gcp:europe-west1"),
        ("google:me-cenrtal1", "gcp:me-central1"),  # codecarbon's spelling, accepted
        ("aws:us-east-1", "aws:us-east-1"),
        ("amazon:eu-west-1", "aws:eu-west-1"),
        ("azure:westeurope", "azure:westeurope"),
        ("world", DEFAULT_ZONE),
    ],
)
def test_accepted_spellings(text, zone):
    assert canonical_zone(text) == zone


def test_zone_info_kinds_and_locations():
    assert zone_info("aws:us-east-1").location == "US-VA"
    assert zone_info("aws:us-east-1").em_zone == "US-MIDA-PJM"
    assert zone_info("US-CAL-CISO").static_zone == "US-CA"
    assert zone_info("ES").kind == "country" and zone_info("US-TX").kind == "us-state"
    zones = known_zones()
    assert {"ES", "US-CAL-CISO", "CN-GD", "CA-QC", "gcp:us-central1", "azure:eastus"} <= set(zones)
    assert len(zones) > 500


@pytest.mark.parametrize(
    ("text", "close"),
    [
        ("US-CAL-CSIO", "US-CAL-CISO"),
        ("ESPP", "ES"),
        ("gcp:europe-west99", "gcp:europe-west9"),
        ("aws:us-est-1", "aws:us-east-1"),
    ],
)
def test_unknown_region_lists_closest_matches(text, close):
    with pytest.raises(UnknownRegionError) as e:
        canonical_zone(text)
    msg = str(e.value)
    assert "\n" not in msg and repr(text) in msg
    assert "closest matches:" in msg and close in msg.split("closest matches:")[1]


def test_bad_input():
    for text in ("", "   ", "XX-NOPE-ZONE-12345", ":"):
        with pytest.raises(UnknownRegionError):
            canonical_zone(text)


def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("resolve_region made a network call")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_precedence_argument_env_config_default(monkeypatch, gt_home):
    no_network(monkeypatch)
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text('region = "FR"\n', encoding="utf-8")
    monkeypatch.setenv("GREENTRACK_REGION", "esp")
    cfg = load_config()
    assert resolve_region("de", cfg) == ResolvedRegion("DE", "argument")
    assert resolve_region(None, cfg) == ResolvedRegion("ES", "environment")
    monkeypatch.delenv("GREENTRACK_REGION")
    cfg = load_config()
    assert resolve_region(None, cfg) == ResolvedRegion("FR", "config file")
    assert resolve_region("", cfg).zone == "FR"  # empty argument = not given
    (gt_home / "config.toml").write_text("pue = 1.1\n", encoding="utf-8")
    r = resolve_region(None, load_config())
    assert r.zone == DEFAULT_ZONE and r.origin == "default"
    assert r.warning and "GREENTRACK_REGION" in r.warning and "\n" not in r.warning


def test_bad_environment_region_names_its_origin(monkeypatch):
    monkeypatch.setenv("GREENTRACK_REGION", "Spian")
    with pytest.raises(UnknownRegionError, match=r"'Spian' \(from GREENTRACK_REGION\)"):
        resolve_region(None, load_config())


def test_resolve_region_loads_config_when_none(monkeypatch):
    monkeypatch.setenv("GREENTRACK_REGION", "SE3")
    assert resolve_region(None).zone == "SE-SE3"


def metadata_config(gt_home, server: LocalServer, enabled: bool = True):
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text(
        f"cloud_metadata = {'true' if enabled else 'false'}\n"
        "[providers.cloud_metadata]\n"
        f'gcp_url = "{server.url}/computeMetadata/v1"\n'
        f'aws_url = "{server.url}"\n'
        f'azure_url = "{server.url}"\n'
        "timeout_s = 0.5\n",
        encoding="utf-8",
    )
    return load_config()


def test_cloud_metadata_gcp(gt_home):
    with LocalServer() as server:
        server.add(
            "/computeMetadata/v1/instance/zone", (200, b"projects/123456/zones/europe-west1-b")
        )
        r = resolve_region(None, metadata_config(gt_home, server))
        assert r == ResolvedRegion("gcp:europe-west1", "cloud metadata")
        ((_, _, _, headers),) = server.hits("/computeMetadata/v1/instance/zone")
        assert headers["metadata-flavor"] == "Google"


def test_cloud_metadata_aws_imdsv2_and_azure(gt_home):
    with LocalServer() as server:
        server.add("/latest/api/token", (200, b"imds-token"))
        server.add("/latest/meta-data/placement/region", (200, b"eu-north-1"))
        r = resolve_region(None, metadata_config(gt_home, server))
        assert r.zone == "aws:eu-north-1" and r.origin == "cloud metadata"
        ((method, _, _, headers),) = server.hits("/latest/api/token")
        assert method == "PUT" and headers["x-aws-ec2-metadata-token-ttl-seconds"] == "60"
        assert (
            server.hits("/latest/meta-data/placement/region")[0][3]["x-aws-ec2-metadata-token"]
            == "imds-token"
        )
    with LocalServer() as server:
        server.add("/metadata/instance/compute/location", (200, b"westeurope"))
        r = resolve_region(None, metadata_config(gt_home, server))
        assert r.zone == "azure:westeurope"
        assert server.hits("/metadata/instance/compute/location")[0][3]["metadata"] == "true"


def test_cloud_metadata_silent_or_unknown_falls_to_the_default(gt_home):
    with LocalServer() as server:
        r = resolve_region(None, metadata_config(gt_home, server))
        assert r.zone == DEFAULT_ZONE and "no cloud metadata server answered" in r.warning
        server.add("/metadata/instance/compute/location", (200, b"marsnorth"))
        r = resolve_region(None, metadata_config(gt_home, server))
        assert "azure:marsnorth, which greentrack has no data for" in r.warning


def test_cloud_metadata_off_means_no_request(gt_home, monkeypatch):
    with LocalServer() as server:
        cfg = metadata_config(gt_home, server, enabled=False)
        no_network(monkeypatch)
        assert resolve_region(None, cfg).origin == "default"
        assert server.requests == []
        # An explicit region never asks either, even with metadata enabled.
        assert resolve_region("ES", metadata_config(gt_home, server)).zone == "ES"
        assert server.requests == []
