"""NVIDIA GPU energy through NVML (the ``pynvml`` module of nvidia-ml-py).

Per visible GPU, the best method it supports:

- ``counter``: ``nvmlDeviceGetTotalEnergyConsumption`` — millijoules since the driver loaded
  (Volta and newer). Energy since :meth:`NvmlMeter.start` is the counter's delta: exact up to
  1 mJ, whatever the sampling interval.
- ``sampled``: ``nvmlDeviceGetPowerUsage`` — milliwatts now. Integrated with the trapezoid rule
  between :meth:`NvmlMeter.read` calls; for a power that is piecewise constant, the error per
  power change is at most ``|ΔP| · Δt / 2`` (Δt = the read interval).

Rules:

- **Counter unavailable -> sampled.** Any error of the energy counter when the GPU is opened
  (``NVMLError_NotSupported`` on pre-Volta GPUs, ``NVMLError_FunctionNotFound`` when the
  driver's library lacks the function, or anything else) falls back to sampling power if the
  GPU reports power; only an unexpected error adds a warning.
- **Counter cross-checked against power.** Counter GPUs also sample power at every read and
  integrate it (trapezoid). After :data:`CROSS_CHECK_MIN_S` (10 s) and 10 reads, when the two
  differ by more than :data:`CROSS_CHECK_REL` (20 % of the larger; Zeus issue #181 reports
  187 J by counter vs 327 J by power), the run gets a warning and the GPU a note with both
  figures (kept up to date until the run ends). The stored figure stays the counter's.
- **Short windows.** The counter refreshes only every ~100 ms on many GPUs, so a 50 ms phase
  can read 0 J and the next one twice its energy. Each GPU's update period is observed from
  the reads (the longest a value stayed unchanged while power was drawn, and the shortest
  span that provably contained two updates), starting from a prior of
  :data:`COUNTER_PERIOD_PRIOR_S` (100 ms): ``period = max(longest unchanged, min(100 ms,
  shortest bracket))``. For a window shorter than that, :meth:`NvmlMeter.window_energy`
  returns power integrated over the reads in the window (at least its two boundaries: Zeus's
  instant-energy approximation) with method ``sampled``; the phase records it and a warning
  says so once per GPU. Run totals always come from the counter.
- **MIG.** NVML has no per-slice energy: a MIG device in ``CUDA_VISIBLE_DEVICES``
  (``MIG-<uuid>``, the form ``nvidia-smi -L`` prints since R470, or the legacy
  ``MIG-GPU-<uuid>/<gi>/<ci>``) is measured as its whole parent GPU, and says so in a warning
  and in the GPU's note ("MIG slice of GPU 0: whole-GPU energy ...").

Only the GPUs this process can see are measured: ``CUDA_VISIBLE_DEVICES`` by index (``"0,2"``),
by UUID (``"GPU-8932f937-..."``) or unique UUID prefix (``"GPU-8932f937"``), as CUDA accepts;
``""`` or ``"-1"`` mean none. Like CUDA, parsing stops at the first entry that names no GPU.
Indices are taken as NVML (PCI bus) indices, which is what CUDA uses with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and on hosts whose GPUs are all the same model. When the
*host* has GPUs of different models, ``CUDA_DEVICE_ORDER`` is not ``PCI_BUS_ID`` and
``CUDA_VISIBLE_DEVICES`` uses indices, CUDA's default (fastest first) numbering can differ from
NVML's: if ``torch`` is already imported and has initialised CUDA (greentrack never imports
it), the visible GPUs are taken from ``torch.cuda.get_device_properties(i).uuid`` and matched
by UUID; otherwise a warning says the GPU measured may not be the one in use, with the fix.

NVML failing to initialise on a host that has the NVIDIA driver (e.g. a library/driver version
mismatch after an upgrade) is not silent: :func:`greentrack.meters.open_meters` puts the error
and its fix on the run, and ``greentrack detect`` prints it.

NVML errors are translated once, in :func:`_call`, into :class:`~greentrack.errors.MeterError`
(chained with ``from``). A GPU that fails mid-run keeps its last energy (frozen), is no longer
read, and the failure is recorded with :meth:`Meter.warn`; the other GPUs continue.

``pynvml`` is imported lazily (it costs ~40 ms) and always looked up as ``pynvml.<function>`` at
call time, so tests can simulate GPUs by patching the real module (``tests/fakes/nvml.py``).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import DeviceReading, Meter

__all__ = ["GpuInfo", "NvmlMeter", "list_gpus", "visible_gpu_indices"]

COUNTER_PERIOD_PRIOR_S = 0.1
"""Assumed energy-counter update period until reads show otherwise. Units: s (~100 ms on
A100/V100-class GPUs: Zeus documentation; Yang et al., "Part-time Power Measurements", 2023)."""
CROSS_CHECK_REL = 0.2
"""Counter and integrated power disagreeing by more than this (of the larger) is recorded."""
CROSS_CHECK_MIN_S = 10.0
"""The cross-check starts after this much of the run (and 10 reads). Units: s."""
_CROSS_CHECK_MIN_READS = 10
_SAMPLES_KEPT = 256  # (t, power) per GPU, for short windows

_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")

# errors of nvmlDeviceGetTotalEnergyConsumption that just mean "no counter here"
_COUNTER_UNAVAILABLE = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")


def driver_files_present() -> bool:
    """Whether the NVIDIA kernel driver's /proc entry or control device exists (no library)."""
    return any(os.path.exists(p) for p in _DRIVER_FILES)


