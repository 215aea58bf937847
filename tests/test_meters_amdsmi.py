"""AMD GPU meter against a simulated ``amdsmi`` module on sys.path (tests/fakes/amd.py).

Tolerances: the counter is whole ticks of 15.259 µJ, so a difference of two reads is off by less
than one tick (COUNTER_TOL_J). Sampled GPUs: the trapezoid rule is exact while power is
constant; one step ΔP inside a read interval Δt costs at most |ΔP|·Δt/2.
"""

from __future__ import annotations

import pytest
from fakes.amd import RESOLUTION_UJ, FakeAmdGpu, FakeAmdSmi, mi250x

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.amdsmi import AmdSmiMeter

COUNTER_TOL_J = 2 * RESOLUTION_UJ * 1e-6


def _run(meter: AmdSmiMeter, fake: FakeAmdSmi, dt_s: float, steps: int) -> dict[str, float]:
    meter.start(fake.now_s())
    out: dict[str, float] = {}
    for _ in range(steps):
        fake.advance(dt_s)
        out = {r.device: r.energy_j for r in meter.read(fake.now_s())}
    return out


def _fake(monkeypatch, gpus, **kw) -> FakeAmdSmi:
    return FakeAmdSmi(gpus, **kw).install(monkeypatch)


def test_counter_gpu_exact_and_power_only_gpu_sampled(monkeypatch):
    fake = _fake(
        monkeypatch,
        [
            FakeAmdGpu("AMD Instinct MI300X", [(0.0, 650.0), (1.0, 180.0), (2.5, 700.0)]),
            FakeAmdGpu("AMD Radeon PRO W7900", [(0.0, 150.0), (0.7, 40.0)], energy_counter=False),
        ],
    )
    meter = AmdSmiMeter()
    assert meter.methods == {"gpu:amd-0": "counter", "gpu:amd-1": "sampled"}
    assert meter.describe() == {
        "gpu:amd-0": "AMD Instinct MI300X",
        "gpu:amd-1": "AMD Radeon PRO W7900",
    }
    got = _run(meter, fake, 0.25, 14)
    assert got["gpu:amd-0"] == pytest.approx(fake.expected_energy_j(0), abs=COUNTER_TOL_J)
    err_j = abs(got["gpu:amd-1"] - fake.expected_energy_j(1))
    assert 0 < err_j <= abs(40.0 - 150.0) * 0.25 / 2
    assert meter.pop_warnings() == []
    meter.close()
    assert fake.init_count == 0


def test_32_bit_accumulator_wraps_and_is_counted_across(monkeypatch):
    top_uj = (1 << 32) * RESOLUTION_UJ
    gpu = FakeAmdGpu("AMD Instinct MI100", 560.0, counter_bits=32, initial_uj=top_uj - 1.5e6)
    fake = _fake(monkeypatch, [gpu])
    meter = AmdSmiMeter()
    got = _run(meter, fake, 0.1, 10)  # 560 J; the counter wraps 1.5 J in
    assert fake.counter_ticks(0) < 1 << 26  # it did wrap (the top is 1 << 32)
    assert got["gpu:amd-0"] == pytest.approx(560.0, abs=COUNTER_TOL_J)
    (warning,) = meter.pop_warnings()
    assert "wrapped at 32 bits" in warning


def test_counter_reset_skips_the_interval_with_a_warning(monkeypatch):
    fake = _fake(monkeypatch, [FakeAmdGpu(power_w=100.0, initial_uj=5e9)])
    meter = AmdSmiMeter()
    meter.start(0.0)
    fake.advance(1.0)
    meter.read(1.0)
    fake.gpus[0].initial_uj = 0.0  # driver reloaded: the counter restarts low
    fake.advance(1.0)
    (r,) = meter.read(2.0)
    assert r.energy_j == pytest.approx(100.0, abs=COUNTER_TOL_J)
    assert "went backwards" in meter.pop_warnings()[0]


def test_gpu_lost_mid_run_is_frozen_and_others_continue(monkeypatch):
    fake = _fake(
        monkeypatch,
        [FakeAmdGpu(power_w=300.0, fail_at_s=1.05), FakeAmdGpu(power_w=200.0)],
    )
    meter = AmdSmiMeter()
    got = _run(meter, fake, 0.5, 6)
    assert got["gpu:amd-0"] == pytest.approx(300.0, abs=COUNTER_TOL_J)  # last read at 1.0 s
    assert got["gpu:amd-1"] == pytest.approx(600.0, abs=COUNTER_TOL_J)
    (warning,) = meter.pop_warnings()
    assert "gpu:amd-0" in warning and "no longer read" in warning and "Not found" in warning
    reads = fake.gpus[0].reads
    meter.read(fake.now_s())
    assert fake.gpus[0].reads == reads  # not read again


