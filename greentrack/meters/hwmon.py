"""Power sensors of the Linux hwmon and IIO interfaces: GPUs without a vendor library, and the
INA3221 power rails of Jetson-class boards.

Layout read, under ``<sysfs>`` (``Config.sysfs`` / ``GREENTRACK_SYSFS``, default ``/sys``)::

    class/hwmon/hwmon*/name                    chip: amdgpu, i915, xe, ina3221, ...
    class/hwmon/hwmon*/energyN_input           µJ, a counter (preferred)
    class/hwmon/hwmon*/powerN_input            µW now (else powerN_average: µW, averaged)
    class/hwmon/hwmon*/{energy,power}N_label   the channel's name
    class/hwmon/hwmon*/device -> ../../0000:0c:00.0   the PCI device (GPUs)
    class/hwmon/hwmon*/inN_input, currN_input, inN_label      ina3221 (upstream driver, L4T >= 34):
                                               mV bus voltage, mA current, the rail's name
    bus/i2c/drivers/ina3221x/*/iio:device*/    Jetson's downstream driver (L4T <= 32):
        rail_name_N, in_powerN_input (mW), else in_currentN_input (mA) × in_voltageN_input (mV)

Older kernels put a chip's sensor files in ``hwmon*/device/``; both places are looked at.

Rules:

- **GPUs.** ``amdgpu`` (power: ``power1_input``, else the PPT average ``power1_average``;
  ``sampled``) and Intel ``i915`` / ``xe`` (``energy1_input``, the ``card`` channel where
  labelled; ``counter``) give one ``gpu`` device each: ``gpu:amdgpu-<PCI address>`` /
  ``gpu:intel-<PCI address>``. The amdgpu sensor is the *fallback* for amdsmi: a GPU amdsmi
  measures (by PCI address) is never read here too. Without amdsmi, ``ROCR_VISIBLE_DEVICES`` /
  ``HIP_VISIBLE_DEVICES`` / ``CUDA_VISIBLE_DEVICES`` indices select among the amdgpu GPUs in
  PCI order (UUID entries need amdsmi: a warning says so).
- **INA3221 rails (Jetson).** The board input rail (``VDD_IN``, ``POM_5V_IN``, ...) is the
  whole module (CPU, GPU, memory, SoC): where it exists it is the one device reported
  (component ``board``, device ``board:<rail>``), the other rails being inside it (named in its
  note, not added). Without an input rail each rail is its own device (``rail:<name>``).
  Power is ``sampled`` (trapezoid between reads).
- Other chips with energy or power sensors are not used (what they cover is unknown and could
  overlap RAPL or a GPU meter); ``greentrack detect`` lists them.
- A counter going backwards is a reset (interval skipped, warning); hwmon energy counters are
  64-bit and do not wrap in practice. A file that fails mid-run freezes its device's energy,
  with a warning; the other devices continue. An unreadable file at start is skipped with the
  fix (``sudo chmod a+r <file>`` or a udev rule).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from greentrack.errors import MeterError
from greentrack.meters.amd_devices import AmdGpuInfo, visible_amd_indices
from greentrack.meters.base import DeviceReading, Meter, MeterStatus
from greentrack.meters.presence import HWMON_CLASS, INA3221_DRIVER

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = ["HwmonMeter", "detect_meter", "discover", "open_meter"]

INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VDD_5V_IN", "VIN_SYS_5V0", "VIN")
"""Rail names of a Jetson module's total input power (Orin, Xavier NX/TX2, AGX Xavier, Nano)."""

_GPU_CHIPS = {"amdgpu": "amdgpu", "i915": "intel", "xe": "intel"}
_PCI = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$", re.I)


def _read_int(path: str) -> int:
    with open(path, "rb") as f:
        return int(f.read().strip() or b"0")


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass(slots=True)
class _Channel:
    """One sensor greentrack reads: a device, its files and how to turn them into watts."""

    device: str
    component: str
    model: str
    kind: str  # energy_uj | power_uw | power_mw | iv_ma_mv
    paths: tuple[str, ...]
    pci: str = ""
    note: str | None = None
    energy_j: float = 0.0
    power_w: float | None = None
    last: int = 0
    last_t: float = 0.0
    failed: bool = False

    @property
    def method(self) -> str:
        return "counter" if self.kind == "energy_uj" else "sampled"

    def value(self) -> float:
        """The counter (µJ) or the power (W) now."""
        if self.kind == "energy_uj":
            return float(_read_int(self.paths[0]))
        if self.kind == "power_uw":
            return _read_int(self.paths[0]) / 1e6
        if self.kind == "power_mw":
            return _read_int(self.paths[0]) / 1e3
        return _read_int(self.paths[0]) * _read_int(self.paths[1]) / 1e6  # mA × mV = µW


