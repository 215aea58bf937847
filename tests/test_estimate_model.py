"""The CPU and RAM estimates on scripted machines (issue 12, item 8).

A scripted procfs (``tests/fakes/procfs.py``, ``GREENTRACK_PROCFS``) shows four machines: a
laptop i7, a 2-socket Xeon server, a 4-vCPU slice of a 64-core EPYC (``hypervisor`` flag) and a
VM whose model no table knows. Each expected figure is computed here, independently of
``greentrack.meters.estimate`` / ``cpu_model`` / ``cpu_spec``, from the cited sources:

- TDPs: CodeCarbon's ``cpu_power.csv`` (i7-8650U 15 W, Xeon Gold 6148 150 W, EPYC 7763 280 W);
  threads of the EPYC 7763: 128 (AMD's specification, also in Boavizta's ``cpu_specs.csv``);
- the load curve: Boavizta's ``_TDP_RATIOS`` 0.12, 0.32, 0.75, 1.02 at 0, 10, 50, 100 % load;
- the unknown model: 4 W per thread (CodeCarbon's ``DEFAULT_POWER_PER_CORE``);
- RAM: 0.375 W per GiB.
"""

from __future__ import annotations

import csv
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import pytest
from fakes.procfs import EPYC_VM, LAPTOP_I7, MACHINES, UNKNOWN_VM, XEON_2S, Machine, ScriptedProcfs
from tests_helpers import stored_run

import greentrack as gt
from greentrack.errors import MeterError
from greentrack.meters import CpuEstimateMeter, RamEstimateMeter, open_meters
from greentrack.meters.cpu_model import (
    DEFAULT_W_PER_THREAD,
    host_cpu_power_model,
    load_factor,
    read_cpuinfo,
)
from greentrack.meters.cpu_spec import cpu_specs_path
from greentrack.meters.estimate import system_cpu_times
from greentrack.meters.proctree import ProcessTree

LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(not LINUX, reason="procfs layouts")

# -- the cited figures, restated here ------------------------------------------------------------
POINTS = [(0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02)]  # Boavizta _TDP_RATIOS (Teads)


def curve(load: float) -> float:
    """Power / TDP at ``load``: linear between the published points."""
    for (x0, y0), (x1, y1) in itertools.pairwise(POINTS):
        if load <= x1:
            return y0 + (y1 - y0) * (load - x0) / (x1 - x0)
    raise AssertionError(load)


EXPECTED_TDP_W = {  # what the machine sees, by the scaling rules
    LAPTOP_I7.label: 15.0,  # 1 package
    XEON_2S.label: 2 * 150.0,  # 2 sockets
    EPYC_VM.label: 280.0 * 4 / 128,  # 4 of 128 threads
    UNKNOWN_VM.label: 4.0 * 2,  # default: 4 W per thread × 2 vCPUs
}
EXPECTED_NOTE = {
    LAPTOP_I7.label: "TDP 15 W (codecarbon cpu_power.csv: Intel Core i7-8650U) × 1 package",
    XEON_2S.label: "TDP 150 W (codecarbon cpu_power.csv: Intel Xeon Gold 6148) × 2 packages",
    EPYC_VM.label: "TDP 280 W (codecarbon cpu_power.csv: AMD EPYC 7763) scaled to 4 of 128 threads",
    UNKNOWN_VM.label: "default TDP 4 W per thread × 2 threads = 8 W",
}
# loads inside a linear piece of the curve (or at its ends): the scripted stat has whole ticks
# (400 a second on 4 vCPUs), and a tick's rounding must not cross a kink of the curve
LOADS = {LAPTOP_I7.label: 0.0, XEON_2S.label: 0.7, EPYC_VM.label: 0.3, UNKNOWN_VM.label: 1.0}


@pytest.fixture
def procfs(tmp_path, monkeypatch, no_powercap, no_nvml):
    """Make a scripted procfs for a machine and point GREENTRACK_PROCFS at it."""
    made: list[ScriptedProcfs] = []

    def make(machine: Machine, **kw) -> ScriptedProcfs:
        fake = ScriptedProcfs(tmp_path / f"proc{len(made)}", machine, **kw)
        monkeypatch.setenv("GREENTRACK_PROCFS", str(fake.root))
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.stop()


