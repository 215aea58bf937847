"""What tracking costs the training loop, side by side with CodeCarbon, in the same run.

    python benchmarks/bench_overhead.py            # ~2 minutes
    python benchmarks/bench_overhead.py --quick    # shorter sampler windows

Measures, on this machine:
1. ``import greentrack`` (fresh interpreter, median of 5).
2. Fixed cost of tracking a trivial function: start + stop, in a fresh process ("cold", the
   first run of a process), the same in a PyTorch script (torch imported first, and the full
   garbage collection that importing it makes due done before timing either tool),
   and again in the same process ("warm"), for greentrack's ``track`` and CodeCarbon's
   ``OfflineEmissionsTracker`` (offline, country ESP, writing its emissions.csv as by default:
   both tools persist the run).
3. Sampler CPU time per second tracked (process CPU time while tracking ``time.sleep``), at
   1 s and 0.1 s intervals, for both tools.
4. Memory of a simulated week sampled every second (604,800 samples, checkpoints written to
   a real SQLite store), as growth of the process's resident set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PY = sys.executable


def _run(code: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [PY, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_time(env: dict[str, str]) -> float:
    code = """
    import time, json
    t = time.perf_counter(); import greentrack; print(json.dumps({"s": time.perf_counter() - t}))
    """
    return statistics.median(_run(code, env)["s"] for _ in range(5))


GT_FIXED = """
import time, json, os, sys
if sys.argv[1:] == ["torch"]:
    import gc
    import torch  # as in a PyTorch training script
    # Right after `import torch` a full garbage collection of its ~170,000 objects (~80 ms here)
    # is due; it falls on whatever allocates next (the first training steps, or a tracker). Do
    # it first so that neither tool is charged for it.
    gc.collect()
t0 = time.perf_counter()
import greentrack as gt
t1 = time.perf_counter()
def trivial(): return 1
res = []
for i in range(4):
    a = time.perf_counter()
    run = gt.track("trivial", project="bench-overhead").start()
    trivial()
    run.stop()
    res.append(time.perf_counter() - a)
print(json.dumps({"import": t1 - t0, "cold": res[0], "warm": sorted(res[1:])[1]}))
"""

CC_FIXED = """
import time, json, logging, os, sys
if sys.argv[1:] == ["torch"]:
    import gc
    import torch  # as in a PyTorch training script
    # Right after `import torch` a full garbage collection of its ~170,000 objects (~80 ms here)
    # is due; it falls on whatever allocates next (the first training steps, or a tracker). Do
    # it first so that neither tool is charged for it.
    gc.collect()
t0 = time.perf_counter()
from codecarbon import OfflineEmissionsTracker
t1 = time.perf_counter()
res = []
for i in range(4):
    a = time.perf_counter()
    tr = OfflineEmissionsTracker(country_iso_code="ESP", log_level="error",
                                 output_dir=os.environ["GREENTRACK_HOME"])
    tr.start(); tr.stop()
    res.append(time.perf_counter() - a)
print(json.dumps({"import": t1 - t0, "cold": res[0], "warm": sorted(res[1:])[1]}))
"""

GT_SAMPLER = """
import time, json, sys
import greentrack as gt
T, interval = float(sys.argv[1]), float(sys.argv[2])
run = gt.track("sleep", project="bench-overhead", interval_s=interval).start()
time.sleep(0.5)
c0, w0 = time.process_time(), time.perf_counter()
time.sleep(T)
c1, w1 = time.process_time(), time.perf_counter()
run.stop()
print(json.dumps({"cpu_s": c1 - c0, "wall_s": w1 - w0, "reads": run._sampler.reads}))
"""

CC_SAMPLER = """
import time, json, sys
from codecarbon import OfflineEmissionsTracker
T, interval = float(sys.argv[1]), float(sys.argv[2])
tr = OfflineEmissionsTracker(country_iso_code="ESP", save_to_file=False, log_level="error",
                             measure_power_secs=interval)
tr.start()
time.sleep(0.5)
c0, w0 = time.process_time(), time.perf_counter()
time.sleep(T)
c1, w1 = time.process_time(), time.perf_counter()
tr.stop()
print(json.dumps({"cpu_s": c1 - c0, "wall_s": w1 - w0}))
"""

IDLE = """
import time, json, sys
T = float(sys.argv[1])
c0 = time.process_time(); time.sleep(T); c1 = time.process_time()
print(json.dumps({"cpu_s": c1 - c0, "wall_s": T}))
"""


def fixed_cost(code: str, env: dict[str, str], repeat: int, *args: str) -> dict:
    """Median over ``repeat`` fresh processes of import, cold and warm start + stop (s)."""
    runs = [_run(code, env, *args) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in ("import", "cold", "warm")}


def sampler_cost(code: str, seconds: float, interval: float, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [PY, "-c", textwrap.dedent(code), str(seconds), str(interval)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


WEEK = """
import json, os, time, psutil
from greentrack.meters import ReplayMeter
from greentrack.sampler import Sampler
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.writer import StoreWriter
import greentrack.tracker  # what a tracked process has loaded anyway
proc = psutil.Process()
url = os.environ["GREENTRACK_DB"]
writer = StoreWriter(url); writer.open()
class Clock:
    mono, wall = 0.0, 1.7e9
    def __call__(self): return self.mono, self.wall