def test_mi250x_dies_sharing_one_counter_are_counted_once(monkeypatch):
    fake = _fake(monkeypatch, [*mi250x(400.0), FakeAmdGpu("AMD Instinct MI250X", 0.0)])
    fake.gpus[2].serial = "PCB-OTHER"
    meter = AmdSmiMeter()
    assert meter.devices == ["gpu:amd-0", "gpu:amd-2"]  # die 1 withheld while undecided
    got = _run(meter, fake, 0.1, 10)
    assert set(got) == {"gpu:amd-0", "gpu:amd-2"}
    assert got["gpu:amd-0"] == pytest.approx(fake.expected_energy_j(0), abs=COUNTER_TOL_J)
    note = meter.notes()["gpu:amd-0"]
    assert "gpu:amd-0, gpu:amd-1" in note and "PCB-MI250X-0001" in note and "once" in note
    assert any("sharing one energy counter" in w for w in meter.pop_warnings())


def test_only_the_second_die_visible_is_the_whole_package(monkeypatch):
    fake = _fake(monkeypatch, mi250x(400.0))
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    meter = AmdSmiMeter()
    assert meter.devices == ["gpu:amd-1"]
    got = _run(meter, fake, 0.2, 5)
    assert got["gpu:amd-1"] == pytest.approx(400.0, abs=COUNTER_TOL_J)
    assert "whole package" in meter.notes()["gpu:amd-1"]


def test_equal_counters_that_then_diverge_are_both_counted(monkeypatch):
    # same board serial and the same counter value at start, but two counters: not merged
    gpus = [
        FakeAmdGpu("AMD Instinct MI250X", 300.0, serial="S1", initial_uj=1e6),
        FakeAmdGpu("AMD Instinct MI250X", 100.0, serial="S1", initial_uj=1e6),
    ]
    fake = _fake(monkeypatch, gpus)
    meter = AmdSmiMeter()
    got = _run(meter, fake, 0.1, 20)
    assert got == pytest.approx({"gpu:amd-0": 600.0, "gpu:amd-1": 200.0}, abs=COUNTER_TOL_J)
    assert meter.notes() == {}
    assert any("separate energy counters" in w for w in meter.pop_warnings())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, 1, 2, 3]),
        ({"ROCR_VISIBLE_DEVICES": "1,3"}, [1, 3]),
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3]),
        ({"ROCR_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "0"}, [2]),
        ({"HIP_VISIBLE_DEVICES": "2", "CUDA_VISIBLE_DEVICES": "2"}, [2]),
        ({"HIP_VISIBLE_DEVICES": ""}, []),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, []),
        ({"ROCR_VISIBLE_DEVICES": "HIP3"}, [3]),  # replaced by the GPU's hip_uuid below
        ({"HIP_VISIBLE_DEVICES": "HIP2PREFIX"}, [2]),
        ({"ROCR_VISIBLE_DEVICES": "UUID1"}, [1]),  # the amdsmi uuid form, GPU- prefixed
    ],
)
def test_visible_devices_by_index_and_uuid(monkeypatch, env, expected):
    fake = _fake(monkeypatch, [FakeAmdGpu(power_w=100.0) for _ in range(4)])
    subst = {
        "HIP3": fake.hip_uuid(3),
        "HIP2PREFIX": fake.hip_uuid(2)[:14],
        "UUID1": "GPU-" + fake.uuid(1),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, subst.get(v, v))
    meter = AmdSmiMeter()
    assert meter.devices == [f"gpu:amd-{i}" for i in expected]
    assert meter.pop_warnings() == []


def test_visible_devices_problems_are_said(monkeypatch):
    _fake(monkeypatch, [FakeAmdGpu(power_w=100.0) for _ in range(2)])
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1,5,0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    meter = AmdSmiMeter()
    assert meter.devices == ["gpu:amd-1"]
    warnings = " ".join(meter.pop_warnings())
    assert "'5' names no single AMD GPU" in warnings
    assert "HIP_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES differ" in warnings


def test_hip_order_follows_the_enumeration_info(monkeypatch):
    _fake(monkeypatch, [FakeAmdGpu(power_w=1.0, hip_id=1), FakeAmdGpu(power_w=1.0, hip_id=0)])
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0")
    assert AmdSmiMeter().devices == ["gpu:amd-1"]


def test_gpu_with_neither_energy_nor_power_is_skipped(monkeypatch):
    _fake(
        monkeypatch,
        [FakeAmdGpu(energy_counter=False, power_available=False), FakeAmdGpu(power_w=9.0)],
    )
    meter = AmdSmiMeter()
    assert meter.devices == ["gpu:amd-1"]
    assert "gpu:amd-0" in meter.pop_warnings()[0]


def test_binding_problems_become_one_line_fixes(monkeypatch):
    FakeAmdSmi(import_error=ImportError("No module named 'amdsmi'")).install(monkeypatch)
    with pytest.raises(MeterError, match=r"pip install 'greentrack\[amd\]'"):
        AmdSmiMeter()
    monkeypatch.undo()
    FakeAmdSmi(import_error=KeyError("libamd_smi.so")).install(monkeypatch)
    with pytest.raises(MeterError, match=r"cannot load libamd_smi.so.*ROCM_PATH"):
        AmdSmiMeter()
    monkeypatch.undo()
    FakeAmdSmi(init_error=10).install(monkeypatch)
    with pytest.raises(MeterPermissionError) as info:
        AmdSmiMeter()
    assert "usermod -aG render,video" in str(info.value) and "\n" not in str(info.value)