def driver_present() -> bool:
    """Cheap check for an NVIDIA driver (no library load): its /proc entry or control device.

    Hosts without one skip importing and initialising NVML (~30 ms). Set ``GREENTRACK_NVML=1``
    to try NVML anyway (an unusual driver layout, a container without /proc/driver).
    """
    if os.environ.get("GREENTRACK_NVML") == "1":
        return True
    return driver_files_present()


def init_failure_is_expected(err: MeterError) -> bool:
    """True when NVML failed to initialise because there is simply no NVIDIA driver here.

    Anything else (a library/driver mismatch, a driver present but no library, permissions)
    is a problem to record on the run.
    """
    nv = _pynvml()
    code = _nvml_code(err)
    no_driver = {getattr(nv, "NVML_ERROR_LIBRARY_NOT_FOUND", -1)}
    no_driver.add(getattr(nv, "NVML_ERROR_DRIVER_NOT_LOADED", -1))
    return code in no_driver and not driver_files_present()


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
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the NVIDIA user-space library (libnvidia-ml.so) "
    "and the loaded kernel driver are different versions (a driver upgrade without reboot?): "
    "compare `cat /proc/driver/nvidia/version` with the library, then reboot or reload the "
    "driver (`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia`)",
    "NVML_ERROR_FUNCTION_NOT_FOUND": "the NVIDIA driver is too old for this NVML call; "
    "update the driver",
}


