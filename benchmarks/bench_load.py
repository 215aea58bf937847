"""Load: many processes track runs into one store at the same time; nothing may be lost.

    python benchmarks/bench_load.py                          # 32 processes x 60 s, both backends
    python benchmarks/bench_load.py --backend sqlite --processes 8 --seconds 5
    python benchmarks/bench_load.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Each process runs the real tracker (``gt.track``) over and over — runs of ``--run-s`` seconds with a
phase and a metric — on a :class:`~greentrack.meters.ReplayMeter` of ``--devices`` devices sampled
every ``--interval`` s and checkpointed every ``--checkpoint`` s, so the store takes a steady
stream of run rows, components, samples, phases and metrics from all processes at once.

Afterwards every run is checked against what its process measured: its samples are counted in the
store (the sampler's kept points, exactly), its energy compared, its status must be ``finished``,
and no warning may say ``database is locked``, ``unreachable`` or ``spooled``. It prints the
samples per second the store absorbed (stored samples / wall time of the load) and checkpoints
(transactions) per second. PostgreSQL runs in a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BAD_WORDS = ("database is locked", "unreachable", "unusable", "spooled", "cannot write the spool")


@dataclass
class LoadResult:
    """What one load test found. Rates in per second of wall time."""

    backend: str
    processes: int
    seconds: float
    mode: str = "tracker"
    wall_s: float = 0.0
    window_s: float = 0.0  # first to last stored sample
    runs: int = 0
    checkpoints: int = 0
    samples_kept: int = 0
    samples_stored: int = 0
    lost_samples: int = 0
    runs_not_finished: int = 0
    energy_mismatches: int = 0
    problems: list[str] = field(default_factory=list)
    worker_failures: list[str] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        """Stored samples per second of the load window (first to last sample)."""
        return self.samples_stored / self.window_s if self.window_s else 0.0

    @property
    def checkpoints_per_s(self) -> float:
        return self.checkpoints / self.window_s if self.window_s else 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost_samples or self.runs_not_finished or self.energy_mismatches
                    or self.problems or self.worker_failures or self.runs == 0)  # fmt: skip


# -- one process ----------------------------------------------------------------------------------
def worker(url: str, seconds: float, devices: int, interval_s: float, checkpoint_s: float,
           run_s: float, out: str) -> None:  # fmt: skip
    """Track runs back to back for ``seconds``; write one JSON line per run to ``out``."""
    import greentrack as gt
    from greentrack.meters import ReplayMeter

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logging.getLogger("greentrack").addHandler(Keep())
    trace = [(0.0, {f"gpu:{i}": 100.0 + i for i in range(devices)})]
    deadline = time.monotonic() + seconds
    with open(out, "w", encoding="utf-8") as f:
        n = 0
        while time.monotonic() < deadline:
            with gt.track("load", project="load", db=url, meters=[ReplayMeter(trace)],
                          interval_s=interval_s, checkpoint_s=checkpoint_s,
                          region="FR") as run:  # fmt: skip
                with run.phase("train"):
                    end = min(deadline, time.monotonic() + run_s)
                    while time.monotonic() < end:
                        time.sleep(0.01)
                run.log(step=n, loss=1.0 / (n + 1))
            s = run.summary()
            kept = sum(len(series.t_s) for series in run._sampler.series.values())
            f.write(json.dumps({"id": run.id, "kept": kept, "energy_j": s.energy_j,
                                "status": s.status, "checkpoints": run._seq,
                                "warnings": s.warnings}) + "\n")  # fmt: skip
            f.flush()
            n += 1
        f.write(json.dumps({"log": messages}) + "\n")


def writer_worker(url: str, seconds: float, devices: int, batch: int, out: str) -> None:
    """The store's ceiling: write checkpoints of ``devices x batch`` samples back to back."""
    from datetime import UTC, datetime

    from greentrack.store.checkpoint import Checkpoint
    from greentrack.store.writer import StoreWriter

    writer = StoreWriter(url)
    rid, t_s, seq, kept = uuid.uuid4().hex, time.time(), 0, 0
    deadline = time.monotonic() + seconds
    energy = dict.fromkeys(range(devices), 0.0)
    while True:
        seq += 1
        final = time.monotonic() >= deadline
        now = datetime.now(UTC).replace(tzinfo=None)
        samples = []
        for _ in range(batch):
            t_s = max(t_s + 1e-4, time.time())  # wall time: the rate is per real second
            for d in range(devices):
                energy[d] += 1.0
                samples.append({"device": f"gpu:{d}", "component": "gpu", "t_s": t_s,
                                "energy_j": energy[d], "power_w": 100.0})  # fmt: skip
        kept += len(samples)
        writer.write(Checkpoint(
            run_id=rid, rank=0, seq=seq,
            run={"project": "load", "name": "writer", "status": "finished" if final else "running",
                 "started_at": now, "heartbeat_at": now, "pue": 1.0, "world_size": 1,
                 "checkpoint_s": 1.0, "ended_at": now if final else None},
            components=[{"component": "gpu", "device": f"gpu:{d}", "energy_j": e,
                         "method": "counter", "model": None, "host": "h"}
                        for d, e in energy.items()],
            samples=samples,
        ))  # fmt: skip
        if final:
            break
    writer.close()
    line = {"id": rid, "kept": kept, "energy_j": sum(energy.values()), "status": "finished",
            "checkpoints": seq, "warnings": []}  # fmt: skip
    Path(out).write_text(json.dumps(line) + "\n", encoding="utf-8")


