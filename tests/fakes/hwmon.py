"""A simulated hwmon/IIO sysfs: real files in a temp dir, driven by power scripts.

    fake = FakeHwmon(tmp_path / "sys")
    fake.add_gpu("amdgpu", "0000:0c:00.0", power_w=[(0, 300), (1, 120)])   # power1_average, µW
    fake.add_ina3221({"VDD_IN": 7.5, "VDD_CPU_GPU_CV": 3.0}, abi="hwmon")   # Jetson rails
    fake.advance(1.5)                  # explicit clock; files rewritten
    fake.expected_energy_j("gpu:amdgpu-0000:0c:00.0")
    with fake: ...                     # wall clock: a thread rewrites the files every 2 ms

Layouts are the kernel's: ``devices/pci0000:00/<bdf>/hwmon/hwmonN`` linked from
``class/hwmon/hwmonN``, with ``device`` pointing back at the PCI device (which has a ``device``
id file); the upstream ina3221 driver under ``devices/platform/.../1-0040/hwmon/hwmonN``
(``inN_label``, ``inN_input`` mV, ``currN_input`` mA); Jetson's downstream ``ina3221x`` IIO
driver under ``bus/i2c/drivers/ina3221x/1-0040/iio:device0`` (``rail_name_N``,
``in_powerN_input`` mW or ``in_currentN_input`` mA / ``in_voltageN_input`` mV). Power files
hold ``round(P·1e6)`` µW, energy files ``int(initial + E·1e6)`` µJ, rails an integer current
at a fixed voltage (scripts chosen so ``P / V`` is a whole mA are exact).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fakes.clock import RewritingClock
from fakes.powercap import Script, integrate_j, power_at_w

__all__ = ["FakeHwmon"]


@dataclass
class _Sensor:
    device: str  # the device id greentrack must report (ground truth by construction)
    kind: str  # power_uw | energy_uj | iv | power_mw
    files: tuple[Path, ...]
    power_w: Script
    volt_mv: int = 5000
    initial_uj: int = 10_000_000
    broken_at_s: float | None = None


class FakeHwmon(RewritingClock):
    """A sysfs root with hwmon chips and INA3221 rails (see the module docstring)."""

    def __init__(self, root: Path, period_s: float = 0.002) -> None:
        self.sysfs = Path(root)
        (self.sysfs / "class" / "hwmon").mkdir(parents=True, exist_ok=True)
        self.sensors: list[_Sensor] = []
        self._n = 0
        super().__init__(period_s, "fake-hwmon")  # the clock: advance(), start(), now_s()

    # ---- tree -----------------------------------------------------------------------------
    def _hwmon(self, parent: Path, name: str) -> Path:
        hw = parent / "hwmon" / f"hwmon{self._n}"
        self._n += 1
        hw.mkdir(parents=True)
        (hw / "name").write_text(name + "\n")
        (self.sysfs / "class" / "hwmon" / hw.name).symlink_to(
            os.path.relpath(hw, self.sysfs / "class" / "hwmon")
        )
        (hw / "device").symlink_to(os.path.relpath(parent, hw))
        return hw

    def add_gpu(
        self,
        chip: str,
        pci: str,
        power_w: Script,
        *,
        kind: str = "",
        pci_id: str = "0x740c",
        label: str | None = None,
        legacy: bool = False,
    ) -> str:
        """A GPU's hwmon chip (``amdgpu``: ``power1_average``; ``i915``/``xe``: ``energy1_input``;
        ``legacy``: the sensor files in ``hwmonN/device/``, as older kernels had them); returns
        the device id greentrack must report."""
        dev = self.sysfs / "devices" / "pci0000:00" / pci
        dev.mkdir(parents=True)
        (dev / "device").write_text(pci_id + "\n")
        hw = self._hwmon(dev, chip)
        files_dir = dev if legacy else hw  # old kernels: sensor files in hwmonN/device/
        kind = kind or ("power_average" if chip == "amdgpu" else "energy")
        file = {
            "power_average": "power1_average",
            "power_input": "power1_input",
            "energy": "energy1_input",
        }[kind]
        if label:
            name = file.replace("_input", "_label").replace("_average", "_label")
            (files_dir / name).write_text(label + "\n")
        vendor = "amdgpu" if chip == "amdgpu" else "intel"
        device = f"gpu:{vendor}-{pci}"
        self.sensors.append(
            _Sensor(
                device,
                "energy_uj" if kind == "energy" else "power_uw",
                (files_dir / file,),
                power_w,
            )
        )
        self._write_all()
        return device

    def add_chip(self, name: str, files: dict[str, str]) -> Path:
        """Any other hwmon chip with static files (e.g. ``k10temp``, ``power_meter``)."""
        dev = self.sysfs / "devices" / "platform" / f"{name}.0"
        dev.mkdir(parents=True, exist_ok=True)
        hw = self._hwmon(dev, name)
        for f, v in files.items():
            (hw / f).write_text(v + "\n")
        return hw

    def add_ina3221(self, rails: dict[str, Script], *, abi: str = "hwmon", volt_mv: int = 5000,
                    iio_power_file: bool = True) -> list[str]:  # fmt: skip
        """Jetson rails (name -> power script) on one INA3221 in the given driver ABI
        (``hwmon``: upstream, curr × in; ``iio``: downstream, ``in_powerN_input`` mW or, with
        ``iio_power_file=False``, current × voltage). Returns the rail device ids."""
        addr = self.sysfs / "devices" / "platform" / "3160000.i2c" / "i2c-1" / "1-0040"
        addr.mkdir(parents=True, exist_ok=True)
        out = []
        if abi == "hwmon":
            hw = self._hwmon(addr, "ina3221")
            for n, (label, script) in enumerate(rails.items(), start=1):
                (hw / f"in{n}_label").write_text(label + "\n")
                (hw / f"in{n}_enable").write_text("1\n")
                files = (hw / f"curr{n}_input", hw / f"in{n}_input")
                self.sensors.append(_Sensor(f"rail:{label.lower()}", "iv", files, script, volt_mv))
                out.append(f"rail:{label.lower()}")
        else:
            iio = addr / "iio:device0"
            iio.mkdir(parents=True, exist_ok=True)
            drv = self.sysfs / "bus" / "i2c" / "drivers" / "ina3221x"
            drv.mkdir(parents=True, exist_ok=True)
            (drv / "1-0040").symlink_to(os.path.relpath(addr, drv))
            for n, (label, script) in enumerate(rails.items()):
                (iio / f"rail_name_{n}").write_text(label + "\n")
                if iio_power_file:
                    files: tuple[Path, ...] = (iio / f"in_power{n}_input",)
                    kind = "power_mw"
                else:
                    files, kind = (iio / f"in_current{n}_input", iio / f"in_voltage{n}_input"), "iv"
                self.sensors.append(_Sensor(f"rail:{label.lower()}", kind, files, script, volt_mv))
                out.append(f"rail:{label.lower()}")
        self._write_all()
        return out

    def sensor(self, device: str) -> _Sensor:
        return next(s for s in self.sensors if s.device == device)

    # ---- ground truth ---------------------------------------------------------------------
    def expected_energy_j(
        self, device: str, since_s: float = 0.0, until_s: float | None = None
    ) -> float:
        """Scripted energy of a device in [since, until] (default until now). Units: J."""
        s = self.sensor(device)
        until = self.t_s if until_s is None else until_s
        if s.broken_at_s is not None:
            until = min(until, s.broken_at_s)
        return integrate_j(s.power_w, since_s, until)

    # ---- files ----------------------------------------------------------------------------
    def break_device(self, device: str) -> None:
        """The device vanishes now (its files are removed: reads fail)."""
        with self._lock:
            s = self.sensor(device)
            s.broken_at_s = self.t_s
            for f in s.files:
                f.unlink(missing_ok=True)

    def _write_all(self) -> None:
        for s in self.sensors:
            if s.broken_at_s is not None:
                continue
            p_w = power_at_w(s.power_w, self.t_s)
            if s.kind == "power_uw":
                values = [round(p_w * 1e6)]
            elif s.kind == "power_mw":
                values = [round(p_w * 1e3)]
            elif s.kind == "energy_uj":
                values = [int(s.initial_uj + integrate_j(s.power_w, 0.0, self.t_s) * 1e6)]
            else:
                values = [round(p_w * 1e6 / s.volt_mv), s.volt_mv]  # mA, mV
            for f, v in zip(s.files, values, strict=True):
                tmp = f.with_name(f".{f.name}.tmp")
                tmp.write_text(f"{v}\n")
                os.replace(tmp, f)
