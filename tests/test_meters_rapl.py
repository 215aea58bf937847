"""RAPL meter against a simulated powercap tree (tests/fakes/powercap.py).

Tolerance for counters: sysfs holds integer µJ, so each read truncates < 1 µJ and a difference of
two reads is off by < 1 µJ = 1e-6 J from the scripted energy. Nothing else may differ.
"""

from __future__ import annotations

import os
import time

import pytest
from fakes.powercap import FakeDomain, FakePowercap, standard_domains

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters import rapl
from greentrack.meters.rapl import RaplMeter, discover_domains

COUNTER_TOL_J = 1e-6  # one µJ: integer truncation of the sysfs counter (see module docstring)


def _check_exact(meter: RaplMeter, fake: FakePowercap, t: float) -> dict[str, float]:
    readings = {r.device: r for r in meter.read(t)}
    expected = fake.expected_by_device()
    assert set(readings) == set(expected)
    for dev, e_j in expected.items():
        assert readings[dev].energy_j == pytest.approx(e_j, abs=COUNTER_TOL_J), dev
        assert readings[dev].method == "counter"
    return {d: r.energy_j for d, r in readings.items()}


def test_two_sockets_with_dram_exact_through_wraparound(tmp_path):
    trace = {
        "intel-rapl:0": [(0.0, 50.0), (0.6, 85.0), (1.9, 20.0)],
        "intel-rapl:1": [(0.0, 65.0), (1.1, 140.0)],
        "intel-rapl:0:1": [(0.0, 6.0), (2.0, 11.5)],
    }
    fake = FakePowercap(
        tmp_path / "sys", standard_domains(sockets=2), trace, max_energy_range_uj=40_000_000
    )
    meter = RaplMeter.open(fake.sysfs)
    assert meter.devices == ["cpu:package-0", "dram:package-0", "cpu:package-1", "dram:package-1"]
    meter.start(100.0)
    wraps = 0
    for step in range(1, 13):  # 3 s in 0.25 s steps; at most 140 W × 0.25 s = 35 J < 40 J
        before = fake.counter_uj("intel-rapl:1")
        fake.advance(0.25)
        wraps += fake.counter_uj("intel-rapl:1") < before
        _check_exact(meter, fake, 100.0 + 0.25 * step)
    assert wraps >= 3, "the test must cross the wrap point several times"
    # power over the last interval: 20 W on package-0 and 140 W on package-1 from t=1.9 / 1.1 s
    last = {r.device: r.power_w for r in meter.read(103.0)}
    assert last["cpu:package-1"] == pytest.approx(140.0, abs=1e-4)


def test_a_full_range_between_reads_is_lost_as_documented(tmp_path):
    """The documented limit: less than ``max_energy_range_uj`` between two reads."""
    doms = [FakeDomain("intel-rapl:0", "package-0", 10.0, "cpu:package-0")]
    fake = FakePowercap(tmp_path / "sys", doms, max_energy_range_uj=1_000_000)  # 1 J
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    fake.advance(0.08)  # 0.8 J
    assert meter.read(0.08)[0].energy_j == pytest.approx(0.8, abs=COUNTER_TOL_J)
    fake.advance(0.05)  # counter 0.8 J -> 0.3 J: one wrap, 0.5 J -> exact
    (r,) = meter.read(0.13)
    assert r.energy_j == pytest.approx(1.3, abs=COUNTER_TOL_J)
    fake.advance(0.15)  # 1.5 J >= the 1 J range: the counter ends 0.5 J further, 1 J is lost
    (r,) = meter.read(0.28)
    assert r.energy_j == pytest.approx(2.8 - 1.0, abs=COUNTER_TOL_J)


def test_mmio_duplicate_and_psys_and_core_not_counted(tmp_path):
    fake = FakePowercap(
        tmp_path / "sys",
        standard_domains(sockets=1, uncore=True, mmio_duplicate=True, psys=True),
    )
    meter = RaplMeter.open(fake.sysfs)
    assert meter.devices == ["cpu:package-0", "dram:package-0"]
    assert [d.zone for d in meter.domains] == ["intel-rapl:0", "intel-rapl:0:2"]
    meter.start(0.0)
    for step in range(1, 5):
        fake.advance(0.5)
        got = _check_exact(meter, fake, 0.5 * step)
    # 50 W package + 7 W DRAM for 2 s; psys (120 W), core (30 W) and the duplicate add nothing
    assert sum(got.values()) == pytest.approx(114.0, abs=2 * COUNTER_TOL_J)


def test_duplicate_found_first_in_listing_still_prefers_msr_zone(tmp_path):
    doms = [
        FakeDomain("intel-rapl-mmio:0", "package-0", mirror_of="intel-rapl:0"),
        FakeDomain("intel-rapl:0", "package-0", 40.0, "cpu:package-0"),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    (d,) = discover_domains(fake.sysfs)
    assert (d.device, d.zone) == ("cpu:package-0", "intel-rapl:0")


def test_nested_layout_without_flat_links(tmp_path):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=2), layout="nested")
    assert not (fake.powercap / "intel-rapl:0:1").exists()
    meter = RaplMeter.open(fake.sysfs)
    assert meter.devices == ["cpu:package-0", "dram:package-0", "cpu:package-1", "dram:package-1"]
    meter.start(0.0)
    fake.advance(0.7)
    _check_exact(meter, fake, 0.7)


