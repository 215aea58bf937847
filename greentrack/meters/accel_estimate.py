"""A labelled estimate for an accelerator greentrack sees (through torch) but cannot meter.

When no GPU meter opened (no NVML, amdsmi, hwmon or IOReport figure) yet ``torch`` is already
imported and has initialised CUDA/ROCm (greentrack never imports torch nor initialises a
device: that would change the user's process, e.g. break fork-started data loaders), each
device ``torch.cuda`` lists is estimated as

    power = TDP(model) × utilisation

- TDP from the shipped table ``greentrack/data/accel_tdp.csv`` (vendor datasheets, one cited
  per row; the longest pattern found in torch's device name as whole words wins, so
  ``NVIDIA A10`` does not match an ``NVIDIA A100``);
- utilisation from ``torch.cuda.utilization(i)`` where it answers (it needs the vendor's
  library), else **assumed 100 %**: the estimate is then an upper bound, and the note says so.

Devices ``gpu:estimate-<i>``, method ``estimated``, with a note stating the TDP, its source and
the utilisation assumption. A device whose model is not in the table is not estimated, and the
run says so with the fix (never left out silently). Integration: the power at each read × the
time since the previous read.
"""

from __future__ import annotations

import csv
import functools
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from greentrack.meters.base import DeviceReading, Meter, MeterStatus
from greentrack.meters.presence import torch_cuda_initialised

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = ["AccelEstimateMeter", "detect_meter", "lookup_tdp", "open_meter", "torch_devices"]

ASSUMED_UTILISATION = 1.0
"""Utilisation assumed when torch cannot say (an upper bound). Fraction of TDP."""


def table_path() -> Path:
    """``greentrack/data/accel_tdp.csv``."""
    return Path(__file__).resolve().parent.parent / "data" / "accel_tdp.csv"


@functools.lru_cache(maxsize=2)
def _table(path: Path) -> tuple[tuple[str, float, str], ...]:
    rows: list[tuple[str, float, str]] = []
    with open(path, encoding="utf-8", newline="") as f:
        lines = (line for line in f if not line.startswith("#"))
        for row in csv.DictReader(lines):
            try:
                rows.append((row["pattern"].strip(), float(row["tdp_w"]), row["source"].strip()))
            except (KeyError, TypeError, ValueError):
                continue
    return tuple(sorted(rows, key=lambda r: len(r[0]), reverse=True))


def lookup_tdp(model: str) -> tuple[float, str] | None:
    """``(TDP W, source)`` for a device name, or None when the table has no match."""
    low = model.lower()
    for pattern, tdp_w, source in _table(table_path()):
        if re.search(rf"(?<![a-z0-9]){re.escape(pattern.lower())}(?![a-z0-9])", low):
            return tdp_w, source
    return None


def torch_devices() -> list[tuple[int, str]]:
    """``(index, name)`` of the CUDA/ROCm devices torch has initialised; [] when torch is not
    imported or has not initialised CUDA (nothing is imported or initialised here; the
    registry asks :func:`greentrack.meters.presence.torch_cuda` before importing this module)."""
    if not torch_cuda_initialised():
        return []
    try:
        cuda = sys.modules["torch"].cuda
        return [(i, str(cuda.get_device_name(i))) for i in range(cuda.device_count())]
    except Exception:  # a torch build without CUDA, a broken driver: nothing seen
        return []


def _utilisation(index: int) -> float | None:
    torch = sys.modules.get("torch")
    try:
        value = torch.cuda.utilization(index) if torch is not None else None
    except Exception:  # needs pynvml / amdsmi: unknown
        return None
    if isinstance(value, int | float) and 0 <= value <= 100:
        return float(value) / 100.0
    return None


@dataclass(slots=True)
class _Device:
    index: int
    model: str
    tdp_w: float
    source: str
    energy_j: float = 0.0
    power_w: float | None = None
    measured_util: bool = False

    @property
    def device(self) -> str:
        return f"gpu:estimate-{self.index}"


class AccelEstimateMeter(Meter):
    """TDP × utilisation for each device of ``devices`` (``(index, name)``) the table knows."""

    name = "accel-estimate"

    def __init__(self, devices: Sequence[tuple[int, str]]) -> None:
        super().__init__()
        self._devices: list[_Device] = []
        for index, model in devices:
            hit = lookup_tdp(model)
            if hit is None:
                self.warn(
                    f"accelerator {index} ({model}) is seen through torch but not metered and "
                    f"its TDP is not in {table_path().name}: its energy is NOT counted; install "
                    f"its vendor's meter (nvidia-ml-py, greentrack[amd]) or add a row to the table"
                )
                continue
            self._devices.append(_Device(index, model, hit[0], hit[1]))
        self._lock = threading.Lock()
        self._t_last = 0.0

    @property
    def devices(self) -> list[str]:
        return [d.device for d in self._devices]

    def describe(self) -> dict[str, str]:
        return {d.device: d.model for d in self._devices}

    def notes(self) -> dict[str, str]:
        out = {}
        for d in self._devices:
            util = (
                "utilisation from torch.cuda.utilization"
                if d.measured_util
                else f"utilisation unknown, assumed {ASSUMED_UTILISATION:.0%} (an upper bound)"
            )
            out[d.device] = (
                f"estimated: TDP {d.tdp_w:g} W ({d.source}) × {util}; not metered (no vendor "
                f"meter here)"
            )
        return out

    def _power_w(self, d: _Device) -> float:
        u = _utilisation(d.index)
        d.measured_util = u is not None
        return d.tdp_w * (ASSUMED_UTILISATION if u is None else u)

    def start(self, t_mono: float) -> None:
        with self._lock:
            self._t_last = t_mono
            for d in self._devices:
                d.energy_j, d.power_w = 0.0, self._power_w(d)

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        with self._lock:
            dt_s = max(0.0, t_mono - self._t_last)
            for d in self._devices:
                d.energy_j += (d.power_w or 0.0) * dt_s
                d.power_w = self._power_w(d)
            self._t_last = max(self._t_last, t_mono)
            return [
                DeviceReading("gpu", d.device, d.energy_j, d.power_w, "estimated")
                for d in self._devices
            ]


def open_meter(ctx: OpenContext) -> Meter | None:
    """The estimate for torch's devices when the GPU is wanted and no GPU meter measures it."""
    if not ctx.needs("gpu"):
        return None
    seen = torch_devices()
    if not seen:
        return None
    meter = AccelEstimateMeter(seen)
    if meter.devices:
        ctx.covered.add("gpu")
    return meter


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``accel-estimate``: whether torch shows accelerators no meter measures."""
    seen = torch_devices()
    if not seen:
        return [
            MeterStatus(
                "accel-estimate",
                False,
                "no accelerator seen through torch in this process (torch not imported or "
                "CUDA not initialised; greentrack never initialises it)",
            )
        ]
    measured = ctx.measured_by("gpu")
    meter = AccelEstimateMeter(seen)
    parts = [f"{d} {m}" for d, m in meter.describe().items()]
    notes = list(meter.notes().values()) + meter.pop_warnings()
    use = f"not used: {measured} measures the GPUs" if measured else "in use: no GPU meter"
    return [
        MeterStatus(
            "accel-estimate",
            True,
            "; ".join([use, ", ".join(parts) or "no device in the TDP table", *notes]),
            meter.devices,
            "estimated",
        )
    ]
