"""Many processes, one run: rank/world detection, shared run ids, who measures what, and a real
gloo job (3 processes, 2 simulated nodes, simulated GPUs) writing one run into PostgreSQL.

The job's workers are this file run as a script (``python test_distributed.py worker ...``), so
the processes are real, with real ``torch.distributed`` (gloo over a ``file://`` rendezvous).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greentrack import distributed
from greentrack.distributed import env_layout, env_run_id, place, propose_gpus

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# -- layout from the environment ------------------------------------------------------------------


def test_layout_from_torchrun_slurm_and_mpi_environments() -> None:
    torchrun = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert env_layout(torchrun) == distributed.Layout(5, 8, 1, 4, "torchrun")
    slurm = {"SLURM_PROCID": "4", "SLURM_NTASKS": "7", "SLURM_LOCALID": "1",
             "SLURM_NODEID": "2", "SLURM_TASKS_PER_NODE": "2(x2),3"}  # fmt: skip
    assert env_layout(slurm) == distributed.Layout(4, 7, 1, 3, "slurm")
    slurm["SLURM_NTASKS_PER_NODE"] = "2"
    assert env_layout(slurm).local_world_size == 2
    mpi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
           "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}  # fmt: skip
    assert env_layout(mpi) == distributed.Layout(3, 4, 1, 2, "mpi")
    assert env_layout({}) is None
    assert env_layout({"RANK": "x", "WORLD_SIZE": "2"}) is None  # garbage is not a layout
    # torchrun under Slurm: torchrun's variables describe the process
    assert env_layout({**slurm, **torchrun}).source == "torchrun"


def test_job_run_ids_are_deterministic_per_job_restart_and_sequence() -> None:
    job = {"TORCHELASTIC_RUN_ID": "abc", "TORCHELASTIC_RESTART_COUNT": "0"}
    first = env_run_id(job, 0)
    assert first == env_run_id(dict(job), 0) and len(first) == 32
    assert env_run_id(job, 1) != first  # the next run of the same processes
    assert env_run_id({**job, "TORCHELASTIC_RESTART_COUNT": "1"}, 0) != first  # a restart
    slurm = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}
    assert env_run_id(slurm) != env_run_id({**slurm, "SLURM_STEP_ID": "1"})
    assert env_run_id({"TORCHELASTIC_RUN_ID": "none", **slurm}) == env_run_id(slurm)
    assert env_run_id({}) is None


@pytest.mark.parametrize(
    ("n_gpus", "local_rank", "local_world", "expected"),
    [
        (4, 1, 4, ["g1"]),  # one GPU per rank: its LOCAL_RANK device
        (8, 1, 2, ["g4", "g5", "g6", "g7"]),  # several GPUs per rank: a contiguous block
        (2, 3, 4, []),  # more ranks than GPUs: GPU j is measured by local rank j only
        (2, 1, 4, ["g1"]),
        (1, 3, 4, ["g0"]),  # a process that sees one GPU (Slurm --gpus-per-task) measures it
        (3, 0, None, ["g0", "g1", "g2"]),  # layout unknown: all it sees (deduplicated later)
        (0, 0, 2, []),
    ],
)
def test_gpu_proposals(n_gpus, local_rank, local_world, expected) -> None:
    visible = [f"g{i}" for i in range(n_gpus)]
    assert propose_gpus(visible, local_rank, local_world) == expected


def test_a_plain_program_is_a_single_process(monkeypatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(var, raising=False)
    p = place("given")
    assert (p.rank, p.world_size, p.run_id, p.measure_host, p.gpus, p.owner) == (
        0, 1, "given", True, None, True,
    )  # fmt: skip
    monkeypatch.setenv("SLURM_PROCID", "0")  # sbatch of a single task: still a plain run
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert place().run_id is None


def test_environment_only_ranks_share_a_job_id_and_split_the_node(fake_nvml, monkeypatch) -> None:
    """torchrun-like environment, no process group: rank 1 of 2 on a 2-GPU node."""
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "TORCHELASTIC_RUN_ID": "job-7"}  # fmt: skip
    p = place(env=env)
    assert (p.rank, p.world_size, p.source, p.shared, p.owner) == (1, 2, "torchrun", True, False)
    assert not p.measure_host  # local rank 0 measures the node's CPU and memory
    assert p.gpus == (fake_nvml.gpus[1].uuid,)
    assert p.run_id in {env_run_id(env, n) for n in range(1000)}  # derived from the job id
    rank0 = place(env={**env, "RANK": "0", "LOCAL_RANK": "0"})
    assert rank0.measure_host and rank0.gpus == (fake_nvml.gpus[0].uuid,)
    # no job id and no process group: the ranks cannot agree, each is its own run (and says so)
    lone = place(env={k: v for k, v in env.items() if k != "TORCHELASTIC_RUN_ID"})
    assert lone.run_id is None and not lone.shared and lone.owner
    assert "GREENTRACK_RUN_ID" in lone.warnings[0]


def test_environment_ranks_track_one_run_with_the_real_tracker(
    sqlite_url, fake_nvml, monkeypatch
) -> None:
    """Two ranks of one torchrun job (no process group), tracked in turn in this process."""
    import greentrack as gt
    from greentrack.store import queries

    summaries = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with fake_nvml:
        for rank in (1, 0):
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("LOCAL_RANK", str(rank))
            with gt.track("env-ranks", db=sqlite_url, run_id="f" * 32, interval_s=0.05) as run:
                time.sleep(0.2)
            summaries.append(run.summary())
    conn = queries.open_store(sqlite_url)
    obj = queries.get_run(conn, "f" * 32)
    conn.close()
    assert obj["status"] == "finished" and obj["world_size"] == 2
    by_rank = {p["rank"]: p for p in obj["processes"]}
    assert {c["device"] for c in by_rank[0]["components"]} == {"cpu:estimate", "ram:estimate",
                                                                "gpu:0"}  # fmt: skip
    assert {c["device"] for c in by_rank[1]["components"]} == {"gpu:1"}
    assert obj["energy_j"] == pytest.approx(sum(s.energy_j for s in summaries), rel=1e-9)


# -- a real gloo job -------------------------------------------------------------------------------

HOSTS = ["node-a", "node-a", "node-b"]  # 3 ranks on 2 simulated nodes
GPU_W = [100.0, 200.0]  # every simulated node has two GPUs


def _worker(rank: int, world: int, init: str, url: str, out: str) -> None:
    """One rank: DDP training in tracked runs, then the corner cases. Writes out/<rank>.json."""
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(TESTS))
    from fakes.nvml import FakeGpu, FakeNvml

    import greentrack as gt
    from greentrack import hardware as gt_hardware

    torch.set_num_threads(1)
    host = HOSTS[rank]
    gt_hardware.hostname = lambda: host  # two nodes on one machine
    local = [r for r, h in enumerate(HOSTS) if h == host]
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local.index(rank)),
                      LOCAL_WORLD_SIZE=str(len(local)))  # fmt: skip
    mp = pytest.MonkeyPatch()
    FakeNvml([FakeGpu(power_w=w) for w in GPU_W]).install(mp).start()
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 4)  # data parallel by hand: DDP's first use costs seconds
    result: dict = {}

    def train(run: gt.Run, steps: int) -> None:
        with run.phase("epoch"):
            for step in range(steps):
                x = torch.randn(32, 16)
                loss = model(x).pow(2).mean()
                model.zero_grad()
                loss.backward()
                with torch.no_grad():  # SGD by hand: torch.optim's first use costs seconds too
                    for p in model.parameters():
                        dist.all_reduce(p.grad)  # gloo all-reduce of the gradients
                        p -= 0.1 * p.grad / world
                time.sleep(0.02)
                run.progress(step + 1, steps)
        if rank == 0:
            run.log(step=steps, loss=loss.item())

    def summary(run: gt.Run) -> dict:
        s = run.summary().to_dict()
        s["kept"] = {d: len(series.t_s) for d, series in run._sampler.series.items()}
        return s

    for key in ("a", "b"):  # two runs in a row: all ranks attach to each, with distinct ids
        with gt.track("ddp", project="dist", db=url, interval_s=0.05, checkpoint_s=0.2) as run:
            train(run, 20)
        result[key] = summary(run)
        dist.barrier()
    if rank == 1:  # rank 1 alone tracks: it gives up waiting for rank 0 and records its own run
        os.environ["GREENTRACK_DIST_TIMEOUT_S"] = "0.5"
        with gt.track("rank1-only", project="dist", db=url, interval_s=0.05) as run:
            time.sleep(0.1)
        result["d"] = summary(run)
    dist.barrier()
    if rank == 0:  # rank 0 alone tracks: it must not wait for the others
        t = time.perf_counter()
        with gt.track("rank0-only", project="dist", db=url, interval_s=0.05) as run:
            time.sleep(0.1)
        result["c"] = summary(run) | {"wall_s": time.perf_counter() - t}
    dist.barrier()
    dist.destroy_process_group()
    Path(out, f"{rank}.json").write_text(json.dumps(result, default=str))


@pytest.fixture(scope="module")
def gloo_job(tmp_path_factory, pg_available) -> tuple[str, list[dict]]:
    """Run the 3-process gloo job once against a fresh PostgreSQL schema."""
    import uuid

    import psycopg
    from conftest import PG_BASE

    tmp = tmp_path_factory.mktemp("gloo")
    schema = "gt_" + uuid.uuid4().hex[:12]
    admin = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    from greentrack.store.schema import upgrade

    upgrade(url)  # once, before the ranks start (their first checkpoint then only checks it)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREENTRACK_", "RANK"))}
    env["GREENTRACK_HOME"] = str(tmp / "home")
    env["GREENTRACK_SYSFS"] = str(tmp / "no-sysfs")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS)])
    env["OMP_NUM_THREADS"] = "1"
    (tmp / "no-sysfs").mkdir()
    world = len(HOSTS)
    argv = [sys.executable, __file__, "worker", "", str(world), str(tmp / "rdzv"), url, str(tmp)]
    procs = []
    for r in range(world):
        argv[3] = str(r)
        procs.append(
            subprocess.Popen(
                list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    try:
        for r, p in enumerate(procs):
            assert p.returncode == 0, f"rank {r} failed:\n{outputs[r]}"
        yield url, [json.loads((tmp / f"{r}.json").read_text()) for r in range(world)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _stored(url: str, run_id: str) -> tuple[dict, dict]:
    from greentrack.store import queries

    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id), queries.run_samples(conn, run_id)
    finally:
        conn.close()


@pytest.mark.postgres
def test_gloo_job_is_one_run_with_per_rank_and_per_node_breakdowns(gloo_job) -> None:
    url, results = gloo_job
    runs = [r["a"] for r in results]
    assert len({s["id"] for s in runs}) == 1  # rank 0's id, shared through the process group
    obj, samples = _stored(url, runs[0]["id"])
    assert obj["status"] == "finished" and obj["world_size"] == 3
    assert obj["host"] == "node-a" and obj["duration_s"] == pytest.approx(runs[0]["duration_s"])
    procs = {p["rank"]: p for p in obj["processes"]}
    assert [(r, procs[r]["host"]) for r in sorted(procs)] == list(enumerate(HOSTS))
    devices = {r: sorted(c["device"] for c in p["components"]) for r, p in procs.items()}
    # one process per node measures the node's CPU and memory; each GPU is measured once
    assert devices == {
        0: ["cpu:estimate", "gpu:0", "ram:estimate"],
        1: ["gpu:1"],
        2: ["cpu:estimate", "gpu:0", "gpu:1", "ram:estimate"],
    }
    for r, s in enumerate(runs):  # what each rank measured is what the store holds for it
        assert procs[r]["energy_j"] == pytest.approx(s["energy_j"], rel=1e-9)
        gpus = {c["device"]: c["energy_j"] for c in s["components"] if c["component"] == "gpu"}
        for dev, e in gpus.items():  # simulated constant power x the rank's window
            assert e == pytest.approx(GPU_W[int(dev[-1])] * s["duration_s"], rel=0.05)
        kept = sum(s["kept"].values())
        assert int((samples["rank"] == r).sum()) == kept  # no sample lost or doubled
    total = sum(s["energy_j"] for s in runs)
    assert obj["energy_j"] == pytest.approx(total, rel=1e-9)  # one total, no double counting
    assert obj["energy_j"] == pytest.approx(sum(p["energy_j"] for p in obj["processes"]))
    by_node: dict[str, float] = {}
    for r, s in enumerate(runs):  # what each rank measured, summed per simulated node
        by_node[HOSTS[r]] = by_node.get(HOSTS[r], 0.0) + s["energy_j"]
    assert [(n["host"], n["ranks"]) for n in obj["nodes"]] == [("node-a", [0, 1]), ("node-b", [2])]
    for n in obj["nodes"]:
        assert n["energy_j"] == pytest.approx(by_node[n["host"]], rel=1e-9)
    from greentrack.cli.runs import render_run

    shown = render_run(obj)
    assert "per node:" in shown and "ranks 0,1" in shown and "node-b" in shown
    assert obj["metrics"] == {"loss": pytest.approx(results[0]["a"]["metrics"]["loss"])}
    assert obj["forecast"]["fraction"] == 1.0
    epoch = [p for p in obj["phases"] if p["name"] == "epoch"]
    assert len(epoch) == 3  # one per rank


@pytest.mark.postgres
def test_gloo_job_sequential_runs_and_lonely_ranks(gloo_job) -> None:
    url, results = gloo_job
    a, b = results[0]["a"]["id"], results[0]["b"]["id"]
    assert a != b and {r["b"]["id"] for r in results} == {b}
    obj, _ = _stored(url, b)
    assert obj["status"] == "finished" and len(obj["processes"]) == 3
    c = results[0]["c"]  # rank 0 tracked alone: no waiting, its own share of the job
    assert c["wall_s"] < 5 and c["id"] not in (a, b)
    obj, _ = _stored(url, c["id"])
    assert obj["status"] == "finished" and [p["rank"] for p in obj["processes"]] == [0]
    d = results[1]["d"]  # rank 1 alone: waited 0.5 s for rank 0, then recorded its own run
    assert any("did not start tracking" in w for w in d["warnings"])
    obj, _ = _stored(url, d["id"])
    assert obj["status"] == "finished"  # it owns its run, so the run ends properly
    assert [p["rank"] for p in obj["processes"]] == [1]


def test_ddp_example_is_one_run(gt_home: Path) -> None:
    """examples/distributed_ddp.py as a user runs it: 2 spawned ranks, DDP, one stored run."""
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "distributed_ddp.py"), "--epochs", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished, world size 2" in done.stdout and "rank 0 on" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "greentrack", "show", "latest", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    obj = json.loads(shown.stdout)
    assert obj["world_size"] == 2 and obj["status"] == "finished"
    assert obj["params"] == {"world": "2"} and obj["forecast"]["fraction"] == 1.0
    assert obj["energy_j"] == pytest.approx(sum(p["energy_j"] for p in obj["processes"]))
    assert len({p["host"] for p in obj["processes"]}) == 1  # one node: its CPU measured once
    assert (
        sum(c["device"] == "cpu:estimate" for p in obj["processes"] for c in p["components"]) == 1
    )


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    _worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
