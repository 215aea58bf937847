"""NVIDIA GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py).

Per visible GPU, the best method it supports:

- ``counter``: ``nvmlDeviceGetTotalEnergyConsumption`` — millijoules since the driver loaded
  (Volta and newer). Energy since :meth:`NvmlMeter.start` is the counter's delta: exact up to
  1 mJ, whatever the sampling interval.
- ``sampled``: ``nvmlDeviceGetPowerUsage`` — milliwatts now. Integrated with the trapezoid rule
  between :meth:`NvmlMeter.read` calls; for a power that is piecewise constant, the error per
  power change is at most ``|ΔP| · Δt / 2`` (Δt = the read interval).

Only the GPUs this process can see are measured: ``CUDA_VISIBLE_DEVICES`` by index (``"0,2"``),
by UUID (``"GPU-8932f937-..."``) or unique UUID prefix (``"GPU-8932f937"``), as CUDA accepts;
``""`` or ``"-1"`` mean none. Like CUDA, parsing stops at the first entry that names no GPU.
Indices are taken as NVML (PCI bus) indices, which is what CUDA uses with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and, in practice, on hosts whose GPUs are all the same model.

NVML errors are translated once, in :func:`_call`, into :class:`~greentrack.errors.MeterError`
(chained with ``from``). A GPU that fails mid-run keeps its last energy (frozen), is no longer
read, and the failure is recorded with :meth:`Meter.warn`; the other GPUs continue.

``pynvml`` is imported lazily (it costs ~40 ms) and always looked up as ``pynvml.<function>`` at
call time, so tests can simulate GPUs by patching the real module (``tests/fakes/nvml.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import DeviceReading, Meter

__all__ = ["GpuInfo", "NvmlMeter", "list_gpus", "visible_gpu_indices"]


def driver_present() -> bool:
    """Cheap check for an NVIDIA driver (no library load): its /proc entry or control device.

    Hosts without one skip importing and initialising NVML (~30 ms). Set ``GREENTRACK_NVML=1``
    to try NVML anyway (an unusual driver layout, a container without /proc/driver).
    """
    if os.environ.get("GREENTRACK_NVML") == "1":
        return True
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def _pynvml() -> ModuleType:
    import pynvml

    return pynvml


# NVML return codes -> the one-line fix shown to the user.
_HINTS = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "install the NVIDIA driver (`nvidia-smi` must work); "
    "nothing to do on a host without NVIDIA GPUs",
    "NVML_ERROR_DRIVER_NOT_LOADED": "load the NVIDIA driver (`nvidia-smi` must work); "
    "nothing to do on a host without NVIDIA GPUs",
    "NVML_ERROR_NO_PERMISSION": "run as a user allowed to query the GPU (see `nvidia-smi -q`)",
    "NVML_ERROR_GPU_IS_LOST": "the GPU fell off the bus; check `nvidia-smi` and `dmesg`",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the NVIDIA library and kernel driver differ; "
    "reboot or reload the driver",
}


def _hint(code: int | None) -> str:
    nv = _pynvml()
    for name, hint in _HINTS.items():
        if code is not None and getattr(nv, name, None) == code:
            return hint
    return "check `nvidia-smi`"


def _call(fn_name: str, *args: Any, what: str = "") -> Any:
    """Call ``pynvml.<fn_name>(*args)``: the one place NVML errors become ``MeterError``.

    ``NVML_ERROR_NO_PERMISSION`` becomes :class:`MeterPermissionError`. The original
    ``pynvml.NVMLError`` stays available as ``__cause__`` (see :func:`_nvml_code`).
    """
    nv = _pynvml()
    try:
        return getattr(nv, fn_name)(*args)
    except nv.NVMLError as e:
        code = getattr(e, "value", None)
        where = f" for {what}" if what else ""
        msg = f"NVML {fn_name}{where} failed ({e}); {_hint(code)}"
        cls = MeterPermissionError if code == nv.NVML_ERROR_NO_PERMISSION else MeterError
        raise cls(msg) from e


def _nvml_code(err: BaseException) -> int | None:
    """The NVML return code behind a :class:`MeterError` raised by :func:`_call`, if any."""
    return getattr(err.__cause__, "value", None)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One NVIDIA GPU as NVML sees it.

    Attributes:
        index: NVML index (PCI bus order).
        uuid: ``GPU-xxxxxxxx-...``.
        name: model name, e.g. ``NVIDIA H100 80GB HBM3``.
    """

    index: int
    uuid: str
    name: str

    @property
    def device(self) -> str:
        """greentrack's device id: ``gpu:<nvml index>``."""
        return f"gpu:{self.index}"


