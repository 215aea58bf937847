"""The carbon example runs as a user would run it (subprocess, own GREENTRACK_HOME)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from greentrack.carbon.accounting import account_samples
from greentrack.carbon.csvsource import load_csv

REPO = Path(__file__).resolve().parents[1]
SLICE = REPO / "tests" / "data" / "em_ES_2022-03-01_4d.csv"


def run_example(name: str, *args: str, home: Path) -> str:
    env = {**os.environ, "GREENTRACK_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_carbon_whatif_example(tmp_path):
    out = run_example("carbon_whatif.py", "--csv", str(SLICE), home=tmp_path / "home")
    series = load_csv(SLICE)
    start = 1_646_157_600.0  # 2022-03-01T18:00Z
    t = start + np.arange(10.0, 6 * 3600 + 1, 10.0)
    expected = account_samples(t, 300.0 * (t - start), series, start_s=start).co2e_g
    printed = float(re.search(r"run at 18:00 UTC:\s+([\d.]+) g CO2e", out).group(1))
    assert abs(printed - expected) < 0.05
    noon = float(re.search(r"what-if 10:00 UTC:\s+([\d.]+) g CO2e", out).group(1))
    assert noon < printed  # midday solar in Spain beats the evening peak, in this data
    assert "what-if in France:" in out and "static annual (ES):" in out
    assert "csv ES average 2022-03-01T00:00:00Z/2022-03-04T23:00:00Z" in out
