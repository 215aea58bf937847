"""NVML meter against simulated GPUs under the real pynvml module (tests/fakes/nvml.py).

Tolerances:
- counter GPUs: NVML's counter is integer mJ, so a difference of two reads is off by < 1 mJ.
- sampled GPUs: the trapezoid rule is exact while power is constant. Across one step ΔP at time
  c inside a read interval [a, b] (Δt = b − a), truth − trapezoid = ΔP·((a + b)/2 − c)... whose
  size is |ΔP|·|c − (a + b)/2| ≤ |ΔP|·Δt/2. So the bound is the sum of |ΔP|·Δt/2 over the steps
  (plus < 1 mW rounding of each power sample).
"""

from __future__ import annotations

import itertools

import pynvml
import pytest
from fakes.nvml import FakeGpu, FakeNvml

from greentrack.errors import MeterError
from greentrack.meters import nvml_devices
from greentrack.meters.nvml import NvmlMeter
from greentrack.meters.nvml_devices import list_gpus, visible_gpu_indices

COUNTER_TOL_J = 1e-3  # one mJ of counter truncation


def _run(meter: NvmlMeter, fake: FakeNvml, dt_s: float, steps: int) -> dict[str, float]:
    meter.start(fake.now_s())
    out: dict[str, float] = {}
    for _ in range(steps):
        fake.advance(dt_s)
        out = {r.device: r.energy_j for r in meter.read(fake.now_s())}
    return out


# ---- CUDA_VISIBLE_DEVICES ------------------------------------------------------------------

UUIDS = [
    "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6",
    "GPU-1ac1e2d4-55aa-4c2b-9f0e-aa0a1b2c3d4e",
    "GPU-1ab9e0cc-0000-1111-2222-333344445555",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("-1", []),
        ("0,2", [0, 2]),
        ("2,0", [2, 0]),
        (" 1 , 2 ", [1, 2]),
        ("1,1", [1]),
        ("1,-1,2", [1]),  # -1 ends the list, as in CUDA
        ("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", [0]),
        ("gpu-8932F937", [0]),  # unique prefix, any case
        ("GPU-1ac1,GPU-1ab9", [1, 2]),
        ("MIG-GPU-1ab9e0cc-0000-1111-2222-333344445555/1/0", [2]),  # measured as its parent
    ],
)
def test_visible_devices(value, expected):
    assert visible_gpu_indices(value, UUIDS) == (expected, None)


@pytest.mark.parametrize("value", ["0,7,1", "0,GPU-1a,1", "0,GPU-ffff,1", "0,abc,1"])
def test_invalid_entry_stops_the_list_like_cuda(value):
    indices, problem = visible_gpu_indices(value, UUIDS)
    assert indices == [0]
    assert problem and "names no single GPU" in problem


# ---- methods and exactness -----------------------------------------------------------------


def test_counter_gpu_exact_and_power_only_gpu_sampled(fake_nvml):
    meter = NvmlMeter()
    assert meter.methods == {"gpu:0": "counter", "gpu:1": "sampled"}
    assert meter.describe() == {"gpu:0": "NVIDIA A100-SXM4-80GB", "gpu:1": "Tesla P100-PCIE-16GB"}
    got = _run(meter, fake_nvml, 0.25, 14)  # 3.5 s, steps at 1.0 and 2.5 s lie on read times
    assert got["gpu:0"] == pytest.approx(fake_nvml.expected_energy_j(0), abs=COUNTER_TOL_J)
    # gpu:1 steps 150 -> 40 W at 0.7 s, inside the read interval [0.5, 0.75]
    bound_j = abs(40.0 - 150.0) * 0.25 / 2
    err_j = abs(got["gpu:1"] - fake_nvml.expected_energy_j(1))
    assert 0 < err_j <= bound_j
    readings = {r.device: r for r in meter.read(fake_nvml.now_s())}
    assert readings["gpu:0"].method == "counter" and readings["gpu:1"].method == "sampled"
    assert readings["gpu:1"].power_w == pytest.approx(40.0)
    meter.close()
    assert fake_nvml.init_count == 0


def test_sampled_error_reaches_the_bound_when_steps_fall_on_reads(monkeypatch):
    fake = FakeNvml(
        [FakeGpu("Tesla V100", [(0, 100.0), (0.5, 200.0), (1.5, 50.0)], energy_counter=False)]
    ).install(monkeypatch)
    got = _run(NvmlMeter(), fake, 0.5, 6)
    # each step lies on a read time; the trapezoid then averages the two sides of one step:
    # error = ΔP·Δt/2 per step, exactly the bound (100·0.25 − 150·0.25 = −12.5 J in total)
    assert got["gpu:0"] - fake.expected_energy_j(0) == pytest.approx(
        (200 - 100) * 0.5 / 2 + (50 - 200) * 0.5 / 2, abs=1e-9
    )


def test_sampled_error_shrinks_with_the_read_interval(monkeypatch):
    trace = [(0.0, 120.0), (0.33, 260.0), (1.21, 90.0), (1.77, 200.0)]
    fake = FakeNvml([FakeGpu("Tesla P4", trace, energy_counter=False)]).install(monkeypatch)
    errors = []
    for dt_s in (0.2, 0.05, 0.01):
        fake.t_s = 0.0
        steps = round(2.0 / dt_s)
        got = _run(NvmlMeter(), fake, dt_s, steps)["gpu:0"]
        err_j = abs(got - fake.expected_energy_j(0))
        bound_j = sum(abs(b - a) for (_, a), (_, b) in itertools.pairwise(trace)) * dt_s / 2
        assert err_j <= bound_j + steps * 1e-3 * dt_s
        errors.append(err_j)
    assert errors[0] > errors[1] > errors[2]