@dataclass(slots=True)
class Discovery:
    """What :func:`discover` found: channels to read, and what to say about the rest."""

    channels: list[_Channel] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    amdgpu_skipped: list[str] = field(default_factory=list)


_SENSOR_GLOBS = ("power*_input", "power*_average", "energy*_input", "curr*_input")


def _sensor_dir(hw: Path) -> Path:
    """The directory holding a chip's sensor files (itself, or ``device/`` on old kernels)."""
    if any(any(hw.glob(g)) for g in _SENSOR_GLOBS):
        return hw
    return hw / "device"


def _has_sensors(d: Path) -> bool:
    return any(any(d.glob(g)) for g in _SENSOR_GLOBS[:3])


def _readable(path: Path, found: Discovery) -> bool:
    try:
        _read_int(str(path))
        return True
    except PermissionError:
        found.warnings.append(
            f"{path} is not readable by this user: `sudo chmod a+r {path}` (or a udev rule) "
            f"to measure it"
        )
    except (OSError, ValueError):
        pass
    return False


def _gpu_channel(hw: Path, chip: str, found: Discovery) -> _Channel | None:
    d = _sensor_dir(hw)
    pci = os.path.basename(os.path.realpath(hw / "device"))
    pci = pci if _PCI.match(pci) else ""
    vendor = _GPU_CHIPS[chip]
    device = f"gpu:{vendor}-{pci or hw.name}"
    label = "AMD GPU" if vendor == "amdgpu" else "Intel GPU"
    pci_id = _text(hw / "device" / "device")
    model = _text(hw / "device" / "product_name") or (f"{label} ({pci_id})" if pci_id else label)
    energies = sorted(d.glob("energy*_input"))
    card = [e for e in energies if _text(e.with_name(e.name.replace("_input", "_label"))) == "card"]
    for path, kind in [
        *((e, "energy_uj") for e in card + energies),
        *((p, "power_uw") for p in sorted(d.glob("power*_input"))),
        *((p, "power_uw") for p in sorted(d.glob("power*_average"))),
    ]:
        if _readable(path, found):
            return _Channel(device, "gpu", model, kind, (str(path),), pci=pci)
    return None


def _rails_hwmon(hw: Path, found: Discovery) -> list[tuple[str, str, tuple[str, ...]]]:
    d = _sensor_dir(hw)
    out = []
    for curr in sorted(d.glob("curr*_input")):
        n = curr.name[len("curr") : -len("_input")]
        volt = d / f"in{n}_input"
        label = _text(d / f"in{n}_label") or f"ina3221-{hw.name}-{n}"
        if _text(d / f"in{n}_enable") == "0" or not volt.exists():
            continue
        if _readable(curr, found) and _readable(volt, found):
            out.append((label, "iv_ma_mv", (str(curr), str(volt))))
    return out


def _rails_iio(sysfs: Path, found: Discovery) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for dev in sorted((sysfs / "bus" / "i2c" / "drivers" / "ina3221x").glob("*/iio:device*")):
        for name_file in sorted(dev.glob("rail_name_*")):
            n = name_file.name[len("rail_name_") :]
            label = _text(name_file) or f"ina3221x-{n}"
            power = dev / f"in_power{n}_input"
            curr, volt = dev / f"in_current{n}_input", dev / f"in_voltage{n}_input"
            if power.exists() and _readable(power, found):
                out.append((label, "power_mw", (str(power),)))
            elif curr.exists() and volt.exists() and _readable(curr, found):
                out.append((label, "iv_ma_mv", (str(curr), str(volt))))
    return out


def _rail_channels(rails: list[tuple[str, str, tuple[str, ...]]]) -> list[_Channel]:
    rails = list({label: (label, k, p) for label, k, p in rails}.values())  # one per name
    inputs = [r for r in rails if r[0].upper() in INPUT_RAILS]
    if inputs:
        label, kind, paths = inputs[0]
        inside = [r[0] for r in rails if r is not inputs[0]]
        note = (
            f"{label}: the module's whole input power (CPU, GPU, memory, SoC) from its INA3221 "
            f"monitor, replacing the CPU and RAM estimates"
            + (f"; rails inside it, not added: {', '.join(inside)}" if inside else "")
        )
        return [
            _Channel(f"board:{label.lower()}", "board", "Jetson module", kind, paths, note=note)
        ]
    return [
        _Channel(f"rail:{label.lower()}", "rail", f"power rail {label}", kind, paths)
        for label, kind, paths in rails
    ]


