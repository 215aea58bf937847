"""greentrack's and CodeCarbon's CPU estimates side by side, against published figures.

    python benchmarks/bench_estimate.py [--seconds 10]

1. **Scripted machines** (the ``cpuinfo`` of ``tests/fakes/procfs.py``, read through
   ``GREENTRACK_PROCFS``): a laptop i7-8650U, a 2-socket Xeon Gold 6148 server, a 4-vCPU VM on a
   64-core EPYC 7763 (``hypervisor`` flag) and a 2-vCPU VM whose model reads "AMD EPYC". For
   each, the modelled CPU power at 0, 50 and 100 % load:

   - greentrack: :func:`greentrack.meters.cpu_model.host_cpu_power_model` (scaled TDP × the
     Boavizta/Teads load curve);
   - CodeCarbon 3.x (installed version), its ``cpu_load`` mode on a host without RAPL, as its code
     computes it: TDP from its own registry lookup (``codecarbon.core.cpu.TDP``, fuzzy match;
     unknown model: 4 W × threads) × sockets (``resource_tracker.set_CPU_tracking``), times
     ``0.1 + 0.9 × load³`` (``CPU._get_power_from_cpu_load``, machine mode). A VM reports one
     socket;
   - published: the vendor TDP of what the machine sees (Intel ARK: i7-8650U 15 W, Xeon Gold
     6148 150 W per socket; AMD: EPYC 7763 280 W, 64 cores / 128 threads, so 4 vCPUs are 4/128
     of it) at 100 % load, and at idle the SPECpower-based average of Teads (B. Davy, 2021: 12 %
     of TDP at 0 % load). A hidden model ("AMD EPYC") has no published figure.

2. **This machine**, in one run: greentrack (``gt.track``, default meters) and CodeCarbon
   (``OfflineEmissionsTracker``) measure the same ``--seconds`` of one busy core side by side;
   their CPU energies and mean powers are printed (both are estimates here when there is no
   RAPL).

Prints Markdown tables (pasted into the README's Meters section).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the scripted machines live with the tests

from fakes.procfs import EPYC_VM, LAPTOP_I7, MACHINES, UNKNOWN_VM, XEON_2S, ScriptedProcfs  # noqa: E402

from greentrack.meters.cpu_model import host_cpu_power_model, read_cpuinfo  # noqa: E402

PUBLISHED_TDP_W = {  # vendor TDP of what the machine sees, and where it comes from
    LAPTOP_I7.label: (15.0, "Intel ARK i7-8650U: 15 W"),
    XEON_2S.label: (2 * 150.0, "Intel ARK Gold 6148: 150 W × 2 sockets"),
    EPYC_VM.label: (280.0 * 4 / 128, "AMD EPYC 7763: 280 W, 128 threads; 4 of them"),
    UNKNOWN_VM.label: (None, "none: the hypervisor hides the model"),
}
TEADS_IDLE = 0.12  # Teads / SPECpower: average power at 0 % load per unit of TDP
LOADS = (0.0, 0.5, 1.0)


def codecarbon_tdp_w(model: str, threads: int) -> tuple[float, bool]:
    """CodeCarbon's TDP for ``model`` (its own registry lookup) and whether it is its default."""
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE, TDP

    tdp = TDP.__new__(TDP)._get_cpu_power_from_registry(model)
    if tdp is None:
        return float(DEFAULT_POWER_PER_CORE * threads), True
    return float(tdp), False


def codecarbon_power_w(tdp_w: float, sockets: int, load: float) -> float:
    """CodeCarbon 3.x ``cpu_load`` mode, machine tracking: TDP × sockets × (0.1 + 0.9 load³)."""
    return tdp_w * sockets * (0.1 + 0.9 * load**3)


def scripted_table() -> list[str]:
    rows = [
        "| machine | load | greentrack W | CodeCarbon W | published W | published source |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(MACHINES):
            root = Path(tmp) / f"proc{i}"
            ScriptedProcfs(root, m)
            os.environ["GREENTRACK_PROCFS"] = str(root)
            gt_model = host_cpu_power_model()
            cc_tdp, cc_default = codecarbon_tdp_w(m.model, m.threads)
            sockets = 1 if m.hypervisor else m.packages
            ref_w, ref_src = PUBLISHED_TDP_W[m.label]
            for load in LOADS:
                gt_w = gt_model.power_w(load)
                cc_w = codecarbon_power_w(cc_tdp, sockets, load)
                if ref_w is None or load == 0.5:
                    ref = "—"
                else:
                    ref = f"{ref_w * (1.0 if load == 1.0 else TEADS_IDLE):.3g}"
                src = ref_src if load == 1.0 else ("Teads/SPECpower: 12 % of TDP" if load == 0.0
                                                   and ref_w else "")  # fmt: skip
                gt_cell = f"{gt_w:.3g}" + (" (default)" if gt_model.default else "")
                cc_cell = f"{cc_w:.3g}" + (" (default)" if cc_default else "")
                rows.append(f"| {m.label} | {load:.0%} | {gt_cell} | {cc_cell} | {ref} | {src} |")
        os.environ.pop("GREENTRACK_PROCFS", None)
    return rows


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def this_machine(seconds: float) -> list[str]:
    """greentrack and CodeCarbon around the same busy core, in one run."""
    import greentrack as gt

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    from codecarbon import OfflineEmissionsTracker

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GREENTRACK_HOME", str(Path(tmp) / "home"))
        cc = OfflineEmissionsTracker(country_iso_code="FRA", measure_power_secs=1,
                                     save_to_file=False, log_level="error",
                                     tracking_mode="machine")  # fmt: skip
        cc.start()
        with gt.track("bench-estimate", db=f"sqlite:///{tmp}/gt.db", interval_s=0.5) as run:
            subprocess.run([sys.executable, "-c", BURN.format(s=seconds)], check=True)
        cc.stop()
        s = run.summary()
        gt_j = sum(c.energy_j for c in s.components if c.component == "cpu")
        cc_j = cc.final_emissions_data.cpu_energy * 3.6e6
        cc_s = cc.final_emissions_data.duration
        power, vm = host_cpu_power_model(), read_cpuinfo().hypervisor
    how = f"{power.short} on the load curve"
    return [
        f"This machine: {power.model!r}, {power.threads} threads "
        f"({'VM' if vm else 'bare metal'}), one core busy for {seconds:g} s of CPU time "
        f"({s.duration_s:.1f} s wall), machine-wide load (shared with other programs)",
        "",
        "| | CPU energy J | mean CPU power W | how |",
        "|---|---|---|---|",
        f"| greentrack | {gt_j:.1f} | {gt_j / s.duration_s:.2f} | {how} |",
        f"| CodeCarbon {__import__('codecarbon').__version__} | {cc_j:.1f} | {cc_j / cc_s:.2f} "
        f"| cpu_load mode (TDP × (0.1 + 0.9 load³)) |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="busy time on this machine")
    args = ap.parse_args()
    print(f"# CPU estimates ({platform.node()}, Python {platform.python_version()})\n")
    print("\n".join(scripted_table()))
    print()
    print("\n".join(this_machine(args.seconds)))


if __name__ == "__main__":
    main()
