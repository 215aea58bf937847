"""The meter and intensity-source registries: one line adds a meter or a source (issue 16).

A meter and a source are defined in this file and registered by one line each (the registries
name them as ``"test_registries:..."``); the factory, ``greentrack detect``, ``get_source`` and the
CLI then use them with no other edit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from click.testing import CliRunner

from greentrack.carbon import registry as sources
from greentrack.carbon.base import FallbackSource, IntensitySource
from greentrack.carbon.http import LiveSource
from greentrack.carbon.provenance import Provenance
from greentrack.carbon.series import IntensitySeries
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.errors import ConfigError
from greentrack.meters import detect, open_meters
from greentrack.meters import registry as meters
from greentrack.meters.base import DeviceReading, Meter, MeterStatus

# ---- a meter in one module plus one line ---------------------------------------------------


class FakeCpuCounter(Meter):
    """A CPU energy counter drawing a constant 10 W (ground truth: 10 J per second)."""

    name = "fake-cpu"

    def start(self, t_mono: float) -> None:
        self.t0 = t_mono

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        return [DeviceReading("cpu", "cpu:fake-0", 10.0 * (t_mono - self.t0), 10.0, "counter")]


def open_fake(ctx: meters.OpenContext) -> Meter | None:
    if not ctx.needs("cpu"):
        return None
    ctx.covered.add("cpu")
    return FakeCpuCounter()


def detect_fake(ctx: meters.DetectContext) -> list[MeterStatus]:
    return [MeterStatus("fake-cpu", True, "scripted counter", ["cpu:fake-0"], "counter")]


FAKE_LINE = meters.MeterEntry(
    "fake-cpu", "FakeCPU", ("cpu",), "test_registries:open_fake", "test_registries:detect_fake",
    "cpu:fake-0: a scripted counter",
)  # fmt: skip


def _with_fake_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fake meter by one line, above the estimates (as a CPU counter goes)."""
    lines = list(meters.METERS)
    lines.insert(lines.index(meters.entry("cpu-estimate")), FAKE_LINE)
    monkeypatch.setattr(meters, "METERS", tuple(lines))


def test_every_meter_line_resolves_and_detect_reports_it(no_powercap, no_nvml):
    names = [e.name for e in meters.METERS]
    assert len(names) == len(set(names))
    for e in meters.METERS:
        assert callable(e.opener()) and callable(e.detector())
        assert e.components and e.label and e.summary
    reported = [s.name for s in detect(load_config())]
    assert set(names) <= set(reported)


def test_a_new_cpu_meter_is_one_line_and_replaces_the_estimate(no_powercap, no_nvml, monkeypatch):
    _with_fake_meter(monkeypatch)
    opened = open_meters(load_config())
    assert [type(m).__name__ for m in opened] == ["FakeCpuCounter", "RamEstimateMeter"]
    opened[0].start(0.0)
    assert opened[0].read(2.5)[0].energy_j == pytest.approx(25.0)
    st = {s.name: s for s in detect(load_config())}
    assert st["fake-cpu"].available and st["fake-cpu"].devices == ["cpu:fake-0"]
    assert st["cpu-estimate"].reason.startswith("not used: FakeCPU measures the CPU")
    assert st["ram-estimate"].reason.startswith("in use: no ")  # nothing measures memory
    assert open_meters(load_config(), cpu=False)[0].name == "ram-estimate"


def test_without_the_line_the_estimate_stands_in(no_powercap, no_nvml):
    st = {s.name: s for s in detect(load_config())}
    cpu_meters = []
    for e in meters.METERS:  # the CPU meters above the estimate, e.g. "RAPL"
        if e.name == "cpu-estimate":
            break
        cpu_meters += [e.label] if "cpu" in e.components else []
    assert "RAPL" in cpu_meters
    assert st["cpu-estimate"].reason.startswith(f"in use: no usable {' or '.join(cpu_meters)};")
    opened = [m.name for m in open_meters(load_config(), gpu=False)]
    assert opened == ["cpu-estimate", "ram-estimate"]