# -- the model ---------------------------------------------------------------------------------
def test_load_curve_is_the_published_one_with_idle_power():
    for x, y in POINTS:
        assert load_factor(x) == pytest.approx(y)
    assert load_factor(0.3) == pytest.approx(0.32 + 0.43 * 0.5)
    assert load_factor(-1.0) == 0.12 and load_factor(2.0) == 1.02  # clamped
    xs = [i / 100 for i in range(101)]
    assert all(load_factor(a) < load_factor(b) for a, b in itertools.pairwise(xs))


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.label)
def test_tdp_is_scaled_to_what_the_machine_sees(procfs, machine):
    procfs(machine)
    topo = read_cpuinfo()
    assert (topo.threads, topo.packages, topo.hypervisor) == (
        machine.threads, machine.packages, machine.hypervisor)  # fmt: skip
    power = host_cpu_power_model()
    assert power.tdp_w == pytest.approx(EXPECTED_TDP_W[machine.label])
    assert power.default is (machine is UNKNOWN_VM)
    meter = CpuEstimateMeter()
    note = meter.notes()["cpu:estimate"]
    assert note.startswith(EXPECTED_NOTE[machine.label]), note
    assert "0.12/0.32/0.75/1.02" in note and "Boavizta" in note
    assert f"TDP {EXPECTED_TDP_W[machine.label]:.4g} W" in meter.describe()["cpu:estimate"]
    warnings = meter.pop_warnings()
    assert bool(warnings) is (machine is UNKNOWN_VM)  # a default is said at once, as a warning
    if warnings:
        assert "default" in warnings[0] and "AMD EPYC" in warnings[0]


def test_the_issue_case_a_2_vcpu_epyc_slice_is_not_charged_a_whole_package(procfs):
    """Before: 85 W × load, 46 W for one busy vCPU of two. Now: 4 W × 2 on the load curve."""
    procfs(Machine("2-vCPU EPYC slice", "AMD EPYC", 2, 1, 2, True, 4.0), load=0.5).step(0.0)
    assert host_cpu_power_model().power_w(0.5) == pytest.approx(8.0 * 0.75)  # 6 W, not 46 W


def test_vm_of_a_model_with_unknown_threads_gets_the_default_not_the_package(procfs):
    # Xeon Platinum 8171M (Azure's): 165 W in CodeCarbon's table, absent from Boavizta's
    procfs(Machine("VM 8171M", "Intel(R) Xeon(R) Platinum 8171M CPU @ 2.60GHz", 8, 1, 8, True, 32))
    power = host_cpu_power_model()
    assert power.default and power.tdp_w == pytest.approx(4.0 * 8)
    assert "TDP 165 W" in power.basis and "model not in Boavizta cpu_specs.csv" in power.basis


def test_vm_share_takes_tdp_and_threads_from_one_row(procfs):
    # Xeon Platinum 8272CL: CodeCarbon 195 W; Boavizta's row 390 W and 104 threads (2 sockets)
    procfs(
        Machine("VM 8272CL", "Intel(R) Xeon(R) Platinum 8272CL CPU @ 2.60GHz", 4, 1, 4, True, 16)
    )
    power = host_cpu_power_model()
    assert power.tdp_w == pytest.approx(390.0 * 4 / 104)  # = 195 W × 4 / 52, not halved
    assert "scaled to 4 of 104 threads" in power.basis


def test_bare_metal_without_siblings_uses_the_thread_table(procfs, tmp_path):
    fake = procfs(XEON_2S)
    text = (fake.root / "cpuinfo").read_text()
    (fake.root / "cpuinfo").write_text(
        "".join(line for line in text.splitlines(True) if not line.startswith("siblings"))
    )
    power = host_cpu_power_model()
    assert power.tdp_w == pytest.approx(300.0)  # 80 threads / 40 per Gold 6148 (Boavizta)
    assert "Boavizta cpu_specs.csv: Intel Xeon Gold 6148" in power.basis


