"""RAPL zones that mirror one counter (AMD Zen 1/2 dies) are counted once; separate counters never.

Ground truth: the simulated powercap tree (tests/fakes/powercap.py). A zone with ``mirror_of``
repeats another zone's counter file exactly, as ``package-0-die-1`` repeats ``package-0-die-0`` on
the parts of CodeCarbon issue #1274 (136 W reported for a 68 W package). Counters are integer µJ,
so every figure is exact to 1 µJ per read.
"""

from __future__ import annotations

import pytest
from fakes.powercap import FakeDomain, FakePowercap

from greentrack.meters import rapl
from greentrack.meters.rapl import RaplMeter

TOL_J = 1e-6


def _amd_mirrored(tmp_path) -> FakePowercap:
    doms = [
        FakeDomain(
            "intel-rapl:0", "package-0-die-0", 68.0, "cpu:package-0-die-0", initial_uj=5_000
        ),
        FakeDomain("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0"),
    ]
    return FakePowercap(tmp_path / "sys", doms)


def _totals(meter: RaplMeter, t: float) -> dict[str, float]:
    return {r.device: r.energy_j for r in meter.read(t)}


def test_mirrored_dies_are_counted_once_with_a_warning_and_a_note(tmp_path):
    fake = _amd_mirrored(tmp_path)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 6):
        fake.advance(1.0)
        out = _totals(meter, float(step))
        # the mirror is never reported, not even while undecided: the sum is one package
        assert sum(out.values()) == pytest.approx(68.0 * step, abs=TOL_J)
    assert out == {"cpu:package-0-die-0": pytest.approx(340.0, abs=TOL_J)}
    assert meter.devices == ["cpu:package-0-die-0"]
    assert meter.merged == {"intel-rapl:1": "intel-rapl:0"}
    warnings = meter.pop_warnings()
    assert len(warnings) == 1
    assert "intel-rapl:0" in warnings[0] and "intel-rapl:1" in warnings[0]
    assert "counted once" in warnings[0]
    note = meter.notes()["cpu:package-0-die-0"]
    assert "package-0-die-1" in note and "same counter" in note


def test_mirror_decided_only_after_the_counters_moved(tmp_path):
    fake = _amd_mirrored(tmp_path)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for t in (0.0, 0.0, 0.0):  # reads without movement decide nothing
        assert _totals(meter, t) == {"cpu:package-0-die-0": 0.0}
    assert meter.merged == {}
    for step in range(1, 4):
        fake.advance(0.5)
        _totals(meter, step * 0.5)
    assert meter.merged == {"intel-rapl:1": "intel-rapl:0"}


def test_sockets_equal_at_one_instant_are_never_merged(tmp_path):
    # both counters read 12 J at start; one draws 50 W, the other 70 W: two counters
    doms = [
        FakeDomain("intel-rapl:0", "package-0", 50.0, "cpu:package-0", initial_uj=12_000_000),
        FakeDomain("intel-rapl:1", "package-1", 70.0, "cpu:package-1", initial_uj=12_000_000),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 5):
        fake.advance(1.0)
        out = _totals(meter, float(step))
        expected = fake.expected_by_device()
        assert set(out) == set(expected)
        for dev, e_j in expected.items():  # the late-decided socket keeps all its energy
            assert out[dev] == pytest.approx(e_j, abs=TOL_J), dev
    assert sum(out.values()) == pytest.approx(120.0 * 4, abs=2 * TOL_J)
    assert meter.merged == {} and meter.notes() == {}
    assert meter.pop_warnings() == []


def test_counters_that_cross_later_are_not_merged(tmp_path):
    # die-1 starts 5 J below die-0 and draws 10 W more: the values meet at t = 0.5 s only
    doms = [
        FakeDomain("intel-rapl:0", "package-0-die-0", 40.0, "cpu:package-0-die-0", initial_uj=5e6),
        FakeDomain("intel-rapl:1", "package-0-die-1", 50.0, "cpu:package-0-die-1", initial_uj=0),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 9):
        fake.advance(0.25)
        out = _totals(meter, step * 0.25)
    assert out == {
        "cpu:package-0-die-0": pytest.approx(80.0, abs=TOL_J),
        "cpu:package-0-die-1": pytest.approx(100.0, abs=TOL_J),
    }
    assert meter.merged == {}