def discover(
    sysfs: Path | str,
    *,
    skip_pci: frozenset[str] = frozenset(),
    env: Mapping[str, str] | None = None,
    gpus: bool = True,
    rails: bool = True,
) -> Discovery:
    """Find the hwmon/IIO sensors greentrack reads under ``sysfs`` (see the module docstring).

    Args:
        sysfs: the sysfs root.
        skip_pci: PCI addresses of GPUs another meter (amdsmi) measures: their amdgpu sensors
            are not used.
        env: environment for the ROCm visibility variables (default ``os.environ``).
        gpus: look for GPU sensors; rails: look for INA3221 rails.
    """
    env = os.environ if env is None else env
    root = Path(sysfs)
    found = Discovery()
    found_rails: list[tuple[str, str, tuple[str, ...]]] = []
    amdgpu: list[_Channel] = []
    hwmons = sorted((root / "class" / "hwmon").glob("hwmon*"), key=lambda p: (len(p.name), p.name))
    for hw in hwmons:
        chip = _text(hw / "name") or _text(hw / "device" / "name")
        if chip in _GPU_CHIPS:
            ch = _gpu_channel(hw, chip, found) if gpus else None
            if ch is None:
                continue
            if chip == "amdgpu":
                if ch.pci and ch.pci in skip_pci:
                    found.amdgpu_skipped.append(ch.device)
                    continue
                amdgpu.append(ch)
            else:
                found.channels.append(ch)
        elif chip == "ina3221":
            found_rails += _rails_hwmon(hw, found) if rails else []
        else:
            if _has_sensors(_sensor_dir(hw)):
                found.unused.append(f"{hw.name} ({chip or 'unnamed'})")
    if amdgpu:
        amdgpu.sort(key=lambda c: c.pci or c.device)
        infos = [AmdGpuInfo(i, "", c.model) for i, c in enumerate(amdgpu)]
        visible, problems = visible_amd_indices(env, infos)
        found.warnings += [
            p + " (amdgpu hwmon fallback: UUIDs need amdsmi, `pip install 'greentrack[amd]'`)"
            for p in problems
        ]
        found.channels += [amdgpu[i] for i in visible]
    if rails:
        found.channels += _rail_channels(found_rails + _rails_iio(root, found))
    return found