# -- the load -------------------------------------------------------------------------------------
def run_load(url: str, *, processes: int, seconds: float, devices: int = 8,
             interval_s: float = 0.02, checkpoint_s: float = 0.25, run_s: float = 3.0,
             mode: str = "tracker", batch: int = 25,
             workdir: Path | None = None) -> LoadResult:  # fmt: skip
    """Start ``processes`` workers on ``url`` at once, wait, and check the store.

    ``mode``: ``tracker`` (the real tracker, see the module docstring) or ``writer`` (the store's
    ceiling: each process writes checkpoints of ``devices x batch`` samples back to back).
    """
    from greentrack.store import queries
    from greentrack.store.dbapi import parse_url
    from greentrack.store.schema import upgrade

    backend = parse_url(url).dialect
    upgrade(url)  # the schema exists before the load (as in any deployed store)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="gt-load-"))
    env = dict(os.environ, GREENTRACK_HOME=str(workdir / "home"), OMP_NUM_THREADS="1")
    env.pop("GREENTRACK_DB", None)
    result = LoadResult(backend, processes, seconds, mode)
    procs = []
    t0 = time.perf_counter()
    for i in range(processes):
        out = workdir / f"worker{i}.jsonl"
        err = open(workdir / f"worker{i}.err", "w")  # noqa: SIM115 - closed below
        if mode == "writer":
            cmd = [sys.executable, __file__, "--writer", url, str(seconds), str(devices),
                   str(batch), str(out)]  # fmt: skip
        else:
            cmd = [sys.executable, __file__, "--worker", url, str(seconds), str(devices),
                   str(interval_s), str(checkpoint_s), str(run_s), str(out)]  # fmt: skip
        procs.append((subprocess.Popen(cmd, env=env, stderr=err), err, out))
    for p, err, _ in procs:
        p.wait()
        err.close()
    result.wall_s = time.perf_counter() - t0

    runs: list[dict] = []
    for i, (p, _, out) in enumerate(procs):
        stderr = (workdir / f"worker{i}.err").read_text(errors="replace")
        if p.returncode != 0:
            result.worker_failures.append(f"worker {i} exit {p.returncode}: {stderr[-500:]}")
        lines = [json.loads(ln) for ln in out.read_text().splitlines()] if out.exists() else []
        runs += [ln for ln in lines if "id" in ln]
        texts = [stderr] + [m for ln in lines for m in ln.get("log", []) + ln.get("warnings", [])]
        result.problems += [t[:300] for t in texts if any(w in t.lower() for w in BAD_WORDS)]
    result.runs = len(runs)
    result.checkpoints = sum(r["checkpoints"] for r in runs)
    result.samples_kept = sum(r["kept"] for r in runs)
    conn = queries.open_store(url)
    try:
        counts = {
            row["run_id"]: int(row["n"])
            for row in conn.query("SELECT run_id, COUNT(*) AS n FROM samples GROUP BY run_id")
        }
        stored = {
            row["id"]: row
            for row in conn.query("SELECT id, status, energy_j FROM runs WHERE project = 'load'")
        }
        span = conn.query("SELECT MIN(t_s) AS t0, MAX(t_s) AS t1 FROM samples")[0]
    finally:
        conn.close()
    for r in runs:
        got = counts.get(r["id"], 0)
        result.samples_stored += got
        result.lost_samples += max(0, r["kept"] - got)
        row = stored.get(r["id"])
        if row is None or row["status"] != "finished":
            result.runs_not_finished += 1
        elif abs(float(row["energy_j"]) - r["energy_j"]) > 1e-9 * max(1.0, r["energy_j"]):
            result.energy_mismatches += 1
    if span["t0"] is not None:
        result.window_s = float(span["t1"]) - float(span["t0"])
    spool = workdir / "home" / "spool"
    left = list(spool.rglob("*.jsonl")) if spool.is_dir() else []
    if left:
        result.problems.append(f"{len(left)} spool file(s) left")
    return result


