"""Simulated AMD GPUs behind a simulated ``amdsmi`` module (``tests/fakes/sim/amdsmi``).

    fake = FakeAmdSmi([FakeAmdGpu("AMD Instinct MI300X", power_w=[(0, 600), (2, 200)])])
    fake.install(monkeypatch)      # sim/ first on sys.path: ``import amdsmi`` is the simulation
    meter = AmdSmiMeter()
    fake.advance(1.5)              # explicit clock: exact ground truth
    fake.expected_energy_j(0)      # J since t = 0
    with fake: ...                 # wall clock (time.monotonic) for end-to-end tests

``amdsmi_get_energy_count`` returns ``energy_accumulator = int((initial_uj + E_uJ) /
counter_resolution) mod 2**counter_bits`` (``counter_bits=32`` makes it wrap, as on some
firmware) with ``counter_resolution`` 15.259 µJ; ``amdsmi_get_power_info`` returns watts with
0xFFFF converted to ``"N/A"`` as the real binding does. ``mi250x()`` builds the two dies of one
MI250X: same board serial, the second die reading the first one's package counter (its own
power N/A), the energy being the package's. Errors are ``amdsmi.AmdSmiLibraryException(code)``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.clock import FakeClock
from fakes.powercap import Script, integrate_j, power_at_w

__all__ = ["SIM_DIR", "FakeAmdGpu", "FakeAmdSmi", "mi250x"]

SIM_DIR = Path(__file__).resolve().parent / "sim"
RESOLUTION_UJ = 15.259  # MI200/MI300 energy counter resolution (µJ per tick)


@dataclass
class FakeAmdGpu:
    """One simulated AMD GPU (or compute die).

    Attributes:
        name: asic ``market_name``.
        power_w: power script (W), see :data:`fakes.powercap.Script`.
        energy_counter: False -> ``amdsmi_get_energy_count`` raises NOT_SUPPORTED.
        power_available: False -> every power field is ``"N/A"`` (0xFFFF in the library).
        serial: board ``product_serial`` (dies of one package share it).
        shares_counter_of: index of the die whose counter this one returns (MI250X).
        counter_bits: the accumulator wraps at 2**bits.
        initial_uj: counter at t = 0. Units: µJ.
        fail_at_s: from this fake time on every call on the GPU raises ``fail_code``.
        fail_code: amdsmi status of that failure (default AMDSMI_STATUS_NOT_FOUND).
        hip_id: HIP index reported by ``amdsmi_get_gpu_enumeration_info`` (None: the handle index).
        reads: energy-count calls so far.
    """

    name: str = "AMD Instinct MI300X"
    power_w: Script = 500.0
    energy_counter: bool = True
    power_available: bool = True
    serial: str | None = None
    shares_counter_of: int | None = None
    counter_bits: int = 64
    initial_uj: float = 123_456_789.0
    fail_at_s: float | None = None
    fail_code: int = 31
    hip_id: int | None = None
    reads: int = field(default=0, init=False)


def mi250x(
    power_w: Script = 400.0, serial: str = "PCB-MI250X-0001", *, first_index: int = 0
) -> list[FakeAmdGpu]:
    """The two dies (GCDs) of one MI250X, the first at amdsmi index ``first_index``: one
    package counter, read by both."""
    return [
        FakeAmdGpu("AMD Instinct MI250X", power_w, serial=serial),
        FakeAmdGpu(
            "AMD Instinct MI250X",
            0.0,
            serial=serial,
            shares_counter_of=first_index,
            power_available=False,
        ),
    ]


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake amdsmi handle {self.index}>"


class FakeAmdSmi(FakeClock):
    """Simulated amdsmi. Configure GPUs, :meth:`install`, then drive the clock (a
    :class:`fakes.clock.FakeClock`).

    Args:
        gpus: the devices in amdsmi handle order.
        init_error: if set, ``amdsmi_init`` raises ``AmdSmiLibraryException(init_error)``.
        import_error: if set, ``import amdsmi`` raises it (the real package raises KeyError
            after printing when libamd_smi.so is missing).
    """

    def __init__(
        self,
        gpus: Iterable[FakeAmdGpu] = (),
        *,
        init_error: int | None = None,
        import_error: BaseException | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.init_error = init_error
        self.import_error = import_error
        self.init_count = 0
        self.calls: dict[str, int] = {}
        super().__init__()  # the clock: advance(), start() / stop(), now_s(), fake_time_at()

    # ---- ground truth ---------------------------------------------------------------------
    def expected_energy_j(
        self, index: int, since_s: float = 0.0, until_s: float | None = None
    ) -> float:
        """Scripted energy of GPU ``index`` in [since, until]. Units: J."""
        until = self.now_s() if until_s is None else until_s
        return integrate_j(self.gpus[index].power_w, since_s, until)

    # ---- installation ---------------------------------------------------------------------
    def install(self, monkeypatch: Any) -> FakeAmdSmi:
        """Put the simulated ``amdsmi`` first on ``sys.path`` and connect it to this fake."""
        monkeypatch.syspath_prepend(str(SIM_DIR))
        monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
        monkeypatch.setenv("GREENTRACK_AMDSMI", "1")  # the simulated driver is "present"
        for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
            monkeypatch.delenv(var, raising=False)
        import amdsmi

        assert Path(amdsmi.__file__).is_relative_to(SIM_DIR), amdsmi.__file__
        monkeypatch.setattr(amdsmi, "_SIM", self)
        if self.import_error is not None:
            err = self.import_error

            class _Broken:
                def find_spec(self, name: str, *a: Any) -> None:
                    if name == "amdsmi":
                        raise err
                    return None

            monkeypatch.delitem(sys.modules, "amdsmi")
            monkeypatch.setattr(sys, "meta_path", [_Broken(), *sys.meta_path])
        return self

    # ---- the API --------------------------------------------------------------------------
    def call(self, name: str, *args: Any) -> Any:
        import amdsmi

        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name == "amdsmi_init":
                if self.init_error is not None:
                    raise amdsmi.AmdSmiLibraryException(self.init_error)
                self.init_count += 1
                return None
            if self.init_count <= 0:
                raise amdsmi.AmdSmiLibraryException(amdsmi.AMDSMI_STATUS_NOT_INIT)
            if name == "amdsmi_shut_down":
                self.init_count -= 1
                return None
            if name == "amdsmi_get_processor_handles":
                return [_Handle(i) for i in range(len(self.gpus))]
            (handle,) = args
            if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
                raise amdsmi.AmdSmiLibraryException(amdsmi.AMDSMI_STATUS_INVAL)
            i = handle.index
            g = self.gpus[i]
            if g.fail_at_s is not None and self.now_s() >= g.fail_at_s:
                raise amdsmi.AmdSmiLibraryException(g.fail_code)
            return getattr(self, "_" + name)(i, g)

    def uuid(self, i: int) -> str:
        return f"{0x5BFF74A1 + i:08x}-0000-1000-80e7-af2ca4e3c8{i:02x}"

    def hip_uuid(self, i: int) -> str:
        seed = (0x9E3779B1 * (i + 1)) & 0xFFFFFFFF  # distinct leading digits per index
        return f"GPU-{seed:08x}{0x6E3A1C9F + i:08x}"

    def _amdsmi_get_gpu_device_uuid(self, i: int, g: FakeAmdGpu) -> str:
        return self.uuid(i)

    def _amdsmi_get_gpu_device_bdf(self, i: int, g: FakeAmdGpu) -> str:
        return self.bdf(i)

    def bdf(self, i: int) -> str:
        """PCI address of GPU ``i`` (what an amdgpu hwmon ``device`` link would point at)."""
        return f"0000:{0x0C + i:02x}:00.0"

    def _amdsmi_get_gpu_enumeration_info(self, i: int, g: FakeAmdGpu) -> dict[str, Any]:
        hip = i if g.hip_id is None else g.hip_id
        return {"drm_render": 128 + i, "drm_card": i, "hsa_id": i + 1, "hip_id": hip,
                "hip_uuid": self.hip_uuid(i)}  # fmt: skip

    def _amdsmi_get_gpu_asic_info(self, i: int, g: FakeAmdGpu) -> dict[str, Any]:
        return {
            "market_name": g.name,
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": "0x74a1",
            "asic_serial": f"0x{0xA1B2C3D4E5F60000 + i:016X}",
            "oam_id": i // 2,
            "num_compute_units": 304,
            "target_graphics_version": "gfx942",
        }

    def _amdsmi_get_gpu_board_info(self, i: int, g: FakeAmdGpu) -> dict[str, Any]:
        return {"model_number": "102-G30211-00", "product_serial": g.serial or f"PCB-{i:04d}",
                "fru_id": "N/A", "product_name": g.name, "manufacturer_name": "AMD"}  # fmt: skip

    def counter_ticks(self, i: int) -> int:
        """The accumulator of GPU ``i`` now (its twin's, for a die sharing a counter)."""
        g = self.gpus[i]
        src = self.gpus[g.shares_counter_of] if g.shares_counter_of is not None else g
        energy_uj = src.initial_uj + integrate_j(src.power_w, 0.0, self.now_s()) * 1e6
        return int(energy_uj / RESOLUTION_UJ) % (1 << src.counter_bits)

    def _amdsmi_get_energy_count(self, i: int, g: FakeAmdGpu) -> dict[str, Any]:
        import amdsmi

        if not g.energy_counter:
            raise amdsmi.AmdSmiLibraryException(amdsmi.AMDSMI_STATUS_NOT_SUPPORTED)
        g.reads += 1
        return {"energy_accumulator": self.counter_ticks(i), "counter_resolution": RESOLUTION_UJ,
                "timestamp": int(self.now_s() * 1e9)}  # fmt: skip

    def _amdsmi_get_power_info(self, i: int, g: FakeAmdGpu) -> dict[str, Any]:
        p = round(power_at_w(g.power_w, self.now_s())) if g.power_available else "N/A"
        return {"socket_power": p, "current_socket_power": p, "average_socket_power": p,
                "gfx_voltage": "N/A", "soc_voltage": "N/A", "mem_voltage": "N/A",
                "power_limit": 750_000_000}  # fmt: skip
