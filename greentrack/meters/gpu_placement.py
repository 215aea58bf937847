"""The GPUs a process sees, as a distributed run places them on its ranks (NVIDIA and AMD).

:func:`visible_gpus` lists them per vendor, each in the order its framework numbers them (CUDA
order through NVML, HIP order through amdsmi), as :class:`VisibleGpu`:

- ``key``: the energy counter behind the GPU, the same string in every process of the host:
  what exactly one process of the host must measure. An NVIDIA GPU's UUID; a MIG slice's key
  is its parent GPU's (NVML has no per-slice energy). An AMD GPU's amdsmi UUID; the two dies
  (GCDs) of an MI250X report one package counter, so both get the key of the first die in
  amdsmi order, paired as the amdsmi meter pairs them (same board serial, the later die's
  counter between two reads of the first's; decided once, when the ranks are placed).
- ``entry``: what the rank's meter is opened with (:func:`open_gpu_meters`): the
  ``CUDA_VISIBLE_DEVICES`` entry for NVIDIA (the UUID, or ``MIG-<uuid>`` for a MIG slice, so
  the meter still notes that it measures the whole parent GPU), ``gpu:amd-<i>`` (amdsmi index)
  for AMD.
- ``dies``: for an AMD die sharing its package counter, every die of that package (amdsmi
  order; the first is the one whose rank counts it when the ranks cannot compare notes).

Which rank measures which key is :func:`greentrack.distributed.place`'s decision.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from greentrack.errors import MeterError
from greentrack.meters.base import Meter, NullMeter

__all__ = ["AMD_ENTRY", "VisibleGpu", "open_gpu_meters", "shared_counter_note", "visible_gpus"]

AMD_ENTRY = "gpu:amd-"
"""Prefix of an AMD entry: ``gpu:amd-<amdsmi index>`` (NVIDIA entries are UUIDs or indices)."""


@dataclass(frozen=True, slots=True)
class VisibleGpu:
    """One GPU this process sees (see the module docstring).

    Attributes:
        key: the energy counter behind it, alike in every process of the host.
        entry: how the rank's meter is told to measure it (``Placement.gpus``).
        device: greentrack's device id (``gpu:<i>``, ``gpu:amd-<i>``).
        name: model name.
        label: how a "measured by" note names it (``GPU GPU-5b0c...``, ``gpu:amd-1``).
        dies: every die reporting the same package counter (MI250X), else ``()``.
        serial: board serial ("" when unknown).
    """

    key: str
    entry: str
    device: str
    name: str
    label: str
    dies: tuple[str, ...] = ()
    serial: str = ""


def shared_counter_note(gpu: VisibleGpu, by: str) -> str:
    """``gpu:amd-0, gpu:amd-1 are dies of one ... counted once, by rank 0``."""
    return (
        f"{', '.join(gpu.dies)} are dies of one {gpu.name} (serial {gpu.serial}) reporting one "
        f"shared package energy counter: counted once, by {by}"
    )


def _nvidia(env: Mapping[str, str]) -> list[VisibleGpu]:
    from greentrack.meters.nvml_devices import all_gpus, driver_present, nvml_call, resolve_visible

    if not driver_present():
        return []
    try:
        nvml_call("nvmlInit")
    except MeterError:
        return []
    try:
        gpus = all_gpus()
        vis = resolve_visible(env, gpus)
    except MeterError:
        return []
    finally:
        try:
            nvml_call("nvmlShutdown")
        except MeterError:
            pass
    out = []
    for i in vis.indices:
        key = gpus[i].uuid or str(i)
        mig = vis.mig.get(i)
        label = f"GPU {key}" + (f" ({mig})" if mig else "")
        out.append(VisibleGpu(key, mig or key, gpus[i].device, gpus[i].name, label))
    return out


def _amd(env: Mapping[str, str], sysfs: str) -> tuple[list[VisibleGpu], list[str]]:
    from greentrack.meters import amdsmi

    if not amdsmi.driver_present(sysfs):
        return [], []
    try:
        infos, visible, first_die, problems = amdsmi.placement_view(env)
    except MeterError as e:
        return [], [f"AMD GPUs not measured on this rank (amdsmi does not work): {e}"]
    root = [first_die.get(i, i) for i in range(len(infos))]
    out = []
    for i in visible:
        g = infos[i]
        dies = tuple(infos[j].device for j in range(len(infos)) if root[j] == root[i])
        key = "amd:" + (infos[root[i]].uuid or infos[root[i]].bdf or str(root[i]))
        out.append(
            VisibleGpu(
                key, g.device, g.device, g.name, g.device, dies if len(dies) > 1 else (), g.serial
            )
        )
    return out, problems


def visible_gpus(env: Mapping[str, str]) -> tuple[list[list[VisibleGpu]], list[str]]:
    """The GPUs this process sees, ``[NVIDIA, AMD]`` (each in its framework's order), and
    problems to note on the run (a visible-device entry that names no GPU, amdsmi failing).

    ``env`` gives the visible-device variables; ``GREENTRACK_SYSFS`` (from ``env``, else the
    process's environment, else ``/sys``) is where the amdgpu driver is looked for. Never
    raises: a vendor whose library does not work gives ``[]``.
    """
    sysfs = env.get("GREENTRACK_SYSFS") or os.environ.get("GREENTRACK_SYSFS") or "/sys"
    amd, problems = _amd(env, sysfs)
    return [_nvidia(env), amd], problems


def _failed(name: str, what: str, err: MeterError) -> Meter:
    meter = NullMeter()
    meter.name = name
    meter.warn(f"{what} not measured on this rank: {err}")
    return meter


def open_gpu_meters(entries: Sequence[str], env: Mapping[str, str] | None = None) -> list[Meter]:
    """The GPU meters of a rank measuring ``entries`` (:attr:`VisibleGpu.entry`), not started.

    NVIDIA entries become one NVML meter (``CUDA_VISIBLE_DEVICES`` set to them), AMD ones one
    amdsmi meter of those dies. A library failing here gives a device-less meter whose warning
    says so (the run goes on).
    """
    from greentrack.meters.amdsmi import AmdSmiMeter
    from greentrack.meters.nvml import NvmlMeter

    env = os.environ if env is None else env
    amd = [e for e in entries if e.startswith(AMD_ENTRY)]
    nvidia = [e for e in entries if not e.startswith(AMD_ENTRY)]
    meters: list[Meter] = []
    if nvidia:
        try:
            meters.append(NvmlMeter(env={**env, "CUDA_VISIBLE_DEVICES": ",".join(nvidia)}))
        except MeterError as e:
            meters.append(_failed("nvml", f"NVIDIA GPUs {', '.join(nvidia)}", e))
    if amd:
        try:
            meters.append(AmdSmiMeter(only=[int(e[len(AMD_ENTRY) :]) for e in amd]))
        except MeterError as e:
            meters.append(_failed("amdsmi", f"AMD GPUs {', '.join(amd)}", e))
    return meters