def test_default_per_thread_agrees_with_the_shipped_table():
    """4 W per thread (CodeCarbon) against the median TDP per thread of Boavizta's parts."""
    with open(cpu_specs_path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    ratios = [float(r["tdp_w"]) / int(r["threads"]) for r in rows if r["tdp_w"]]
    assert len(ratios) > 1000
    median = statistics.median(ratios)
    assert median == pytest.approx(4.06, abs=0.01)  # the figure the README and docstring quote
    assert abs(DEFAULT_W_PER_THREAD - median) / median < 0.05


def test_a_scripted_root_without_stat_is_a_meter_error(tmp_path):
    with pytest.raises(MeterError, match="stat"):
        system_cpu_times(tmp_path)


# -- meters, read by hand (deterministic) ------------------------------------------------------
def test_machine_load_is_integrated_on_the_curve(procfs):
    fake = procfs(EPYC_VM, load=0.0)
    meter = CpuEstimateMeter()
    meter.start(0.0)
    fake.step(2.0)  # idle: the idle power still counts
    (r,) = meter.read(2.0)
    p0 = 8.75 * 0.12
    assert r.energy_j == pytest.approx(p0 * 2.0, rel=1e-3) and r.power_w == pytest.approx(p0)
    fake.set_load(0.9)
    fake.step(1.0)
    (r,) = meter.read(3.0)
    # ticks are whole numbers (400 per scripted second here): 1/400 of rounding at most
    assert r.energy_j == pytest.approx(p0 * 2.0 + 8.75 * curve(0.9) * 1.0, rel=3e-3)


def test_process_share_apportions_the_machine_power_idle_included(procfs):
    fake = procfs(XEON_2S, load=0.5, tree_share=0.25)  # others use the other half of the busy time
    meter = CpuEstimateMeter(tree=ProcessTree(rescan_s=0.0))
    meter.start(0.0)
    fake.step(1.0)
    (r,) = meter.read(1.0)
    machine_w = 300.0 * curve(0.5)
    assert r.power_w == pytest.approx(machine_w * 0.25 / 0.5, rel=1e-2)  # half the busy time
    fake.set_load(0.4, tree_share=0.4)  # alone on the machine: the whole machine figure
    fake.step(1.0)
    (r,) = meter.read(2.0)
    assert r.power_w == pytest.approx(300.0 * curve(0.4), rel=1e-2)
    fake.set_load(0.3, tree_share=0.0)  # not using the CPU: not charged its idle power
    fake.step(1.0)
    (r,) = meter.read(3.0)
    assert r.power_w == 0.0
    assert "idle power included" in meter.notes()["cpu:estimate"]


def test_ram_estimate_reads_the_scripted_meminfo_and_tree(procfs):
    fake = procfs(XEON_2S, rss_gib=2.0)
    ram = RamEstimateMeter()
    assert ram.total_gib == pytest.approx(192.0) and ram.power_w == pytest.approx(72.0)
    assert "0.375 W per GiB × 192.0 GiB installed" in ram.notes()["ram:estimate"]
    tree_ram = RamEstimateMeter(tree=ProcessTree())
    tree_ram.start(0.0)
    assert tree_ram.read(10.0)[0].energy_j == pytest.approx(0.375 * 2.0 * 10.0, rel=1e-3)
    assert str(fake.root) in tree_ram.notes()["ram:estimate"]


def test_open_meters_reads_the_procfs_root_from_the_environment(procfs):
    procfs(EPYC_VM)
    from greentrack.config import load_config

    meters = {m.name: m for m in open_meters(load_config(), gpu=False)}
    assert meters["cpu-estimate"].tdp_w == pytest.approx(8.75)
    assert meters["ram-estimate"].total_gib == pytest.approx(16.0)


def test_the_procfs_root_can_be_set_in_config_toml(procfs, monkeypatch, gt_home):
    """`procfs = "..."` in config.toml points the estimates (and the process tree) there, as
    GREENTRACK_PROCFS does; the environment wins over the file."""
    fake = procfs(EPYC_VM)
    monkeypatch.delenv("GREENTRACK_PROCFS")
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text(f'procfs = "{fake.root}"\n')
    from greentrack.config import load_config

    config = load_config()
    assert config.procfs == fake.root
    meters = {m.name: m for m in open_meters(config, gpu=False)}
    assert meters["cpu-estimate"].tdp_w == pytest.approx(8.75)
    assert meters["ram-estimate"].total_gib == pytest.approx(16.0)
    (gt_home / "config.toml").write_text(f'procfs = "{fake.root}"\ncpu_share = "process"\n')
    meters = {m.name: m for m in open_meters(load_config(), gpu=False)}
    assert meters["ram-estimate"].tree.proc == fake.root  # the process tree reads it too
    monkeypatch.setenv("GREENTRACK_PROCFS", "/proc")
    assert load_config().procfs.as_posix() == "/proc"


# -- tracked runs ------------------------------------------------------------------------------
def _components(obj: dict) -> dict[str, dict]:
    comps = obj.get("components") or [c for p in obj["processes"] for c in p["components"]]
    return {c["device"]: c for c in comps}


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.label)
def test_tracked_run_gets_the_energy_the_model_predicts(procfs, sqlite_url, machine):
    load = LOADS[machine.label]
    fake = procfs(machine, load=load).start()
    with gt.track(f"est-{machine.label}", db=sqlite_url, interval_s=0.2) as run:
        time.sleep(0.8)
        fake.set_load(load)  # the files up to date now, whatever the writer thread's lag
    fake.stop()
    s = run.summary()
    cpu_w = EXPECTED_TDP_W[machine.label] * curve(load)
    ram_w = 0.375 * machine.mem_gib
    got = {c.device: c.energy_j for c in s.components}
    # the window the meters integrate is the run's; the files are brought up to date just
    # before the last read, which a busy machine may still delay: 0.05 s of it allowed
    assert got["cpu:estimate"] == pytest.approx(cpu_w * s.duration_s, rel=0.02, abs=cpu_w * 0.05)
    assert got["ram:estimate"] == pytest.approx(ram_w * s.duration_s, rel=0.02)
    comps = _components(stored_run(sqlite_url, run.id))
    assert comps["cpu:estimate"]["energy_j"] == pytest.approx(got["cpu:estimate"])
    assert comps["cpu:estimate"]["method"] == "estimated"
    note = comps["cpu:estimate"].get("note") or ""
    assert note.startswith(EXPECTED_NOTE[machine.label]), "components.note must state the model"
    assert "GiB installed" in (comps["ram:estimate"].get("note") or "")


