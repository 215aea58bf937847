"""Cost of one meter read: NVML (simulated GPUs under the real ``pynvml``) and RAPL (a scripted
sysfs tree), so the per-read work greentrack adds stays small.

    python benchmarks/bench_meters.py            # table
    python benchmarks/bench_meters.py --json     # one JSON object

Per NVML read greentrack calls, for each counter GPU, ``nvmlDeviceGetTotalEnergyConsumption``
and ``nvmlDeviceGetPowerUsage`` (the cross-check and short-window figures need the power). The
simulated calls cost what Python function calls cost; on real hardware each NVML call is a
driver ioctl (tens of µs), so the figure to watch here is greentrack's own share: the read minus
the same NVML calls made bare. Median of 7 repeats of 2,000 reads each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pynvml
import pytest
from fakes.nvml import FakeGpu, FakeNvml
from fakes.powercap import FakeDomain, FakePowercap, standard_domains

from greentrack.meters.nvml import NvmlMeter
from greentrack.meters.rapl import RaplMeter

READS = 2_000
REPEATS = 7


def _median_us(fn, n: int = READS) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


def bench_nvml(n_gpus: int) -> dict[str, float]:
    mp = pytest.MonkeyPatch()
    try:
        fake = FakeNvml([FakeGpu("NVIDIA H100 80GB HBM3", 400.0) for _ in range(n_gpus)])
        fake.install(mp)
        mp.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        meter = NvmlMeter()
        t = [0.0]
        meter.start(0.0)

        def one_read() -> None:
            t[0] += 0.01
            fake.t_s = t[0]
            meter.read(t[0])

        read_us = _median_us(one_read)
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n_gpus)]

        def bare_calls() -> None:
            for h in handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                pynvml.nvmlDeviceGetPowerUsage(h)

        bare_us = _median_us(bare_calls)
        pynvml.nvmlShutdown()
        meter.close()
        return {"read_us": read_us, "nvml_calls_us": bare_us, "greentrack_us": read_us - bare_us}
    finally:
        mp.undo()


def bench_rapl(mirrored: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if mirrored:
            doms = [
                FakeDomain("intel-rapl:0", "package-0-die-0", 68.0, "cpu:package-0-die-0"),
                FakeDomain("intel-rapl:1", "package-0-die-1", mirror_of="intel-rapl:0"),
            ]
        else:
            doms = standard_domains(sockets=2)
        fake = FakePowercap(Path(tmp) / "sys", doms)
        meter = RaplMeter.open(fake.sysfs)
        meter.start(0.0)
        t = [0.0]

        def one_read() -> None:
            t[0] += 1.0
            if t[0] <= 5:  # the mirror decision happens over the first reads
                fake.advance(1.0)
            meter.read(t[0])

        for _ in range(5):
            one_read()
        return {"read_us": _median_us(one_read, 500), "zones": float(len(meter.devices))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    out = {
        "nvml_1_gpu": bench_nvml(1),
        "nvml_8_gpus": bench_nvml(8),
        "rapl_2_sockets_dram": bench_rapl(False),
        "rapl_amd_mirrored_dies": bench_rapl(True),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'meter':<26}{'read µs':>10}{'NVML calls µs':>15}{'greentrack µs':>15}")
    for name, r in out.items():
        calls = f"{r['nvml_calls_us']:.1f}" if "nvml_calls_us" in r else "-"
        own = f"{r['greentrack_us']:.1f}" if "greentrack_us" in r else "-"
        print(f"{name:<26}{r['read_us']:>10.1f}{calls:>15}{own:>15}")


if __name__ == "__main__":
    main()
