"""Energy meters and the factory that picks the ones present on this host.

=================  ==========================  =================================  ==========
meter              devices                     source                             method
=================  ==========================  =================================  ==========
NvmlMeter          ``gpu:<nvml index>``        NVML energy counter / power        counter /
                                                                                  sampled
RaplMeter          ``cpu:package-N``,          Linux powercap RAPL ``energy_uj``  counter
                   ``dram:package-N``
CpuEstimateMeter   ``cpu:estimate``            scaled TDP × load curve (or this   estimated
                                               process tree's share of it)
RamEstimateMeter   ``ram:estimate``            0.375 W per GiB installed (or      estimated
                                               used by this process tree)
ReplayMeter        any                         a scripted / recorded power trace  (label)
=================  ==========================  =================================  ==========

:func:`open_meters` returns only meters that are present: RAPL where its counters are readable,
else the CPU estimate; the RAPL DRAM domain where present, else the RAM estimate; NVML for the
visible GPUs, if any. It never fails because of hardware: a RAPL permission problem becomes a
warning (with the fix) on the CPU estimator, to be stored on the run. :func:`detect` says, for
``greentrack detect``, what each meter would do here and why. Nothing is cached between calls,
so each call sees the current ``Config.sysfs`` and environment.
"""

from __future__ import annotations

from greentrack.config import Config
from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import DeviceReading, Meter, MeterStatus, NullMeter
from greentrack.meters.estimate import CpuEstimateMeter, RamEstimateMeter, host_cpu_power_model
from greentrack.meters.nvml import NvmlMeter
from greentrack.meters.nvml import driver_present as nvml_driver_present
from greentrack.meters.nvml import init_failure_is_expected as nvml_init_failure_is_expected
from greentrack.meters.proctree import ProcessTree
from greentrack.meters.rapl import RaplMeter, powercap_dir
from greentrack.meters.replay import PowerTrace, ReplayMeter

__all__ = [
    "CpuEstimateMeter",
    "DeviceReading",
    "Meter",
    "MeterStatus",
    "NullMeter",
    "NvmlMeter",
    "PowerTrace",
    "RamEstimateMeter",
    "RaplMeter",
    "ReplayMeter",
    "detect",
    "open_meters",
]


def _open_rapl(config: Config, components: list[str]) -> tuple[RaplMeter | None, str | None]:
    """RAPL meter for ``components`` or None, and the permission problem to surface (if any)."""
    try:
        return RaplMeter.open(config.sysfs, components=components), None
    except MeterPermissionError as e:
        return None, str(e)
    except MeterError:
        return None, None


def open_meters(
    config: Config, *, gpu: bool = True, cpu: bool = True, ram: bool = True
) -> list[Meter]:
    """The meters present on this host for the requested components (not started).

    Args:
        config: settings; ``config.sysfs`` is where RAPL is looked for.
        gpu: measure NVIDIA GPUs (those in ``CUDA_VISIBLE_DEVICES``) if NVML works.
        cpu: measure the CPU: RAPL packages, else the TDP × load estimate.
        ram: measure memory: the RAPL DRAM domain, else the 0.375 W/GiB estimate.

    Returns:
        Meters in the order RAPL, CPU estimate, RAM estimate, NVML; only those in use. Never
        raises for missing or unreadable hardware; problems are in each meter's warnings. NVML
        failing to initialise where an NVIDIA driver is present (library/driver mismatch, ...)
        gives a device-less ``nvml`` meter whose warning is the error and its fix.
    """
    meters: list[Meter] = []
    if cpu or ram:
        wanted = [c for c, on in (("cpu", cpu), ("dram", ram)) if on]
        rapl, problem = _open_rapl(config, wanted)
        have = {d.component for d in rapl.domains} if rapl else set()
        tree = ProcessTree() if config.cpu_share == "process" else None
        if rapl is not None:
            if tree is not None:
                rapl.warn(
                    "cpu_share=process applies to the estimates only: RAPL measures whole CPU "
                    "packages and DRAM, which other programs on this machine share"
                )
            meters.append(rapl)
        if cpu and "cpu" not in have:
            est = CpuEstimateMeter(tree=tree)
            if problem:
                est.warn(problem)
                problem = None
            meters.append(est)
        if ram and "dram" not in have:
            ram_est = RamEstimateMeter(tree=tree)
            if problem:
                ram_est.warn(problem)
            meters.append(ram_est)
    if gpu and nvml_driver_present():
        try:
            nvml = NvmlMeter()
        except MeterError as e:
            nvml = None
            if not nvml_init_failure_is_expected(e):  # a driver, yet NVML fails: say so
                failed = NullMeter()
                failed.name = "nvml"
                failed.warn(f"GPU energy not measured: {e}")
                meters.append(failed)
        if nvml is not None:
            warnings = nvml.pop_warnings()
            for w in warnings:
                nvml.warn(w)
            if nvml.devices or warnings:
                meters.append(nvml)
            else:
                nvml.close()
    return meters