# ---- a source in one module plus one line --------------------------------------------------

FLAT_G_PER_KWH = 123.0


class FlatSource(IntensitySource):
    """The same intensity at every instant (ground truth: 123 g/kWh)."""

    name = "flat"

    def series(self, zone: str, t0_s: float, t1_s: float) -> IntensitySeries:
        return IntensitySeries(
            np.array([float(t0_s)]),
            np.array([FLAT_G_PER_KWH]),
            3600.0,
            Provenance("flat", zone, "average", "always", "a test source"),
        )


def test_every_source_line_loads_its_class():
    assert sources.names() == ["static", "csv", "electricitymaps", "watttime", "uk"]
    for e in sources.SOURCES:
        cls = e.load()
        assert issubclass(cls, IntensitySource)
        assert issubclass(cls, LiveSource) == e.live
        assert e.description
    # every name and alias accepted before the registry still is, for the same source
    before = {
        "static": "static", "codecarbon": "static", "codecarbon-static": "static",
        "csv": "csv", "electricitymaps": "electricitymaps",
        "electricity-maps": "electricitymaps", "em": "electricitymaps",
        "watttime": "watttime", "uk": "uk", "uk-carbon-intensity": "uk",
        "carbonintensity": "uk",
    }  # fmt: skip
    assert {n: sources.lookup(n.upper()).name for n in before} == before
    assert sources.all_names() == list(before)


def test_a_new_source_is_one_line(monkeypatch):
    line = sources.SourceEntry(
        "flat", ("constant",), False, False, "the same figure always", "test_registries:FlatSource"
    )
    monkeypatch.setattr(sources, "SOURCES", (*sources.SOURCES, line))
    src = sources.get_source("constant", load_config())
    assert isinstance(src, FlatSource)
    assert src.at("ES", 1.7e9).g_per_kwh == FLAT_G_PER_KWH
    r = CliRunner().invoke(main, ["intensity", "ES", "--source", "flat", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert '"g_per_kwh": 123.0' in r.stdout and '"name": "flat"' in r.stdout


def test_live_sources_get_the_recorded_fallback():
    src = sources.get_source("em", load_config())
    assert isinstance(src, FallbackSource) and src.primary.name == "electricitymaps"
    assert not isinstance(sources.get_source("em", load_config(), fallback=False), FallbackSource)


def test_the_cli_reads_its_source_names_from_the_registry():
    r = CliRunner().invoke(main, ["intensity", "--help"])
    assert r.exit_code == 0
    assert " | ".join(sources.names()) in " ".join(r.stdout.split())
    from greentrack.cli.options import _complete_source

    assert _complete_source(None, None, "e") == ["electricitymaps", "electricity-maps", "em"]  # type: ignore[arg-type]


def test_a_configured_provider_typo_is_one_line_naming_the_config(monkeypatch):
    monkeypatch.setenv("GREENTRACK_PROVIDER", "wattime")
    with pytest.raises(ConfigError) as info:
        sources.get_source(None, load_config())
    msg = str(info.value)
    assert "'wattime' (provider in config.toml, or GREENTRACK_PROVIDER)" in msg
    assert "did you mean watttime?" in msg and "\n" not in msg
    r = CliRunner().invoke(main, ["intensity", "ES"])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "GREENTRACK_PROVIDER" in r.stderr and "Traceback" not in r.stderr
    # a name given on the command line is not blamed on the configuration
    with pytest.raises(ConfigError, match=r"^unknown intensity source 'wattime' \(did you"):
        sources.get_source("wattime", load_config())


def test_reading_the_source_names_imports_no_provider():
    code = (
        "import sys, greentrack.carbon.registry as r; r.names(); r.lookup('uk');"
        "bad = [m for m in ('numpy', 'greentrack.carbon.uk', 'greentrack.carbon.http') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