def _pg_schema_url(base: str) -> tuple[str, str]:
    import psycopg

    schema = "gt_load_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def _pg_drop(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _report(r: LoadResult) -> str:
    verdict = "OK" if r.ok else "FAILED"
    lines = [
        f"{r.backend:<10} {r.mode:<7} {r.processes} processes x {r.seconds:g} s: {r.runs} runs, "
        f"{r.samples_stored:,} samples stored over {r.window_s:.1f} s = {r.samples_per_s:,.0f} "
        f"samples/s, {r.checkpoints_per_s:,.1f} checkpoints/s; lost {r.lost_samples}, "
        f"unfinished {r.runs_not_finished}, energy mismatches {r.energy_mismatches}: {verdict}"
    ]
    lines += [f"    problem: {p}" for p in r.problems[:10]]
    lines += [f"    worker: {w}" for w in r.worker_failures[:5]]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], float(a[1]), int(a[2]), float(a[3]), float(a[4]), float(a[5]), a[6])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        a = sys.argv[2:]
        writer_worker(a[0], float(a[1]), int(a[2]), int(a[3]), a[4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["both", "sqlite", "postgres"], default="both")
    ap.add_argument("--postgres", default=PG_DEFAULT, help="server URL (a schema is made in it)")
    ap.add_argument("--processes", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--devices", type=int, default=8, help="replayed devices per process")
    ap.add_argument("--interval", type=float, default=0.02, help="sampling interval, s")
    ap.add_argument("--checkpoint", type=float, default=0.25, help="checkpoint interval, s")
    ap.add_argument("--run-s", type=float, default=3.0, help="length of each run, s")
    ap.add_argument(
        "--mode",
        choices=["both", "tracker", "writer"],
        default="both",
        help="tracker: real runs; writer: the store's ceiling (raw checkpoints)",
    )
    ap.add_argument("--batch", type=int, default=25, help="writer mode: samples per device")
    args = ap.parse_args()
    kw = dict(processes=args.processes, seconds=args.seconds, devices=args.devices,
              interval_s=args.interval, checkpoint_s=args.checkpoint, run_s=args.run_s,
              batch=args.batch)  # fmt: skip
    modes = ["tracker", "writer"] if args.mode == "both" else [args.mode]
    print(f"# {os.cpu_count()} CPUs; each process offers {args.devices / args.interval:,.0f} "
          f"samples/s and {1 / args.checkpoint:g} checkpoints/s")  # fmt: skip
    results = []
    for mode in modes:
        if args.backend in ("both", "sqlite"):
            with tempfile.TemporaryDirectory(prefix="gt-load-") as tmp:
                r = run_load(f"sqlite:///{tmp}/load.db", workdir=Path(tmp), mode=mode, **kw)
                print(_report(r), flush=True)
                results.append(r)
        if args.backend in ("both", "postgres"):
            url, schema = _pg_schema_url(args.postgres)
            try:
                r = run_load(url, mode=mode, **kw)
                print(_report(r), flush=True)
                results.append(r)
            finally:
                _pg_drop(args.postgres, schema)
    print(json.dumps([asdict(r) | {"samples_per_s": r.samples_per_s} for r in results]))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
