"""Simulated NVIDIA GPUs installed under the real ``pynvml`` module (via ``monkeypatch``).

    fake = FakeNvml([FakeGpu("NVIDIA A100-SXM4-80GB", power_w=[(0, 300), (2, 100)]),
                     FakeGpu("Tesla P100-PCIE-16GB", energy_counter=False, power_w=180)])
    fake.install(monkeypatch)
    meter = NvmlMeter()            # sees two GPUs through pynvml
    fake.advance(1.5)              # explicit clock: exact ground truth
    fake.expected_energy_j(0)      # J since t = 0
    with fake: ...                 # wall clock (time.monotonic) for end-to-end tests

Everything the meter calls is replaced: ``nvmlInit``/``nvmlShutdown`` (reference counted, like
NVML; device calls before init raise ``NVML_ERROR_UNINITIALIZED``), ``nvmlDeviceGetCount``,
``...GetHandleByIndex``, ``...GetHandleByUUID``, ``...GetIndex``, ``...GetName``, ``...GetUUID``,
``...GetTotalEnergyConsumption`` (mJ: ``initial_mj + int(E_J·1000)``), ``...GetPowerUsage``
(mW: ``round(P_W·1000)``), ``...GetDeviceHandleFromMigDeviceHandle`` and
``...IsMigDeviceHandle`` (MIG devices by ``MIG-<uuid>`` through ``...GetHandleByUUID``). Errors
are real ``pynvml.NVMLError(code)`` instances, so the code under test sees the exact exception
classes NVML raises (``NVMLError_NotSupported``, ``NVMLError_FunctionNotFound``, ...).

Counter realism: ``counter_period_s`` makes the counter refresh only every that many seconds
(it holds the energy at the last refresh, like many GPUs' ~100 ms counter); ``counter_scale``
makes it report that fraction of the true energy (a counter that disagrees with power).
``driver_loaded=False`` makes the kernel driver look absent to greentrack's file check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from fakes.clock import FakeClock
from fakes.powercap import Script, integrate_j, power_at_w

__all__ = ["FakeGpu", "FakeNvml", "default_gpus"]


@dataclass
class FakeGpu:
    """One simulated GPU.

    Attributes:
        name: model name returned by ``nvmlDeviceGetName``.
        power_w: power script (W): a constant or ``[(t_s, power_w), ...]`` piecewise constant.
        energy_counter: False -> ``nvmlDeviceGetTotalEnergyConsumption`` raises NOT_SUPPORTED
            (pre-Volta GPUs): the meter must fall back to sampling power.
        uuid: ``GPU-...``; derived from the index when None.
        fail_after_reads: after this many successful energy/power calls, every call on the
            device raises ``fail_code`` (a GPU that falls off the bus mid-run).
        fail_at_s: same, from this fake time on. Units: s.
        fail_code: the NVML error code of the failure (default GPU_IS_LOST).
        initial_mj: energy counter at t = 0 (since "driver load"). Units: mJ.
        counter_error: the NVML code ``nvmlDeviceGetTotalEnergyConsumption`` raises (e.g.
            ``NVML_ERROR_FUNCTION_NOT_FOUND``: an old driver); overrides ``energy_counter``.
        counter_period_s: the counter refreshes every this many seconds (None: continuously).
        counter_scale: the counter reports this fraction of the scripted energy.
        mig_uuids: MIG devices on this GPU (``MIG-...``), found by ``...GetHandleByUUID``.
        reads: successful primary reads so far: energy counter calls, and power calls on GPUs
            without a counter (what ``fail_after_reads`` counts).
    """

    name: str = "NVIDIA A100-SXM4-80GB"
    power_w: Script = 250.0
    energy_counter: bool = True
    uuid: str | None = None
    fail_after_reads: int | None = None
    fail_at_s: float | None = None
    fail_code: int = pynvml.NVML_ERROR_GPU_IS_LOST
    initial_mj: int = 987_654_321
    counter_error: int | None = None
    counter_period_s: float | None = None
    counter_scale: float = 1.0
    mig_uuids: list[str] = field(default_factory=list)
    reads: int = field(default=0, init=False)

    def counter_code(self) -> int | None:
        """The error code of the energy counter, or None when it works."""
        if self.counter_error is not None:
            return self.counter_error
        return None if self.energy_counter else pynvml.NVML_ERROR_NOT_SUPPORTED


def default_gpus() -> list[FakeGpu]:
    """A counter-capable A100 with a stepped trace and a power-only (pre-Volta) P100."""
    return [
        FakeGpu("NVIDIA A100-SXM4-80GB", power_w=[(0.0, 300.0), (1.0, 120.0), (2.5, 310.0)]),
        FakeGpu("Tesla P100-PCIE-16GB", power_w=[(0.0, 150.0), (0.7, 40.0)], energy_counter=False),
    ]


class _Handle:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvml handle {self.index}>"


class _MigHandle:
    __slots__ = ("parent", "uuid")

    def __init__(self, parent: int, uuid: str) -> None:
        self.parent, self.uuid = parent, uuid

    def __repr__(self) -> str:
        return f"<fake nvml MIG handle {self.uuid} on {self.parent}>"


class FakeNvml(FakeClock):
    """Simulated NVML. Configure GPUs, :meth:`install`, then drive the clock.

    Args:
        gpus: the devices, in NVML index order (default :func:`default_gpus`).
        init_error: if set, ``nvmlInit`` raises ``NVMLError(init_error)`` (e.g.
            ``NVML_ERROR_LIBRARY_NOT_FOUND``: a host without the driver;
            ``NVML_ERROR_LIB_RM_VERSION_MISMATCH``: a driver upgraded without reboot).
        driver_loaded: whether the kernel driver's files look present (greentrack's
            ``_DRIVER_FILES`` check), independent of the machine the tests run on.
    """

    def __init__(
        self,
        gpus: Iterable[FakeGpu] | None = None,
        *,
        init_error: int | None = None,
        driver_loaded: bool = True,
    ):
        self.gpus: list[FakeGpu] = []
        self.set_gpus(default_gpus() if gpus is None else gpus)
        self.init_error = init_error
        self.driver_loaded = driver_loaded
        self.init_count = 0  # current NVML reference count
        self.calls: dict[str, int] = {}
        super().__init__()  # the clock: advance(), start() / stop(), now_s(), fake_time_at()

    def set_gpus(self, gpus: Iterable[FakeGpu]) -> None:
        """Replace the devices (before the code under test enumerates them)."""
        self.gpus = list(gpus)
        for i, g in enumerate(self.gpus):
            if g.uuid is None:
                seed = (0x9E3779B1 * (i + 1)) & 0xFFFFFFFF  # distinct leading digits per index
                g.uuid = f"GPU-{seed:08x}-4a5b-8c9d-0e1f-{i:012x}"

    # ---- ground truth ---------------------------------------------------------------------

    def expected_energy_j(
        self, index: int, since_s: float = 0.0, until_s: float | None = None
    ) -> float:
        """Scripted energy of GPU ``index`` in [since, until] (default until now). Units: J."""
        until = self.now_s() if until_s is None else until_s
        return integrate_j(self.gpus[index].power_w, since_s, until)

    def power_w(self, index: int, t_s: float | None = None) -> float:
        """Scripted power of GPU ``index`` at fake time t (default now). Units: W."""
        return power_at_w(self.gpus[index].power_w, self.now_s() if t_s is None else t_s)

    # ---- the patched API ------------------------------------------------------------------

    def install(self, monkeypatch: Any) -> FakeNvml:
        """Patch the real ``pynvml`` module's functions with this fake."""
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetHandleByUUID",
            "nvmlDeviceGetIndex",
            "nvmlDeviceGetName",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetTotalEnergyConsumption",
            "nvmlDeviceGetPowerUsage",
            "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
            "nvmlDeviceIsMigDeviceHandle",
        ):
            monkeypatch.setattr(pynvml, name, self._counted(name, getattr(self, "_" + name)))
        monkeypatch.setattr(pynvml, "nvmlInitWithFlags", lambda flags=0: pynvml.nvmlInit())
        monkeypatch.setenv("GREENTRACK_NVML", "1")  # the simulated driver is "present"
        from greentrack.meters import nvml_devices

        files = (os.path.abspath(os.sep),) if self.driver_loaded else ()
        monkeypatch.setattr(nvml_devices, "_DRIVER_FILES", files, raising=False)
        return self

    def _counted(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args)

        wrapper.__name__ = name
        return wrapper

    def _need_init(self) -> None:
        if self.init_count <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Any) -> FakeGpu:
        self._need_init()
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        g = self.gpus[handle.index]
        failing = (g.fail_after_reads is not None and g.reads >= g.fail_after_reads) or (
            g.fail_at_s is not None and self.now_s() >= g.fail_at_s
        )
        if failing:
            raise pynvml.NVMLError(g.fail_code)
        return g

    def _nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.init_count += 1

    def _nvmlShutdown(self) -> None:
        self._need_init()
        self.init_count -= 1

    def _nvmlDeviceGetCount(self) -> int:
        self._need_init()
        return len(self.gpus)

    def _nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._need_init()
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def _nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle | _MigHandle:
        self._need_init()
        for i, g in enumerate(self.gpus):
            if g.uuid == uuid:
                return _Handle(i)
            if uuid in g.mig_uuids:
                return _MigHandle(i, uuid)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def _nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> _Handle:
        self._need_init()
        if not isinstance(handle, _MigHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(handle.parent)

    def _nvmlDeviceIsMigDeviceHandle(self, handle: Any) -> int:
        self._need_init()
        return int(isinstance(handle, _MigHandle))

    def _nvmlDeviceGetIndex(self, handle: Any) -> int:
        self._gpu(handle)
        return handle.index

    def _nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle).name

    def _nvmlDeviceGetUUID(self, handle: Any) -> str:
        return str(self._gpu(handle).uuid)

    def counter_time_s(self, index: int, t_s: float | None = None) -> float:
        """The fake time up to which GPU ``index``'s counter holds energy at fake time t (the
        last refresh when ``counter_period_s`` is set). Units: s."""
        t = self.now_s() if t_s is None else t_s
        period = self.gpus[index].counter_period_s
        return t if period is None else math.floor(t / period + 1e-9) * period

    def _nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        g = self._gpu(handle)
        code = g.counter_code()
        if code is not None:
            raise pynvml.NVMLError(code)
        g.reads += 1
        until = self.counter_time_s(handle.index)
        return g.initial_mj + int(integrate_j(g.power_w, 0.0, until) * g.counter_scale * 1000)

    def _nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        g = self._gpu(handle)
        if g.counter_code() is not None:  # a power-only GPU: power is its primary read
            g.reads += 1
        return round(power_at_w(g.power_w, self.now_s()) * 1000)
