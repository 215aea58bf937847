"""The meter interface: one small abstract class, one module per interface (NVML, RAPL, estimate).

A meter reports, for each device it covers, the *cumulative* energy in joules since its
:meth:`Meter.start`. Counter meters take deltas of a hardware counter; sampled meters integrate
power between calls of :meth:`Meter.read`; estimating meters integrate a modelled power. Callers
(the sampler, phase boundaries) therefore treat every meter the same way, and a phase's energy is
the difference of two reads.

Methods (stored with every figure):

- ``counter``: a hardware energy counter (NVML total energy, RAPL ``energy_uj``). Exact up to the
  counter's resolution.
- ``sampled``: instantaneous power sampled and integrated (trapezoid) between reads.
- ``estimated``: no meter; a documented model (TDP × load, RAM W/GB). Labelled everywhere.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Method = Literal["counter", "sampled", "estimated"]
Component = Literal["gpu", "cpu", "dram", "ram"]

__all__ = [
    "Component",
    "DeviceReading",
    "Meter",
    "MeterStatus",
    "Method",
    "NullMeter",
    "device_failed_warning",
]


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One device's cumulative energy since its meter started.

    Attributes:
        component: ``gpu``, ``cpu`` (package), ``dram`` (RAPL DRAM domain) or ``ram`` (modelled).
        device: stable id on this host, e.g. ``gpu:0``, ``cpu:package-0``, ``dram:package-1``.
        energy_j: cumulative energy since ``start()``. Units: joules.
        power_w: latest power, where known (counter meters derive it from the last delta).
            Units: watts.
        method: how ``energy_j`` was obtained: ``counter``, ``sampled`` or ``estimated``.
    """

    component: str
    device: str
    energy_j: float
    power_w: float | None
    method: str


@dataclass(slots=True)
class MeterStatus:
    """What ``greentrack detect`` reports for one meter: is it usable here, and if not, why."""

    name: str
    available: bool
    reason: str
    devices: list[str] = field(default_factory=list)
    method: str | None = None


class Meter(abc.ABC):
    """A source of per-device cumulative energy.

    Implementations must make :meth:`read` cheap (it runs every sampling interval) and must raise
    only :class:`greentrack.errors.MeterError` for hardware failures. When one device fails
    mid-run, the meter keeps that device's last energy (frozen), stops reading it, and reports the
    failure through :meth:`pop_warnings`; other devices continue.
    """

    name: str = "meter"

    def __init__(self) -> None:
        self._warnings: list[str] = []

    @abc.abstractmethod
    def start(self, t_mono: float) -> None:
        """Take the baseline. ``t_mono`` is ``time.monotonic()`` in seconds."""

    @abc.abstractmethod
    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative energy per device since :meth:`start`, at monotonic time ``t_mono`` (s)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the meter's resources."""

    def describe(self) -> dict[str, str]:
        """Device id -> model name (for run metadata), e.g. ``{"gpu:0": "NVIDIA H100"}``."""
        return {}

    def notes(self) -> dict[str, str]:
        """Device id -> a one-line statement of every assumption behind that device's figure.

        Stored per component (``components.note``) and printed by reports and the price tag,
        e.g. ``{"gpu:0": "MIG slice of GPU 0: whole-GPU energy"}``. Devices without an
        assumption worth stating are absent. The default is ``{}``.
        """
        return {}

    def window_energy(
        self, device: str, t0_mono: float, t1_mono: float, e0_j: float, e1_j: float
    ) -> tuple[float, str] | None:
        """This meter's preferred energy for ``device`` over a short window, or None.

        Called by phase boundaries with the window ``[t0_mono, t1_mono]`` (``time.monotonic()``
        seconds) and the cumulative energies ``e0_j``, ``e1_j`` (joules) read at its ends. A
        meter whose counter cannot resolve the window (it refreshes less often than the window
        lasts) returns ``(energy_j, method)``, e.g. ``(15.2, "sampled")`` from power sampled at
        the boundaries; the phase then records that method. None (the default) means the
        difference ``e1_j - e0_j`` stands. Must be cheap and must not raise.
        """
        return None

    def warn(self, message: str) -> None:
        """Record a warning to be attached to the run (drained by the sampler)."""
        self._warnings.append(message)

    def pop_warnings(self) -> list[str]:
        """Return and clear the warnings recorded since the last call."""
        out, self._warnings = self._warnings, []
        return out


def device_failed_warning(
    device: str, name: str, after_s: float, energy_j: float, err: Exception
) -> str:
    """The warning a meter records when one of its devices fails mid-run: which device, when
    (``after_s`` since the meter started, s), and that its energy stays at ``energy_j`` (J)."""
    return (
        f"{device} ({name}) failed {after_s:.1f} s after the meter started and is no longer "
        f"read; its energy stays at {energy_j:.3f} J: {err}"
    )


class NullMeter(Meter):
    """A meter with no devices: what a factory returns when nothing is present."""

    name = "null"

    def start(self, t_mono: float) -> None:
        return None

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        return ()