clock = Clock()
devices = {"gpu:0": 300.0, "gpu:1": 280.0, "cpu:package-0": 90.0, "dram:package-0": 12.0}
seq = [0]
def checkpoint(points):
    seq[0] += 1
    writer.write(Checkpoint(run_id="f" * 32, rank=0, seq=seq[0], run={"project": "bench",
        "name": "week", "status": "running", "started_at": None, "pue": 1.0},
        samples=[{"device": d, "component": c, "t_s": t, "energy_j": e, "power_w": p}
                 for d, c, t, e, p in points]))
from datetime import datetime
sampler = Sampler([ReplayMeter([(0.0, devices)])], interval_s=1.0, checkpoint_s=10.0,
                  on_checkpoint=checkpoint, clock=clock)
for m in sampler.meters: m.start(0.0)
import gc; gc.collect()
rss0 = proc.memory_info().rss
t = time.perf_counter()
for i in range(604_800):
    clock.mono += 1.0; clock.wall += 1.0
    sampler.tick()
gc.collect()
rss1 = proc.memory_info().rss
kept = sum(len(s.t_s) for s in sampler.series.values())
print(json.dumps({"rss_growth_mb": (rss1 - rss0) / 2**20, "kept_points": kept,
                  "seconds": time.perf_counter() - t, "reads": sampler.reads}))
"""


def week_memory(env: dict[str, str]) -> dict:
    code = WEEK.replace('started_at": None', 'started_at": datetime(2026, 1, 1)')
    return _run(code, env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 s sampler windows instead of 30 s")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per fixed-cost figure")
    args = ap.parse_args()
    window = 10.0 if args.quick else 30.0
    load0 = os.getloadavg()[0]  # a busy machine slows both tools: said with the figures
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, GREENTRACK_HOME=home, GREENTRACK_DB=f"sqlite:///{home}/b.db")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure imports as users get them: from .pyc
        import greentrack

        subprocess.run([PY, "-m", "compileall", "-q", os.path.dirname(greentrack.__file__)],
                       env=env, check=True)  # fmt: skip
        subprocess.run(
            [PY, "-m", "greentrack", "db", "upgrade"], env=env, check=True, capture_output=True
        )
        res: dict = {"import_greentrack_s": import_time(env)}
        # The very first tracked process on a machine also looks the CPU's TDP up in the
        # 5,000-row table and caches it in GREENTRACK_HOME: reported apart, once.
        res["greentrack_first_process"] = _run(GT_FIXED, env)
        res["greentrack_fixed"] = fixed_cost(GT_FIXED, env, args.repeat)
        res["codecarbon_fixed"] = fixed_cost(CC_FIXED, env, args.repeat)
        res["greentrack_fixed_np"] = fixed_cost(GT_FIXED, env, args.repeat, "torch")
        res["codecarbon_fixed_np"] = fixed_cost(CC_FIXED, env, args.repeat, "torch")
        idle = sampler_cost(IDLE, window, 1.0, env)
        for interval in (1.0, 0.1):
            gt = sampler_cost(GT_SAMPLER, window, interval, env)
            cc = sampler_cost(CC_SAMPLER, window, interval, env)
            res[f"sampler_{interval}"] = {
                "greentrack_core_pct": 100 * (gt["cpu_s"] - idle["cpu_s"]) / gt["wall_s"],
                "codecarbon_core_pct": 100 * (cc["cpu_s"] - idle["cpu_s"]) / cc["wall_s"],
                "greentrack_reads": gt["reads"],
            }
        res["week"] = week_memory(env)
    res["load_avg_1min"] = [load0, os.getloadavg()[0]]
    g, c = res["greentrack_fixed"], res["codecarbon_fixed"]
    print(f"load average (1 min) at the start / end: {load0:.2f} / {res['load_avg_1min'][1]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"import greentrack: {res['import_greentrack_s'] * 1e3:.1f} ms (median of 5)")
    gn, cn = res["greentrack_fixed_np"], res["codecarbon_fixed_np"]
    rows = [
        ("cold: start + stop, first run of a fresh process", g["cold"], c["cold"]),
        ("cold: import + start + stop", g["import"] + g["cold"], c["import"] + c["cold"]),
        ("cold, in a PyTorch script (torch imported first)", gn["cold"], cn["cold"]),
        ("warm: a further run in the same process", g["warm"], c["warm"]),
        ("import", g["import"], c["import"]),
    ]
    print(f"\n| fixed cost, trivial function (median of {args.repeat} processes) "
          "| greentrack | CodeCarbon | ratio |\n|---|---|---|---|")  # fmt: skip
    for label, gt_s, cc_s in rows:
        print(f"| {label} | {gt_s * 1e3:.1f} ms | {cc_s * 1e3:.1f} ms | {cc_s / gt_s:.1f}x |")
    first = res["greentrack_first_process"]["cold"]
    print(f"(greentrack's first process on a machine, TDP not cached yet: {first * 1e3:.1f} ms)")
    print("\n| sampler CPU (% of one core) | greentrack | CodeCarbon |")
    print("|---|---|---|")
    for interval in (1.0, 0.1):
        s = res[f"sampler_{interval}"]
        print(
            f"| every {interval:g} s | {s['greentrack_core_pct']:.3f} % | "
            f"{s['codecarbon_core_pct']:.3f} % |"
        )
    w = res["week"]
    print(
        f"\nsimulated week at 1 s (604,800 samples x 4 devices, stored in SQLite): "
        f"RSS growth {w['rss_growth_mb']:.1f} MB, {w['kept_points']} points kept, "
        f"{w['seconds']:.1f} s to simulate"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
