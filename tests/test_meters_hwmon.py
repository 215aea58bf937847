"""hwmon / IIO meter against a simulated sysfs tree of real files (tests/fakes/hwmon.py).

Counter channels (``energy1_input``, integer µJ) are exact to 1 µJ per read; sampled channels
(µW power, rails from mA × mV) follow the trapezoid bound |ΔP|·Δt/2 per power step.
"""

from __future__ import annotations

import os

import pytest
from fakes.hwmon import FakeHwmon

from greentrack.errors import MeterError
from greentrack.meters.hwmon import HwmonMeter, discover

PCI0, PCI1 = "0000:0c:00.0", "0000:83:00.0"


@pytest.fixture
def hw(tmp_path, monkeypatch) -> FakeHwmon:
    for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeHwmon(tmp_path / "sys")
    yield fake
    fake.stop()


def _run(meter: HwmonMeter, fake: FakeHwmon, dt_s: float, steps: int) -> dict[str, float]:
    meter.start(fake.now_s())
    out: dict[str, float] = {}
    for _ in range(steps):
        fake.advance(dt_s)
        out = {r.device: r.energy_j for r in meter.read(fake.now_s())}
    return out


def test_amdgpu_power_sampled_and_intel_energy_counter(hw):
    amd = hw.add_gpu("amdgpu", PCI0, [(0.0, 300.0), (1.0, 120.0)])
    intel = hw.add_gpu("xe", PCI1, [(0.0, 90.0), (0.55, 30.0)], label="card")
    meter = HwmonMeter(hw.sysfs)
    assert meter.methods == {amd: "sampled", intel: "counter"}
    got = _run(meter, hw, 0.1, 20)
    assert abs(got[amd] - hw.expected_energy_j(amd)) <= (300 - 120) * 0.1 / 2 + 1e-6
    assert got[intel] == pytest.approx(hw.expected_energy_j(intel), abs=20 * 1e-6)
    assert meter.describe()[amd] == "AMD GPU (0x740c)"


def test_power_input_and_old_kernels_device_dir(hw):
    amd = hw.add_gpu("amdgpu", PCI0, 250.0, kind="power_input")
    old = hw.add_gpu("i915", PCI1, 40.0, legacy=True)
    got = _run(HwmonMeter(hw.sysfs), hw, 0.25, 8)
    assert got[amd] == pytest.approx(500.0, abs=1e-6)
    assert got[old] == pytest.approx(80.0, abs=1e-5)


def test_amdgpu_measured_by_amdsmi_is_not_read_twice(hw):
    hw.add_gpu("amdgpu", PCI0, 300.0)
    other = hw.add_gpu("amdgpu", PCI1, 100.0)
    found = discover(hw.sysfs, skip_pci=frozenset({PCI0}))
    assert [c.device for c in found.channels] == [other]
    assert found.amdgpu_skipped == [f"gpu:amdgpu-{PCI0}"]
    with pytest.raises(MeterError, match="no GPU or power-rail sensor"):
        HwmonMeter(hw.sysfs, skip_pci=frozenset({PCI0, PCI1}))


def test_rocm_visibility_indices_apply_to_the_fallback(hw, monkeypatch):
    hw.add_gpu("amdgpu", PCI1, 100.0)
    first = hw.add_gpu("amdgpu", PCI0, 300.0)  # PCI order decides the index, not hwmon order
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0")
    assert HwmonMeter(hw.sysfs).devices == [first]
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "GPU-4f3a2b1c")
    found = discover(hw.sysfs)
    assert found.channels == [] and "UUIDs need amdsmi" in found.warnings[0]


