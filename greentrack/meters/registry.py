"""Every meter greentrack knows, one line each, in the order the factory opens them.

:func:`greentrack.meters.open_meters` and :func:`greentrack.meters.detect` do nothing but walk
:data:`METERS`. Each line names the meter, the components it can measure, and two functions of
its module (imported only when the line is used), written as ``"module:function"``:

- ``open``: ``(ctx: OpenContext) -> Meter | None`` — the meter for what is present here, not
  started, or None when there is nothing to measure. It must not raise for missing or
  unreadable hardware: a problem the user can fix goes on the meter with :meth:`Meter.warn`,
  or into ``ctx.problems`` when no meter is opened (the next fallback carries it to the run). A
  meter that opens marks what it measures in ``ctx.covered``.
- ``detect``: ``(ctx: DetectContext) -> list[MeterStatus]`` — what ``greentrack detect``
  prints for it: usable here or not, why (with the fix), devices and method.
- ``present`` (optional): ``(ctx: OpenContext) -> bool`` — a cheap check, in a module that
  imports next to nothing (:mod:`greentrack.meters.presence`), that the hardware can be here:
  it only stats a path, reads an environment variable or looks in :data:`sys.modules`. When
  it says False, :func:`~greentrack.meters.open_meters` skips the line without importing the
  meter's module (1–3 ms each on the development VM, ``python -X importtime``). It must be a
  condition ``open`` itself requires (``open`` uses the same helper or path): False means
  ``open`` would return None without touching ``ctx``, so the meters opened and their
  warnings are the same with or without it (``tests/test_meters_presence.py``). ``detect``
  never asks it (``greentrack detect`` imports every meter).

Adding a meter is one module plus one line here:

1. ``greentrack/meters/<name>.py``: the :class:`~greentrack.meters.base.Meter` subclass, an
   ``open_meter(ctx)`` and a ``detect_meter(ctx)``. A counter meter opens when
   ``ctx.wants(component)``; a fallback (an estimate) only when ``ctx.needs(component)``
   (wanted, and no meter opened before it measures it). Where the module is more than a few
   lines to import and its hardware is absent on most hosts, give the line a ``present``
   check too (a function in :mod:`greentrack.meters.presence`, which ``open`` also calls).
2. A :class:`MeterEntry` in :data:`METERS`, placed before the fallbacks of the components it
   measures (the estimates stand in for whatever came before them and found nothing).

Components: ``gpu``, ``cpu`` and ``ram`` (RAPL's ``dram`` domain measures ``ram``), and ``node``
(a whole machine's power, from its BMC: beside the others, never added to them; see
:func:`greentrack.meters.nodepower.is_node`), which :func:`~greentrack.meters.open_meters` can be
asked for. A line is used only when one of its components is wanted.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greentrack.config import Config
    from greentrack.meters.base import Meter, MeterStatus
    from greentrack.meters.proctree import ProcessTree

__all__ = ["METERS", "DetectContext", "MeterEntry", "OpenContext", "entry"]

#: A device id's prefix -> the component it measures (``dram:package-0`` measures ``ram``).
_DEVICE_COMPONENT = {"dram": "ram"}


@dataclass(frozen=True, slots=True)
class MeterEntry:
    """One meter kind of :data:`METERS`.

    Attributes:
        name: the meter's name (``Meter.name``, the first ``MeterStatus.name`` it reports).
        label: how messages name it, e.g. ``RAPL`` ("not used: RAPL measures the CPU").
        components: what it can measure: ``gpu``, ``cpu``, ``ram``, ``node``.
        open: ``"module:function"`` opening it (see the module docstring).
        detect: ``"module:function"`` saying what ``greentrack detect`` prints for it.
        summary: devices, source and method in a few words (documentation).
        present: ``"module:function"`` saying cheaply whether the hardware can be here, asked
            before ``open`` is imported (see the module docstring), or None: always open.
    """

    name: str
    label: str
    components: tuple[str, ...]
    open: str
    detect: str
    summary: str
    present: str | None = None

    def opener(self) -> Callable[[OpenContext], Meter | None]:
        """The ``open`` function (imports its module)."""
        return _resolve(self.open)

    def detector(self) -> Callable[[DetectContext], list[MeterStatus]]:
        """The ``detect`` function (imports its module)."""
        return _resolve(self.detect)

    def may_open(self, ctx: OpenContext) -> bool:
        """False when the ``present`` check says the hardware is not here (``open`` would
        return None); True otherwise, when the line has no check, or when the ``open``
        module is imported already (the check would save nothing: ``open`` decides). Imports
        only the check's module."""
        if self.present is None or self.open.partition(":")[0] in sys.modules:
            return True
        return bool(_resolve(self.present)(ctx))


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