def _detect_nvml() -> MeterStatus:
    if not nvml_driver_present():
        return MeterStatus(
            "nvml",
            False,
            "no NVIDIA driver (/proc/driver/nvidia absent): no GPU to measure; "
            "set GREENTRACK_NVML=1 to try NVML anyway",
        )
    try:
        meter = NvmlMeter()
    except MeterError as e:
        if nvml_init_failure_is_expected(e):
            return MeterStatus("nvml", False, f"GPU energy not measured: {e}")
        return MeterStatus(
            "nvml",
            False,
            f"NVIDIA driver present but NVML does not work, GPU energy not measured: {e}",
        )
    try:
        methods = meter.methods
        notes = meter.pop_warnings() + list(meter.notes().values())
        if not methods:
            why = "; ".join(notes) or "no NVIDIA GPU visible (CUDA_VISIBLE_DEVICES?)"
            return MeterStatus("nvml", False, f"NVML works but no GPU is measured: {why}")
        names = meter.describe()
        parts = [f"{d} {names[d]} ({m})" for d, m in methods.items()]
        kinds = sorted(set(methods.values()))
        reason = "; ".join([", ".join(parts), *notes])
        return MeterStatus("nvml", True, reason, list(methods), "/".join(kinds))
    finally:
        meter.close()


def _detect_rapl(config: Config, component: str, name: str) -> MeterStatus:
    root = powercap_dir(config.sysfs)
    try:
        meter = RaplMeter.open(config.sysfs, components=[component])
    except MeterError as e:  # includes MeterPermissionError, whose message is the fix
        return MeterStatus(name, False, str(e))
    what = "CPU package" if component == "cpu" else "DRAM"
    zones = ", ".join(f"{d.device} ({d.zone})" for d in meter.domains)
    meter.start(0.0)  # one read of each counter: which zones may mirror another
    twins = [f"{z} may mirror {first}" for z, first in meter.mirror_candidates().items()]
    note = (
        f"; {', '.join(twins)} (equal now: counted once if they move together over a run's "
        "first reads)"
        if twins
        else ""
    )
    return MeterStatus(
        name,
        True,
        f"{what} energy counters readable under {root}: {zones}{note}",
        meter.devices,
        "counter",
    )


def detect(config: Config) -> list[MeterStatus]:
    """What each meter kind does on this host, for ``greentrack detect``.

    Returns one :class:`MeterStatus` each for ``nvml``, ``rapl`` (CPU packages), ``rapl-dram``,
    ``cpu-estimate`` and ``ram-estimate``: available or not, why (with the fix where there is
    one), devices and method. The estimates are always available; their reason says whether
    :func:`open_meters` would use them.
    """
    rapl = _detect_rapl(config, "cpu", "rapl")
    dram = _detect_rapl(config, "dram", "rapl-dram")
    cpu_model = host_cpu_power_model()
    cpu_use = "not used: RAPL measures the CPU" if rapl.available else "in use: no usable RAPL"
    ram_est = RamEstimateMeter()
    ram_use = "not used: RAPL measures DRAM" if dram.available else "in use: no RAPL DRAM domain"
    if config.cpu_share == "process":
        load = "this process tree's share of all CPUs' time (cpu_share=process)"
        ram_what = "GiB used by this process tree (cpu_share=process)"
    else:
        load = (
            "machine-wide load (cpu_share=machine, the default; "
            "cpu_share=process would count only this job's processes)"
        )
        ram_what = f"{ram_est.total_gib:.1f} GiB = {ram_est.power_w:.1f} W"
    return [
        _detect_nvml(),
        rapl,
        dram,
        MeterStatus(
            "cpu-estimate",
            True,
            f"{cpu_use}; {cpu_model.model!r}: {cpu_model.basis}; load curve with idle power "
            f"(Boavizta/Teads) × {load}",
            [CpuEstimateMeter.device],
            "estimated",
        ),
        MeterStatus(
            "ram-estimate",
            True,
            f"{ram_use}; {ram_est.w_per_gib:g} W/GiB × {ram_what}",
            [RamEstimateMeter.device],
            "estimated",
        ),
    ]