def visible_gpu_indices(
    cuda_visible_devices: str | None, uuids: Sequence[str]
) -> tuple[list[int], str | None]:
    """The NVML indices a process sees under ``CUDA_VISIBLE_DEVICES``, in CUDA's order.

    Args:
        cuda_visible_devices: the variable's value; ``None`` (unset) means every GPU.
        uuids: the UUID of each GPU, by NVML index.

    Returns:
        ``(indices, problem)``: ``problem`` is a one-line note when an entry names no GPU (CUDA
        then ignores it and every entry after it), else ``None``. ``""`` and ``"-1"`` give
        ``([], None)``: no GPU, on purpose.

    Entries: a decimal index, a full UUID ``GPU-...`` or a prefix of one that matches exactly
    one GPU (case-insensitive), or a legacy MIG id ``MIG-GPU-<uuid>/<gi>/<ci>`` (measured as
    its whole parent GPU: NVML energy is per physical GPU). Repeated GPUs count once.
    """
    n = len(uuids)
    if cuda_visible_devices is None:
        return list(range(n)), None
    value = cuda_visible_devices.strip()
    if value in ("", "-1"):
        return [], None
    out: list[int] = []
    lowered = [u.lower() for u in uuids]
    for raw in value.split(","):
        tok = raw.strip()
        idx: int | None = None
        if tok.lstrip("+-").isdigit():
            i = int(tok)
            idx = i if 0 <= i < n else None
        else:
            key = tok.lower()
            if key.startswith("mig-gpu-"):
                key = key[len("mig-") :].split("/", 1)[0]
            if key.startswith("gpu-") and len(key) > len("gpu-"):
                hits = [i for i, u in enumerate(lowered) if u.startswith(key)]
                idx = hits[0] if len(hits) == 1 else None
        if idx is None:
            if tok == "-1":
                return out, None
            return out, (
                f"CUDA_VISIBLE_DEVICES entry {tok!r} names no single GPU of this host "
                f"({n} GPU(s)); CUDA ignores it and the entries after it"
            )
        if idx not in out:
            out.append(idx)
    return out, None


def _all_gpus() -> list[GpuInfo]:
    """Every GPU NVML lists, by index. NVML must be initialised.

    A GPU that cannot even be named keeps its index (so ``CUDA_VISIBLE_DEVICES`` indices stay
    right) with uuid ``""`` and name ``"unknown"``; opening it later fails with a warning.
    """
    gpus = []
    for i in range(int(_call("nvmlDeviceGetCount"))):
        try:
            h = _call("nvmlDeviceGetHandleByIndex", i, what=f"gpu:{i}")
            uuid = _text(_call("nvmlDeviceGetUUID", h, what=f"gpu:{i}"))
            name = _text(_call("nvmlDeviceGetName", h, what=f"gpu:{i}"))
        except MeterError:
            uuid, name = "", "unknown"
        gpus.append(GpuInfo(index=i, uuid=uuid, name=name))
    return gpus


def list_gpus(*, visible_only: bool = True, env: Mapping[str, str] | None = None) -> list[GpuInfo]:
    """The NVIDIA GPUs of this host (only those visible to this process by default).

    Raises:
        MeterError: NVML cannot be initialised (no driver/library) or fails.
    """
    _call("nvmlInit")
    try:
        gpus = _all_gpus()
        if not visible_only:
            return gpus
        env = os.environ if env is None else env
        indices, _ = visible_gpu_indices(env.get("CUDA_VISIBLE_DEVICES"), [g.uuid for g in gpus])
        return [gpus[i] for i in indices]
    finally:
        try:
            _call("nvmlShutdown")
        except MeterError:
            pass


@dataclass(slots=True)
class _Gpu:
    """Per-GPU state of an :class:`NvmlMeter`."""

    info: GpuInfo
    handle: Any
    method: str  # "counter" | "sampled"
    energy_j: float = 0.0
    power_w: float | None = None
    last_mj: int = 0  # counter: last reading, mJ
    last_t: float = 0.0  # monotonic s of the last read
    power_base_j: float = 0.0  # counter: energy_j at last_t, for power_w
    failed: bool = False


