"""Distributed runs on AMD GPU hosts (and MIG slices on NVIDIA): every energy counter counted once.

The ranks are real processes (this file run as a script, ``python test_distributed_amd.py
worker <spec>``), each with the simulated ``amdsmi`` binding under its real module name
(``tests/fakes/sim/amdsmi``) or the simulated NVML, writing one run into one SQLite store. The
simulations of all processes share one fake clock (fake time 0 at a ``time.monotonic()`` value
the test passes; the clock is system-wide), so the test knows every counter's true energy over
any window: the ground truth is each counter's scripted power integrated over the window of the
rank that must count it (the lowest rank on its host using it), and the run's GPU energy must be
within 1 % of it. An MI250X package's two dies report one counter: counting it on both ranks
would add a whole package (a third of the total or more), far outside 1 %.

Two jobs: a torchrun-like environment without a process group (the rules alone place the
GPUs), and a real gloo process group (the ranks compare what they use) where each rank sees a
single die or MIG slice, as under Slurm ``--gpus-per-task``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from fakes.powercap import integrate_j  # noqa: E402

# power scripts (W over the shared fake time, s) of every counter of every simulated host
MI250X_A = [(0.0, 400.0), (0.6, 150.0), (1.1, 520.0)]  # one package counter, two dies
MI300X = [(0.0, 550.0), (0.8, 90.0)]
B0, B1 = 350.0, [(0.0, 250.0), (0.9, 600.0)]
MIG_GPU = [(0.0, 300.0), (0.7, 120.0)]
MIG_A = "MIG-1f2e3d4c-0000-4000-8000-00000000000a"
MIG_B = "MIG-1f2e3d4c-0000-4000-8000-00000000000b"
SHARED = (
    "gpu:amd-0, gpu:amd-1 are dies of one AMD Instinct MI250X (serial PCB-MI250X-A) reporting "
    "one shared package energy counter: counted once, by rank 0"
)


def _host_gpus(host: str) -> tuple[list[Any], list[Any]]:
    """(AMD, NVIDIA) simulated GPUs of a simulated host."""
    from fakes.amd import FakeAmdGpu, mi250x
    from fakes.nvml import FakeGpu

    if host == "node-a":  # an MI250X (dies gpu:amd-0, gpu:amd-1) and an MI300X (gpu:amd-2)
        return [*mi250x(MI250X_A, serial="PCB-MI250X-A"), FakeAmdGpu(power_w=MI300X)], []
    if host == "node-b":
        return [FakeAmdGpu(power_w=B0), FakeAmdGpu(power_w=B1)], []
    return [], [FakeGpu(power_w=MIG_GPU, mig_uuids=[MIG_A, MIG_B]), FakeGpu(power_w=80.0)]


# -- the ranks ------------------------------------------------------------------------------------


def _worker(spec: dict[str, Any]) -> None:
    """One rank on a simulated host: track a short run, write its summary and window (fake s)."""
    import pynvml
    from fakes.amd import FakeAmdSmi
    from fakes.nvml import FakeNvml

    import greentrack as gt
    from greentrack import hardware

    hardware.hostname = lambda: spec["host"]
    mp = pytest.MonkeyPatch()
    amd, nvidia = _host_gpus(spec["host"])
    if amd:
        FakeAmdSmi(amd).install(mp).start(spec["origin"])
    if nvidia:
        FakeNvml(nvidia).install(mp).start(spec["origin"])
    else:  # no NVIDIA GPU, even on a machine that has one
        nvml = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
        FakeNvml([], init_error=nvml, driver_loaded=False).install(mp)
    os.environ.update(spec["env"])
    dist = None
    if spec.get("init"):
        import torch.distributed as dist

        dist.init_process_group(
            "gloo", init_method=f"file://{spec['init']}", rank=spec["rank"],
            world_size=spec["world"],
        )  # fmt: skip
    with gt.track("amd-ranks", project="dist", db=spec["db"], interval_s=0.05) as run:
        time.sleep(0.5)
        if dist is not None:
            dist.barrier()
    t = {"t0_s": run.t0_mono - spec["origin"], "t1_s": run.t1_mono - spec["origin"]}
    Path(spec["out"], f"{spec['rank']}.json").write_text(
        json.dumps({**run.summary().to_dict(), **t}, default=str)
    )
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()


def _job(tmp_path: Path, ranks: list[dict[str, Any]], init: bool) -> tuple[str, list[dict]]:
    """Run the ranks as processes against one SQLite store; their summaries, by rank."""
    from greentrack.store.schema import upgrade

    db = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREENTRACK_", "RANK"))}
    for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        env.pop(var, None)
    env.update(
        GREENTRACK_HOME=str(tmp_path / "home"),
        GREENTRACK_SYSFS=str(tmp_path / "no-sysfs"),
        PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]),
        OMP_NUM_THREADS="1",
    )
    (tmp_path / "no-sysfs").mkdir(exist_ok=True)
    origin = time.monotonic()
    procs = []
    rdzv = str(tmp_path / "rdzv") if init else ""
    for r, rank in enumerate(ranks):
        spec = {**rank, "rank": r, "world": len(ranks), "db": db, "out": str(tmp_path),
                "origin": origin, "init": rdzv}  # fmt: skip
        spec["env"] = {"RANK": str(r), "WORLD_SIZE": str(len(ranks)), **rank["env"]}
        argv = [sys.executable, __file__, "worker", json.dumps(spec)]
        out = subprocess.PIPE
        procs.append(
            subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        )
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed:\n{outputs[r]}"
    return db, [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(len(ranks))]


def _show(db: str, run_id: str) -> dict[str, Any]:
    from greentrack.cli import main

    shown = CliRunner().invoke(main, ["show", run_id, "--db", db, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


def _gpu_devices(obj: dict[str, Any]) -> dict[int, list[str]]:
    return {
        p["rank"]: sorted(c["device"] for c in p["components"] if c["component"] == "gpu")
        for p in obj["processes"]
    }


def _check_energy(
    obj: dict[str, Any], runs: list[dict], owners: dict[str, tuple[int, Any]]
) -> None:
    """The run's GPU energy, and each counter's, against the scripts over the owner's window."""
    expected: dict[str, float] = {}
    for counter, (rank, script) in owners.items():
        expected[counter] = integrate_j(script, runs[rank]["t0_s"], runs[rank]["t1_s"])
    measured = {
        f"{p['rank']}/{c['device']}": c["energy_j"]
        for p in obj["processes"]
        for c in p["components"]
        if c["component"] == "gpu"
    }
    assert sorted(measured) == sorted(expected)  # every counter once, on its owner
    for counter, e in expected.items():
        assert measured[counter] == pytest.approx(e, rel=0.01), counter
    total = sum(measured.values())
    assert total == pytest.approx(sum(expected.values()), rel=0.01)
    assert obj["energy_j"] == pytest.approx(sum(p["energy_j"] for p in obj["processes"]))