def test_dies_with_separate_counters_and_equal_power_are_both_counted(tmp_path):
    # truly separate counters of one package, same power, different values: both counted
    doms = [
        FakeDomain("intel-rapl:0", "package-0-die-0", 45.0, "cpu:package-0-die-0", initial_uj=3e7),
        FakeDomain("intel-rapl:1", "package-0-die-1", 45.0, "cpu:package-0-die-1", initial_uj=9e6),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 6):
        fake.advance(1.0)
        out = _totals(meter, float(step))
    assert out == {
        "cpu:package-0-die-0": pytest.approx(225.0, abs=TOL_J),
        "cpu:package-0-die-1": pytest.approx(225.0, abs=TOL_J),
    }
    assert meter.merged == {}


def test_mirror_merged_by_counter_not_by_name_and_dram_kept(tmp_path):
    # Intel-style names that say nothing about the mirror: still one counter
    doms = [
        FakeDomain("intel-rapl:0", "package-0", 60.0, "cpu:package-0", initial_uj=777),
        FakeDomain("intel-rapl:0:0", "dram", 6.0, "dram:package-0", initial_uj=1_234_567),
        FakeDomain("intel-rapl:1", "package-1", mirror_of="intel-rapl:0"),
    ]
    fake = FakePowercap(tmp_path / "sys", doms)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 5):
        fake.advance(1.0)
        out = _totals(meter, float(step))
    assert out == {
        "cpu:package-0": pytest.approx(240.0, abs=TOL_J),
        "dram:package-0": pytest.approx(24.0, abs=TOL_J),
    }


def test_merged_zone_is_no_longer_read(tmp_path, monkeypatch):
    fake = _amd_mirrored(tmp_path)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    for step in range(1, 4):
        fake.advance(1.0)
        meter.read(float(step))
    paths: list[str] = []
    real = rapl._read_uj
    monkeypatch.setattr(rapl, "_read_uj", lambda p: paths.append(p) or real(p))
    fake.advance(1.0)
    meter.read(4.0)
    assert paths == [str(fake.path("intel-rapl:0"))]


def test_track_on_a_mirrored_amd_tree_reports_one_package(tmp_path, monkeypatch, no_nvml):
    """The real tracker over the wall-clock fake: one package, and the run says what merged.

    Bound: the fake rewrites the files every 1 ms and the sampler baselines / finishes within a
    scheduler slice of ``run.t0_mono`` / ``run.t1_mono`` (``SLOP_S``): |error| ≤ 68 W · 2 · SLOP_S.
    """
    import time

    import greentrack as gt

    slop_s = 0.1
    doms = [
        FakeDomain("intel-rapl:0", "package-0-die-0", 68.0, "cpu:package-0-die-0"),
        FakeDomain("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0"),
    ]
    fake = FakePowercap(tmp_path / "sys", doms, period_s=0.001)
    monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
    with fake, gt.track("amd", project="mirrors", interval_s=0.05) as run:
        deadline = time.monotonic() + 10.0  # the decision needs 3 moving reads
        while not any("counted once" in w for w in run.summary().warnings):
            assert time.monotonic() < deadline, "mirror never decided"
            time.sleep(0.05)
    summary = run.summary()
    got = {c.device: c for c in summary.components}
    assert "cpu:package-0-die-1" not in got
    t0, t1 = (fake.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    expected = fake.expected_energy_j("intel-rapl:0", t0, t1)
    assert abs(got["cpu:package-0-die-0"].energy_j - expected) <= 68.0 * 2 * slop_s
    assert sum(1 for w in summary.warnings if "counted once" in w) == 1


def test_mirror_found_even_when_preempted_between_the_two_files(tmp_path, monkeypatch):
    # 200 ms pass between reading die-0 and die-1 at every read (a descheduled thread): the
    # values then differ by 13.6 J, far beyond 0.5 J, yet they are one counter
    fake = _amd_mirrored(tmp_path)
    meter = RaplMeter.open(fake.sysfs)
    meter.start(0.0)
    real = rapl._read_uj
    die0 = str(fake.path("intel-rapl:0"))

    def slow_read(path: str) -> int:
        value = real(path)
        if path == die0:
            fake.advance(0.2)
        return value

    monkeypatch.setattr(rapl, "_read_uj", slow_read)
    for step in range(1, 6):
        fake.advance(1.0)
        out = _totals(meter, float(step))
    assert meter.merged == {"intel-rapl:1": "intel-rapl:0"}
    assert set(out) == {"cpu:package-0-die-0"}


def test_detect_names_possible_mirrors(tmp_path, monkeypatch, no_nvml):
    from greentrack.config import load_config
    from greentrack.meters import detect

    fake = _amd_mirrored(tmp_path)
    monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
    (rapl_status,) = [s for s in detect(load_config()) if s.name == "rapl"]
    assert "intel-rapl:1 may mirror intel-rapl:0" in rapl_status.reason
