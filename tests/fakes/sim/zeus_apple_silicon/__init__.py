"""A simulated ``zeus_apple_silicon`` (ml-energy/zeus-apple-silicon's Python binding), put first
on ``sys.path`` by the test fixture.

Same names as the real package: ``AppleEnergyMonitor()`` with ``get_cumulative_energy()``,
``begin_window(key)`` and ``end_window(key)``, returning ``AppleEnergyMetrics`` whose fields are
millijoules (``int``) or None where the chip has no such counter (``efficiency_cores_mj`` and
``performance_cores_mj`` are per-core lists). The numbers come from the
:class:`fakes.apple.FakeAppleSilicon` installed in :data:`_SIM`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SIM: Any = None


@dataclass
class AppleEnergyMetrics:
    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_cores_mj: list[int] | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


class AppleEnergyMonitor:
    def __init__(self) -> None:
        if _SIM is None:
            raise RuntimeError("IOReport is not available (not an Apple silicon Mac)")
        self._windows: dict[str, AppleEnergyMetrics] = {}
        self._origin = _SIM.metrics()

    def get_cumulative_energy(self) -> AppleEnergyMetrics:
        return _SIM.metrics()

    def begin_window(self, key: str) -> None:
        self._windows[key] = _SIM.metrics()

    def end_window(self, key: str) -> AppleEnergyMetrics:
        start = self._windows.pop(key)
        now = _SIM.metrics()
        out = AppleEnergyMetrics()
        for f in ("cpu_total_mj", "dram_mj", "gpu_mj", "gpu_sram_mj", "ane_mj"):
            a, b = getattr(start, f), getattr(now, f)
            setattr(out, f, None if a is None or b is None else b - a)
        return out
