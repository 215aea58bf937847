"""``cpu_share="process"``: the CPU and RAM estimates count this job's process tree, not the
machine. The accounting rules on a scripted /proc, then real process trees and a real burner
that is not ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greentrack as gt
from greentrack.config import load_config
from greentrack.errors import ConfigError
from greentrack.meters import CpuEstimateMeter, open_meters
from greentrack.meters.cpu_model import CpuPowerModel, load_factor
from greentrack.meters.proctree import ProcessTree

HZ = os.sysconf("SC_CLK_TCK")
LINUX = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()
pytestmark = pytest.mark.skipif(not LINUX, reason="reads /proc")


class FakeProc:
    """A procfs folder with ``<pid>/stat`` files whose times (in ticks) the test scripts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set(self, pid: int, ppid: int, own: int, reaped: int = 0, start: int = 1000) -> None:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        fields = ["S", ppid, 0, 0, 0, 0, 0, 0, 0, 0, 0, own, 0, reaped, 0, 20, 0, 1, 0, start]
        (d / "stat").write_text(f"{pid} (a name) with) parens) " + " ".join(map(str, fields)))

    def end(self, pid: int) -> None:
        (self.root / str(pid) / "stat").unlink()
        (self.root / str(pid)).rmdir()


def test_tree_accounting_rules_on_a_scripted_proc(tmp_path) -> None:
    p = FakeProc(tmp_path)
    p.set(10, 1, own=500)  # our process: 5 s of CPU before the run
    p.set(11, 10, own=100)  # a child from before the run
    p.set(99, 1, own=7000)  # somebody else's process
    tree = ProcessTree(10, proc=tmp_path, rescan_s=0.0)
    assert tree.cpu_s() == 0.0
    p.set(10, 1, own=600)
    p.set(11, 10, own=150)
    p.set(12, 11, own=30)  # a grandchild born during the run: all of its time counts
    p.set(99, 1, own=9000)
    assert tree.cpu_s() == pytest.approx((100 + 50 + 30) / HZ)
    # the grandchild ends and its parent reaps it: 40 ticks in all, 10 of them unseen so far
    p.end(12)
    p.set(11, 10, own=150, reaped=40)
    assert tree.cpu_s() == pytest.approx((100 + 50 + 40) / HZ)
    # the child ends, its parent has not reaped it yet: a dip, absorbed (the total never falls)
    p.end(11)
    assert tree.cpu_s() == pytest.approx((100 + 50 + 40) / HZ)
    p.set(10, 1, own=600, reaped=160 + 40)  # its life (100 before the run) + its grandchild
    assert tree.cpu_s() == pytest.approx((100 + 60 + 40) / HZ)
    # an orphan (its parent gone, re-parented to init) is still followed until it ends
    p.set(13, 10, own=0, start=2000)
    tree.cpu_s()
    p.set(13, 1, own=70, start=2000)
    assert tree.cpu_s() == pytest.approx((100 + 60 + 40 + 70) / HZ)
    p.end(13)  # reaped by init: what was seen of it stays
    assert tree.cpu_s() == pytest.approx((100 + 60 + 40 + 70) / HZ)
    # its pid reused by somebody else's process: not ours
    p.set(13, 1, own=5000, start=3000)
    assert tree.cpu_s() == pytest.approx((100 + 60 + 40 + 70) / HZ)


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"
TREE = (
    "import subprocess, sys\n"
    "kids = [subprocess.Popen([sys.executable, '-c', sys.argv[1]]) for _ in range(2)]\n"
    "[k.wait() for k in kids]\n"
    "exec(sys.argv[2])\n"
)


def _cpu_s(t: os.times_result) -> float:
    return t.user + t.system + t.children_user + t.children_system


def test_a_real_tree_is_counted_while_it_runs_and_exactly_at_the_end() -> None:
    tree = ProcessTree(rescan_s=0.0)
    before = os.times()
    child = subprocess.Popen([sys.executable, "-c", TREE, BURN.format(s=0.4), BURN.format(s=0.2)])
    seen = []
    while child.poll() is None:
        seen.append(tree.cpu_s())
        time.sleep(0.05)
    total = tree.cpu_s()
    assert total == pytest.approx(_cpu_s(os.times()) - _cpu_s(before), abs=1.5 / HZ)
    assert total > 1.0  # 2 x 0.4 s + 0.2 s of burning, plus the interpreters' start-up
    assert max(seen) > 0.8, "grandchildren must count while they run, not when they are reaped"
    assert seen == sorted(seen)


