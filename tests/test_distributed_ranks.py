"""Every rank that joined a distributed run is listed, and a warning every rank records is
stored once (issue 12.14).

A rank that measures nothing (its node's CPU and memory measured by a lower rank, no GPU of its
own) writes no component row; it records joining as an event of source ``rank`` with a
deterministic id, and ``processes`` (show JSON, table, report) lists it with 0 J and who measured
its devices. Warnings get deterministic ids of (run, source, message, occurrence), so N ranks
writing the same warning store one row.

Two levels: the real tracker in this process under a torchrun-like environment (ranks tracked in
turn), and a real 3-process gloo job (this file run as a script, as in test_distributed.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_helpers import show_run

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
WARNING = "the same warning on every rank"


def _events(url: str, run_id: str) -> list[dict]:
    from greentrack.store import queries

    conn = queries.open_store(url)
    try:
        return conn.query(
            "SELECT rank, source, level, message FROM events WHERE run_id = :id ORDER BY rank",
            {"id": run_id},
        )
    finally:
        conn.close()


def _check_run(url: str, run_id: str, host: str, world: int) -> None:
    """Every rank listed; ranks > 0 at 0 J measured by rank 0; the shared warning stored once."""
    obj, table = show_run(url, run_id)
    procs = {p["rank"]: p for p in obj["processes"]}
    assert sorted(procs) == list(range(world))
    assert {c["device"] for c in procs[0]["components"]} == {"cpu:estimate", "ram:estimate"}
    assert procs[0]["note"] is None and procs[0]["energy_j"] > 0
    for r in range(1, world):
        assert procs[r]["host"] == host and procs[r]["components"] == []
        assert procs[r]["energy_j"] == 0.0
        assert procs[r]["note"] == "measured by rank 0: the node's CPU and memory"
    assert obj["nodes"] == [
        {"host": host, "ranks": list(range(world)), "energy_j": pytest.approx(obj["energy_j"]),
         "node_energy_j": None}
    ]
    assert f"ranks ({world} of {world} joined)" in table
    assert f"rank {world - 1}@{host}" in table and "measured by rank 0" in table
    events = _events(url, run_id)
    assert [e["message"] for e in events].count(WARNING) == 1  # N ranks, one row
    warned = [(e["source"], e["message"]) for e in events if e["level"] == "warning"]
    assert len(warned) == len(set(warned))  # so is every warning all ranks record alike
    joined = [e for e in events if e["source"] == "rank"]
    assert sorted(e["rank"] for e in joined) == list(range(world))
    # the price tag lists every rank too
    from greentrack.report.pricetag import make_report

    md = make_report([run_id], db_url=url, fmt="markdown").text
    for r in range(1, world):
        assert f"rank {r}@{host}: 0 J itself; measured by rank 0: the node's CPU and memory" in md
    assert md.count(WARNING) == 1


def test_environment_ranks_that_measure_nothing_are_listed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 ranks of a torchrun job on one CPU-only node (no process group): ranks 1 and 2
    measure nothing, rank 0 measures the node."""
    import greentrack as gt
    from greentrack import hardware

    monkeypatch.setattr(hardware, "hostname", lambda: "node-z")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    run_id = "e" * 32
    for rank in (2, 1, 0):  # the owner last: the others must not depend on it
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        with gt.track("env-ranks", db=sqlite_url, run_id=run_id, interval_s=0.05) as run:
            run.warn(WARNING)
            time.sleep(0.1)
        assert WARNING in run.summary().warnings  # each rank still sees it
    _check_run(sqlite_url, run_id, "node-z", 3)


def test_event_ids_are_deterministic_and_keep_repetitions() -> None:
    from greentrack.distributed import event_id

    a = event_id("r" * 32, "nvml", "counter frozen")
    assert a == event_id("r" * 32, "nvml", "counter frozen")  # another rank, same id
    assert len(a) == 32 and int(a, 16) >= 0
    assert a != event_id("r" * 32, "nvml", "counter frozen", 1)  # the second time is kept
    assert a != event_id("s" * 32, "nvml", "counter frozen")
    assert a != event_id("r" * 32, "rapl", "counter frozen")


# -- a real gloo job -------------------------------------------------------------------------------

HOST = "node-q"
WORLD = 3


def _worker(rank: int, init: str, url: str, out: str) -> None:
    """One CPU-only rank on a simulated node shared by all three: track, warn, write out."""
    import torch.distributed as dist

    import greentrack as gt
    from greentrack import hardware as gt_hardware

    gt_hardware.hostname = lambda: HOST
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(WORLD))  # fmt: skip
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=WORLD)
    with gt.track("ranks", project="dist", db=url, interval_s=0.05, checkpoint_s=0.2) as run:
        run.warn(WARNING)
        time.sleep(0.3)
        dist.barrier()
    Path(out, f"{rank}.json").write_text(json.dumps(run.summary().to_dict(), default=str))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.postgres
def test_gloo_ranks_that_measure_nothing_are_listed(tmp_path: Path, pg_url: str) -> None:
    pytest.importorskip("torch")
    from greentrack.store.schema import upgrade

    upgrade(pg_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GREENTRACK_", "RANK"))}
    env.update(
        GREENTRACK_HOME=str(tmp_path / "home"),
        GREENTRACK_SYSFS=str(tmp_path / "none"),
        PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]),
        OMP_NUM_THREADS="1",
    )
    (tmp_path / "none").mkdir()
    argv = [sys.executable, __file__, "worker", "", str(tmp_path / "rdzv"), pg_url, str(tmp_path)]
    procs = []
    for r in range(WORLD):
        argv[3] = str(r)
        procs.append(
            subprocess.Popen(
                list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r} failed:\n{outputs[r]}"
    ids = {json.loads((tmp_path / f"{r}.json").read_text())["id"] for r in range(WORLD)}
    assert len(ids) == 1
    _check_run(pg_url, ids.pop(), HOST, WORLD)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    _worker(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
