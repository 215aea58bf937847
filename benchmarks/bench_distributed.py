"""Overhead of tracking a distributed training loop: 2 processes, gloo, DDP, the same loop
untracked and tracked (``gt.track`` on every rank, one run for the job).

    python benchmarks/bench_distributed.py                # 2 ranks, 300 steps, 5 trials
    python benchmarks/bench_distributed.py --steps 1000 --trials 7 --db postgresql+psycopg://...

Both ranks run every configuration in the same process group, alternating, after a warm-up;
a configuration's time is the slowest rank's wall time for the loop (the job waits for it); the
figures are the median and the best over trials, with the overhead against ``untracked``.
Configurations: ``untracked``; ``tracked`` (defaults: sampling every 1 s, a checkpoint every
10 s, a phase per epoch of 100 steps); ``tracked-fast`` (sampling every 0.05 s, a checkpoint
every 0.5 s, a phase per step: far more than anyone needs). Meters are what the host has (here:
no GPU, no RAPL, so the CPU/RAM estimates); the store is a temporary SQLite file unless ``--db``
is given. ``OMP_NUM_THREADS=1`` per rank.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

CONFIGS = {
    "untracked": None,
    "tracked": {"interval_s": 1.0, "checkpoint_s": 10.0, "phase": "epoch"},
    "tracked-fast": {"interval_s": 0.05, "checkpoint_s": 0.5, "phase": "step"},
}


def _rank(rank: int, world: int, init: str, db: str, steps: int, trials: int, q) -> None:
    import torch
    import torch.distributed as dist

    import greentrack as gt

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(rank)
    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()  # gloo all-reduce
        opt.step()

    def loop(cfg: dict | None) -> float:
        dist.barrier()
        t0 = time.perf_counter()
        if cfg is None:
            for _ in range(steps):
                step()
        else:
            with gt.track("bench", project="bench-dist", db=db, interval_s=cfg["interval_s"],
                          checkpoint_s=cfg["checkpoint_s"]) as run:  # fmt: skip
                if cfg["phase"] == "epoch":
                    for epoch in range(steps // 100):
                        with run.phase("epoch"):
                            for _ in range(100):
                                step()
                        run.progress(epoch + 1, steps // 100)
                else:
                    for i in range(steps):
                        with run.phase("step"):
                            step()
                        run.progress(i + 1, steps)
        dist.barrier()
        return time.perf_counter() - t0

    for _ in range(30):  # warm-up: DDP buckets, allocator, gloo
        step()
    loop(CONFIGS["tracked"])  # warm-up of greentrack too (imports, schema)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(trials):
        for name, cfg in CONFIGS.items():
            times[name].append(loop(cfg))
    q.put((rank, times))
    dist.destroy_process_group()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300, help="a multiple of 100")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="gt-bench-dist-") as tmp:
        os.environ["GREENTRACK_HOME"] = os.path.join(tmp, "home")
        db = args.db or f"sqlite:///{tmp}/bench.db"
        ctx = mp.get_context("spawn")
        q = ctx.SimpleQueue()
        init = f"file://{tmp}/rdzv"
        procs = []
        for r in range(args.world):
            rank_args = (r, args.world, init, db, args.steps, args.trials, q)
            procs.append(ctx.Process(target=_rank, args=rank_args))
        for p in procs:
            p.start()
        results = dict(q.get() for _ in procs)
        for p in procs:
            p.join()
    print(f"# {args.world} ranks (gloo, DDP, CPU), {args.steps} steps, median of {args.trials}; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    base = None
    for name in CONFIGS:
        per_trial = [max(results[r][name][t] for r in results) for t in range(args.trials)]
        med, best = statistics.median(per_trial), min(per_trial)
        base = base or (med, best)
        print(f"{name:<13} median {med:7.3f} s ({med / args.steps * 1e3:6.3f} ms/step, "
              f"{100 * (med / base[0] - 1):+6.2f} %)  best {best:7.3f} s "
              f"({100 * (best / base[1] - 1):+6.2f} %)  trials: "
              f"{', '.join(f'{t:.3f}' for t in per_trial)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