def _hint(code: int | None) -> str:
    nv = _pynvml()
    if code == getattr(nv, "NVML_ERROR_LIBRARY_NOT_FOUND", None) and driver_files_present():
        return (
            "the NVIDIA kernel driver is loaded but its library libnvidia-ml.so.1 is not found: "
            "install the driver's user-space libraries (in a container: start it with the "
            "NVIDIA Container Toolkit, e.g. `docker run --gpus all`)"
        )
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
    cuda_visible_devices: str | None,
    uuids: Sequence[str],
    *,
    resolve_mig: Callable[[str], int | None] | None = None,
    mig_out: dict[int, str] | None = None,
) -> tuple[list[int], str | None]:
    """The NVML indices a process sees under ``CUDA_VISIBLE_DEVICES``, in CUDA's order.

    Args:
        cuda_visible_devices: the variable's value; ``None`` (unset) means every GPU.
        uuids: the UUID of each GPU, by NVML index.
        resolve_mig: maps a ``MIG-<uuid>`` entry to its parent GPU's NVML index (None if it
            names no MIG device); without it such entries name no GPU.
        mig_out: filled with ``{parent index: MIG entry}`` for every MIG entry resolved.

    Returns:
        ``(indices, problem)``: ``problem`` is a one-line note when an entry names no GPU (CUDA
        then ignores it and every entry after it), else ``None``. ``""`` and ``"-1"`` give
        ``([], None)``: no GPU, on purpose.

    Entries: a decimal index, a full UUID ``GPU-...`` or a prefix of one that matches exactly
    one GPU (case-insensitive), a MIG device ``MIG-<uuid>`` (through ``resolve_mig``) or a
    legacy MIG id ``MIG-GPU-<uuid>/<gi>/<ci>``; a MIG entry is measured as its whole parent
    GPU (NVML energy is per physical GPU). Repeated GPUs count once.
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
            is_mig = key.startswith("mig-")
            if key.startswith("mig-gpu-"):
                key = key[len("mig-") :].split("/", 1)[0]
            if key.startswith("gpu-") and len(key) > len("gpu-"):
                hits = [i for i, u in enumerate(lowered) if u.startswith(key)]
                idx = hits[0] if len(hits) == 1 else None
            elif is_mig and resolve_mig is not None:
                parent = resolve_mig(tok)
                idx = parent if parent is not None and 0 <= parent < n else None
            if is_mig and idx is not None and mig_out is not None:
                mig_out.setdefault(idx, tok)
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


def _mig_parent_index(token: str) -> int | None:
    """NVML index of the GPU holding MIG device ``token`` (``MIG-<uuid>``); None if unknown.

    NVML must be initialised. Goes through ``nvmlDeviceGetHandleByUUID`` and
    ``nvmlDeviceGetDeviceHandleFromMigDeviceHandle``.
    """
    try:
        mig = _call("nvmlDeviceGetHandleByUUID", token, what=token)
        parent = _call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", mig, what=token)
        return int(_call("nvmlDeviceGetIndex", parent, what=token))
    except MeterError:
        return None


def _norm_uuid(uuid: str) -> str:
    u = str(uuid).strip().lower()
    return u[len("gpu-") :] if u.startswith("gpu-") else u


def _cuda_uuids() -> list[str] | None:
    """UUIDs of the CUDA devices in CUDA's order, from torch; None unless torch is already
    imported and has initialised CUDA (greentrack never imports torch or initialises CUDA)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        if not cuda.is_initialized():
            return None
        return [str(cuda.get_device_properties(i).uuid) for i in range(cuda.device_count())]
    except Exception:  # torch builds without CUDA / without .uuid: no mapping
        return None


@dataclass(slots=True)
class _Visible:
    """Which GPUs are visible, and what to say about how they were found."""

    indices: list[int]
    warnings: list[str] = field(default_factory=list)
    mig: dict[int, str] = field(default_factory=dict)