#: The meters, in the order :func:`~greentrack.meters.open_meters` opens and returns them and
#: :func:`~greentrack.meters.detect` asks them (``greentrack detect`` lists the GPU meters
#: first). Fallbacks come after the meters they stand in for.
METERS: tuple[MeterEntry, ...] = (
    MeterEntry(
        "rapl", "RAPL", ("cpu", "ram"),
        "greentrack.meters.rapl:open_meter", "greentrack.meters.rapl:detect_meter",
        "cpu:package-N, dram:package-N: Linux powercap RAPL energy_uj (counter)",
        present="greentrack.meters.presence:powercap",
    ),
    MeterEntry(
        "amdsmi", "amdsmi", ("gpu",),
        "greentrack.meters.amdsmi:open_meter", "greentrack.meters.amdsmi:detect_meter",
        "gpu:amd-<i>: amdsmi energy counter (µJ ticks), else sampled power (counter / sampled)",
        present="greentrack.meters.presence:amdgpu",
    ),
    MeterEntry(
        "hwmon", "hwmon", ("gpu", "cpu", "ram"),
        "greentrack.meters.hwmon:open_meter", "greentrack.meters.hwmon:detect_meter",
        "gpu:amdgpu-<pci>, gpu:intel-<pci>, board:<rail>, rail:<rail>: hwmon energy/power, "
        "Jetson INA3221 rails (counter / sampled)",
        present="greentrack.meters.presence:hwmon",
    ),
    MeterEntry(
        "apple", "Apple silicon", ("gpu", "cpu", "ram"),
        "greentrack.meters.apple:open_meter", "greentrack.meters.apple:detect_meter",
        "cpu:apple, dram:apple, gpu:apple, ane:apple: IOReport via zeus-apple-silicon (counter)",
        present="greentrack.meters.presence:apple",
    ),
    MeterEntry(
        "cpu-estimate", "CPU estimate", ("cpu",),
        "greentrack.meters.estimate:open_cpu_estimate",
        "greentrack.meters.estimate:detect_cpu_estimate",
        "cpu:estimate: scaled TDP × load curve, or this process tree's share (estimated)",
    ),
    MeterEntry(
        "ram-estimate", "RAM estimate", ("ram",),
        "greentrack.meters.estimate:open_ram_estimate",
        "greentrack.meters.estimate:detect_ram_estimate",
        "ram:estimate: 0.375 W per GiB installed, or used by this process tree (estimated)",
    ),
    MeterEntry(
        "nvml", "NVML", ("gpu",),
        "greentrack.meters.nvml:open_meter", "greentrack.meters.nvml:detect_meter",
        "gpu:<nvml index>: NVML energy counter, else sampled power (counter / sampled)",
        present="greentrack.meters.presence:nvidia",
    ),
    MeterEntry(
        "accel-estimate", "accelerator estimate", ("gpu",),
        "greentrack.meters.accel_estimate:open_meter",
        "greentrack.meters.accel_estimate:detect_meter",
        "gpu:estimate-<i>: torch's devices no meter reads, TDP table × utilisation (estimated)",
        present="greentrack.meters.presence:torch_cuda",
    ),
    MeterEntry(
        "redfish", "Redfish", ("node",),
        "greentrack.meters.bmc:open_redfish", "greentrack.meters.redfish:detect_meter",
        "node:bmc: Redfish EnvironmentMetrics / PowerSubsystem / Power (sampled; beside the "
        "components)",
    ),
    MeterEntry(
        "ipmi", "IPMI DCMI", ("node",),
        "greentrack.meters.bmc:open_ipmi", "greentrack.meters.ipmi:detect_meter",
        "node:bmc: ipmitool dcmi power reading (sampled; beside the components)",
    ),
)  # fmt: skip


