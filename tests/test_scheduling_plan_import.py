"""``greentrack.scheduling.plan`` is what the tracker and a child process import: no numpy.

A child launched by ``greentrack schedule --pause-mode cooperative -- CMD`` asks
``run.should_pause()`` of the plan it received through ``GREENTRACK_PLAN``; that must not pull the
numpy planner (checked in a fresh interpreter, where nothing else has imported numpy yet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHECK = """
import json, sys
from greentrack.scheduling.plan import pause_windows, resume_at, should_pause
plan = json.loads(sys.argv[1])
print(json.dumps({
    "numpy": "numpy" in sys.modules,
    "heavy": sorted(m for m in ("numpy", "pandas", "sqlalchemy", "matplotlib") if m in sys.modules),
    "paused_in_gap": should_pause(plan, 1_700_003_600.0 + 60),
    "running": should_pause(plan, 1_700_000_000.0 + 60),
    "after_end": should_pause(plan, 1_700_020_000.0),
    "resume_at": resume_at(plan, 1_700_003_600.0 + 60),
    "windows": pause_windows(plan),
}))
"""


def test_importing_the_plan_model_does_not_import_numpy() -> None:
    # the ISO form a stored plan has (no segments_s): parsed without numpy as well
    plan = {
        "segments": [
            {"start": "2023-11-14T22:13:20Z", "end": "2023-11-14T23:13:20Z"},
            {"start": "2023-11-15T01:13:20Z", "end": "2023-11-15T03:13:20Z"},
        ]
    }
    r = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["heavy"] == [] and got["numpy"] is False
    assert got["paused_in_gap"] is True and got["running"] is False and got["after_end"] is False
    assert got["resume_at"] == 1_700_000_000.0 + 3 * 3600
    assert got["windows"] == [[1_700_003_600.0, 1_700_000_000.0 + 3 * 3600]]


def test_run_should_pause_asks_the_plan_model_not_the_planner(tmp_path) -> None:
    """``run.should_pause()`` on an attached plan, in a fresh interpreter: no numpy either."""
    code = (
        "import sys, time, greentrack as gt\n"
        "run = gt.track('t', region='ES').start()\n"
        "now = time.time()\n"
        "run.set_plan({'segments_s': [[now - 60, now - 30], [now + 3600, now + 7200]],"
        " 'segments': [{}, {}]})\n"
        "paused = run.should_pause()\n"
        "run.stop()\n"
        "print(paused, 'numpy' in sys.modules)\n"
    )
    env = dict(
        os.environ, GREENTRACK_HOME=str(tmp_path), GREENTRACK_DB=f"sqlite:///{tmp_path}/r.db"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]