class NvmlMeter(Meter):
    """Energy of each visible NVIDIA GPU (``gpu:<nvml index>``), ``counter`` or ``sampled``.

    Creating the meter initialises NVML (released by :meth:`close`) and chooses each GPU's
    method: ``counter`` if its total-energy counter answers, else ``sampled`` if it reports
    power; a GPU that does neither is skipped with a warning.

    Args:
        env: environment to read ``CUDA_VISIBLE_DEVICES`` / ``CUDA_DEVICE_ORDER`` from
            (default ``os.environ``).

    Raises:
        MeterError: NVML cannot be initialised or enumerated (message has the fix).
    """

    name = "nvml"

    def __init__(self, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        env = os.environ if env is None else env
        self._lock = threading.Lock()
        self._started = False
        self._t_start = 0.0
        self._closed = False
        _call("nvmlInit")
        try:
            gpus = _all_gpus()
            indices, problem = visible_gpu_indices(
                env.get("CUDA_VISIBLE_DEVICES"), [g.uuid for g in gpus]
            )
            if problem:
                self.warn(problem)
            visible = [gpus[i] for i in indices]
            self._check_order(env, visible)
            self._gpus: list[_Gpu] = [g for g in map(self._probe, visible) if g is not None]
        except BaseException:
            self.close()
            raise

    def _check_order(self, env: Mapping[str, str], visible: list[GpuInfo]) -> None:
        cvd = env.get("CUDA_VISIBLE_DEVICES", "")
        uses_indices = any(t.strip().isdigit() for t in cvd.split(","))
        mixed = len({g.name for g in visible}) > 1
        if uses_indices and mixed and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            self.warn(
                "CUDA_VISIBLE_DEVICES uses indices on a host with different GPU models: CUDA "
                "may number them differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID or "
                "use GPU UUIDs"
            )

    def _probe(self, info: GpuInfo) -> _Gpu | None:
        """Open one GPU and pick its method; ``None`` (with a warning) if it cannot be read."""
        nv = _pynvml()
        dev = info.device
        try:
            handle = _call("nvmlDeviceGetHandleByIndex", info.index, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) cannot be opened, not measured: {e}")
            return None
        try:
            _call("nvmlDeviceGetTotalEnergyConsumption", handle, what=dev)
            return _Gpu(info=info, handle=handle, method="counter")
        except MeterError as e:
            if _nvml_code(e) != nv.NVML_ERROR_NOT_SUPPORTED:
                self.warn(f"{dev} ({info.name}) energy counter failed, not measured: {e}")
                return None
        try:
            _call("nvmlDeviceGetPowerUsage", handle, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) reports neither energy nor power, not measured: {e}")
            return None
        return _Gpu(info=info, handle=handle, method="sampled")

    @property
    def devices(self) -> list[str]:
        """Device ids measured, e.g. ``["gpu:0", "gpu:2"]``."""
        return [g.info.device for g in self._gpus]

    @property
    def methods(self) -> dict[str, str]:
        """Device id -> ``counter`` or ``sampled``."""
        return {g.info.device: g.method for g in self._gpus}

    def describe(self) -> dict[str, str]:
        """Device id -> model name, e.g. ``{"gpu:0": "NVIDIA H100 80GB HBM3"}``."""
        return {g.info.device: g.info.name for g in self._gpus}

    def _counter_mj(self, g: _Gpu) -> int:
        return int(_call("nvmlDeviceGetTotalEnergyConsumption", g.handle, what=g.info.device))

    def _power_w(self, g: _Gpu) -> float:
        return int(_call("nvmlDeviceGetPowerUsage", g.handle, what=g.info.device)) / 1000.0

    def _fail(self, g: _Gpu, t_mono: float, err: MeterError) -> None:
        g.failed = True
        g.power_w = None
        self.warn(
            f"{g.info.device} ({g.info.name}) failed {t_mono - self._t_start:.1f} s after the "
            f"meter started and is no longer read; its energy stays at {g.energy_j:.3f} J: {err}"
        )

    def start(self, t_mono: float) -> None:
        """Baseline every GPU at monotonic time ``t_mono`` (s): energy 0 J from here."""
        with self._lock:
            self._t_start = t_mono
            self._started = True
            for g in self._gpus:
                g.energy_j, g.power_base_j, g.last_t, g.failed = 0.0, 0.0, t_mono, False
                try:
                    if g.method == "counter":
                        g.last_mj = self._counter_mj(g)
                        g.power_w = None
                    else:
                        g.power_w = self._power_w(g)
                except MeterError as e:
                    self._fail(g, t_mono, e)

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative energy (J) per GPU since :meth:`start`, at monotonic time ``t_mono`` (s).

        ``power_w`` is, for ``counter`` GPUs, the mean power since the previous read (None
        before the first); for ``sampled`` GPUs, the power just sampled. Failed GPUs: frozen
        energy, ``power_w`` None.
        """
        with self._lock:
            if not self._started:
                raise RuntimeError("NvmlMeter.read() called before start()")
            for g in self._gpus:
                if g.failed:
                    continue
                dt_s = t_mono - g.last_t
                try:
                    if g.method == "counter":
                        mj = self._counter_mj(g)
                        delta_mj = mj - g.last_mj
                        if delta_mj < 0:
                            self.warn(
                                f"{g.info.device} energy counter went backwards "
                                f"({g.last_mj} -> {mj} mJ; driver reloaded?): interval skipped"
                            )
                            delta_mj = 0
                        g.last_mj = mj
                        g.energy_j += delta_mj / 1000.0
                        if dt_s > 0:
                            g.power_w = (g.energy_j - g.power_base_j) / dt_s
                            g.power_base_j = g.energy_j
                    else:
                        p_w = self._power_w(g)
                        if dt_s > 0:
                            g.energy_j += 0.5 * ((g.power_w or 0.0) + p_w) * dt_s
                        g.power_w = p_w
                except MeterError as e:
                    self._fail(g, t_mono, e)
                    continue
                if dt_s > 0:
                    g.last_t = t_mono
            return [
                DeviceReading("gpu", g.info.device, g.energy_j, g.power_w, g.method)
                for g in self._gpus
            ]

    def close(self) -> None:
        """Release NVML (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            _call("nvmlShutdown")
        except MeterError:
            pass
