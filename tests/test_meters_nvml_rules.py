"""NVML rules for the hardware researchers use (issue 12, items 2-7), on simulated GPUs under the
real ``pynvml`` module (nvidia-ml-py 13.x; tests/fakes/nvml.py) with a known ground truth.

- counter unavailable (NotSupported, FunctionNotFound, anything) -> sampled power;
- ``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` -> the parent GPU, said in a warning and the GPU's note;
- index order on a host of mixed models: UUIDs through an initialised torch, else a warning;
- NVML init failing where a driver exists -> a warning on the run and in ``greentrack detect``;
- windows shorter than the counter's update period -> sampled power, phase method ``sampled``;
- counter vs integrated power disagreeing by > 20 % -> both figures recorded.

Tolerances: counter figures are integer mJ (< 1 mJ per read); sampled power is exact while the
scripted power is constant between reads (every script here is, at the reads' times).
"""

from __future__ import annotations

import types

import pynvml
import pytest
from click.testing import CliRunner
from fakes.nvml import FakeGpu, FakeNvml

import greentrack.sampler as sampler_mod
from greentrack.config import load_config
from greentrack.meters import detect, nvml_devices, open_meters
from greentrack.meters.nvml import COUNTER_PERIOD_PRIOR_S, NvmlMeter

MJ = 1e-3
MIG_UUID = "MIG-4f8a2c1e-93b0-5d7e-a1c2-0b1d2e3f4a5b"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def _read(meter: NvmlMeter, fake: FakeNvml, t_s: float) -> dict[str, float]:
    if t_s > fake.now_s():
        fake.advance(t_s - fake.now_s())
    return {r.device: r.energy_j for r in meter.read(t_s)}


# ---- 2. counter unavailable -> sampled ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "quiet"),
    [
        (pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, True),  # an old driver lacks the function
        (pynvml.NVML_ERROR_NOT_SUPPORTED, True),  # pre-Volta
        (pynvml.NVML_ERROR_UNKNOWN, False),  # anything else: sampled too, with a warning
    ],
)
def test_counter_unavailable_falls_back_to_sampled_power(monkeypatch, code, quiet):
    fake = FakeNvml([FakeGpu("Tesla K80", power_w=120.0, counter_error=code)])
    fake.install(monkeypatch)
    with pytest.raises(pynvml.NVMLError) as raised:  # the real binding's exception class
        pynvml.nvmlInit()
        pynvml.nvmlDeviceGetTotalEnergyConsumption(pynvml.nvmlDeviceGetHandleByIndex(0))
    pynvml.nvmlShutdown()
    assert type(raised.value) is pynvml.nvmlExceptionClass(code)
    meter = NvmlMeter()
    assert meter.methods == {"gpu:0": "sampled"}
    warnings = meter.pop_warnings()
    assert (warnings == []) is quiet, warnings
    meter.start(0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        got = _read(meter, fake, t)
    assert got["gpu:0"] == pytest.approx(fake.expected_energy_j(0), abs=MJ)
    assert got["gpu:0"] == pytest.approx(480.0, abs=MJ)


# ---- 3. MIG ---------------------------------------------------------------------------------


def _mig_host(monkeypatch) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu("NVIDIA A100-SXM4-80GB", 210.0),
            FakeGpu("NVIDIA A100-SXM4-80GB", 260.0, mig_uuids=[MIG_UUID]),
        ]
    ).install(monkeypatch)


def test_mig_device_is_measured_as_its_parent_and_says_so(monkeypatch):
    fake = _mig_host(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_UUID)
    meter = NvmlMeter()
    assert meter.devices == ["gpu:1"]
    (warning,) = meter.pop_warnings()
    assert MIG_UUID in warning and "whole" in warning
    note = meter.notes()["gpu:1"]
    assert note.startswith("MIG slice of GPU 1: whole-GPU energy")
    meter.start(0.0)
    got = _read(meter, fake, 2.0)
    assert got == {"gpu:1": pytest.approx(520.0, abs=MJ)}  # the whole parent GPU
    assert fake.calls["nvmlDeviceGetDeviceHandleFromMigDeviceHandle"] >= 1
    assert nvml_devices.gpu_models() == ["NVIDIA A100-SXM4-80GB"]


