"""Cheap checks whether a meter's hardware can be here, without importing the meter's module.

Each is a condition the meter's own ``open`` function requires, and that function uses the
same helper or path constant, so the two cannot drift apart. :func:`~greentrack.meters.open_meters`
asks a line's ``present`` check (:data:`~greentrack.meters.registry.METERS`) before importing
the line's module: on a host without RAPL, an NVIDIA or AMD driver, hwmon sensors, Apple
silicon or CUDA in torch, those modules are never imported (1–3 ms each, ~11 ms for the six
on the development VM: ``python -X importtime``, from ``.pyc``). Each check only stats a path,
reads an environment variable or looks in :data:`sys.modules`; a False answer means the
meter's ``open`` would return None without touching the context.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greentrack.meters.registry import OpenContext

__all__ = [
    "HWMON_CLASS",
    "INA3221_DRIVER",
    "NVIDIA_DRIVER_FILES",
    "POWERCAP_CLASS",
    "amdgpu",
    "amdgpu_driver_loaded",
    "apple",
    "apple_silicon",
    "hwmon",
    "nvidia",
    "nvidia_driver_present",
    "powercap",
    "torch_cuda",
    "torch_cuda_initialised",
]

#: Where hwmon sensors are, under the sysfs root.
HWMON_CLASS = "class/hwmon"
#: Where Jetson's INA3221 power monitor (IIO driver) is, under the sysfs root.
INA3221_DRIVER = "bus/i2c/drivers/ina3221x"
#: Where the RAPL powercap interface is, under the sysfs root.
POWERCAP_CLASS = "class/powercap"
#: The NVIDIA kernel driver's /proc entry and control device: one exists where it is loaded.
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def nvidia_driver_present(files: tuple[str, ...] = NVIDIA_DRIVER_FILES) -> bool:
    """Whether an NVIDIA driver is here (one of ``files`` exists: no library load), or
    ``GREENTRACK_NVML=1`` says to try NVML anyway."""
    if os.environ.get("GREENTRACK_NVML") == "1":
        return True
    return any(os.path.exists(p) for p in files)


def amdgpu_driver_loaded(sysfs: Path | str = "/sys") -> bool:
    """Whether the amdgpu kernel driver is loaded (``<sysfs>/module/amdgpu`` exists), or
    ``GREENTRACK_AMDSMI=1`` says to try amdsmi anyway."""
    if os.environ.get("GREENTRACK_AMDSMI") == "1":
        return True
    return (Path(sysfs) / "module" / "amdgpu").is_dir()


def apple_silicon() -> bool:
    """macOS on arm64 (or ``GREENTRACK_APPLE=1``)."""
    if os.environ.get("GREENTRACK_APPLE") == "1":
        return True
    if sys.platform != "darwin":
        return False
    import platform

    return platform.machine() == "arm64"


def torch_cuda_initialised() -> bool:
    """Whether torch is imported and has initialised CUDA/ROCm (nothing imported or
    initialised here; False for a torch build without CUDA or a broken driver)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:  # a torch build without CUDA, a broken driver: nothing seen
        return False


# ---- the ``present`` checks of the registry's lines: ``(ctx) -> bool`` ----------------------


def powercap(ctx: OpenContext) -> bool:
    """``rapl``: there is a powercap interface under the config's sysfs."""
    return (Path(ctx.config.sysfs) / POWERCAP_CLASS).is_dir()


def nvidia(ctx: OpenContext) -> bool:
    """``nvml``: an NVIDIA driver is loaded (or ``GREENTRACK_NVML=1``)."""
    loaded = sys.modules.get("greentrack.meters.nvml_devices")
    if loaded is not None:  # its driver_present() is what ``open`` asks (tests simulate it)
        return bool(loaded.driver_present())
    return nvidia_driver_present()


def amdgpu(ctx: OpenContext) -> bool:
    """``amdsmi``: the amdgpu driver is loaded (under the config's sysfs)."""
    return amdgpu_driver_loaded(ctx.config.sysfs)


def hwmon(ctx: OpenContext) -> bool:
    """``hwmon``: there is a hwmon class or a Jetson INA3221 driver under the config's sysfs."""
    sysfs = Path(ctx.config.sysfs)
    return (sysfs / HWMON_CLASS).is_dir() or (sysfs / INA3221_DRIVER).is_dir()


def apple(ctx: OpenContext) -> bool:
    """``apple``: this is an Apple silicon Mac."""
    return apple_silicon()


def torch_cuda(ctx: OpenContext) -> bool:
    """``accel-estimate``: torch is imported and has initialised CUDA/ROCm."""
    return torch_cuda_initialised()
