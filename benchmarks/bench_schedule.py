"""Scheduling speed: one plan on a year of 5-minute data, and the study on three years of hours.

    python benchmarks/bench_schedule.py [DATA_DIR]

Targets (issue 4): a plan over one year of 5-minute data (105,120 points) with a 24 h window in
< 50 ms; the study over three years of hourly data for three durations in < 2 s.

Data: the 5-minute year is Spain's 2022 hourly Electricity Maps series linearly interpolated to
5 minutes (real shape, 105,120 points; a finer grid is what matters for speed). The study uses the
three hourly ES files 2021-2023 (26,280 points). Times are wall-clock, best/median of repeats, on
whatever machine runs this (printed below).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from greentrack.carbon.csvsource import load_csv
from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.scheduling.planner import plan_series
from greentrack.scheduling.study import study_series

DATA = (
    Path(sys.argv[1])
    if len(sys.argv) > 1
    else (Path(__file__).resolve().parents[2] / "shared" / "data" / "grid-intensity")
)
EM = DATA / "electricitymaps"
H = 3600.0


def five_minute_year() -> IntensitySeries:
    hourly = load_csv(EM / "ES_2022_hourly.csv")
    t = hourly.start_s[0] + np.arange(len(hourly) * 12) * 300.0
    v = np.interp(t, hourly.start_s, hourly.g_per_kwh)
    prov = Provenance("csv", "ES", "average", "2022", "ES_2022_hourly.csv interpolated to 5 min")
    return IntensitySeries(t, v, 300.0, prov)


def bench_plans(series: IntensitySeries, n: int = 100) -> None:
    rng = np.random.default_rng(0)
    last = series.end_s - 30 * H
    ats = series.start_s[0] + rng.uniform(0, last - series.start_s[0], n)
    cases = [
        ("Flexible Start, 6 h job, 24 h window", {"strategy": "flexible_start"}),
        ("Pause & Resume, 6 h job, 24 h window, min run 1 h", {"strategy": "pause_resume"}),
        ("Pause & Resume, same, min run 5 min", {"strategy": "pause_resume", "min_run_s": 300.0}),
        ("Pause & Resume, same, min run 1 h, <= 3 pauses",
         {"strategy": "pause_resume", "max_pauses": 3}),
    ]  # fmt: skip
    print(f"plan on {len(series):,} points of {series.step_s:g} s data ({n} random submissions):")
    for label, kw in cases:
        plan_series(series, float(ats[0]), 6 * H, within_s=24 * H, **kw)  # warm-up
        times = []
        for a in ats:
            t0 = time.perf_counter()
            plan_series(series, float(a), 6 * H, within_s=24 * H, **kw)
            times.append(1e3 * (time.perf_counter() - t0))
        p95 = float(np.percentile(times, 95))
        print(
            f"  {label:<52} median {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   "
            f"max {max(times):6.1f} ms"
        )


def bench_study(repeat: int = 3) -> None:
    files = [EM / f"ES_{y}_hourly.csv" for y in (2021, 2022, 2023)]
    t0 = time.perf_counter()
    series = load_csv(files)
    load_s = time.perf_counter() - t0
    print(f"study on {len(series):,} hourly points (ES 2021-2023; CSV load {load_s:.2f} s):")
    cases = [
        ("1h,6h,24h within 24h, min run 1 h (default)", {}),
        ("1h,6h,24h within 24h, min run 2 h (DP)", {"min_run_s": 2 * H}),
        ("1h,6h,24h within 24h, min run 1 h, <= 3 pauses (DP)", {"max_pauses": 3}),
    ]
    for label, kw in cases:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            study_series(series, [H, 6 * H, 24 * H], 24 * H, **kw)
            times.append(time.perf_counter() - t0)
        print(f"  {label:<52} best {min(times):6.3f} s   median {statistics.median(times):6.3f} s")


def main() -> None:
    print(
        f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPU(s), {platform.machine()}"
    )
    bench_plans(five_minute_year())
    bench_study()


if __name__ == "__main__":
    main()
