"""The meter factory (open_meters), detect(), the replay meter and the public surface."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fakes.powercap import FakePowercap, standard_domains

import greentrack.meters as meters_pkg
from greentrack.config import load_config
from greentrack.errors import ConfigError
from greentrack.meters import (
    CpuEstimateMeter,
    NvmlMeter,
    RamEstimateMeter,
    RaplMeter,
    ReplayMeter,
    detect,
    open_meters,
)


def _kinds(meters) -> list[str]:
    return [type(m).__name__ for m in meters]


def _statuses(config) -> dict:
    return {s.name: s for s in detect(config)}


# ---- open_meters ---------------------------------------------------------------------------


def test_nothing_measurable_falls_back_to_estimates(no_powercap, no_nvml):
    meters = open_meters(load_config())
    assert _kinds(meters) == ["CpuEstimateMeter", "RamEstimateMeter"]
    for m in meters:
        m.start(0.0)
    devices = [r.device for m in meters for r in m.read(1.0)]
    assert devices == ["cpu:estimate", "ram:estimate"]


def test_rapl_with_dram_replaces_both_estimates(fake_powercap, no_nvml):
    (meter,) = open_meters(load_config())
    assert isinstance(meter, RaplMeter)
    assert meter.devices == ["cpu:package-0", "dram:package-0", "cpu:package-1", "dram:package-1"]
    meter.start(0.0)
    fake_powercap.advance(0.5)
    got = {r.device: r.energy_j for r in meter.read(0.5)}
    assert got == pytest.approx(fake_powercap.expected_by_device(), abs=1e-6)


def test_rapl_without_dram_keeps_the_ram_estimate(tmp_path, monkeypatch, no_nvml):
    fake = FakePowercap(tmp_path / "sys", standard_domains(sockets=1, dram=False))
    monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
    meters = open_meters(load_config())
    assert _kinds(meters) == ["RaplMeter", "RamEstimateMeter"]
    assert meters[0].devices == ["cpu:package-0"]


def test_permission_denied_does_not_crash_and_becomes_a_warning(
    fake_powercap, monkeypatch, no_nvml
):
    fake_powercap.deny(monkeypatch)
    meters = open_meters(load_config())
    assert _kinds(meters) == ["CpuEstimateMeter", "RamEstimateMeter"]
    warnings = meters[0].pop_warnings()
    fix = [w for w in warnings if "sudo chmod a+r" in w]
    assert len(fix) == 1
    assert os.path.realpath(fake_powercap.powercap) in fix[0]
    assert meters[1].pop_warnings() == []  # said once per run, not per meter


def test_gpus_from_nvml(no_powercap, fake_nvml, monkeypatch):
    meters = open_meters(load_config())
    assert _kinds(meters) == ["CpuEstimateMeter", "RamEstimateMeter", "NvmlMeter"]
    assert meters[-1].devices == ["gpu:0", "gpu:1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "NvmlMeter" not in _kinds(open_meters(load_config()))
    assert fake_nvml.init_count == 1  # the first meter holds NVML; the unused one was closed


def test_component_switches(fake_powercap, fake_nvml):
    config = load_config()
    assert _kinds(open_meters(config, cpu=False, ram=False)) == ["NvmlMeter"]
    assert _kinds(open_meters(config, gpu=False)) == ["RaplMeter"]
    (dram_only,) = open_meters(config, gpu=False, cpu=False)
    assert dram_only.devices == ["dram:package-0", "dram:package-1"]
    assert open_meters(config, gpu=False, cpu=False, ram=False) == []


def test_no_global_cache_between_sysfs_roots(tmp_path, monkeypatch, no_nvml):
    for sockets in (1, 3, 2):
        fake = FakePowercap(tmp_path / f"sys{sockets}", standard_domains(sockets=sockets))
        monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
        (meter,) = open_meters(load_config())
        assert len(meter.devices) == 2 * sockets
        assert _statuses(load_config())["rapl"].devices == [
            f"cpu:package-{i}" for i in range(sockets)
        ]


# ---- detect --------------------------------------------------------------------------------


def test_detect_on_a_bare_host(no_powercap, no_nvml):
    st = _statuses(load_config())
    assert list(st) == [
        "amdsmi", "hwmon", "apple", "nvml", "accel-estimate", "rapl", "rapl-dram",
        "cpu-estimate", "ram-estimate", "redfish", "ipmi",
    ]  # fmt: skip
    assert not st["nvml"].available and "NVML Shared Library Not Found" in st["nvml"].reason
    assert not st["rapl"].available and "no RAPL powercap interface" in st["rapl"].reason
    assert st["cpu-estimate"].available and st["cpu-estimate"].reason.startswith("in use")
    assert st["cpu-estimate"].method == "estimated"
    assert st["ram-estimate"].devices == ["ram:estimate"]
    assert "W/GiB" in st["ram-estimate"].reason


def test_detect_with_hardware(fake_powercap, fake_nvml):
    st = _statuses(load_config())
    assert st["nvml"].available and st["nvml"].devices == ["gpu:0", "gpu:1"]
    assert st["nvml"].method == "counter/sampled"
    assert "Tesla P100-PCIE-16GB (sampled)" in st["nvml"].reason
    assert (st["rapl"].available, st["rapl"].method) == (True, "counter")
    assert st["rapl-dram"].devices == ["dram:package-0", "dram:package-1"]
    assert st["cpu-estimate"].reason.startswith("not used")
    assert fake_nvml.init_count == 0


def test_detect_reports_the_permission_fix(fake_powercap, monkeypatch, no_nvml):
    fake_powercap.deny(monkeypatch)
    st = _statuses(load_config())
    assert not st["rapl"].available
    assert "sudo chmod a+r" in st["rapl"].reason
    assert os.path.realpath(fake_powercap.powercap) in st["rapl"].reason
    assert st["cpu-estimate"].reason.startswith("in use")


def test_detect_with_no_visible_gpu(no_powercap, fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    st = _statuses(load_config())
    assert not st["nvml"].available and "no GPU is measured" in st["nvml"].reason


# ---- replay --------------------------------------------------------------------------------


def test_replay_meter_integrates_exactly():
    meter = ReplayMeter(
        [(0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0}), (10.0, {"gpu:0": 100.0}),
         (12.5, {"cpu:package-0": 20.0, "dram:package-0": 4.0})]
    )  # fmt: skip
    meter.start(50.0)
    got = {r.device: r for r in meter.read(70.0)}
    assert got["gpu:0"].energy_j == 300 * 10 + 100 * 10
    assert got["cpu:package-0"].energy_j == 60 * 12.5 + 20 * 7.5
    assert got["dram:package-0"].energy_j == 4 * 7.5
    assert (got["gpu:0"].component, got["gpu:0"].power_w, got["gpu:0"].method) == (
        "gpu",
        100.0,
        "sampled",
    )
    assert meter.read(55.0)[0].energy_j == 1500.0  # any time: exact energy at that offset
    assert meter.devices == ["gpu:0", "cpu:package-0", "dram:package-0"]


def test_replay_from_rows_and_labels():
    rows = [(1000.0, "gpu:0", 200.0), (1002.0, "gpu:0", 50.0), (1001.0, "gpu:1", 10.0)]
    meter = ReplayMeter.from_rows(rows, method="counter")
    meter.start(0.0)
    got = {r.device: r for r in meter.read(4.0)}
    assert got["gpu:0"].energy_j == 200 * 2 + 50 * 2
    assert got["gpu:1"].energy_j == 10 * 3
    assert got["gpu:1"].method == "counter"


@pytest.mark.parametrize(
    "trace",
    [[], [(1.0, {"gpu:0": 1.0}), (0.5, {"gpu:0": 2.0})], [(0.0, {"gpu:0": -5.0})],
     [(float("nan"), {"gpu:0": 1.0})]],
)  # fmt: skip
def test_replay_rejects_bad_traces(trace):
    with pytest.raises(ConfigError):
        ReplayMeter(trace)


def test_replay_feeds_the_same_interface_as_real_meters():
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    with pytest.raises(RuntimeError):
        meter.read(0.0)
    meter.start(0.0)
    a = meter.read(1.0)[0].energy_j
    b = meter.read(3.0)[0].energy_j
    assert b - a == 200.0  # a phase = difference of two reads


# ---- public surface ------------------------------------------------------------------------


def test_public_names():
    assert set(meters_pkg.__all__) >= {
        "open_meters",
        "detect",
        "Meter",
        "DeviceReading",
        "MeterStatus",
        "NullMeter",
        "NvmlMeter",
        "RaplMeter",
        "CpuEstimateMeter",
        "RamEstimateMeter",
        "ReplayMeter",
    }
    for name in meters_pkg.__all__:
        assert getattr(meters_pkg, name) is not None
    assert NvmlMeter.name == "nvml" and CpuEstimateMeter.device == "cpu:estimate"
    assert RamEstimateMeter.device == "ram:estimate"


def test_importing_meters_is_cheap():
    code = (
        "import sys, greentrack.meters, greentrack.hardware;"
        "heavy = {'pynvml', 'psutil', 'numpy', 'torch', 'pandas', 'codecarbon'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- end to end: the real tracker and sampler over the wall-clock fakes ----------------------


def test_track_end_to_end_over_simulated_hardware(fake_powercap, fake_nvml):
    """``gt.track`` picks the meters itself and its totals match the scripted energy.

    Bounds: the sampler baselines / finishes the meters within ``SLOP_S`` of ``run.t0_mono`` /
    ``run.t1_mono``, and the powercap files lag the wall clock by up to ``SLOP_S`` (a writer
    thread on a busy machine), so each device is within ``P_max · 2 · SLOP_S`` of the scripted
    energy over [t0, t1]; the sampled GPU may also be off by the trapezoid bound
    ``|ΔP| · interval / 2``.
    """
    import greentrack as gt

    slop_s, interval_s = 0.1, 0.05
    with (
        fake_powercap,
        fake_nvml,
        gt.track("e2e", project="fakes", interval_s=interval_s) as run,
        run.phase("work"),
    ):
        time.sleep(0.6)
    got = {c.device: c for c in run.summary().components}
    t0_pc, t1_pc = (fake_powercap.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    for dev, script_w in (("cpu:package-0", 50.0), ("dram:package-1", 7.0)):
        expected = fake_powercap.expected_energy_j(dev, t0_pc, t1_pc)
        assert got[dev].method == "counter"
        assert abs(got[dev].energy_j - expected) <= script_w * 2 * slop_s, dev
    t0_gpu, t1_gpu = (fake_nvml.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    e0 = fake_nvml.expected_energy_j(0, t0_gpu, t1_gpu)
    assert got["gpu:0"].method == "counter"
    assert abs(got["gpu:0"].energy_j - e0) <= 310.0 * 2 * slop_s
    e1 = fake_nvml.expected_energy_j(1, t0_gpu, t1_gpu)
    assert got["gpu:1"].method == "sampled"
    assert abs(got["gpu:1"].energy_j - e1) <= 150.0 * 2 * slop_s + 110.0 * interval_s / 2
    assert "cpu:estimate" not in got and "gpu:1" in got
