"""Energy and CO2e of a tracked run inside the MLflow run you already keep.

    pip install -e '.[mlflow]'
    python examples/mlflow_tracking.py                           # a local MLflow store (temp)
    python examples/mlflow_tracking.py --tracking-uri http://127.0.0.1:5000

Under an active MLflow run, gt.track logs greentrack/energy_kwh, greentrack/co2e_g and per device
greentrack/energy_kwh/<device>, greentrack/power_w/<device> at every checkpoint, the params
greentrack/run_id, region, intensity_source and methods, and the price tag as artifacts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

import greentrack as gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: a temporary store)")
    parser.add_argument("--seconds", type=float, default=1.5, help="how long to work")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="greentrack-mlflow-") as tmp:
        uri = args.tracking_uri or f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        if not args.tracking_uri:  # artifacts in the temporary folder too, not ./mlruns
            art = (Path(tmp) / "artifacts").as_uri()
            mlflow.create_experiment("greentrack-example", artifact_location=art)
            mlflow.set_experiment("greentrack-example")
        with (
            mlflow.start_run() as active,
            gt.track("mlflow-demo", project="examples", region="DE", checkpoint_s=0.5),
        ):
            deadline, x = time.monotonic() + args.seconds, 0.0
            while time.monotonic() < deadline:
                x += sum(i * i for i in range(10_000)) * 1e-12  # some CPU work
            mlflow.log_metric("x", x)
        client = MlflowClient(uri)
        got = client.get_run(active.info.run_id)
        print(f"MLflow run {active.info.run_id[:8]} ({uri}):")
        for key in sorted(got.data.metrics):
            n = len(client.get_metric_history(active.info.run_id, key))
            print(f"  metric {key} = {got.data.metrics[key]:.4g} ({n} points)")
        for key, value in sorted(got.data.params.items()):
            print(f"  param  {key} = {value}")
        for a in client.list_artifacts(active.info.run_id, "greentrack"):
            print(f"  artifact {a.path}")


if __name__ == "__main__":
    main()
