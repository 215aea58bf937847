"""CPU (scaled TDP × load curve) and RAM (W per GiB) estimators, TDP matching, host helpers.

The scaling rules, the default and the load curve on scripted machines: test_estimate_model.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from greentrack import hardware
from greentrack.meters.cpu_model import CpuPowerModel, CpuTopology, cpu_power_model
from greentrack.meters.cpu_spec import CpuSpec, cpu_power_table_path, load_tdp_table, match_tdp
from greentrack.meters.estimate import (
    RAM_W_PER_GIB,
    CpuEstimateMeter,
    RamEstimateMeter,
    system_cpu_times,
)


@pytest.fixture(scope="module")
def table() -> dict[str, float]:
    path = cpu_power_table_path()
    assert path is not None, "codecarbon's cpu_power.csv must ship with the codecarbon dependency"
    return load_tdp_table(path)


@pytest.mark.parametrize(
    ("model", "matched", "tdp_w"),
    [
        ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", "Intel Xeon Gold 6148", 150.0),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K", 95.0),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Intel Xeon E5-2686 v4", 145.0),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
        ("AMD Ryzen 7 5800U with Radeon Graphics", "AMD Ryzen 7 5800U", 15.0),
        ("amd epyc 9654", "AMD EPYC 9654", 360.0),
    ],
)
def test_tdp_matches_real_model_strings(table, model, matched, tdp_w):
    m = match_tdp(model, table)
    assert (m.matched, m.tdp_w) == (matched, tdp_w)


@pytest.mark.parametrize("model", ["AMD EPYC", "QEMU Virtual CPU version 2.5+", "", "unknown"])
def test_unknown_model_has_no_tdp(table, model):
    m = match_tdp(model, table)
    assert (m.matched, m.tdp_w) == (None, None)
    assert "not in codecarbon" in m.source


def test_tdp_prefers_the_most_specific_entry_and_refuses_ties():
    table = {"Acme 100": 50.0, "Acme 100 Pro": 70.0, "Zeta A 9": 10.0, "Zeta B 9": 20.0}
    assert match_tdp("Acme(R) 100 Pro Max CPU @ 3.00GHz", table).matched == "Acme 100 Pro"
    assert match_tdp("Zeta A B 9", table).matched is None  # two 3-word entries, two TDPs


def test_tdp_table_is_read_without_importing_codecarbon():
    code = (
        "import sys; from greentrack.meters.cpu_spec import cpu_power_table_path, load_tdp_table;"
        "t = load_tdp_table(cpu_power_table_path()); assert len(t) > 1000;"
        "assert 'codecarbon' not in sys.modules, 'imported codecarbon'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _scripted_times(*values: tuple[float, float]):
    it = iter(values)
    return lambda: next(it)


def _model(tdp_w: float) -> CpuPowerModel:
    return CpuPowerModel("Acme 100", tdp_w, 4, False, "test")


def test_cpu_estimate_integrates_the_load_curve_over_interval_loads_exactly():
    # cumulative (busy_s, total_s) over all CPUs: loads 0.25 then 0.5 then 1.0; the curve gives
    # 0.32 + (0.75 - 0.32) * 0.15 / 0.4 = 0.48125, then 0.75, then 1.02 (× 100 W)
    meter = CpuEstimateMeter(
        _model(100.0), cpu_times=_scripted_times((10, 40), (11, 44), (13, 48), (17, 52))
    )
    meter.start(1000.0)  # only the t_mono passed in is used as the clock
    (r,) = meter.read(1001.0)
    assert (r.component, r.device, r.method) == ("cpu", "cpu:estimate", "estimated")
    assert (r.energy_j, r.power_w) == pytest.approx((48.125, 48.125))
    (r,) = meter.read(1003.0)
    assert (r.energy_j, r.power_w) == pytest.approx((48.125 + 150.0, 75.0))
    (r,) = meter.read(1003.5)
    assert (r.energy_j, r.power_w) == pytest.approx((198.125 + 51.0, 102.0))
    assert meter.pop_warnings() == []


def test_cpu_estimate_with_no_cpu_time_elapsed_carries_the_interval_over():
    meter = CpuEstimateMeter(_model(80.0), cpu_times=_scripted_times((0, 0), (0, 0), (3, 4)))
    meter.start(0.0)
    assert meter.read(0.001)[0].energy_j == 0.0  # jiffies did not move yet
    (r,) = meter.read(2.0)  # load 0.75 over the whole [0, 2] s: 0.75 + 0.27 * 0.5 of the TDP
    assert r.energy_j == pytest.approx(80.0 * 0.885 * 2.0)


def test_cpu_estimate_warns_about_a_default_tdp():
    topo = CpuTopology("Mystery CPU", 6, 1, 6, False, "cpuinfo")
    power = cpu_power_model(topo, CpuSpec("Mystery CPU", None, "not in any table", None, "-"))
    meter = CpuEstimateMeter(power, cpu_times=lambda: (0.0, 1.0))
    (warning,) = meter.pop_warnings()
    assert "Mystery CPU" in warning and "4 W per thread × 6 threads = 24 W" in warning
    assert "Mystery CPU" in meter.describe()["cpu:estimate"]
    assert "default" in meter.describe()["cpu:estimate"]


def test_cpu_estimate_on_this_host_is_within_zero_and_tdp():
    meter = CpuEstimateMeter()
    meter.start(0.0)
    sum(i * i for i in range(200_000))
    (r,) = meter.read(0.5)
    assert 0.12 * meter.tdp_w * 0.5 <= r.energy_j <= 1.02 * meter.tdp_w * 0.5


def test_system_cpu_times_are_machine_wide_and_monotone():
    b0, t0 = system_cpu_times()
    sum(i * i for i in range(100_000))
    b1, t1 = system_cpu_times()
    assert 0 <= b0 <= t0 and b1 >= b0 and t1 >= t0


def test_ram_estimate_is_constant_power_over_time():
    meter = RamEstimateMeter(16.0)
    assert meter.power_w == 16.0 * RAM_W_PER_GIB == 6.0
    meter.start(50.0)
    (r,) = meter.read(60.0)
    assert (r.component, r.device, r.energy_j, r.power_w, r.method) == (
        "ram",
        "ram:estimate",
        60.0,
        6.0,
        "estimated",
    )
    assert meter.read(55.0)[0].energy_j == 60.0  # never goes backwards
    assert "16.0 GiB" in meter.describe()["ram:estimate"]


def test_ram_estimate_defaults_to_this_host():
    assert RamEstimateMeter().total_gib == pytest.approx(hardware.ram_total_gib())


def test_hardware_helpers(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R) X\n"
    )
    assert hardware.cpu_model(info) == "Intel(R) Xeon(R) X"
    assert isinstance(hardware.cpu_model(), str) and hardware.cpu_model()
    assert hardware.cpu_count() >= 1
    assert hardware.ram_total_gib() > 0
