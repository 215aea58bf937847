"""Plan a 6-hour training job on Spain's 2022 grid: start now, Flexible Start, Pause & Resume.

Run from the repository (the shared data sits beside it, in ../shared/data/grid-intensity):

    python examples/schedule_plan.py [path/to/ES_2022_hourly.csv]

The same from the shell:

    greentrack schedule --csv ES_2022_hourly.csv --at 2022-03-01T08:00Z --duration 6h --within 24h
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from greentrack.scheduling.plan import should_pause
from greentrack.scheduling.planner import format_plan, plan
from greentrack.scheduling.profile import PowerProfile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "grid-intensity"
csv = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA / "electricitymaps" / "ES_2022_hourly.csv"

# 1. a 6 h job at 1 kW submitted on 1 March 2022, 08:00 UTC, that may wait up to 24 h
common = {"within": "24h", "at": "2022-03-01T08:00Z", "csv": csv}
fs = plan("6h", **common)
pr = plan("6h", strategy="pause_resume", min_run="1h", **common)
print(format_plan(fs), end="\n\n")
print(format_plan(pr), end="\n\n")
print(
    f"run now {fs.run_now_co2e_g:.0f} g -> Flexible Start {fs.expected_co2e_g:.0f} g "
    f"({fs.saving_pct:.1f} % saving) -> Pause & Resume {pr.expected_co2e_g:.0f} g "
    f"({pr.saving_pct:.1f} % saving); source: {fs.provenance.label()}"
)

# 2. pausing is not free: a stopped job on a GPU still draws idle power (here 60 W of a 300 W job)
idle = plan("6h", strategy="pause_resume", power_w=300.0, pause_power_w=60.0, **common)
print(f"with 60 W drawn while paused: {idle.pauses} pause(s), saving {idle.saving_pct:.1f} %")

# 3. a measured power profile (W per 30 min of the job's elapsed time): busy first, then lighter
profile = PowerProfile(np.array([350.0] * 6 + [150.0] * 6), step_s=1800.0)
prof = plan(strategy="pause_resume", profile=profile, **common)
print(f"profiled job ({prof.energy_kwh:.2f} kWh): saving {prof.saving_pct:.1f} %")

# 4. what a training loop asks in cooperative mode (run.should_pause() calls this)
t = pr.segments[0].end_s + 60.0
print(f"one minute after the first segment, should the job pause? {should_pause(pr, t)}")
