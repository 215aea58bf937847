"""How fast the price tag, the figures and the dashboard are on big stores.

    python benchmarks/bench_report.py                    # SQLite in a temporary folder
    python benchmarks/bench_report.py --db postgresql+psycopg://me@localhost/bench
    python benchmarks/bench_report.py --samples 1000000 --runs 10000 --repeat 3

Two stores are built from deterministic synthetic runs (greentrack.testing.synthetic):

1. one run with ``--samples`` samples (two devices, half each): time the Markdown report, the
   JSON report, the HTML report with its figures (the power plot is drawn as a min-max envelope,
   never a million points) and `greentrack plot --kind power` to SVG. Target: < 2 s each.
2. ``--runs`` small runs in four projects: time `greentrack dashboard` (index of every run +
   pages for the latest 100) and the index alone. Target: < 10 s.

Each figure is the best of ``--repeat`` runs, wall clock, in one process (imports warm after the
first). Building the stores is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def build_big_run(url: str, samples: int) -> str:
    from greentrack.testing.synthetic import DeviceSpec, SyntheticRun, write_runs

    run = SyntheticRun(
        run_id="b16" + "0" * 29,
        project="bench",
        name="long",
        duration_s=samples / 2 * 1.0,
        samples=samples // 2,
        intensity_g_per_kwh=tuple(150.0 + (h % 24) * 3 for h in range(160)),
        devices=[
            DeviceSpec("gpu:0", "gpu", 300.0, "counter", "NVIDIA H100", period_s=900.0),
            DeviceSpec("cpu:0", "cpu", 80.0, "counter", "AMD EPYC 9654"),
        ],
        phases=tuple((f"epoch{i % 2}", i / 20, (i + 1) / 20) for i in range(20)),
        metrics={"accuracy": [(i, 0.5 + i / 100) for i in range(40)]},
        flops=1e18,
    )
    write_runs(url, [run], batch=100_000)
    return run.run_id


def build_many_runs(url: str, runs: int) -> None:
    from greentrack.testing.synthetic import DeviceSpec, SyntheticRun, write_runs

    devices = [
        DeviceSpec("gpu:0", "gpu", 250.0, "counter", "NVIDIA A100"),
        DeviceSpec("cpu:0", "cpu", 60.0, "sampled", "Xeon"),
    ]
    batch = [
        SyntheticRun(
            run_id=f"{i:08x}" + "d" * 24,
            project=f"p{i % 4}",
            name=f"trial-{i % 50}",
            start_s=1767268800.0 + 600.0 * i,
            duration_s=300.0,
            samples=11,
            devices=devices,
            params={"lr": 10 ** -(1 + i % 4), "seed": i % 3},
            tags={"final": "true"} if i % 97 == 0 else {},
            metrics={"accuracy": [(0, 0.5), (1, 0.6 + (i % 10) / 100)]},
        )
        for i in range(runs)
    ]
    write_runs(url, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="Store URL (default: a new SQLite file in a temp folder).")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from greentrack.report.figures import make_plot
    from greentrack.report.pricetag import make_report
    from greentrack.report.site import build_site

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        url_big = args.db or f"sqlite:///{tmpdir / 'big.db'}"
        t0 = time.perf_counter()
        rid = build_big_run(url_big, args.samples)
        print(
            f"store 1: one run with {args.samples:,} samples written in "
            f"{time.perf_counter() - t0:.1f} s ({url_big.split('://')[0]})"
        )
        md = best_of(args.repeat, lambda: make_report([rid], db_url=url_big))
        js = best_of(args.repeat, lambda: make_report([rid], db_url=url_big, fmt="json"))
        html = best_of(
            args.repeat,
            lambda: make_report([rid], db_url=url_big, fmt="html", output=tmpdir / "r.html"),
        )
        svg = best_of(
            args.repeat, lambda: make_plot("power", tmpdir / "p.svg", [rid], db_url=url_big)
        )
        size_kb = (tmpdir / "r.html").stat().st_size / 1024
        print(f"  report markdown          {md:6.3f} s")
        print(f"  report json              {js:6.3f} s")
        print(f"  report html + 3 figures  {html:6.2f} s   ({size_kb:,.0f} KiB page)")
        print(
            f"  plot --kind power (svg)  {svg:6.2f} s   "
            f"({(tmpdir / 'p.svg').stat().st_size / 1024:,.0f} KiB)"
        )

        # with --db the same database: the dashboard then also shows the big run
        url_many = args.db or f"sqlite:///{tmpdir / 'many.db'}"
        t0 = time.perf_counter()
        build_many_runs(url_many, args.runs)
        print(f"store 2: {args.runs:,} runs written in {time.perf_counter() - t0:.1f} s")
        dash = best_of(args.repeat, lambda: build_site(tmpdir / "site", db_url=url_many))
        index_only = best_of(
            args.repeat, lambda: build_site(tmpdir / "site0", db_url=url_many, latest=0)
        )
        kb = (tmpdir / "site" / "index.html").stat().st_size / 1024
        print(f"  dashboard (index + 100 run pages)  {dash:6.2f} s   (index {kb:,.0f} KiB)")
        print(f"  dashboard index only               {index_only:6.2f} s")


if __name__ == "__main__":
    main()
