"""Cost per checkpoint of each integration, on the checkpoint thread (the budget: < 1 ms).

    python benchmarks/bench_integrations.py            # table
    python benchmarks/bench_integrations.py --json     # one JSON object

What is timed is the listener's ``on_checkpoint(run, checkpoint)`` — the only work an enabled
integration puts on greentrack's checkpoint thread — on a realistic checkpoint: 12 devices
(8 GPUs, 2 CPU packages, 2 DRAM domains) with 10 kept readings each (``checkpoint_s=10`` at
1 s sampling). Prometheus updates its collector (the HTTP server answers scrapes on its own
thread; one scrape is timed apart). MLflow hands the figures to its worker thread, which logs
them for real into a local MLflow store (SQLite) meanwhile, so the timing includes the GIL
contention of that worker; TensorBoard (a real event file) and W&B (an offline run) likewise.
Median and 99th percentile of N calls.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

DEVICES = [
    *(("gpu", f"gpu:{i}", "counter") for i in range(8)),
    *(("cpu", f"cpu:package-{i}", "counter") for i in range(2)),
    *(("dram", f"dram:package-{i}", "counter") for i in range(2)),
]


class FakeRun(SimpleNamespace):
    def warn(self, message: str, source: str = "user") -> None:
        print(f"warning ({source}): {message}")


def make_run() -> FakeRun:
    return FakeRun(
        id="b" * 32,
        project="bench",
        name="bench",
        pue=1.1,
        t0_wall=1.7e9,
        _carbon={"g_per_kwh_now": 250.0},
        db_url=None,
    )


def checkpoint(k: int) -> SimpleNamespace:
    """The k-th checkpoint (10 s apart) of a run whose devices draw 300/150/10 W."""
    power = {"gpu": 300.0, "cpu": 150.0, "dram": 10.0}
    t1 = 10.0 * k
    samples = [
        {
            "device": d,
            "component": c,
            "t_s": 1.7e9 + t1 - 10 + j + 1,
            "energy_j": power[c] * (t1 - 10 + j + 1),
            "power_w": power[c],
        }
        for c, d, _ in DEVICES
        for j in range(10)
    ]
    components = [
        {
            "component": c,
            "device": d,
            "energy_j": power[c] * t1,
            "method": m,
            "model": None,
            "note": None,
            "host": "h",
        }
        for c, d, m in DEVICES
    ]
    return SimpleNamespace(run={"duration_s": t1}, components=components, samples=samples)


def time_calls(listener: Any, run: FakeRun, n: int) -> dict[str, float]:
    cps = [checkpoint(k + 1) for k in range(n)]
    out = []
    for cp in cps:
        t = time.perf_counter()
        listener.on_checkpoint(run, cp)
        out.append(time.perf_counter() - t)
    out.sort()
    return {
        "calls": n,
        "median_us": statistics.median(out) * 1e6,
        "p99_us": out[int(0.99 * (n - 1))] * 1e6,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_prometheus(n: int) -> dict[str, Any]:
    from greentrack.integrations.prometheus import PrometheusListener

    port = free_port()
    listener = PrometheusListener(port)
    run = make_run()
    listener.on_checkpoint(run, checkpoint(0))  # opens the endpoint (once per process)
    result = time_calls(listener, run, n)
    t = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body = r.read()
    result["scrape_ms"] = (time.perf_counter() - t) * 1e3  # on the server's thread, not the run's
    result["scrape_bytes"] = len(body)
    return result


def bench_mlflow(n: int) -> dict[str, Any] | None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    from mlflow.tracking import MlflowClient

    from greentrack.integrations.mlflow import MlflowListener

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        client = MlflowClient(uri)
        exp = client.create_experiment("bench", artifact_location=Path(tmp).as_uri())
        mrun = client.create_run(exp)
        listener = MlflowListener(mrun.info.run_id, tracking_uri=uri)
        run = make_run()
        listener.on_checkpoint(run, checkpoint(0))  # starts the worker
        result = time_calls(listener, run, n)
        worker = listener._worker
        assert worker is not None
        t = time.perf_counter()
        worker.close(120.0)
        result["worker_drain_s"] = time.perf_counter() - t
        logged = len(client.get_metric_history(mrun.info.run_id, "greentrack/energy_kwh"))
        result["checkpoints_logged"] = logged  # the rest dropped by the bounded queue
        return result


def bench_tensorboard(n: int) -> dict[str, Any] | None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    from greentrack.integrations.tensorboard import TensorBoardListener

    with tempfile.TemporaryDirectory() as tmp:
        listener = TensorBoardListener(logdir=tmp)
        run = make_run()
        listener.on_checkpoint(run, checkpoint(0))  # starts the worker
        result = time_calls(listener, run, n)
        worker = listener._worker
        assert worker is not None
        t = time.perf_counter()
        worker.close(120.0)
        result["worker_drain_s"] = time.perf_counter() - t
        listener._writer.close()
        return result


def bench_wandb(n: int) -> dict[str, Any] | None:
    try:
        import wandb
    except ImportError:
        return None
    import os

    from greentrack.integrations.wandb import WandbListener

    os.environ["WANDB_MODE"], os.environ["WANDB_SILENT"] = "offline", "true"
    with tempfile.TemporaryDirectory() as tmp:
        wrun = wandb.init(project="bench", dir=tmp, mode="offline")
        listener = WandbListener(wrun)
        run = make_run()
        listener.on_checkpoint(run, checkpoint(0))  # starts the worker
        result = time_calls(listener, run, n)
        worker = listener._worker
        assert worker is not None
        t = time.perf_counter()
        worker.close(120.0)
        result["worker_drain_s"] = time.perf_counter() - t
        wrun.finish()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-n", type=int, default=2000, help="checkpoints per integration")
    args = parser.parse_args()
    results = {
        "prometheus": bench_prometheus(args.n),
        "mlflow": bench_mlflow(min(args.n, 300)),
        "tensorboard": bench_tensorboard(min(args.n, 300)),
        "wandb": bench_wandb(min(args.n, 300)),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'integration':<12} {'calls':>6} {'median µs':>10} {'p99 µs':>8}  notes")
    for name, r in results.items():
        if r is None:
            print(f"{name:<12} not installed")
            continue
        notes = ""
        if "scrape_ms" in r:
            notes = f"one scrape {r['scrape_ms']:.1f} ms ({r['scrape_bytes']} B), server thread"
        if "worker_drain_s" in r and "checkpoints_logged" not in r:
            notes = f"worker drained in {r['worker_drain_s']:.2f} s"
        elif "worker_drain_s" in r:
            notes = (
                f"worker logged {r['checkpoints_logged']} of {r['calls'] + 1} checkpoints, "
                f"drained in {r['worker_drain_s']:.1f} s"
            )
        print(f"{name:<12} {r['calls']:>6} {r['median_us']:>10.1f} {r['p99_us']:>8.1f}  {notes}")


if __name__ == "__main__":
    main()