class HwmonMeter(Meter):
    """Energy of the hwmon/IIO sensors found by :func:`discover` (``counter`` or ``sampled``).

    Args:
        sysfs: the sysfs root (``Config.sysfs``).
        skip_pci: PCI addresses measured by another meter (amdsmi).
        env: environment for the visibility variables.
        gpus, rails: which sensors to use (see :func:`discover`).

    Raises:
        MeterError: no usable sensor (the message says what was found).
    """

    name = "hwmon"

    def __init__(
        self,
        sysfs: Path | str = "/sys",
        *,
        skip_pci: frozenset[str] = frozenset(),
        env: Mapping[str, str] | None = None,
        gpus: bool = True,
        rails: bool = True,
    ) -> None:
        super().__init__()
        found = discover(sysfs, skip_pci=skip_pci, env=env, gpus=gpus, rails=rails)
        self.discovery = found
        for w in found.warnings:
            self.warn(w)
        if not found.channels:
            seen = f"; sensors not used: {', '.join(found.unused)}" if found.unused else ""
            raise MeterError(
                f"no GPU or power-rail sensor under {Path(sysfs) / 'class/hwmon'}{seen}"
            )
        self._channels = found.channels
        self._lock = threading.Lock()
        self._started = False
        self._t_start = 0.0

    @property
    def devices(self) -> list[str]:
        """Device ids, e.g. ``["gpu:amdgpu-0000:0c:00.0", "board:vdd_in"]``."""
        return [c.device for c in self._channels]

    @property
    def methods(self) -> dict[str, str]:
        """Device id -> ``counter`` or ``sampled``."""
        return {c.device: c.method for c in self._channels}

    @property
    def components(self) -> set[str]:
        """Components covered (``board`` means the whole module: no CPU/RAM estimate)."""
        return {c.component for c in self._channels}

    def describe(self) -> dict[str, str]:
        """Device id -> model (``AMD GPU (0x74a1)``, ``Jetson module``, ...)."""
        return {c.device: c.model for c in self._channels}

    def notes(self) -> dict[str, str]:
        """Device id -> what the sensor covers (Jetson input rail), where worth saying."""
        return {c.device: c.note for c in self._channels if c.note}

    def _fail(self, c: _Channel, t_mono: float, err: Exception) -> None:
        c.failed, c.power_w = True, None
        self.warn(
            f"{c.device} ({c.model}) failed {t_mono - self._t_start:.1f} s after the meter "
            f"started and is no longer read; its energy stays at {c.energy_j:.3f} J: {err}"
        )

    def start(self, t_mono: float) -> None:
        """Baseline every sensor at monotonic time ``t_mono`` (s)."""
        with self._lock:
            self._t_start, self._started = t_mono, True
            for c in self._channels:
                c.energy_j, c.last_t, c.failed = 0.0, t_mono, False
                try:
                    v = c.value()
                except (OSError, ValueError) as e:
                    self._fail(c, t_mono, e)
                    continue
                if c.kind == "energy_uj":
                    c.last, c.power_w = int(v), None
                else:
                    c.power_w = v

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative energy (J) per sensor since :meth:`start`, at ``t_mono`` (s)."""
        with self._lock:
            if not self._started:
                raise RuntimeError("HwmonMeter.read() called before start()")
            for c in self._channels:
                if c.failed:
                    continue
                dt_s = t_mono - c.last_t
                try:
                    v = c.value()
                except (OSError, ValueError) as e:
                    self._fail(c, t_mono, e)
                    continue
                if c.kind == "energy_uj":
                    delta = int(v) - c.last
                    if delta < 0:
                        self.warn(
                            f"{c.device} energy counter went backwards ({c.last} -> {int(v)} "
                            f"µJ; driver reloaded?): interval skipped"
                        )
                        delta = 0
                    c.last = int(v)
                    c.energy_j += delta / 1e6
                    if dt_s > 0:
                        c.power_w = delta / 1e6 / dt_s
                elif dt_s > 0:
                    c.energy_j += 0.5 * ((c.power_w or 0.0) + v) * dt_s
                    c.power_w = v
                else:
                    c.power_w = v
                if dt_s > 0:
                    c.last_t = t_mono
            return [
                DeviceReading(c.component, c.device, c.energy_j, c.power_w, c.method)
                for c in self._channels
            ]


def open_meter(ctx: OpenContext) -> Meter | None:
    """The hwmon/IIO sensors for what is wanted and not measured already, or None.

    GPU sensors when the GPU is wanted (amdgpu ones only for GPUs no earlier meter claimed:
    ``ctx.claimed_pci``); power rails when the CPU is wanted (the host's meters). A Jetson
    input rail measures the whole module: it covers ``cpu``, ``ram`` and ``gpu``, so the
    estimates stand down.
    """
    gpus, rails = ctx.wants("gpu"), ctx.wants("cpu")
    sysfs = Path(ctx.config.sysfs)
    iio = rails and (sysfs / INA3221_DRIVER).is_dir()  # as presence.hwmon, asked before import
    if not (gpus or rails) or not ((sysfs / HWMON_CLASS).is_dir() or iio):
        return None
    try:
        meter = HwmonMeter(
            ctx.config.sysfs, skip_pci=frozenset(ctx.claimed_pci), gpus=gpus, rails=rails
        )
    except MeterError:
        return None
    if "board" in meter.components:
        ctx.covered.update(("cpu", "ram", "gpu"))
    if "gpu" in meter.components:
        ctx.covered.add("gpu")
    return meter


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``hwmon``: the GPU and power-rail sensors found, or why none (amdgpu sensors are left
    out when amdsmi, asked before, measures the AMD GPUs)."""
    found = discover(ctx.config.sysfs)
    if any(e.name == "amdsmi" and st.available for e, st in ctx.found):
        amd = [c for c in found.channels if c.device.startswith("gpu:amdgpu-")]
        found.channels = [c for c in found.channels if c not in amd]
        found.amdgpu_skipped += [c.device for c in amd]
    unused = f"; sensors not used: {', '.join(found.unused)}" if found.unused else ""
    if found.amdgpu_skipped:
        unused += f"; amdgpu sensors not used, amdsmi measures: {', '.join(found.amdgpu_skipped)}"
    if not found.channels:
        return [
            MeterStatus(
                "hwmon",
                False,
                f"no GPU or power-rail sensor under {Path(ctx.config.sysfs) / 'class/hwmon'}"
                + unused
                + "".join(f"; {w}" for w in found.warnings),
            )
        ]
    parts = [f"{c.device} {c.model} ({c.method})" for c in found.channels]
    notes = [c.note for c in found.channels if c.note] + found.warnings
    kinds = "/".join(sorted({c.method for c in found.channels}))
    devices = [c.device for c in found.channels]
    reason = "; ".join([", ".join(parts), *notes]) + unused
    return [MeterStatus("hwmon", True, reason, devices, kinds)]