@pytest.mark.parametrize(("abi", "power_file"), [("hwmon", False), ("iio", True), ("iio", False)])
def test_jetson_input_rail_is_the_board_and_sub_rails_are_not_added(hw, abi, power_file):
    # 7.5 W at 5 V = 1500 mA exactly; the sub-rails are inside VDD_IN
    hw.add_ina3221(
        {"VDD_IN": [(0.0, 7.5), (1.0, 5.0)], "VDD_CPU_GPU_CV": 3.0, "VDD_SOC": 1.5},
        abi=abi,
        iio_power_file=power_file,
    )
    meter = HwmonMeter(hw.sysfs)
    assert meter.devices == ["board:vdd_in"] and meter.components == {"board"}
    got = _run(meter, hw, 0.1, 20)  # 0.1 s reads: one step of 2.5 W costs <= 2.5 * 0.1 / 2
    err_j = abs(got["board:vdd_in"] - hw.expected_energy_j("rail:vdd_in"))
    assert err_j <= 2.5 * 0.1 / 2 + 1e-9
    note = meter.notes()["board:vdd_in"]
    assert "VDD_CPU_GPU_CV, VDD_SOC" in note and "not added" in note


def test_rails_without_an_input_rail_are_each_reported(hw):
    hw.add_ina3221({"VDD_GPU": 4.0, "VDD_CPU": 2.0}, abi="hwmon")
    got = _run(HwmonMeter(hw.sysfs), hw, 0.5, 4)
    assert got == pytest.approx({"rail:vdd_gpu": 8.0, "rail:vdd_cpu": 4.0}, rel=1e-9)


def test_sampled_within_2_percent_at_0_1_s_on_a_busy_trace(hw):
    trace = [(0.0, 120.0), (0.33, 260.0), (1.21, 90.0), (1.77, 200.0), (2.43, 60.0)]
    amd = hw.add_gpu("amdgpu", PCI0, trace)
    got = _run(HwmonMeter(hw.sysfs), hw, 0.1, 30)
    assert got[amd] == pytest.approx(hw.expected_energy_j(amd), rel=0.02)


def test_device_lost_mid_run_is_frozen_and_others_continue(hw):
    a = hw.add_gpu("amdgpu", PCI0, 200.0)
    b = hw.add_gpu("i915", PCI1, 50.0)
    meter = HwmonMeter(hw.sysfs)
    meter.start(0.0)
    for _ in range(4):
        hw.advance(0.25)
        meter.read(hw.now_s())
    hw.break_device(a)
    for _ in range(4):
        hw.advance(0.25)
        got = {r.device: r for r in meter.read(hw.now_s())}
    assert got[a].energy_j == pytest.approx(200.0) and got[a].power_w is None
    assert got[b].energy_j == pytest.approx(100.0, abs=1e-5)
    (warning,) = meter.pop_warnings()
    assert a in warning and "no longer read" in warning


def test_counter_going_backwards_is_a_reset(hw):
    dev = hw.add_gpu("i915", PCI0, 40.0)
    meter = HwmonMeter(hw.sysfs)
    meter.start(0.0)
    hw.advance(1.0)
    meter.read(1.0)
    hw.sensor(dev).initial_uj = -int(40e6)  # driver reloaded: counter restarts near 0
    hw.advance(1.0)
    (r,) = meter.read(2.0)
    assert r.energy_j == pytest.approx(40.0, abs=1e-5)
    assert "went backwards" in meter.pop_warnings()[0]


def test_unknown_chips_are_listed_not_used_and_unreadable_files_say_the_fix(hw, monkeypatch):
    hw.add_chip("power_meter", {"power1_average": "180000000"})
    hw.add_chip("k10temp", {"temp1_input": "45000"})
    with pytest.raises(MeterError, match=r"not used: hwmon0 \(power_meter\)"):
        HwmonMeter(hw.sysfs)
    dev = hw.add_gpu("amdgpu", PCI0, 10.0)
    from greentrack.meters import hwmon

    real = hwmon._read_int

    def denied(path: str) -> int:
        if path.endswith("power1_average") and PCI0 in os.path.realpath(path):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(hwmon, "_read_int", denied)
    found = discover(hw.sysfs)
    assert found.channels == [] and dev
    assert "sudo chmod a+r" in found.warnings[0]