def test_tracked_run_with_a_load_that_changes(procfs, sqlite_url):
    fake = procfs(EPYC_VM, load=0.0).start()
    with gt.track("est-steps", db=sqlite_url, interval_s=0.05) as run:
        time.sleep(0.5)
        t_switch = time.monotonic()
        fake.set_load(0.9)
        time.sleep(0.5)
        fake.set_load(0.9)  # the files up to date now, whatever the writer thread's lag
    fake.stop()
    s = run.summary()
    idle_s = t_switch - run.t0_mono
    busy_s = s.duration_s - idle_s
    expected_j = 8.75 * (curve(0.0) * idle_s + curve(0.9) * busy_s)
    (cpu,) = [c for c in s.components if c.device == "cpu:estimate"]
    # one read interval (0.05 s) straddles the switch: at most 0.05 s × the power difference;
    # the last read may be delayed on a busy machine (0.05 s allowed)
    tol_j = 0.06 * 8.75 * (curve(0.9) - 0.12) + 0.05 * 8.75 * curve(0.9)
    assert cpu.energy_j == pytest.approx(expected_j, abs=tol_j)


def test_tracked_run_with_cpu_share_process(procfs, sqlite_url):
    fake = procfs(XEON_2S, load=0.5, tree_share=0.25).start()
    with gt.track("est-share", db=sqlite_url, interval_s=0.2, cpu_share="process") as run:
        time.sleep(1.0)
        fake.set_load(0.5)  # the files up to date now, whatever the writer thread's lag
    fake.stop()
    s = run.summary()
    (cpu,) = [c for c in s.components if c.device == "cpu:estimate"]
    expected_w = 300.0 * curve(0.5) * 0.25 / 0.5
    # the last read may be delayed on a busy machine (0.05 s allowed); the process's time alone
    # on the TDP (no idle share) would be 75 W, a third less
    assert cpu.energy_j == pytest.approx(expected_w * s.duration_s, rel=0.02, abs=expected_w * 0.05)
    assert os.environ["GREENTRACK_PROCFS"] == str(fake.root)


def test_scripted_machines_are_what_the_real_files_look_like():
    """The real /proc of this machine parses the same way (fields present, counts right)."""
    topo = read_cpuinfo(Path("/proc"))
    assert topo.threads == (os.cpu_count() or 1) and topo.model
    busy, total = system_cpu_times(Path("/proc"))
    assert 0 <= busy <= total