def _resolve_visible(env: Mapping[str, str], gpus: Sequence[GpuInfo]) -> _Visible:
    """Apply ``CUDA_VISIBLE_DEVICES`` (with MIG entries) and the ``CUDA_DEVICE_ORDER`` rule."""
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    mig: dict[int, str] = {}
    indices, problem = visible_gpu_indices(
        cvd, [g.uuid for g in gpus], resolve_mig=_mig_parent_index, mig_out=mig
    )
    out = _Visible(indices, [problem] if problem else [], mig)
    uses_indices = cvd is not None and any(t.strip().isdigit() for t in cvd.split(","))
    models = sorted({g.name for g in gpus if g.uuid})  # a GPU NVML cannot name is no model
    if not uses_indices or len(models) < 2 or env.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return out
    host = ", ".join(models)
    cuda = _cuda_uuids()
    if cuda:
        by_uuid = {_norm_uuid(g.uuid): g.index for g in gpus if g.uuid}
        mapped = [by_uuid.get(_norm_uuid(u)) for u in cuda]
        if all(m is not None for m in mapped):
            found = list(dict.fromkeys(m for m in mapped if m is not None))
            if found != indices:
                names = ", ".join(f"gpu:{i} ({gpus[i].name})" for i in found)
                out.warnings.append(
                    f"CUDA_VISIBLE_DEVICES={cvd} on a host with different GPU models ({host}): "
                    f"CUDA numbers them fastest first, not by PCI bus, so this process uses "
                    f"{names}, matched by UUID through torch; set CUDA_DEVICE_ORDER=PCI_BUS_ID "
                    f"for CUDA and NVML to agree"
                )
            out.indices = found
            out.mig = {i: t for i, t in mig.items() if i in found}
            return out
    names = ", ".join(f"gpu:{i} ({gpus[i].name})" for i in indices)
    out.warnings.append(
        f"CUDA_VISIBLE_DEVICES={cvd} uses indices on a host with different GPU models ({host}) "
        f"and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may number them differently from NVML "
        f"(fastest first), so the GPU measured ({names or 'none'}) may not be the one in use; "
        f"set CUDA_DEVICE_ORDER=PCI_BUS_ID, use GPU UUIDs (`nvidia-smi -L`), or start tracking "
        f"after torch has initialised CUDA (greentrack then matches GPUs by UUID)"
    )
    return out


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
        return [gpus[i] for i in _resolve_visible(env, gpus).indices]
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
    mig: str | None = None  # the MIG entry of CUDA_VISIBLE_DEVICES this GPU stands for
    # counter GPUs: power sampled at every read (cross-check, short windows)
    power_ok: bool = True
    sample_w: float | None = None  # last sampled power, W
    power_int_j: float = 0.0  # trapezoid of sampled power since start, J
    counter_cmp_j: float = 0.0  # counter energy over the same intervals as power_int_j, J
    reads: int = 0
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=_SAMPLES_KEPT))
    # counter update period, observed (see the module docstring)
    v_first_t: float = 0.0  # first read that showed last_mj, monotonic s
    v_before_t: float | None = None  # the read before that one
    stale_max_s: float = 0.0
    bracket_min_s: float = float("inf")
    short_warned: bool = False
    cross_warned: bool = False
    cross_note: str | None = None

    def period_s(self) -> float:
        """Observed counter update period (lower bound of the truth, with the prior). s."""
        return max(self.stale_max_s, min(COUNTER_PERIOD_PRIOR_S, self.bracket_min_s))


