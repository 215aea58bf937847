"""Distributed training tracked as one run: DDP over gloo, ``gt.track`` on every rank.

    python examples/distributed_ddp.py                       # starts 2 ranks on this machine
    torchrun --nproc-per-node 2 examples/distributed_ddp.py  # or let torchrun start them
    greentrack show latest                                   # every rank, and one total

Every rank calls ``gt.track`` with the same arguments, inside its process group: all of them
attach to one run (rank 0 picks the id and owns the run's status). Each rank measures its own
GPU(s); one process per node measures the node's CPU and memory, so nothing is counted twice.
On this CPU-only example, rank 0 holds the CPU and RAM estimates and rank 1 measures nothing of
its own; on a GPU node each rank would add its GPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile

import greentrack as gt


def train(rank: int, world: int, init: str | None, epochs: int) -> str:
    """One rank: a small MLP trained with DDP; returns the run id."""
    import torch
    import torch.distributed as dist
    from torch import nn

    torch.set_num_threads(1)
    if init is None:
        dist.init_process_group("gloo")  # torchrun's environment
    else:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(
        nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(rank)  # each rank its own shard
    x = torch.randn(512, 32, generator=g)  # (512, 32)
    y = (x[:, :4]).argmax(dim=1)  # (512,)
    with gt.track("ddp-mlp", project="distributed", params={"world": world}) as run:
        for epoch in range(epochs):
            with run.phase("epoch"):
                for i in range(0, len(x), 64):
                    loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
                    opt.zero_grad()
                    loss.backward()  # gradients all-reduced across ranks
                    opt.step()
            run.progress(epoch + 1, epochs)
            if dist.get_rank() == 0:
                run.log(step=epoch, loss=loss.item())
    dist.barrier()
    dist.destroy_process_group()
    return run.id


def _spawned(rank: int, world: int, init: str, epochs: int, q: mp.SimpleQueue) -> None:
    q.put(train(rank, world, init, epochs))


def report(run_id: str) -> str:
    """The run as the store has it: each rank, each node, one total."""
    from greentrack.config import load_config
    from greentrack.store import queries

    conn = queries.open_store(load_config().db_url)
    try:
        obj = queries.get_run(conn, run_id)
    finally:
        conn.close()
    lines = [f"run {obj['id'][:8]}: {obj['status']}, world size {obj['world_size']}, "
             f"{len(obj['processes'])} processes measured"]  # fmt: skip
    nodes: dict[str, float] = {}
    for p in obj["processes"]:
        devices = ", ".join(f"{c['device']} {c['energy_j']:.1f} J" for c in p["components"])
        lines.append(f"  rank {p['rank']} on {p['host']}: {p['energy_j']:.1f} J ({devices})")
        nodes[p["host"]] = nodes.get(p["host"], 0.0) + p["energy_j"]
    for host, energy_j in nodes.items():
        lines.append(f"  node {host}: {energy_j:.1f} J")
    lines.append(f"  total {obj['energy_j']:.1f} J = {obj['energy_kwh']:.6f} kWh")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--world", type=int, default=2, help="ranks to start (without torchrun)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if "TORCHELASTIC_RUN_ID" in os.environ:  # started by torchrun: this process is one rank
        run_id = train(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), None, args.epochs)
        if os.environ["RANK"] == "0":
            print(report(run_id))
        return
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        init = f"file://{tmp}/rendezvous"
        procs = [ctx.Process(target=_spawned, args=(r, args.world, init, args.epochs, q))
                 for r in range(args.world)]  # fmt: skip
        for p in procs:
            p.start()
        ids = {q.get() for _ in procs}
        for p in procs:
            p.join()
    assert len(ids) == 1, f"the ranks did not share one run: {ids}"
    print(report(ids.pop()))


if __name__ == "__main__":
    main()