def entry(name: str) -> MeterEntry:
    """The line of :data:`METERS` called ``name``. Raises KeyError when there is none."""
    for e in METERS:
        if e.name == name:
            return e
    raise KeyError(name)


class OpenContext:
    """What the factory knows while it opens meters; every ``open`` function gets it.

    Attributes:
        config: settings (``config.sysfs``, ``config.cpu_share``...).
        wanted: the components asked for (``gpu``, ``cpu``, ``ram``, ``node``).
        covered: the components a meter opened so far measures (each opener adds its own).
        claimed_pci: PCI addresses of devices a meter opened so far reads (amdsmi), so a
            fallback reading the same device another way (amdgpu hwmon) skips them.
        problems: why a meter that could have measured something did not open, with the fix
            (e.g. RAPL's permission problem); the next fallback puts them on the run.
    """

    def __init__(self, config: Config, wanted: frozenset[str]) -> None:
        self.config = config
        self.wanted = wanted
        self.covered: set[str] = set()
        self.problems: list[str] = []
        self.claimed_pci: set[str] = set()
        self._tree: ProcessTree | None = None

    def wants(self, component: str) -> bool:
        """Whether ``component`` was asked for."""
        return component in self.wanted

    def needs(self, component: str) -> bool:
        """Whether ``component`` was asked for and no meter opened so far measures it."""
        return component in self.wanted and component not in self.covered

    def take_problems(self) -> list[str]:
        """Return and clear :attr:`problems` (they are said once per run, not per meter)."""
        out, self.problems = self.problems, []
        return out

    def tree(self) -> ProcessTree | None:
        """The process tree the estimates count with ``cpu_share="process"`` (one, shared by
        every meter of this call), else None."""
        if self.config.cpu_share != "process":
            return None
        if self._tree is None:
            from greentrack.meters.proctree import ProcessTree

            self._tree = ProcessTree(proc=self.config.procfs)
        return self._tree


@dataclass
class DetectContext:
    """What :func:`~greentrack.meters.detect` has found so far; every ``detect`` function
    gets it (a fallback says whether an earlier meter measures its component).

    Attributes:
        config: settings.
        found: ``(entry, status)`` of every status reported so far, in order.
        current: the line being asked now (set by :func:`~greentrack.meters.detect`).
    """

    config: Config
    found: list[tuple[MeterEntry, MeterStatus]] = field(default_factory=list)
    current: MeterEntry | None = None

    def measured_by(self, component: str) -> str | None:
        """The label of the first usable meter so far whose devices measure ``component``."""
        for e, status in self.found:
            if status.available and any(_component(d) == component for d in status.devices):
                return e.label
        return None

    def before(self, component: str) -> str:
        """The labels of the meters before this one that can measure ``component``, joined
        with " or " (e.g. ``RAPL``): what a fallback says is missing when it is in use."""
        labels: list[str] = []
        for e in METERS:
            if e is self.current:
                break
            if component in e.components:
                labels.append(e.label)
        return " or ".join(labels) or "meter"


def _component(device: str) -> str:
    prefix = device.split(":", 1)[0]
    return _DEVICE_COMPONENT.get(prefix, prefix)