def test_cuda_visible_devices_by_index_and_uuid(fake_nvml, monkeypatch):
    # the default fakes are two models: indices mean NVML's only with PCI_BUS_ID order (else a
    # warning: tests/test_meters_nvml_rules.py)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    uuid1 = fake_nvml.gpus[1].uuid
    for value in ("1", uuid1, uuid1[:12]):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        meter = NvmlMeter()
        assert meter.devices == ["gpu:1"], value
        assert meter.pop_warnings() == []
        meter.close()
    for value in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert NvmlMeter().devices == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,5")
    meter = NvmlMeter()
    assert meter.devices == ["gpu:1"]
    assert "'5' names no single GPU" in meter.pop_warnings()[0]


def test_indices_on_mixed_models_warn_about_device_order(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in " ".join(NvmlMeter().pop_warnings())
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert NvmlMeter().pop_warnings() == []


# ---- failures ------------------------------------------------------------------------------


def test_gpu_failing_mid_run_is_frozen_and_others_continue(monkeypatch):
    fake = FakeNvml(
        [
            FakeGpu("NVIDIA H100 80GB HBM3", 400.0),
            FakeGpu("NVIDIA H100 80GB HBM3", 350.0, fail_after_reads=4),  # probe+start+2 reads
            FakeGpu("Tesla T4", 70.0, energy_counter=False, fail_at_s=10.0),  # never reached
        ]
    ).install(monkeypatch)
    meter = NvmlMeter()
    meter.start(0.0)
    for t in (1.0, 2.0):
        fake.advance(1.0)
        meter.read(t)
    assert meter.pop_warnings() == []
    for t in (3.0, 4.0, 5.0):
        fake.advance(1.0)
        got = {r.device: r for r in meter.read(t)}
    assert got["gpu:1"].energy_j == pytest.approx(700.0, abs=COUNTER_TOL_J)  # frozen at t = 2 s
    assert got["gpu:1"].power_w is None
    assert got["gpu:0"].energy_j == pytest.approx(2000.0, abs=COUNTER_TOL_J)
    assert got["gpu:2"].energy_j == pytest.approx(350.0)
    (warning,) = meter.pop_warnings()
    assert "gpu:1" in warning and "GPU is lost" in warning and "no longer read" in warning
    assert fake.gpus[1].reads == 4  # not read again after the failure


def test_gpu_failing_at_a_time_while_sampled(monkeypatch):
    fake = FakeNvml([FakeGpu("Tesla T4", 70.0, energy_counter=False, fail_at_s=1.2)])
    fake.install(monkeypatch)
    got = _run(NvmlMeter(), fake, 0.5, 5)
    assert got["gpu:0"] == pytest.approx(70.0)  # the reads at 0.5 and 1.0 s


def test_gpu_without_energy_or_power_is_skipped_with_a_warning(monkeypatch):
    fake = FakeNvml(
        [
            FakeGpu(
                "GeForce GT 710", fail_after_reads=0, fail_code=pynvml.NVML_ERROR_NOT_SUPPORTED
            ),
            FakeGpu("NVIDIA L4", 60.0),
        ]
    ).install(monkeypatch)
    meter = NvmlMeter()
    assert meter.devices == ["gpu:1"]
    assert "gpu:0" in meter.pop_warnings()[0]
    assert fake.init_count == 1


def test_nvml_errors_become_meter_errors_once(monkeypatch):
    FakeNvml([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED).install(monkeypatch)
    with pytest.raises(MeterError) as info:
        NvmlMeter()
    assert isinstance(info.value.__cause__, pynvml.NVMLError)
    assert "nvidia-smi" in str(info.value) and "\n" not in str(info.value)


def test_gpu_models(fake_nvml, monkeypatch):
    assert nvml_devices.gpu_models() == ["NVIDIA A100-SXM4-80GB", "Tesla P100-PCIE-16GB"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert nvml_devices.gpu_models() == ["Tesla P100-PCIE-16GB"]
    assert len(nvml_devices.gpu_models(visible_only=False)) == 2
    assert [g.device for g in list_gpus()] == ["gpu:1"]
    assert fake_nvml.init_count == 0  # every init balanced by a shutdown


def test_gpu_models_without_nvml(no_nvml):
    assert nvml_devices.gpu_models() == []


# ---- a real GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
def test_real_nvml_counter_after_a_matmul():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        pytest.skip(f"no NVIDIA GPU here: {e}")
    pynvml.nvmlShutdown()
    import time

    meter = NvmlMeter()
    if not meter.devices:
        pytest.skip("NVML works but no GPU is visible")
    meter.start(time.monotonic())
    try:
        import torch

        if torch.cuda.is_available():
            a = torch.randn(4096, 4096, device="cuda")
            for _ in range(50):
                a = a @ a
                a = a / a.norm()
            torch.cuda.synchronize()
    except ImportError:
        pass
    time.sleep(0.2)
    readings = meter.read(time.monotonic())
    meter.close()
    assert readings and all(r.energy_j >= 0 for r in readings)
    assert {r.method for r in readings} <= {"counter", "sampled"}
