"""A BoAmps report (Boavizta's format for the energy of AI tasks) of a tracked run.

    pip install -e '.[boamps]'      # jsonschema, to validate the report (optional)
    python examples/boamps_report.py --out /tmp/boamps

Tracks a small job (tagged with its stage and task family), writes
`greentrack report RUN --format boamps` to OUT/report.json, and validates it offline against the
BoAmps JSON Schemas shipped in greentrack/data/boamps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import greentrack as gt
from greentrack.report.pricetag import make_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for report.json (default: a new temporary one)")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long to work")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="greentrack-boamps-"))
    tags = {"stage": "training", "task_family": "image classification", "data_type": "image"}
    with gt.track("boamps-demo", project="examples", region="FR", tags=tags) as run:
        with run.phase("train"):
            deadline, x = time.monotonic() + args.seconds, 0.0
            while time.monotonic() < deadline:
                x += sum(i * i for i in range(10_000)) * 1e-12  # some CPU work
        run.log(step=1, accuracy=0.91)
    path = out / "report.json"
    make_report([run.id], fmt="boamps", output=path)
    doc = json.loads(path.read_text())
    try:
        from greentrack.report.boamps import validate

        validate(doc)
        print(f"wrote {path}: valid BoAmps (checked offline against the shipped schemas)")
    except ImportError:
        print(f"wrote {path} (pip install jsonschema to validate it)")
    for m in doc["measures"]:
        mode = m.get("gpuTrackingMode") or m.get("cpuTrackingMode")
        print(f"  {m['powerConsumption']:.3g} kWh  {mode}")
    print(
        f"  country {doc['environment']['country']}, "
        f"{doc['environment'].get('powerSourceCarbonIntensity', 0):.0f} gCO2e/kWh"
    )


if __name__ == "__main__":
    main()