def test_amd_like_tree_packages_and_dies_without_dram(tmp_path):
    doms = [
        FakeDomain("intel-rapl:0", "package-0-die-0", 90.0, "cpu:package-0-die-0"),
        FakeDomain("intel-rapl:0:0", "core", 60.0),
        FakeDomain("intel-rapl:1", "package-0-die-1", 80.0, "cpu:package-0-die-1"),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    meter = RaplMeter.open(fake.sysfs)
    assert meter.devices == ["cpu:package-0-die-0", "cpu:package-0-die-1"]
    meter.start(0.0)
    fake.advance(1.0)
    _check_exact(meter, fake, 1.0)
    with pytest.raises(MeterError, match="no RAPL dram domain"):
        RaplMeter.open(fake.sysfs, components=["dram"])


def test_components_filter(tmp_path):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=2))
    assert RaplMeter.open(fake.sysfs, components=["dram"]).devices == [
        "dram:package-0",
        "dram:package-1",
    ]
    assert RaplMeter.open(fake.sysfs, components=["cpu"]).devices == [
        "cpu:package-0",
        "cpu:package-1",
    ]


def test_no_powercap_or_only_psys(tmp_path):
    with pytest.raises(MeterError, match="no RAPL powercap interface"):
        RaplMeter.open(tmp_path / "nothing")
    fake = FakePowercap(tmp_path / "sys", [FakeDomain("intel-rapl:0", "psys", 100.0)])
    with pytest.raises(MeterError, match="no RAPL cpu or dram domain"):
        RaplMeter.open(fake.sysfs)


def test_permission_denied_message_has_the_fix_with_the_real_path(tmp_path, monkeypatch):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=2))
    fake.deny(monkeypatch)
    with pytest.raises(MeterPermissionError) as info:
        RaplMeter.open(fake.sysfs)
    msg = str(info.value)
    real = os.path.realpath(fake.powercap)
    assert "\n" not in msg
    assert "CVE-2020-8694" in msg
    assert f"sudo chmod a+r {real}/intel-rapl:*/energy_uj" in msg
    assert f"{real}/intel-rapl:*/intel-rapl:*/energy_uj" in msg  # the DRAM sub-zones
    assert isinstance(info.value.__cause__, PermissionError)
    fake.allow()
    assert RaplMeter.open(fake.sysfs).devices  # readable again


def test_counter_vanishing_mid_run_freezes_that_domain_only(tmp_path):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=2, dram=False))
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    fake.advance(0.5)
    first = {r.device: r.energy_j for r in meter.read(0.5)}
    fake.break_zone("intel-rapl:1")
    fake.advance(0.5)
    second = {r.device: r for r in meter.read(1.0)}
    assert second["cpu:package-1"].energy_j == first["cpu:package-1"]
    assert second["cpu:package-1"].power_w is None
    assert second["cpu:package-0"].energy_j == pytest.approx(50.0, abs=COUNTER_TOL_J)
    (warning,) = meter.pop_warnings()
    assert "cpu:package-1" in warning and "no longer read" in warning
    fake.advance(0.5)
    meter.read(1.5)
    assert meter.pop_warnings() == []  # warned once, not read again


def test_read_does_not_rescan_directories(tmp_path, monkeypatch):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=2))
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)

    def no_listdir(*a, **k):
        raise AssertionError("read() must not list directories")

    monkeypatch.setattr(os, "listdir", no_listdir)
    fake.advance(0.1)
    _check_exact(meter, fake, 0.1)


def test_read_before_start_is_a_bug(tmp_path):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=1))
    with pytest.raises(RuntimeError):
        RaplMeter.open(fake.sysfs).read(0.0)


def test_wall_clock_mode_with_concurrent_reads_and_wraps(tmp_path):
    """The background writer replaces files atomically: concurrent reads never fail.

    The clock is paused around start and the last read, so the files then hold exactly the
    counters at fake times ``t_a`` and ``t_b`` and the ground truth is exact.
    """
    fake = FakePowercap(
        tmp_path / "sys", standard_domains(sockets=2, package_w=60.0), max_energy_range_uj=10**7
    )
    meter = RaplMeter.open(fake.sysfs)
    t_a = fake.now_s()
    meter.start(time.monotonic())
    reads = 0
    with fake:
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:  # 60 W wraps the 10 J counter every ~0.17 s
            meter.read(time.monotonic())
            reads += 1
            time.sleep(0.01)
    t_b = fake.now_s()
    got = {r.device: r.energy_j for r in meter.read(time.monotonic())}
    assert meter.pop_warnings() == []
    assert reads > 5
    for dev, e_j in fake.expected_by_device(since_s=t_a, until_s=t_b).items():
        assert got[dev] == pytest.approx(e_j, abs=COUNTER_TOL_J), dev
    assert got["cpu:package-0"] > 10.0  # at least one wrap happened


def test_read_uj_is_the_only_counter_reader(tmp_path, monkeypatch):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=1, dram=False))
    meter = RaplMeter.open(fake.sysfs)
    seen: list[str] = []
    real = rapl._read_uj
    monkeypatch.setattr(rapl, "_read_uj", lambda p: seen.append(p) or real(p))
    meter.start(0.0)
    meter.read(1.0)
    assert seen == [str(fake.path("intel-rapl:0"))] * 2
