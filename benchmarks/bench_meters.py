"""Cost of one meter read: NVML (simulated GPUs under the real ``pynvml``), RAPL (a scripted
sysfs tree), amdsmi (a simulated ``amdsmi`` module), hwmon (a sysfs tree) and the BMC meters
(a fake ``ipmitool``, a local Redfish server: their poll runs in the meter's own thread, so the
sampler pays only the read), so the per-read work greentrack adds stays small.

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


def bench_amdsmi(n_gpus: int) -> dict[str, float]:
    """amdsmi (simulated module on sys.path): one ``amdsmi_get_energy_count`` per GPU per read."""
    from fakes.amd import FakeAmdGpu, FakeAmdSmi

    from greentrack.meters.amdsmi import AmdSmiMeter

    mp = pytest.MonkeyPatch()
    try:
        fake = FakeAmdSmi([FakeAmdGpu("AMD Instinct MI300X", 600.0) for _ in range(n_gpus)])
        fake.install(mp)
        meter = AmdSmiMeter()
        meter.start(0.0)
        t = [0.0]

        def one_read() -> None:
            t[0] += 0.01
            fake.t_s = t[0]
            meter.read(t[0])

        read_us = _median_us(one_read)
        import amdsmi

        handles = amdsmi.amdsmi_get_processor_handles()

        def bare_calls() -> None:
            for h in handles:
                amdsmi.amdsmi_get_energy_count(h)

        bare_us = _median_us(bare_calls)
        meter.close()
        return {"read_us": read_us, "lib_calls_us": bare_us, "greentrack_us": read_us - bare_us}
    finally:
        mp.undo()


def bench_hwmon() -> dict[str, float]:
    """hwmon: an amdgpu power file and a Jetson board rail (current × voltage: two files)."""
    from fakes.hwmon import FakeHwmon

    from greentrack.meters.hwmon import HwmonMeter

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeHwmon(Path(tmp) / "sys")
        fake.add_gpu("amdgpu", "0000:0c:00.0", 250.0)
        fake.add_ina3221({"VDD_IN": 9.0, "VDD_CPU_GPU_CV": 4.0})
        meter = HwmonMeter(fake.sysfs)
        meter.start(0.0)
        t = [0.0]

        def one_read() -> None:
            t[0] += 0.01
            meter.read(t[0])

        return {"read_us": _median_us(one_read, 500), "sensors": float(len(meter.devices))}


def bench_bmc() -> dict[str, dict[str, float]]:
    """IPMI (a fake ipmitool: a shell script) and Redfish (a local HTTP server): the cost of
    one poll, paid in the meter's own thread, and of one read (what the sampler pays)."""
    from fakes.bmc import FakeIpmitool, RedfishServer

    from greentrack.meters.ipmi import IpmiMeter
    from greentrack.meters.redfish import RedfishMeter

    out: dict[str, dict[str, float]] = {}
    mp = pytest.MonkeyPatch()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            FakeIpmitool(Path(tmp), 300.0).install(mp)
            ipmi = IpmiMeter()
            with RedfishServer(Path(tmp)) as bmc:
                redfish = RedfishMeter(bmc.url, user=bmc.user, password=bmc.password)
                for name, meter in (("ipmi", ipmi), ("redfish", redfish)):
                    poll_us = _median_us(meter.poll_w, 20)
                    meter.start(0.0, poll=False)
                    clock = [0.0]

                    def one_read(meter=meter, clock=clock) -> None:
                        clock[0] += 0.01
                        meter.read(clock[0])

                    out[name] = {"read_us": _median_us(one_read), "poll_us": poll_us}
        finally:
            mp.undo()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    out = {
        "nvml_1_gpu": bench_nvml(1),
        "nvml_8_gpus": bench_nvml(8),
        "rapl_2_sockets_dram": bench_rapl(False),
        "rapl_amd_mirrored_dies": bench_rapl(True),
        "amdsmi_1_gpu": bench_amdsmi(1),
        "amdsmi_8_gpus": bench_amdsmi(8),
        "hwmon_amdgpu_jetson": bench_hwmon(),
    }
    for name, r in bench_bmc().items():
        out[f"{name}_node"] = r
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'meter':<26}{'read µs':>10}{'lib calls µs':>15}{'greentrack µs':>15}{'poll µs':>12}")
    for name, r in out.items():
        lib = r.get("nvml_calls_us", r.get("lib_calls_us"))
        calls = f"{lib:.1f}" if lib is not None else "-"
        own = f"{r['greentrack_us']:.1f}" if "greentrack_us" in r else "-"
        poll = f"{r['poll_us']:.0f}" if "poll_us" in r else "-"
        print(f"{name:<26}{r['read_us']:>10.1f}{calls:>15}{own:>15}{poll:>12}")


if __name__ == "__main__":
    main()
