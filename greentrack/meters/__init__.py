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

Which meters exist, in which order, and how each is opened and detected is one table:
:data:`greentrack.meters.registry.METERS` (adding a meter is one module plus one line there).
:func:`open_meters` returns only meters that are present: RAPL where its counters are readable,
else the CPU estimate; the RAPL DRAM domain where present, else the RAM estimate; NVML for the
visible GPUs, if any. It never fails because of hardware: a RAPL permission problem becomes a
warning (with the fix) on the CPU estimator, to be stored on the run. :func:`detect` says, for
``greentrack detect``, what each meter would do here and why. Nothing is cached between calls,
so each call sees the current ``Config.sysfs`` and environment.

The meter classes are imported on first use (``from greentrack.meters import NvmlMeter`` works
as always): a tracked run imports only the modules of the meters its host can have (see the
``present`` checks of the registry), so a host without an NVIDIA driver or RAPL never imports
:mod:`~greentrack.meters.nvml` or :mod:`~greentrack.meters.rapl`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greentrack.config import Config
from greentrack.meters import registry
from greentrack.meters.base import DeviceReading, Meter, MeterStatus, NullMeter

if TYPE_CHECKING:
    from greentrack.meters.estimate import CpuEstimateMeter, RamEstimateMeter
    from greentrack.meters.nvml import NvmlMeter
    from greentrack.meters.rapl import RaplMeter
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

#: The public meter classes imported on first use: name -> module.
_LAZY = {
    "CpuEstimateMeter": "greentrack.meters.estimate",
    "RamEstimateMeter": "greentrack.meters.estimate",
    "NvmlMeter": "greentrack.meters.nvml",
    "RaplMeter": "greentrack.meters.rapl",
    "PowerTrace": "greentrack.meters.replay",
    "ReplayMeter": "greentrack.meters.replay",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def open_meters(
    config: Config, *, gpu: bool = True, cpu: bool = True, ram: bool = True, node: bool = True
) -> list[Meter]:
    """The meters present on this host for the requested components (not started).

    Args:
        config: settings; ``config.sysfs`` is where RAPL is looked for.
        gpu: measure NVIDIA GPUs (those in ``CUDA_VISIBLE_DEVICES``) if NVML works.
        cpu: measure the CPU: RAPL packages, else the TDP × load estimate.
        ram: measure memory: the RAPL DRAM domain, else the 0.375 W/GiB estimate.
        node: read the whole node's power from its BMC (IPMI DCMI or Redfish) where one is
            configured or present; shown beside the components, never added to them.

    Returns:
        Meters in the order of :data:`~greentrack.meters.registry.METERS` (RAPL, CPU
        estimate, RAM estimate, NVML); only those in use. Never raises for missing or
        unreadable hardware; problems are in each meter's warnings. NVML failing to initialise
        where an NVIDIA driver is present (library/driver mismatch, ...) gives a device-less
        ``nvml`` meter whose warning is the error and its fix.
    """
    wanted = frozenset(
        c for c, on in (("gpu", gpu), ("cpu", cpu), ("ram", ram), ("node", node)) if on
    )
    ctx = registry.OpenContext(config, wanted)
    meters: list[Meter] = []
    for entry in registry.METERS:
        if not wanted.intersection(entry.components) or not entry.may_open(ctx):
            continue  # not asked for, or its hardware is absent (its module never imported)
        meter = entry.opener()(ctx)
        if meter is not None:
            meters.append(meter)
    return meters


def detect(config: Config) -> list[MeterStatus]:
    """What each meter kind does on this host, for ``greentrack detect``.

    Returns the statuses of every line of :data:`~greentrack.meters.registry.METERS`: ``nvml``,
    ``rapl`` (CPU packages), ``rapl-dram``, ``cpu-estimate`` and ``ram-estimate`` — available
    or not, why (with the fix where there is one), devices and method. The estimates are
    always available; their reason says whether :func:`open_meters` would use them. The
    meters are asked in the registry's order (a fallback's answer depends on those before it)
    and listed GPU meters first, then the host's, each group in the registry's order.
    """
    ctx = registry.DetectContext(config)
    for entry in registry.METERS:
        ctx.current = entry
        ctx.found.extend((entry, status) for status in entry.detector()(ctx))
    ctx.current = None
    gpu_first = sorted(
        range(len(ctx.found)), key=lambda i: ("gpu" not in ctx.found[i][0].components, i)
    )
    return [ctx.found[i][1] for i in gpu_first]
