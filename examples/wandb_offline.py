"""A tracked run's energy and CO2e in the Weights & Biases run you already keep (offline here).

    pip install -e '.[wandb]'
    python examples/wandb_offline.py             # WANDB_MODE=offline, into a temporary folder
    wandb sync <the printed folder>              # later, to upload it

Under an active wandb.run, gt.track adds greentrack/energy_kwh, greentrack/co2e_g and per device
greentrack/energy_kwh/<device>, greentrack/power_w/<device> to your history (joined to your own
steps) and, at stop, to the run's summary. Every checkpoint, the final one included, also goes
into the W&B run file greentrack/checkpoints.jsonl (one JSON object a line, the same keys plus
greentrack/t_s and greentrack/run_id; here under <the printed folder>/files), uploaded once,
whole, when the W&B run ends (wandb sync for an offline run).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import greentrack as gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="W&B folder (default: a new temporary one)")
    parser.add_argument("--steps", type=int, default=8, help="training steps (0.2 s each)")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")  # no network, no account needed
    os.environ.setdefault("WANDB_SILENT", "true")
    folder = args.dir or tempfile.mkdtemp(prefix="greentrack-wandb-")
    import wandb

    wrun = wandb.init(project="greentrack-example", dir=folder)
    with gt.track("wandb-demo", project="examples", region="PL", checkpoint_s=0.5):
        for step in range(args.steps):
            deadline, x = time.monotonic() + 0.2, 0.0
            while time.monotonic() < deadline:
                x += sum(i * i for i in range(10_000)) * 1e-12  # some CPU work
            wrun.log({"x": x}, step=step)
    keys = wrun.summary.keys()  # a wandb summary object, not a dict
    summary = {k: wrun.summary[k] for k in keys if k.startswith("greentrack/")}
    run_dir = os.path.dirname(wrun.dir)
    wrun.finish()
    print(f"W&B run in {run_dir} ({os.environ['WANDB_MODE']}); its summary:")
    for key, value in sorted(summary.items()):
        print(f"  {key} = {value:.4g}")


if __name__ == "__main__":
    main()
