"""NVML access for greentrack: the driver check, error translation, and which GPUs are visible.

The meter itself is :mod:`greentrack.meters.nvml`; this module is what it (and
:func:`greentrack.distributed.place`) needs to find the GPUs of this process.

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

NVML errors are translated once, in :func:`nvml_call`, into :class:`~greentrack.errors.MeterError`
(chained with ``from``; :func:`nvml_code` recovers the NVML return code).

``pynvml`` is imported lazily (it costs ~40 ms) and always looked up as ``pynvml.<function>`` at
call time, so tests can simulate GPUs by patching the real module (``tests/fakes/nvml.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.presence import NVIDIA_DRIVER_FILES, nvidia_driver_present

__all__ = [
    "GpuInfo",
    "Visible",
    "all_gpus",
    "driver_files_present",
    "driver_present",
    "gpu_models",
    "init_failure_is_expected",
    "list_gpus",
    "nvml_call",
    "nvml_code",
    "pynvml_module",
    "resolve_visible",
    "visible_gpu_indices",
]

_DRIVER_FILES = NVIDIA_DRIVER_FILES


def driver_files_present() -> bool:
    """Whether the NVIDIA kernel driver's /proc entry or control device exists (no library)."""
    return any(os.path.exists(p) for p in _DRIVER_FILES)


def driver_present() -> bool:
    """Cheap check for an NVIDIA driver (no library load): its /proc entry or control device.

    Hosts without one skip importing and initialising NVML (~30 ms). Set ``GREENTRACK_NVML=1``
    to try NVML anyway (an unusual driver layout, a container without /proc/driver). The
    registry asks the same check (:func:`greentrack.meters.presence.nvidia`) before importing
    the NVML meter.
    """
    return nvidia_driver_present(_DRIVER_FILES)


def init_failure_is_expected(err: MeterError) -> bool:
    """True when NVML failed to initialise because there is simply no NVIDIA driver here.

    Anything else (a library/driver mismatch, a driver present but no library, permissions)
    is a problem to record on the run.
    """
    nv = pynvml_module()
    code = nvml_code(err)
    no_driver = {getattr(nv, "NVML_ERROR_LIBRARY_NOT_FOUND", -1)}
    no_driver.add(getattr(nv, "NVML_ERROR_DRIVER_NOT_LOADED", -1))
    return code in no_driver and not driver_files_present()


def pynvml_module() -> ModuleType:
    """The ``pynvml`` module, imported on first use (it costs ~40 ms)."""
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
    nv = pynvml_module()
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


def nvml_call(fn_name: str, *args: Any, what: str = "") -> Any:
    """Call ``pynvml.<fn_name>(*args)``: the one place NVML errors become ``MeterError``.

    ``NVML_ERROR_NO_PERMISSION`` becomes :class:`MeterPermissionError`. The original
    ``pynvml.NVMLError`` stays available as ``__cause__`` (see :func:`nvml_code`).
    """
    nv = pynvml_module()
    try:
        return getattr(nv, fn_name)(*args)
    except nv.NVMLError as e:
        code = getattr(e, "value", None)
        where = f" for {what}" if what else ""
        msg = f"NVML {fn_name}{where} failed ({e}); {_hint(code)}"
        cls = MeterPermissionError if code == nv.NVML_ERROR_NO_PERMISSION else MeterError
        raise cls(msg) from e


def nvml_code(err: BaseException) -> int | None:
    """The NVML return code behind a :class:`MeterError` raised by :func:`nvml_call`, if any."""
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
        mig = nvml_call("nvmlDeviceGetHandleByUUID", token, what=token)
        parent = nvml_call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", mig, what=token)
        return int(nvml_call("nvmlDeviceGetIndex", parent, what=token))
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
class Visible:
    """Which GPUs are visible, and what to say about how they were found."""

    indices: list[int]
    warnings: list[str] = field(default_factory=list)
    mig: dict[int, str] = field(default_factory=dict)


def resolve_visible(env: Mapping[str, str], gpus: Sequence[GpuInfo]) -> Visible:
    """Apply ``CUDA_VISIBLE_DEVICES`` (with MIG entries) and the ``CUDA_DEVICE_ORDER`` rule."""
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    mig: dict[int, str] = {}
    indices, problem = visible_gpu_indices(
        cvd, [g.uuid for g in gpus], resolve_mig=_mig_parent_index, mig_out=mig
    )
    out = Visible(indices, [problem] if problem else [], mig)
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


def all_gpus() -> list[GpuInfo]:
    """Every GPU NVML lists, by index. NVML must be initialised.

    A GPU that cannot even be named keeps its index (so ``CUDA_VISIBLE_DEVICES`` indices stay
    right) with uuid ``""`` and name ``"unknown"``; opening it later fails with a warning.
    """
    gpus = []
    for i in range(int(nvml_call("nvmlDeviceGetCount"))):
        try:
            h = nvml_call("nvmlDeviceGetHandleByIndex", i, what=f"gpu:{i}")
            uuid = _text(nvml_call("nvmlDeviceGetUUID", h, what=f"gpu:{i}"))
            name = _text(nvml_call("nvmlDeviceGetName", h, what=f"gpu:{i}"))
        except MeterError:
            uuid, name = "", "unknown"
        gpus.append(GpuInfo(index=i, uuid=uuid, name=name))
    return gpus


def list_gpus(*, visible_only: bool = True, env: Mapping[str, str] | None = None) -> list[GpuInfo]:
    """The NVIDIA GPUs of this host (only those visible to this process by default).

    Raises:
        MeterError: NVML cannot be initialised (no driver/library) or fails.
    """
    nvml_call("nvmlInit")
    try:
        gpus = all_gpus()
        if not visible_only:
            return gpus
        env = os.environ if env is None else env
        return [gpus[i] for i in resolve_visible(env, gpus).indices]
    finally:
        try:
            nvml_call("nvmlShutdown")
        except MeterError:
            pass


def gpu_models(*, visible_only: bool = True, env: Mapping[str, str] | None = None) -> list[str]:
    """Model names of the NVIDIA GPUs, e.g. ``["NVIDIA H100 80GB HBM3"]``; ``[]`` without NVML.

    Args:
        visible_only: only the GPUs this process may use (``CUDA_VISIBLE_DEVICES``), in NVML
            index order — the ones greentrack measures.
        env: environment to read ``CUDA_VISIBLE_DEVICES`` from (default ``os.environ``).

    Never raises: a missing library or driver, or any NVML error, gives ``[]``.
    """
    try:
        gpus = list_gpus(visible_only=visible_only, env=env)
    except (MeterError, ImportError, OSError):
        return []
    return [g.name for g in gpus]
