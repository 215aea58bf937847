"""Replay history: how much would carbon-aware scheduling have saved on five grids in 2022?

For every hourly submission of the year, a 1 h, 6 h and 24 h job (1 kW) that may wait 24 h is
started immediately, at the best hour (Flexible Start), or run in its cheapest hours with runs of
at least 1 h (Pause & Resume). Prints the markdown table quoted in the README and saves a plot
(``schedule_study.png`` in ``--out``; default: a new temporary folder, printed at the end).

    python examples/schedule_study.py [DATA_DIR] [--out FOLDER]

The same from the shell, one zone:

    greentrack schedule study --csv ES_2022_hourly.csv --duration 1h,6h,24h --within 24h
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from greentrack.scheduling.study import format_study, study_files
from greentrack.scheduling.study_plot import save_study_plot

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "data",
    nargs="?",
    type=Path,
    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "grid-intensity",
    help="folder with electricitymaps/ and eia930/ (default: ../shared/data/grid-intensity)",
)
parser.add_argument("--out", type=Path, help="folder for the plot (default: a temporary one)")
args = parser.parse_args()
DATA = args.data
OUT = args.out or Path(tempfile.mkdtemp(prefix="greentrack-study-"))
OUT.mkdir(parents=True, exist_ok=True)
files = [
    DATA / "electricitymaps" / f"{zone}_2022_hourly.csv"
    for zone in ("ES", "NO", "US-CAL-CISO", "BR")
]
files.append(DATA / "eia930" / "CISO_NG_avgCI.csv")  # EIA-930, production-based

t0 = time.perf_counter()
results = []
for f in files:  # one file at a time: the two CISO files are the same zone, different data
    results += study_files([f], ["1h", "6h", "24h"], "24h", min_run="1h")
elapsed = time.perf_counter() - t0
print(format_study(results, "markdown"))
print(
    f"\n{sum(r.rows[0].submissions for r in results):,} submissions per strategy and duration "
    f"over {len(results)} series in {elapsed:.2f} s (CSV loading included)"
)
out = save_study_plot(results, OUT / "schedule_study.png")
print(f"aggregate = 1 - ΣE/ΣE₀ over all jobs; mean = mean of per-job reductions. plot: {out}")
