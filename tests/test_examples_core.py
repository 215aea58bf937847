"""The quickstart example runs as a user runs it, and the run it makes is in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_then_show_latest(gt_home: Path) -> None:
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), "--epochs", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "[estimated]" in done.stdout and "CO2e" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "greentrack", "show", "latest", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    obj = json.loads(shown.stdout)
    assert obj["project"] == "quickstart" and obj["status"] == "finished"
    assert obj["region"] == "ES" and obj["co2e_g"] > 0
    assert obj["intensity_source"]["zone"] == "ES"
    assert [p["name"] for p in obj["phase_totals"]] == ["epoch", "epoch/eval"]
    assert obj["metrics"]["val_acc"] > 0.5  # it really learned
    assert obj["meta"]["torch"]


def test_shared_machine_example_charges_only_its_own_processes(gt_home: Path) -> None:
    """Another program burns a core beside the example's worker: the machine-wide estimate
    charges the run for both cores, the process share for its own one."""
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), GREENTRACK_SYSFS="/nonexistent")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "shared_machine.py"), "--seconds", "1.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    joules = {
        line.split()[0].split("=")[1]: float(line.split()[2])
        for line in done.stdout.splitlines()
        if line.startswith("cpu_share=") and "[estimated]" in line
    }
    assert set(joules) == {"machine", "process"}, done.stdout
    assert 0 < 1.5 * joules["process"] < joules["machine"]