class NvmlMeter(Meter):
    """Energy of each visible NVIDIA GPU (``gpu:<nvml index>``), ``counter`` or ``sampled``.

    Creating the meter initialises NVML (released by :meth:`close`) and chooses each GPU's
    method: ``counter`` if its total-energy counter answers, else ``sampled`` if it reports
    power (whatever the counter's error: not supported, function not found, ...); a GPU that
    does neither is skipped with a warning.

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
            vis = _resolve_visible(env, gpus)
            for w in vis.warnings:
                self.warn(w)
            self._gpus: list[_Gpu] = [
                g for g in (self._probe(gpus[i]) for i in vis.indices) if g is not None
            ]
            for g in self._gpus:
                g.mig = vis.mig.get(g.info.index)
                if g.mig:
                    self.warn(
                        f"CUDA_VISIBLE_DEVICES names MIG device {g.mig}: NVML measures only whole "
                        f"GPUs, so {g.info.device} ({g.info.name}) is measured whole, including "
                        f"the work of its other MIG slices"
                    )
            self._by_device = {g.info.device: g for g in self._gpus}
        except BaseException:
            self.close()
            raise

    def _probe(self, info: GpuInfo) -> _Gpu | None:
        """Open one GPU and pick its method; ``None`` (with a warning) if it cannot be read."""
        nv = _pynvml()
        dev = info.device
        try:
            handle = _call("nvmlDeviceGetHandleByIndex", info.index, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) cannot be opened, not measured: {e}")
            return None
        counter_error: MeterError | None = None
        try:
            _call("nvmlDeviceGetTotalEnergyConsumption", handle, what=dev)
            return _Gpu(info=info, handle=handle, method="counter")
        except MeterError as e:
            counter_error = e
        try:
            _call("nvmlDeviceGetPowerUsage", handle, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) reports neither energy nor power, not measured: {e}")
            return None
        unavailable = {getattr(nv, n, None) for n in _COUNTER_UNAVAILABLE}
        if _nvml_code(counter_error) not in unavailable:
            self.warn(
                f"{dev} ({info.name}) energy counter failed ({counter_error}); its power is "
                f"sampled instead (method sampled)"
            )
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

    def counter_period_s(self, device: str) -> float | None:
        """Observed update period of ``device``'s energy counter (s); None without a counter."""
        g = self._by_device.get(device)
        return g.period_s() if g is not None and g.method == "counter" else None

    def notes(self) -> dict[str, str]:
        """Device id -> assumptions: a MIG slice measured as its parent; counter vs power."""
        out: dict[str, str] = {}
        with self._lock:
            for g in self._gpus:
                parts = []
                if g.mig:
                    parts.append(
                        f"MIG slice of GPU {g.info.index}: whole-GPU energy ({g.mig} on "
                        f"{g.info.name}; NVML has no per-slice energy, other slices' work included)"
                    )
                if g.cross_note:
                    parts.append(g.cross_note)
                if parts:
                    out[g.info.device] = "; ".join(parts)
        return out

    def _counter_mj(self, g: _Gpu) -> int:
        return int(_call("nvmlDeviceGetTotalEnergyConsumption", g.handle, what=g.info.device))

    def _power_w(self, g: _Gpu) -> float:
        return int(_call("nvmlDeviceGetPowerUsage", g.handle, what=g.info.device)) / 1000.0

    def _sample(self, g: _Gpu, t_mono: float) -> float | None:
        """Counter GPUs: sample power now (W), or None (this read, or for good once power has
        proved unsupported). Never fails the GPU: the counter decides that."""
        if not g.power_ok:
            return None
        try:
            p_w = self._power_w(g)
        except MeterError as e:
            nv = _pynvml()
            if _nvml_code(e) in {getattr(nv, n, None) for n in _COUNTER_UNAVAILABLE}:
                g.power_ok = False
                self.warn(
                    f"{g.info.device} ({g.info.name}) reports no power ({e}): its energy "
                    f"counter is not cross-checked and short phases use the counter as is"
                )
            return None  # a transient or fatal error: the next counter read tells
        g.samples.append((t_mono, p_w))
        return p_w

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
                g.power_int_j, g.reads, g.sample_w, g.cross_note = 0.0, 0, None, None
                g.counter_cmp_j = 0.0
                g.cross_warned = g.short_warned = False
                g.samples.clear()
                g.v_first_t, g.v_before_t = t_mono, None
                g.stale_max_s, g.bracket_min_s = 0.0, float("inf")
                try:
                    if g.method == "counter":
                        g.last_mj = self._counter_mj(g)
                        g.power_w = None
                        g.sample_w = self._sample(g, t_mono)
                    else:
                        g.power_w = self._power_w(g)
                except MeterError as e:
                    self._fail(g, t_mono, e)

    def _observe_counter(self, g: _Gpu, t_mono: float, mj: int, p_w: float | None) -> None:
        """Update the observed update period with one counter read (see the module docstring)."""
        if mj == g.last_mj:
            if p_w is None or p_w > 0:  # drawing power, yet no new value: not updated yet
                g.stale_max_s = max(g.stale_max_s, t_mono - g.v_first_t)
        else:
            if g.v_before_t is not None:  # two updates within (v_before_t, t_mono]
                g.bracket_min_s = min(g.bracket_min_s, t_mono - g.v_before_t)
            g.v_before_t, g.v_first_t = g.last_t, t_mono

    def _cross_check(self, g: _Gpu, t_mono: float) -> None:
        elapsed_s = t_mono - self._t_start
        if elapsed_s < CROSS_CHECK_MIN_S or g.reads < _CROSS_CHECK_MIN_READS:
            return
        counter_j, power_j = g.counter_cmp_j, g.power_int_j
        larger = max(counter_j, power_j)
        if larger <= 0:
            return
        rel = abs(counter_j - power_j) / larger
        if rel <= CROSS_CHECK_REL and g.cross_note is None:
            return
        g.cross_note = (
            f"energy counter {counter_j:.1f} J vs integrated power {power_j:.1f} J over "
            f"{elapsed_s:.0f} s ({rel:.0%} apart); the counter's figure is stored"
        )
        if rel > CROSS_CHECK_REL and not g.cross_warned:
            g.cross_warned = True
            self.warn(
                f"{g.info.device} ({g.info.name}) energy counter and sampled power disagree by "
                f"{rel:.0%} (> {CROSS_CHECK_REL:.0%}): {g.cross_note}"
            )

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
                        p_w = self._sample(g, t_mono)
                        delta_mj = mj - g.last_mj
                        if delta_mj < 0:
                            self.warn(
                                f"{g.info.device} energy counter went backwards "
                                f"({g.last_mj} -> {mj} mJ; driver reloaded?): interval skipped"
                            )
                            delta_mj = 0
                        if dt_s > 0:
                            self._observe_counter(g, t_mono, mj, p_w)
                        g.last_mj = mj
                        g.energy_j += delta_mj / 1000.0
                        if dt_s > 0:
                            g.power_w = (g.energy_j - g.power_base_j) / dt_s
                            g.power_base_j = g.energy_j
                            if p_w is not None and g.sample_w is not None:
                                g.power_int_j += 0.5 * (g.sample_w + p_w) * dt_s
                                g.counter_cmp_j += delta_mj / 1000.0
                                g.reads += 1
                        g.sample_w = p_w
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
                if g.method == "counter" and g.power_ok:
                    self._cross_check(g, t_mono)
            return [
                DeviceReading("gpu", g.info.device, g.energy_j, g.power_w, g.method)
                for g in self._gpus
            ]

    def window_energy(
        self, device: str, t0_mono: float, t1_mono: float, e0_j: float, e1_j: float
    ) -> tuple[float, str] | None:
        """Power-based energy for a window shorter than the counter's update period.

        Returns ``(J, "sampled")``: the trapezoid of the power sampled at every read in
        ``[t0_mono, t1_mono]``, which must include reads at both boundaries (the phase's own);
        None for longer windows, sampled GPUs, GPUs without power, or when the boundary samples
        are gone. Warns once per GPU the first time it applies.
        """
        g = self._by_device.get(device)
        if g is None or g.method != "counter" or not g.power_ok or g.failed:
            return None
        with self._lock:
            period_s = g.period_s()
            if t1_mono - t0_mono >= period_s:
                return None
            pts = [(t, p) for t, p in g.samples if t0_mono <= t <= t1_mono]
            if len(pts) < 2 or pts[0][0] != t0_mono or pts[-1][0] != t1_mono:
                return None
            energy_j = sum(
                0.5 * (pa_w + pb_w) * (tb - ta)
                for (ta, pa_w), (tb, pb_w) in itertools.pairwise(pts)
            )
            if not g.short_warned:
                g.short_warned = True
                self.warn(
                    f"{device} ({g.info.name}) energy counter updates about every "
                    f"{period_s * 1000:.0f} ms: phases shorter than that take their {device} "
                    f"energy from sampled power (phase method 'sampled'); run totals still come "
                    f"from the counter"
                )
            return energy_j, "sampled"

    def close(self) -> None:
        """Release NVML (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            _call("nvmlShutdown")
        except MeterError:
            pass