def _orphan_burner(seconds: float) -> int:
    """A CPU burner that is not ours: started through a shell that exits at once (re-parented)."""
    out = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "{BURN.format(s=seconds)}" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def _estimate_j(share: str, seconds: float) -> float:
    config = load_config()
    config = type(config)(**{**config.__dict__, "cpu_share": share})
    meter = next(m for m in open_meters(config, gpu=False, ram=False) if m.name == "cpu-estimate")
    t0 = time.monotonic()
    meter.start(t0)
    time.sleep(seconds)
    return meter.read(time.monotonic())[0].energy_j


def test_process_share_ignores_other_programs_load(monkeypatch) -> None:
    """Somebody else burns a core while we sleep: the machine-wide estimate charges us for it,
    the process share does not."""
    monkeypatch.setenv("GREENTRACK_SYSFS", "/nonexistent")  # no RAPL: the estimate is used
    pid = _orphan_burner(4.0)
    try:
        time.sleep(0.3)
        machine = _estimate_j("machine", 1.0)
        process = _estimate_j("process", 1.0)
    finally:
        os.kill(pid, 9)
    from greentrack.meters.cpu_model import host_cpu_power_model

    tdp_w = host_cpu_power_model().tdp_w  # the burner's core at least, on the load curve:
    assert machine > tdp_w * load_factor(0.3 / os.cpu_count())  # above idle power (0.12 × TDP)
    assert process < 0.1 * machine


def test_cpu_share_setting_and_its_errors(monkeypatch, tmp_path) -> None:
    from greentrack.meters import detect

    monkeypatch.setenv("GREENTRACK_CPU_SHARE", "Process")
    assert load_config().cpu_share == "process"
    said = {s.name: s.reason for s in detect(load_config())}
    assert "this process tree's share" in said["cpu-estimate"]  # `greentrack detect` says so
    monkeypatch.setenv("GREENTRACK_CPU_SHARE", "mine")
    with pytest.raises(ConfigError, match=r"GREENTRACK_CPU_SHARE='mine' .* use machine"):
        load_config()
    monkeypatch.delenv("GREENTRACK_CPU_SHARE")
    with pytest.raises(ConfigError, match="cpu_share='all'"):
        gt.track("x", cpu_share="all").start()
    meter = CpuEstimateMeter(CpuPowerModel("cpu", 100.0, 2, False, "table"), tree=ProcessTree())
    assert "share of the CPU time" in meter.describe()["cpu:estimate"]


def test_greentrack_run_charges_the_command_its_own_cpu_time(gt_home, sqlite_url) -> None:
    """A user runs a command that burns 1 s of CPU under `greentrack run --cpu-share process`:
    the stored CPU estimate is its share of the modelled machine power, labelled as a share."""
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), GREENTRACK_DB=sqlite_url,
               GREENTRACK_SYSFS="/nonexistent")  # fmt: skip
    burn = BURN.format(s=1.0)
    subprocess.run([sys.executable, "-m", "greentrack", "run", "--", sys.executable, "-c", ""],
                   env=env, capture_output=True, timeout=120, check=True)  # fmt: skip  # TDP cached
    done = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--cpu-share", "process", "--interval",
         "0.2", "--", sys.executable, "-c", burn],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    show = subprocess.run(
        [sys.executable, "-m", "greentrack", "show", "latest", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    obj = json.loads(show.stdout)
    (cpu,) = [c for c in obj["processes"][0]["components"] if c["device"] == "cpu:estimate"]
    assert cpu["method"] == "estimated" and "this process tree's share" in cpu["model"]
    tdp_w = float(cpu["model"].split("TDP ")[1].split(" W")[0])
    # the burner's 1 s of CPU time, u = 1/n of the machine's capacity while it runs, is charged
    # TDP × f(Lm) / Lm per unit of capacity, Lm between u (alone) and 1 (a busy machine)
    u = 1.0 / os.cpu_count()
    low_j, high_j = tdp_w * u * 1.02, tdp_w * u * load_factor(u) / u
    assert low_j * 0.9 < cpu["energy_j"] < high_j * 1.5  # the runner adds a little


class ScriptedTree:
    def __init__(self, gib: list[float]) -> None:
        self.gib = gib

    def memory_gib(self) -> float:
        return self.gib.pop(0)


def test_process_memory_is_integrated_between_readings() -> None:
    from greentrack.meters import RamEstimateMeter

    meter = RamEstimateMeter(tree=ScriptedTree([1.0, 3.0, 3.0]))  # GiB at start, 10 s, 20 s
    meter.start(0.0)
    assert meter.read(10.0)[0].energy_j == pytest.approx(0.375 * (1.0 + 3.0) / 2 * 10)
    assert meter.read(20.0)[0].energy_j == pytest.approx(0.375 * (2.0 * 10 + 3.0 * 10))
    assert "memory of this process tree" in meter.describe()["ram:estimate"]
    assert ProcessTree().memory_gib() > 0.001  # this test process: tens of MB resident
