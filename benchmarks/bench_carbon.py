"""Carbon benchmarks quoted in the README: CSV loading and accounting speed.

    python benchmarks/bench_carbon.py [--repeat 7]

1. ``load_csv`` of three years of hourly Electricity Maps exports for Spain (26,280 rows, from
   ``../shared/data/grid-intensity``; falls back to the test slice if absent).
2. ``account_samples`` of a 7-day run sampled every second (604,800 cumulative samples, one
   device, two phases) against an hourly intensity series.

Prints the best and median wall time of each (after one warm-up call), and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from greentrack.carbon.accounting import account_samples
from greentrack.carbon.csvsource import load_csv

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data" / "grid-intensity" / "electricitymaps"
SLICE = HERE.parent / "tests" / "data" / "em_ES_2022-03-01_4d.csv"


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up (imports, caches, page cache)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    files = [SHARED / f"ES_{y}_hourly.csv" for y in (2021, 2022, 2023)]
    if not all(f.is_file() for f in files):
        files = [SLICE]
    series = load_csv(files)
    best, med = timed(lambda: load_csv(files), args.repeat)
    print(f"load_csv: {len(series):,} hourly rows from {len(files)} file(s): "
          f"best {best * 1e3:.1f} ms, median {med * 1e3:.1f} ms")  # fmt: skip

    start = float(series.start_s[0])
    n = 7 * 86400
    t = start + np.arange(1, n + 1, dtype=np.float64)
    power = 250.0 + 50.0 * np.sin(np.arange(n) / 3600.0)
    energy = np.cumsum(power)
    phases = [("train", start, start + 6 * 86400), ("eval", start + 6 * 86400, start + n)]
    acct = account_samples(t, energy, series, start_s=start, phases=phases)
    best, med = timed(
        lambda: account_samples(t, energy, series, start_s=start, phases=phases), args.repeat
    )
    print(f"account_samples: {n:,} samples x hourly series, 2 phases: "
          f"best {best * 1e3:.1f} ms, median {med * 1e3:.1f} ms "
          f"({acct.co2e_g / 1000:.2f} kg CO2e)")  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}")  # fmt: skip


if __name__ == "__main__":
    main()
