"""examples/report_pricetag.py runs end to end: tracked runs, then every form of the price tag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_report_pricetag_example(tmp_path: Path, gt_home: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "GREENTRACK_HOME": str(gt_home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "report_pricetag.py"),
            "--out",
            str(out),
            "--epochs",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in (
        "pricetag.md",
        "pricetag.tex",
        "pricetag.bib",
        "report.html",
        "power.svg",
        "pareto.png",
        "site/index.html",
        "runs.csv",
    ):
        assert (out / name).stat().st_size > 500, name
    md = (out / "pricetag.md").read_text()
    assert "# Price tag: project report-demo (6 runs)" in md
    assert "| Runs | 1 | 5 | 6 |" in md  # one final run, five for tuning
    assert "method: estimated" in md or "method: counter" in md or "method: sampled" in md
    assert "Mean ± std over seeds" in md
    assert len(list((out / "site" / "runs").glob("*.html"))) == 6
