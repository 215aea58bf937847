"""Apple silicon energy (macOS on arm64) through IOReport, via ``zeus-apple-silicon``.

``zeus_apple_silicon.AppleEnergyMonitor().get_cumulative_energy()`` returns
``AppleEnergyMetrics``: cumulative millijoules per SoC block, read from IOReport's "Energy
Model" channels, with no sudo (``powermetrics``, the alternative, needs root and prints text).
Each field is None where the chip has no such counter. Devices (all ``counter``):

=====================  ===========  ======================================================
device                 component    field
=====================  ===========  ======================================================
``cpu:apple``          cpu          ``cpu_total_mj`` (efficiency + performance clusters)
``dram:apple``         ram          ``dram_mj``
``gpu:apple``          gpu          ``gpu_mj``
``ane:apple``          ane          ``ane_mj`` (the Neural Engine)
=====================  ===========  ======================================================

``gpu_sram_mj`` is not added to the GPU (IOReport reports it inside the GPU block on the chips
Zeus documents); the per-core lists are not used (their sum is ``cpu_total_mj``). A counter that
goes down (a new IOReport subscription) skips that interval with a warning; an error of the
binding mid-run freezes every device's energy, with a warning.

Tested on Linux against a simulated binding under the real module name
(``tests/fakes/sim/zeus_apple_silicon``). **Not exercised without a Mac:** the real IOReport
channel names per chip generation (M1–M4, Pro/Max/Ultra), how often IOReport updates its
counters (so the shortest phase it resolves), and whether ``dram_mj`` / ``ane_mj`` are None on
some chips. ``GREENTRACK_APPLE=1`` makes greentrack try the binding on any platform.
"""

from __future__ import annotations

import platform
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter, MeterStatus
from greentrack.meters.presence import apple_silicon

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = ["AppleSiliconMeter", "detect_meter", "is_apple_silicon", "open_meter"]

#: device -> (component, AppleEnergyMetrics field)
CHANNELS = {
    "cpu:apple": ("cpu", "cpu_total_mj"),
    "dram:apple": ("ram", "dram_mj"),
    "gpu:apple": ("gpu", "gpu_mj"),
    "ane:apple": ("ane", "ane_mj"),
}


def is_apple_silicon() -> bool:
    """macOS on arm64 (or ``GREENTRACK_APPLE=1``): :func:`greentrack.meters.presence.apple_silicon`,
    which the registry asks before importing this module."""
    return apple_silicon()


def _monitor() -> Any:
    try:
        import zeus_apple_silicon
    except ImportError as e:
        raise MeterError(
            "the zeus-apple-silicon package is not installed: pip install zeus-apple-silicon "
            "(reads IOReport, no sudo needed)"
        ) from e
    try:
        return zeus_apple_silicon.AppleEnergyMonitor()
    except Exception as e:  # the binding's own errors (no IOReport, ...)
        raise MeterError(f"zeus-apple-silicon cannot open IOReport ({e})") from e


@dataclass(slots=True)
class _Channel:
    device: str
    component: str
    field: str
    last_mj: int = 0
    energy_j: float = 0.0
    power_w: float | None = None


class AppleSiliconMeter(Meter):
    """Energy of the SoC blocks IOReport reports (see the module docstring).

    Args:
        components: which components to report (``cpu``, ``ram``, ``gpu``, ``ane``).

    Raises:
        MeterError: the binding is missing or IOReport cannot be opened (message has the fix).
    """

    name = "apple"

    def __init__(self, components: frozenset[str] = frozenset({"cpu", "ram", "gpu", "ane"})):
        super().__init__()
        self._mon = _monitor()
        first = self._metrics()
        self._channels = [
            _Channel(dev, comp, field)
            for dev, (comp, field) in CHANNELS.items()
            if comp in components and isinstance(getattr(first, field, None), int)
        ]
        self._lock = threading.Lock()
        self._t_last = 0.0
        self._t_start = 0.0
        self._failed = False

    def _metrics(self) -> Any:
        try:
            return self._mon.get_cumulative_energy()
        except Exception as e:  # the binding raises its own RuntimeErrors
            raise MeterError(f"zeus-apple-silicon get_cumulative_energy failed ({e})") from e

    @property
    def devices(self) -> list[str]:
        return [c.device for c in self._channels]

    @property
    def components(self) -> set[str]:
        return {c.component for c in self._channels}

    def describe(self) -> dict[str, str]:
        chip = platform.processor() or "Apple silicon"
        return {c.device: f"{chip} {c.component.upper()} (IOReport)" for c in self._channels}

    def start(self, t_mono: float) -> None:
        with self._lock:
            self._t_start = self._t_last = t_mono
            self._failed = False
            try:
                m = self._metrics()
            except MeterError as e:
                self._fail(t_mono, e)
                return
            for c in self._channels:
                c.last_mj, c.energy_j, c.power_w = int(getattr(m, c.field) or 0), 0.0, None

    def _fail(self, t_mono: float, err: MeterError) -> None:
        self._failed = True
        for c in self._channels:
            c.power_w = None
        self.warn(
            f"Apple silicon counters failed {t_mono - self._t_start:.1f} s after the meter "
            f"started and are no longer read; their energy so far is kept: {err}"
        )

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        with self._lock:
            if not self._failed:
                try:
                    m = self._metrics()
                except MeterError as e:
                    self._fail(t_mono, e)
                else:
                    dt_s = t_mono - self._t_last
                    for c in self._channels:
                        value = getattr(m, c.field)
                        mj = int(value) if isinstance(value, int) else c.last_mj
                        delta = mj - c.last_mj
                        if delta < 0:
                            self.warn(f"{c.device} counter went backwards: interval skipped")
                            delta = 0
                        c.last_mj = mj
                        c.energy_j += delta / 1000.0
                        if dt_s > 0:
                            c.power_w = delta / 1000.0 / dt_s
                    if dt_s > 0:
                        self._t_last = t_mono
            return [
                DeviceReading(c.component, c.device, c.energy_j, c.power_w, "counter")
                for c in self._channels
            ]


def open_meter(ctx: OpenContext) -> Meter | None:
    """The SoC counters for the wanted components on Apple silicon, else None."""
    if not is_apple_silicon():
        return None
    comps = {c for c in ("cpu", "ram") if ctx.needs(c)}
    if ctx.wants("gpu"):
        comps |= {"gpu", "ane"}
    if not comps:
        return None
    try:
        meter = AppleSiliconMeter(frozenset(comps))
    except MeterError as e:
        ctx.problems.append(f"Apple silicon energy not measured: {e}")
        return None
    ctx.covered.update(meter.components)
    return meter if meter.devices else None


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``apple``: the IOReport counters on Apple silicon, or why none."""
    if not is_apple_silicon():
        return [
            MeterStatus(
                "apple",
                False,
                f"not an Apple silicon Mac ({sys.platform} {platform.machine()}); set "
                "GREENTRACK_APPLE=1 to try zeus-apple-silicon anyway",
            )
        ]
    try:
        meter = AppleSiliconMeter()
    except MeterError as e:
        return [MeterStatus("apple", False, str(e))]
    devices = meter.devices
    reason = ", ".join(f"{d} (counter)" for d in devices) + " from IOReport (no sudo)"
    return [MeterStatus("apple", bool(devices), reason, devices, "counter")]
