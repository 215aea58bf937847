"""SIGTERM during the schedule countdown cancels like Ctrl-C: a line, nothing run (a subprocess)."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest


def future_csv(dest: Path) -> Path:
    """Hourly ES intensity from the current hour on: dirty for 2 h, then clean (the plan waits)."""
    hour = math.floor(time.time() / 3600) * 3600
    with dest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "gco2"])
        for i, g in enumerate([900, 900, 10, 10, 900, 900]):
            t = datetime.fromtimestamp(hour + 3600 * i, UTC)
            w.writerow([t.strftime("%Y-%m-%dT%H:%M:%SZ"), g])
    return dest


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_the_countdown_cancels_with_a_line(tmp_path, sig, code):
    made = tmp_path / "made"
    data = future_csv(tmp_path / "ES.csv")
    env = {**os.environ, "GREENTRACK_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "greentrack", "schedule", "--csv", str(data),
         "--time-column", "ts", "--value-column", "gco2", "--duration", "1h", "--within", "3h",
         "--", sys.executable, "-c", f"open({str(made)!r}, 'w').close()"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "greentrack: starting in" in line:
                break
        assert any("starting in" in x for x in seen), "".join(seen)
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, rest
    assert "greentrack: cancelled before the start; nothing was run" in rest
    assert "Traceback" not in rest
    assert not made.exists()
