"""A tracked run's energy, power and CO2e as TensorBoard scalars, read back.

    pip install -e '.[tensorboard]'
    python examples/tensorboard_scalars.py --logdir runs/greentrack
    tensorboard --logdir runs

Passes a log dir to gt.track (a torch SummaryWriter works the same: tensorboard=writer), then
reads the event file back with TensorBoard's own reader and prints the last value of each scalar.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import greentrack as gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", help="log directory (default: a new temporary one)")
    parser.add_argument("--seconds", type=float, default=1.5, help="how long to work")
    args = parser.parse_args()
    logdir = args.logdir or tempfile.mkdtemp(prefix="greentrack-tb-")
    with gt.track("tensorboard-demo", project="examples", region="SE", checkpoint_s=0.5,
                  tensorboard=logdir):  # fmt: skip
        deadline, x = time.monotonic() + args.seconds, 0.0
        while time.monotonic() < deadline:
            x += sum(i * i for i in range(10_000)) * 1e-12  # some CPU work
    acc = EventAccumulator(logdir)
    acc.Reload()
    print(f"scalars in {logdir}:")
    for tag in sorted(acc.Tags()["scalars"]):
        events = acc.Scalars(tag)
        print(f"  {tag} = {events[-1].value:.4g} at step {events[-1].step} ({len(events)} points)")


if __name__ == "__main__":
    main()
