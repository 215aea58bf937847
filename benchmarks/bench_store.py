"""`greentrack runs` and `greentrack show` on a big store: 10,000 runs and 10 million samples.

    python benchmarks/bench_store.py              # SQLite (builds the store once, ~1-2 min)
    python benchmarks/bench_store.py --postgres postgresql+psycopg://postgres@127.0.0.1/test

The store is filled through the same schema (Alembic head) with bulk inserts, then the CLI is
timed as a user runs it: a fresh process each time, median of 5 (process start included).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from greentrack.store.dbapi import connect
from greentrack.store.schema import upgrade

N_RUNS = 10_000
N_SAMPLES = 10_000_000


def fill(url: str, n_runs: int, n_samples: int) -> list[str]:
    upgrade(url)
    conn = connect(url)
    rng = random.Random(0)
    t0 = datetime(2026, 1, 1)
    ids = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(n_runs)]
    per_run = n_samples // n_runs
    with conn.transaction():
        conn.executemany(
            "INSERT INTO runs (id, project, name, status, started_at, ended_at, duration_s, "
            "energy_j, pue, world_size, checkpoint_s, checkpoint_seq) VALUES (:id, :project, "
            ":name, 'finished', :s, :e, :d, :j, 1.0, 1, 10.0, 1)",
            [
                {
                    "id": rid,
                    "project": f"p{i % 20}",
                    "name": f"run{i}",
                    "s": t0 + timedelta(minutes=i),
                    "e": t0 + timedelta(minutes=i, seconds=per_run),
                    "d": float(per_run),
                    "j": 1000.0 * per_run,
                }
                for i, rid in enumerate(ids)
            ],
        )
        conn.executemany(
            "INSERT INTO components (run_id, rank, host, component, device, energy_j, method, "
            "seq) VALUES (:r, 0, 'h', 'gpu', 'gpu:0', :j, 'counter', 1)",
            [{"r": rid, "j": 1000.0 * per_run} for rid in ids],
        )
    batch: list[dict] = []
    for i, rid in enumerate(ids):
        base = (t0 + timedelta(minutes=i)).timestamp()
        batch.extend(
            {"r": rid, "t": base + k, "e": 1000.0 * k, "p": 1000.0} for k in range(per_run)
        )
        if len(batch) >= 200_000 or i == len(ids) - 1:
            with conn.transaction():
                conn.executemany(
                    "INSERT INTO samples (run_id, rank, device, component, t_s, energy_j, power_w)"
                    " VALUES (:r, 0, 'gpu:0', 'gpu', :t, :e, :p)",
                    batch,
                )
            batch = []
    conn.close()
    return ids


def timed(args: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "greentrack", *args], env=env, check=True, capture_output=True
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--postgres", help="also (or only) a PostgreSQL URL (its tables are dropped)")
    ap.add_argument("--samples", type=int, default=N_SAMPLES)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{Path(tmp) / 'big.db'}"]
        if args.postgres:
            urls.append(args.postgres)
        for url in urls:
            t = time.perf_counter()
            ids = fill(url, N_RUNS, args.samples)
            fill_s = time.perf_counter() - t
            env = dict(os.environ, GREENTRACK_HOME=tmp, GREENTRACK_DB=url)
            runs_s = timed(["runs"], env)
            json_s = timed(["runs", "--format", "json", "--project", "p3"], env)
            show_s = timed(["show", ids[1234][:8]], env)
            kind = url.split(":", 1)[0]
            print(f"{kind}: {N_RUNS} runs, {args.samples} samples (filled in {fill_s:.0f} s)")
            print(f"  greentrack runs                          {runs_s * 1e3:6.0f} ms")
            print(f"  greentrack runs --format json --project  {json_s * 1e3:6.0f} ms")
            print(f"  greentrack show RUN                      {show_s * 1e3:6.0f} ms")


if __name__ == "__main__":
    main()
