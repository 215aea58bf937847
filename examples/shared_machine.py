"""On a shared machine, charge a run for its own processes only: ``cpu_share="process"``.

Somebody else's program burns a core while this script's worker process burns another. The
machine-wide estimate (the default) charges the run for the other program too; the process share
counts this script and its worker only. Without RAPL (most cloud VMs, these CI machines) both CPU
figures are estimates, and say so.

    python examples/shared_machine.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time

import greentrack as gt

BURN = "import time\nt = time.time()\nwhile time.time() - t < {s}: pass\n"


def work(seconds: float) -> float:
    """A worker of ours: CPU-bound for ``seconds``."""
    t, x = time.time(), 0.0
    while time.time() - t < seconds:
        x += 1.0
    return x


def train(seconds: float) -> None:
    with mp.get_context("spawn").Pool(1) as pool:  # our own child: counted in both modes
        pool.apply(work, (seconds,))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each tracked job")
    args = ap.parse_args()
    # somebody else's program: started through a shell that exits at once, so it is not ours
    burner = f'{sys.executable} -c "{BURN.format(s=4 * args.seconds + 5)}" >/dev/null 2>&1'
    other = subprocess.run(
        ["sh", "-c", f"{burner} & echo $!"], capture_output=True, text=True, check=True
    )
    other_pid = int(other.stdout.split()[-1])
    try:
        for share in ("machine", "process"):
            with gt.track(f"train-{share}", project="shared-machine", cpu_share=share) as run:
                train(args.seconds)
            for c in run.summary().components:
                if c.component == "cpu":
                    print(f"cpu_share={share:<8} {c.device:<14} {c.energy_j:8.1f} J  [{c.method}]")
    finally:
        os.kill(other_pid, 9)


if __name__ == "__main__":
    main()