# -- without a process group ----------------------------------------------------------------------


def test_environment_ranks_on_amd_hosts_count_every_counter_once(tmp_path: Path) -> None:
    """torchrun-like job, no process group: 3 ranks on node-a seeing all its GPUs (the MI250X's
    dies land on ranks 0 and 1), 2 on node-b: one selects a GPU by UUID, one sees none."""
    from fakes.amd import FakeAmdSmi

    hip_uuid_b1 = FakeAmdSmi().hip_uuid(1)
    job = {"TORCHELASTIC_RUN_ID": "amd-job-1", "TORCHELASTIC_RESTART_COUNT": "0"}
    ranks = [
        {"host": "node-a", "env": {**job, "LOCAL_RANK": str(i), "LOCAL_WORLD_SIZE": "3"}}
        for i in range(3)
    ] + [
        {"host": "node-b", "env": {**job, "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                                   "ROCR_VISIBLE_DEVICES": hip_uuid_b1}},
        {"host": "node-b", "env": {**job, "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                   "HIP_VISIBLE_DEVICES": ""}},
    ]  # fmt: skip
    db, runs = _job(tmp_path, ranks, init=False)
    assert len({r["id"] for r in runs}) == 1
    obj = _show(db, runs[0]["id"])
    assert obj["world_size"] == 5 and obj["status"] == "finished"
    assert _gpu_devices(obj) == {0: ["gpu:amd-0"], 1: [], 2: ["gpu:amd-2"],
                                 3: ["gpu:amd-1"], 4: []}  # fmt: skip
    _check_energy(
        obj,
        runs,
        {"0/gpu:amd-0": (0, MI250X_A), "2/gpu:amd-2": (2, MI300X), "3/gpu:amd-1": (3, B1)},
    )
    procs = {p["rank"]: p for p in obj["processes"]}
    (package,) = [c for c in procs[0]["components"] if c["device"] == "gpu:amd-0"]
    assert "shares one package energy counter with gpu:amd-1" in package["note"]
    assert "whole package" in package["note"]
    assert procs[1]["note"] == "measured by rank 0: the node's CPU and memory, gpu:amd-1"
    assert procs[4]["note"] == "measured by rank 3: the node's CPU and memory"
    assert procs[2]["note"] == "measured by rank 0: the node's CPU and memory"
    warnings = [e["message"] for e in obj["events"] if e["level"] == "warning"]
    assert warnings.count(SHARED) == 1  # on the run, once, naming the dies and the rank


def _place(monkeypatch: pytest.MonkeyPatch, gpus: list[Any], **env: str) -> Any:
    from fakes.amd import FakeAmdSmi

    from greentrack.distributed import place

    FakeAmdSmi(gpus).install(monkeypatch)
    return place(env={"TORCHELASTIC_RUN_ID": "j", "WORLD_SIZE": "4", **env})


def test_environment_rank_seeing_only_the_later_die_leaves_it_to_the_first(
    monkeypatch: pytest.MonkeyPatch, no_nvml: Any
) -> None:
    """Slurm --gpus-per-task without a process group: each rank sees one die. The package is
    counted by the rank using its first die; the other rank says what it assumes."""
    from fakes.amd import FakeAmdGpu, mi250x

    gpus = [*mi250x(), FakeAmdGpu()]
    first = _place(monkeypatch, gpus, RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2",
                   ROCR_VISIBLE_DEVICES="0")  # fmt: skip
    assert first.gpus == ("gpu:amd-0",) and first.warnings == ()
    later = _place(monkeypatch, gpus, RANK="1", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2",
                   ROCR_VISIBLE_DEVICES="1")  # fmt: skip
    assert later.gpus == ()
    assert later.measured_by == (
        ("the node's CPU and memory", "rank 0"),
        ("gpu:amd-1", "the rank using gpu:amd-0"),
    )
    (warning,) = later.warnings
    assert "gpu:amd-0, gpu:amd-1 are dies of one AMD Instinct MI250X" in warning
    assert "counted once, by the rank of this job using gpu:amd-0" in warning
    assert "initialise torch.distributed" in warning
    alone = _place(monkeypatch, gpus, RANK="3", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                   HIP_VISIBLE_DEVICES="1")  # fmt: skip
    assert alone.gpus == ("gpu:amd-1",) and alone.warnings == ()  # alone on its node
    both = _place(monkeypatch, gpus, RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    assert both.gpus == ("gpu:amd-0", "gpu:amd-1", "gpu:amd-2")  # one meter pairs the dies
    two_per_rank = _place(monkeypatch, [*mi250x(), *mi250x(serial="S2", first_index=2)],
                          RANK="1", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2")  # fmt: skip
    assert two_per_rank.gpus == ("gpu:amd-2", "gpu:amd-3") and two_per_rank.warnings == ()


def test_a_rank_whose_amdsmi_fails_says_so(monkeypatch: pytest.MonkeyPatch, no_nvml: Any) -> None:
    from fakes.amd import FakeAmdSmi

    from greentrack.distributed import place

    FakeAmdSmi(init_error=10).install(monkeypatch)
    p = place(env={"TORCHELASTIC_RUN_ID": "j", "WORLD_SIZE": "2", "RANK": "1",
                   "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})  # fmt: skip
    assert p.gpus == ()
    (warning,) = p.warnings
    assert "AMD GPUs not measured on this rank" in warning and "usermod -aG render" in warning


def test_environment_rank_on_a_mig_slice_keeps_the_mig_note(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of a torchrun job (the real tracker, in this process) sees one MIG slice: it
    measures the parent GPU and the stored component says it is a MIG slice's whole GPU."""
    from fakes.nvml import FakeGpu, FakeNvml

    import greentrack as gt

    fake = FakeNvml([FakeGpu(power_w=MIG_GPU, mig_uuids=[MIG_A, MIG_B])]).install(monkeypatch)
    for var, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1"),
                       ("LOCAL_WORLD_SIZE", "2"), ("CUDA_VISIBLE_DEVICES", MIG_B)):  # fmt: skip
        monkeypatch.setenv(var, value)
    with fake, gt.track("mig", db=sqlite_url, run_id="a" * 32, interval_s=0.05) as run:
        time.sleep(0.2)
    assert run._placement.gpus == (MIG_B,)
    obj = _show(sqlite_url, "a" * 32)
    (gpu,) = obj["processes"][0]["components"]
    assert gpu["device"] == "gpu:0" and gpu["note"].startswith("MIG slice of GPU 0")
    assert MIG_B in gpu["note"]
    t0, t1 = fake.fake_time_at(run.t0_mono), fake.fake_time_at(run.t1_mono)
    assert gpu["energy_j"] == pytest.approx(fake.expected_energy_j(0, t0, t1), rel=0.01)


# -- a real gloo process group --------------------------------------------------------------------


def test_gloo_ranks_with_one_die_or_slice_each_count_every_counter_once(tmp_path: Path) -> None:
    """3 ranks, a gloo process group: on node-a rank 0 sees die gpu:amd-1 (by UUID) and rank 1
    die gpu:amd-0 (by index) of one MI250X; on node-n rank 2 sees one MIG slice. The lowest rank
    using a counter counts it; the other says who does; the MIG slice keeps its note."""
    pytest.importorskip("torch")
    from fakes.amd import FakeAmdSmi

    die1 = FakeAmdSmi().hip_uuid(1)
    ranks = [
        {"host": "node-a", "env": {"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                                   "ROCR_VISIBLE_DEVICES": die1}},
        {"host": "node-a", "env": {"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                   "ROCR_VISIBLE_DEVICES": "0"}},
        {"host": "node-n", "env": {"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                                   "CUDA_VISIBLE_DEVICES": MIG_A}},
    ]  # fmt: skip
    db, runs = _job(tmp_path, ranks, init=True)
    assert len({r["id"] for r in runs}) == 1
    obj = _show(db, runs[0]["id"])
    assert obj["world_size"] == 3 and obj["status"] == "finished"
    assert _gpu_devices(obj) == {0: ["gpu:amd-1"], 1: [], 2: ["gpu:0"]}
    _check_energy(obj, runs, {"0/gpu:amd-1": (0, MI250X_A), "2/gpu:0": (2, MIG_GPU)})
    procs = {p["rank"]: p for p in obj["processes"]}
    (die,) = [c for c in procs[0]["components"] if c["component"] == "gpu"]
    assert "shares one package energy counter with gpu:amd-0" in die["note"]
    (mig,) = [c for c in procs[2]["components"] if c["component"] == "gpu"]
    assert mig["note"].startswith("MIG slice of GPU 0") and MIG_A in mig["note"]
    assert procs[1]["note"] == "measured by rank 0: the node's CPU and memory, gpu:amd-0"
    warnings = [e["message"] for e in obj["events"] if e["level"] == "warning"]
    assert warnings.count(SHARED) == 1


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    _worker(json.loads(sys.argv[2]))