def test_unknown_mig_device_names_no_gpu(monkeypatch):
    _mig_host(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-00000000-0000-0000-0000-000000000000")
    meter = NvmlMeter()
    assert meter.devices == []
    assert "names no single GPU" in meter.pop_warnings()[0]


# ---- 4. CUDA_DEVICE_ORDER on a host of mixed models ----------------------------------------


def _mixed_host(monkeypatch) -> FakeNvml:
    # NVML (PCI bus) order: a T4 then an A100. CUDA's default order is fastest first: A100, T4.
    return FakeNvml([FakeGpu("Tesla T4", 70.0), FakeGpu("NVIDIA A100-SXM4-80GB", 300.0)]).install(
        monkeypatch
    )


def test_index_on_a_mixed_host_warns_even_with_one_gpu_visible(monkeypatch):
    _mixed_host(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    meter = NvmlMeter()
    assert meter.devices == ["gpu:1"]
    (warning,) = meter.pop_warnings()
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in warning and "Tesla T4" in warning
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert NvmlMeter().pop_warnings() == []


def test_same_model_host_needs_no_warning(monkeypatch):
    FakeNvml([FakeGpu("Tesla T4", 70.0), FakeGpu("Tesla T4", 70.0)]).install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert NvmlMeter().pop_warnings() == []


def test_index_mapped_through_torch_uuids_when_cuda_is_initialised(monkeypatch):
    torch = pytest.importorskip("torch")
    fake = _mixed_host(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    t4_uuid = fake.gpus[0].uuid.removeprefix("GPU-")  # torch prints UUIDs without the prefix
    props = types.SimpleNamespace(name="Tesla T4", uuid=t4_uuid)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    meter = NvmlMeter()
    assert meter.devices == ["gpu:0"]  # CUDA device 1 of the fastest-first order is the T4
    (warning,) = meter.pop_warnings()
    assert "matched by UUID" in warning
    meter.start(0.0)
    assert _read(meter, fake, 1.0) == {"gpu:0": pytest.approx(70.0, abs=MJ)}


# ---- 5. NVML init failing where a driver exists ----------------------------------------------


def test_library_driver_mismatch_is_a_warning_on_the_run_and_in_detect(monkeypatch, no_powercap):
    FakeNvml([], init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH).install(monkeypatch)
    meters = open_meters(load_config())
    (nvml,) = [m for m in meters if m.name == "nvml"]
    (warning,) = nvml.pop_warnings()
    assert "version mismatch" in warning and "reboot" in warning and "\n" not in warning
    (status,) = [s for s in detect(load_config()) if s.name == "nvml"]
    assert not status.available
    assert "driver present" in status.reason and "version mismatch" in status.reason
    from greentrack.cli import main

    out = CliRunner().invoke(main, ["detect"])
    assert out.exit_code == 0, out.output
    assert "version mismatch" in out.output and "reboot" in out.output


def test_mismatch_reaches_the_runs_warnings(monkeypatch, no_powercap, tmp_path):
    import greentrack as gt

    FakeNvml([], init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH).install(monkeypatch)
    with gt.track("mismatch", project="nvml", db=f"sqlite:///{tmp_path / 'gt.db'}") as run:
        pass
    assert any("version mismatch" in w for w in run.summary().warnings)


def test_no_driver_stays_quiet(no_nvml, no_powercap):
    assert [m.name for m in open_meters(load_config()) if m.name == "nvml"] == []


# ---- 6. windows shorter than the counter's update period -------------------------------------


def _slow_counter(monkeypatch, period_s: float = 0.1, power=300.0) -> FakeNvml:
    return FakeNvml([FakeGpu("NVIDIA A100-SXM4-80GB", power, counter_period_s=period_s)]).install(
        monkeypatch
    )


def test_short_windows_take_sampled_power_and_long_ones_the_counter(monkeypatch):
    fake = _slow_counter(monkeypatch)
    meter = NvmlMeter()
    meter.start(0.0)
    e = {t: _read(meter, fake, t)["gpu:0"] for t in (1.0, 1.02, 1.07, 1.15, 2.15)}
    # what the counter says: 0 J for the 50 ms window, 30 J for the 80 ms one (issue 12)
    assert e[1.07] - e[1.02] == pytest.approx(0.0, abs=MJ)
    assert e[1.15] - e[1.07] == pytest.approx(30.0, abs=MJ)
    a = meter.window_energy("gpu:0", 1.02, 1.07, e[1.02], e[1.07])
    b = meter.window_energy("gpu:0", 1.07, 1.15, e[1.07], e[1.15])
    assert a == (pytest.approx(15.0, abs=MJ), "sampled")
    assert b == (pytest.approx(24.0, abs=MJ), "sampled")
    assert meter.window_energy("gpu:0", 1.15, 2.15, e[1.15], e[2.15]) is None  # 1 s: counter
    warnings = meter.pop_warnings()
    assert len(warnings) == 1 and "sampled" in warnings[0]  # once
    assert e[2.15] == pytest.approx(300.0 * 2.1, abs=MJ)  # run total: the counter's


def test_observed_update_period_longer_than_the_prior(monkeypatch):
    fake = _slow_counter(monkeypatch, period_s=0.5, power=200.0)
    meter = NvmlMeter()
    meter.start(0.0)
    e = {}
    for k in range(1, 31):  # reads every 50 ms: the counter stays 9 reads unchanged
        e[k] = _read(meter, fake, k * 0.05)["gpu:0"]
    assert meter.counter_period_s("gpu:0") == pytest.approx(0.45, abs=1e-9)
    # a 0.3 s window (longer than the 100 ms prior) still comes from power: 60 J
    got = meter.window_energy("gpu:0", 1.05, 1.35, e[21], e[27])
    assert got == (pytest.approx(60.0, abs=MJ), "sampled")


def test_a_fast_counter_keeps_short_windows(monkeypatch):
    fake = FakeNvml([FakeGpu("NVIDIA H100 80GB HBM3", 400.0)]).install(monkeypatch)  # continuous
    meter = NvmlMeter()
    meter.start(0.0)
    e = {k: _read(meter, fake, k * 0.01)["gpu:0"] for k in range(1, 21)}
    assert meter.counter_period_s("gpu:0") < 0.05
    assert meter.window_energy("gpu:0", 0.10, 0.15, e[10], e[15]) is None


def test_phases_of_a_tracked_run_use_sampled_power_and_say_so(monkeypatch, no_powercap, tmp_path):
    """The real tracker, sampler and store, on the fake's explicit clock (deterministic)."""
    import greentrack as gt

    fake = _slow_counter(monkeypatch)
    monkeypatch.setattr(
        sampler_mod, "steady_clock", lambda: lambda: (1000.0 + fake.now_s(), 2e9 + fake.now_s())
    )
    meter = NvmlMeter()
    closed: list[dict] = []
    with gt.track(
        "short",
        project="nvml",
        db=f"sqlite:///{tmp_path / 'gt.db'}",
        meters=[meter],
        interval_s=60.0,
    ) as run:
        fake.advance(1.02)
        for name, dt_s in (("a", 0.05), ("b", 0.08), ("long", 1.0)):
            with run.phase(name):
                fake.advance(dt_s)
            closed.append(dict(run._pending_phases[-1]))
        fake.advance(0.5)
    by_name = {p["name"]: p for p in closed}
    assert by_name["a"]["energy_j"] == pytest.approx(15.0, abs=MJ)
    assert by_name["b"]["energy_j"] == pytest.approx(24.0, abs=MJ)
    assert by_name["long"]["energy_j"] == pytest.approx(300.0, abs=MJ)
    assert [by_name[n]["method"] for n in ("a", "b", "long")] == ["sampled", "sampled", None]
    summary = run.summary()
    phases = {p.name: p for p in summary.phases}
    assert phases["a"].energy_j == pytest.approx(15.0, abs=MJ)
    gpu = {c.device: c for c in summary.components}["gpu:0"]
    assert gpu.energy_j == pytest.approx(300.0 * (1.02 + 0.13 + 1.0 + 0.5), abs=0.1 * 300 + MJ)
    assert sum("sampled" in w and "gpu:0" in w for w in summary.warnings) == 1
    assert COUNTER_PERIOD_PRIOR_S == 0.1


# ---- 7. counter vs integrated power ----------------------------------------------------------


def test_counter_disagreeing_with_power_records_both(monkeypatch):
    # the counter reports 187/327 of the energy, as in Zeus issue #181
    fake = FakeNvml([FakeGpu("NVIDIA A40", 327.0 / 12, counter_scale=187 / 327)])
    fake.install(monkeypatch)
    meter = NvmlMeter()
    meter.start(0.0)
    for k in range(1, 25):
        got = _read(meter, fake, k * 0.5)
    assert got["gpu:0"] == pytest.approx(187.0, abs=MJ)  # stored: the counter's figure
    (warning,) = meter.pop_warnings()
    assert "disagree by 43%" in warning
    note = meter.notes()["gpu:0"]
    assert "187.0 J" in note and "327.0 J" in note


def test_agreeing_counter_adds_nothing(monkeypatch):
    fake = FakeNvml([FakeGpu("NVIDIA A40", [(0, 100.0), (3.0, 250.0), (7.0, 80.0)])])
    fake.install(monkeypatch)
    meter = NvmlMeter()
    meter.start(0.0)
    for k in range(1, 25):
        _read(meter, fake, k * 0.5)
    assert meter.pop_warnings() == [] and meter.notes() == {}


def test_no_cross_check_before_ten_seconds(monkeypatch):
    fake = FakeNvml([FakeGpu("NVIDIA A40", 300.0, counter_scale=0.5)]).install(monkeypatch)
    meter = NvmlMeter()
    meter.start(0.0)
    for k in range(1, 19):
        _read(meter, fake, k * 0.5)
    assert meter.pop_warnings() == []


def test_mig_note_and_phase_method_reach_the_store(monkeypatch, no_powercap, tmp_path):
    """What ``show`` and the price tag read: ``components.note`` and ``phases.method``."""
    import sqlite3

    import greentrack as gt

    fake = FakeNvml(
        [FakeGpu("NVIDIA A100-SXM4-80GB", 300.0, mig_uuids=[MIG_UUID], counter_period_s=0.1)]
    ).install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_UUID)
    monkeypatch.setattr(
        sampler_mod, "steady_clock", lambda: lambda: (1000.0 + fake.now_s(), 2e9 + fake.now_s())
    )
    db = tmp_path / "gt.db"
    meter = NvmlMeter()  # the GPU alone, so the phase's energy is the GPU's
    with gt.track(
        "mig", project="nvml", db=f"sqlite:///{db}", interval_s=60.0, meters=[meter]
    ) as run:
        fake.advance(1.02)
        with run.phase("short"):
            fake.advance(0.05)
        fake.advance(1.0)
    con = sqlite3.connect(db)
    (note,) = con.execute(
        "SELECT note FROM components WHERE run_id = ? AND device = 'gpu:0'", (run.id,)
    ).fetchone()
    assert note.startswith("MIG slice of GPU 0: whole-GPU energy")
    (energy_j, method) = con.execute(
        "SELECT energy_j, method FROM phases WHERE run_id = ? AND name = 'short'", (run.id,)
    ).fetchone()
    assert method == "sampled" and energy_j == pytest.approx(15.0, abs=MJ)


def test_driver_without_its_library_says_how_to_fix_it(monkeypatch, no_powercap):
    FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND).install(monkeypatch)  # driver on
    (nvml,) = [m for m in open_meters(load_config()) if m.name == "nvml"]
    (warning,) = nvml.pop_warnings()
    assert "libnvidia-ml.so.1 is not found" in warning and "--gpus all" in warning
