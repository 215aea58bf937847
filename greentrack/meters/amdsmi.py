"""AMD GPU energy through ``amdsmi`` (ROCm's Python bindings; ``pip install 'greentrack[amd]'``).

Per visible GPU, the best method it supports:

- ``counter``: ``amdsmi_get_energy_count`` — ``energy_accumulator`` ticks of
  ``counter_resolution`` µJ each (~15.3 µJ on MI200/MI300). Energy since :meth:`AmdSmiMeter.start`
  is the delta of the ticks × the resolution: exact up to one tick. The accumulator wraps (32
  bits on some firmware: 2³² × 15.3 µJ ≈ 65.7 kJ, about two minutes at 560 W); a smaller value
  whose predecessor lay in the upper half of the 32- (or 64-) bit range is one wrap, anything
  else going backwards is a reset (driver reload): that interval is skipped with a warning.
- ``sampled``: ``amdsmi_get_power_info`` — ``current_socket_power``, else
  ``average_socket_power``, else ``socket_power`` (W), integrated with the trapezoid rule between
  reads. ``0xFFFF`` and ``"N/A"`` mean the field is not available on this GPU.

A GPU whose counter answers is ``counter``; one that reports only power is ``sampled``; one that
does neither is skipped with a warning.

**Shared counters (MI250X).** An MI250X is one package with two compute dies (GCDs), each seen
as its own GPU; both report *one* package energy counter. Dies are candidates when their board
serial (``amdsmi_get_gpu_board_info``, else ``asic_serial``) is the same and their counters are
equal (within :data:`SHARED_TOL_J`); the later die is then read but not reported until the
counters decide: equal at every read until the package counter has moved
:data:`SHARED_DECIDE_J` over :data:`SHARED_READS` reads (each die read between two reads of
the first, so a preempted thread cannot fake a difference) → one counter, counted once on the
first visible die, and the run says which dies share it (:meth:`AmdSmiMeter.notes` and a
warning). The first read where they differ shows two
counters, and the later die is reported from then on with all its energy since start (nothing
lost, nothing doubled). A die whose twin is not visible to this process is still measured: its
note says the figure is the whole package. In a distributed run the two dies may land on two
ranks: :func:`placement_view` pairs them host-wide and only one rank counts the package
(:mod:`greentrack.distributed`).

**Visible GPUs.** ``ROCR_VISIBLE_DEVICES`` selects among all GPUs (indices or UUIDs
``GPU-<hex>``); ``HIP_VISIBLE_DEVICES`` (or, when it is unset, ``CUDA_VISIBLE_DEVICES``, which
HIP honours too) then selects among those, by index into that list or by UUID. ``""`` or ``-1``
mean none; like HIP, parsing stops at the first entry that names no GPU (with a warning). The
index order is the HIP order (``amdsmi_get_gpu_enumeration_info()['hip_id']`` where the
library has it, else amdsmi's handle order).

Device ids are ``gpu:amd-<i>`` (``i`` = amdsmi handle index), so they never collide with NVML's
``gpu:<i>`` on a host with both. Model names come from ``amdsmi_get_gpu_asic_info``'s
``market_name`` (else the board's ``product_name``).

amdsmi errors are translated once, in :func:`_call`, into :class:`~greentrack.errors.MeterError`
(``AMDSMI_STATUS_NO_PERM`` → :class:`~greentrack.errors.MeterPermissionError` with the fix).
``amdsmi`` is imported lazily, with its stdout silenced (the real package prints when it cannot
load ``libamd_smi.so``, then fails with ``KeyError``), and always called as
``amdsmi.<function>`` at call time, so tests put a simulated ``amdsmi`` module on ``sys.path``
(``tests/fakes/amd.py``).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.amd_devices import AmdGpuInfo, visible_amd_indices
from greentrack.meters.base import (
    DeviceReading,
    Meter,
    MeterStatus,
    NullMeter,
    device_failed_warning,
)
from greentrack.meters.presence import amdgpu_driver_loaded

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = ["AmdSmiMeter", "detect_meter", "driver_present", "open_meter", "placement_view"]

SHARED_DECIDE_J = 10.0
"""A shared counter is confirmed once it has moved this much with both dies equal. Units: J."""
SHARED_READS = 3
"""... and over at least this many reads."""
SHARED_TOL_J = 0.5
"""Two dies' counters within this of each other count as equal (both read within the same
microseconds, one update may fall between: ~1 ms of a 500 W package). Units: J."""
_WRAP_BITS = (32, 64)

# amdsmi status codes (amdsmi_wrapper.AMDSMI_STATUS_*, stable across ROCm 6.x / 7.x)
STATUS_NOT_SUPPORTED = 2
STATUS_FAIL_LOAD_MODULE = 4
STATUS_NO_PERM = 10
STATUS_INIT_ERROR = 18
STATUS_NOT_FOUND = 31
STATUS_NOT_INIT = 32
STATUS_DRIVER_NOT_LOADED = 34

_HINTS = {
    STATUS_NO_PERM: "add this user to the render and video groups "
    "(`sudo usermod -aG render,video $USER`, then log in again)",
    STATUS_DRIVER_NOT_LOADED: "load the amdgpu driver (`sudo modprobe amdgpu`; `amd-smi list` "
    "must work)",
    STATUS_FAIL_LOAD_MODULE: "install ROCm's amd-smi-lib (`amd-smi list` must work)",
    STATUS_INIT_ERROR: "check that `amd-smi list` works (amdgpu driver and ROCm installed)",
    STATUS_NOT_FOUND: "the GPU is gone; check `amd-smi list` and `dmesg`",
}

_UNAVAILABLE = (0xFFFF, 0xFFFFFFFF, "N/A", None)


def driver_present(sysfs: Path | str = "/sys") -> bool:
    """Whether the amdgpu kernel driver is loaded (``<sysfs>/module/amdgpu`` exists).

    Hosts without it skip importing amdsmi. ``GREENTRACK_AMDSMI=1`` tries amdsmi anyway.
    The registry asks the same check (:func:`greentrack.meters.presence.amdgpu`) before
    importing this module.
    """
    return amdgpu_driver_loaded(sysfs)


def _amdsmi() -> ModuleType:
    """The ``amdsmi`` module, or :class:`MeterError` with the fix.

    Once imported it is taken from ``sys.modules``: stdout is silenced (process-wide, so only
    briefly) only for the first import, never on the reading path.
    """
    loaded = sys.modules.get("amdsmi")
    if loaded is not None:
        return loaded
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi
    except ImportError as e:
        raise MeterError(
            "the amdsmi Python package is not installed: pip install 'greentrack[amd]' "
            "(or ROCm's own copy: pip install /opt/rocm/share/amd_smi)"
        ) from e
    except Exception as e:  # KeyError/OSError: the package cannot load libamd_smi.so
        raise MeterError(
            f"amdsmi is installed but cannot load libamd_smi.so ({type(e).__name__}: {e}); "
            "install ROCm's amd-smi-lib package or set ROCM_PATH to the ROCm install "
            "(e.g. /opt/rocm)"
        ) from e
    return amdsmi


def _code(err: BaseException | None) -> int | None:
    """The amdsmi status code behind an amdsmi exception (or a MeterError raised from one)."""
    if isinstance(err, MeterError):
        err = err.__cause__
    if err is None:
        return None
    get = getattr(err, "get_error_code", None)
    code = get() if callable(get) else getattr(err, "err_code", None)
    return abs(int(code)) if isinstance(code, int) else None


def _call(fn_name: str, *args: Any, what: str = "") -> Any:
    """Call ``amdsmi.<fn_name>(*args)``: the one place amdsmi errors become ``MeterError``."""
    lib = _amdsmi()
    base = getattr(lib, "AmdSmiException", Exception)
    try:
        return getattr(lib, fn_name)(*args)
    except base as e:
        code = _code(e)
        where = f" for {what}" if what else ""
        hint = _HINTS.get(code or -1, "check `amd-smi list`")
        text = " ".join(str(e).split())
        msg = f"amdsmi {fn_name}{where} failed ({text}); {hint}"
        cls = MeterPermissionError if code == STATUS_NO_PERM else MeterError
        raise cls(msg) from e
    except AttributeError as e:  # an amdsmi too old for this call
        raise MeterError(f"amdsmi has no {fn_name} (too old?): upgrade amdsmi / ROCm") from e


def _text(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.strip()


def _valid(value: Any) -> bool:
    return isinstance(value, int | float) and value not in _UNAVAILABLE and value >= 0


def _info(index: int, handle: Any) -> AmdGpuInfo:
    dev = f"gpu:amd-{index}"
    uuid = _text(_call("amdsmi_get_gpu_device_uuid", handle, what=dev))
    name = ""
    serial = ""
    with contextlib.suppress(MeterError):
        asic = _call("amdsmi_get_gpu_asic_info", handle, what=dev)
        name = _text(asic.get("market_name", ""))
        serial = _text(asic.get("asic_serial", ""))
    with contextlib.suppress(MeterError):
        board = _call("amdsmi_get_gpu_board_info", handle, what=dev)
        if not name or name == "N/A":
            name = _text(board.get("product_name", ""))
        board_serial = _text(board.get("product_serial", ""))
        if board_serial and board_serial != "N/A":
            serial = board_serial
    bdf = ""
    with contextlib.suppress(MeterError):
        bdf = _text(_call("amdsmi_get_gpu_device_bdf", handle, what=dev)).lower()
    hip_uuid, hip_id = "", None
    with contextlib.suppress(MeterError):
        enum = _call("amdsmi_get_gpu_enumeration_info", handle, what=dev)
        hip_uuid = _text(enum.get("hip_uuid", ""))
        raw = enum.get("hip_id")
        hip_id = raw if isinstance(raw, int) else None
    if not name or name == "N/A":
        name = "AMD GPU"
    serial = "" if serial == "N/A" else serial
    return AmdGpuInfo(index, uuid, name, hip_uuid, hip_id, serial, bdf)


@dataclass(slots=True)
class _Gpu:
    """Per-GPU state of an :class:`AmdSmiMeter`."""

    info: AmdGpuInfo
    handle: Any
    method: str  # "counter" | "sampled"
    energy_j: float = 0.0
    power_w: float | None = None
    last_ticks: int = 0
    res_uj: float = 0.0
    last_t: float = 0.0
    failed: bool = False
    twin_of: _Gpu | None = None  # a die withheld while it may share this GPU's counter
    shared_with: list[str] | None = None  # confirmed: these devices share this counter
    twin_reads: int = 0
    twin_base_ticks: int = 0  # the counter of the twin's own primary at start
    invisible_twin: str | None = None  # the other die of the package is not visible here
    wrap_warned: bool = False


class AmdSmiMeter(Meter):
    """Energy of each visible AMD GPU (``gpu:amd-<i>``), ``counter`` or ``sampled``.

    Creating the meter initialises amdsmi (released by :meth:`close`) and picks each GPU's
    method. Args: ``env``: where ``ROCR_/HIP_/CUDA_VISIBLE_DEVICES`` are read (default
    ``os.environ``); ``only``: the amdsmi indices to measure instead (a distributed rank's
    share, :func:`greentrack.distributed.place`).

    Raises:
        MeterError: amdsmi cannot be imported, initialised or enumerated (message has the fix).
    """

    name = "amdsmi"

    def __init__(
        self, *, env: Mapping[str, str] | None = None, only: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        env = os.environ if env is None else env
        self._lock = threading.Lock()
        self._started = False
        self._closed = True
        self._t_start = 0.0
        lib = _amdsmi()
        flags = getattr(getattr(lib, "AmdSmiInitFlags", None), "INIT_AMD_GPUS", None)
        _call("amdsmi_init", *(() if flags is None else (flags,)))
        self._closed = False
        try:
            handles = list(_call("amdsmi_get_processor_handles"))
            self._infos = infos = [_info(i, h) for i, h in enumerate(handles)]
            visible, problems = visible_amd_indices(env, infos)
            if only is not None:
                visible, problems = [i for i in dict.fromkeys(only) if 0 <= i < len(infos)], []
            for p in problems:
                self.warn(p)
            probed = {i: self._probe(infos[i], handles[i]) for i in range(len(infos))}
            self._gpus = [g for i in visible if (g := probed[i]) is not None]
            self._pair_dies(probed, set(visible))
            self._by_device = {g.info.device: g for g in self._gpus}
            self.pci_addresses = frozenset(i.bdf for i in infos if i.bdf)
        except BaseException:
            self.close()
            raise

    def _probe(self, info: AmdGpuInfo, handle: Any) -> _Gpu | None:
        dev = info.device
        try:
            count = _call("amdsmi_get_energy_count", handle, what=dev)
            res_uj = float(count["counter_resolution"])
            ticks = int(count["energy_accumulator"])
            if res_uj > 0:
                return _Gpu(info, handle, "counter", last_ticks=ticks, res_uj=res_uj)
        except (MeterError, KeyError, TypeError, ValueError):
            pass
        try:
            if self._power_w(handle, dev) is not None:
                return _Gpu(info, handle, "sampled")
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) reports neither energy nor power, not measured: {e}")
            return None
        self.warn(f"{dev} ({info.name}) reports neither energy nor power (N/A), not measured")
        return None

    def _pair_dies(self, probed: Mapping[int, _Gpu | None], visible: set[int]) -> None:
        """Withhold a visible die whose counter may be the package counter of an earlier one."""
        by_serial: dict[str, list[_Gpu]] = {}
        for g in probed.values():
            if g is not None and g.method == "counter" and g.info.serial:
                by_serial.setdefault(g.info.serial, []).append(g)
        for dies in by_serial.values():
            first = dies[0]
            for other in dies[1:]:
                if other.res_uj != first.res_uj or not self._same_counter(first, other):
                    continue
                a_vis, b_vis = first.info.index in visible, other.info.index in visible
                if a_vis and b_vis:
                    other.twin_of = first
                elif a_vis or b_vis:
                    seen, unseen = (first, other) if a_vis else (other, first)
                    seen.invisible_twin = unseen.info.device

    def _same_counter(self, first: _Gpu, other: _Gpu) -> bool:
        """Whether ``other``'s counter lies between two reads of ``first``'s (± tolerance)."""
        try:
            before, mine, after = self._ticks(first), self._ticks(other), self._ticks(first)
        except MeterError:
            return False
        tol = SHARED_TOL_J / (first.res_uj * 1e-6)
        return before - tol <= mine <= after + tol

    @property
    def devices(self) -> list[str]:
        """Device ids reported, e.g. ``["gpu:amd-0"]`` (a die withheld as a twin is not)."""
        return [g.info.device for g in self._gpus if g.twin_of is None]

    @property
    def methods(self) -> dict[str, str]:
        """Device id -> ``counter`` or ``sampled``."""
        return {g.info.device: g.method for g in self._gpus if g.twin_of is None}

    def describe(self) -> dict[str, str]:
        """Device id -> model name, e.g. ``{"gpu:amd-0": "AMD Instinct MI300X"}``."""
        return {g.info.device: g.info.name for g in self._gpus if g.twin_of is None}

    def notes(self) -> dict[str, str]:
        """Device id -> which dies share its energy counter (MI250X), where that applies."""
        out: dict[str, str] = {}
        with self._lock:
            for g in self._gpus:
                if g.shared_with:
                    dies = ", ".join([g.info.device, *g.shared_with])
                    out[g.info.device] = (
                        f"dies {dies} of one {g.info.name} (serial {g.info.serial}) report one "
                        f"shared package energy counter: counted once, here (covers every die)"
                    )
                elif g.invisible_twin:
                    out[g.info.device] = (
                        f"shares one package energy counter with {g.invisible_twin} (another "
                        f"die of this {g.info.name}, not visible to this process): the figure "
                        f"is the whole package, both dies"
                    )
        return out

    def _power_w(self, handle: Any, dev: str) -> float | None:
        info = _call("amdsmi_get_power_info", handle, what=dev)
        for key in ("current_socket_power", "average_socket_power", "socket_power"):
            value = info.get(key)
            if _valid(value):
                return float(value)
        return None

    def _ticks(self, g: _Gpu) -> int:
        count = _call("amdsmi_get_energy_count", g.handle, what=g.info.device)
        return int(count["energy_accumulator"])

    def _delta_ticks(self, g: _Gpu, ticks: int) -> int:
        """Ticks since the last read, across one wrap; 0 (with a warning) for a reset."""
        delta = ticks - g.last_ticks
        if delta >= 0:
            return delta
        for bits in _WRAP_BITS:
            top = 1 << bits
            if g.last_ticks < top:
                if g.last_ticks >= top // 2 and ticks < top // 2:
                    if not g.wrap_warned:
                        g.wrap_warned = True
                        self.warn(
                            f"{g.info.device} energy counter wrapped at {bits} bits "
                            f"({g.last_ticks} -> {ticks} ticks): counted across the wrap; read "
                            f"at least every {top * g.res_uj * 1e-6 / 1000:.0f} kJ of energy"
                        )
                    return ticks + top - g.last_ticks
                break
        self.warn(
            f"{g.info.device} energy counter went backwards ({g.last_ticks} -> {ticks} ticks; "
            f"driver reloaded?): interval skipped"
        )
        return 0

    def _fail(self, g: _Gpu, t_mono: float, err: MeterError) -> None:
        g.failed = True
        g.power_w = None
        self.warn(
            device_failed_warning(
                g.info.device, g.info.name, t_mono - self._t_start, g.energy_j, err
            )
        )

    def start(self, t_mono: float) -> None:
        """Baseline every GPU at monotonic time ``t_mono`` (s): energy 0 J from here."""
        with self._lock:
            self._t_start, self._started = t_mono, True
            for g in self._gpus:
                g.energy_j, g.last_t, g.failed, g.twin_reads = 0.0, t_mono, False, 0
                try:
                    if g.method == "counter":
                        g.last_ticks = self._ticks(g)
                        g.power_w = None
                    else:
                        g.power_w = self._power_w(g.handle, g.info.device)
                except MeterError as e:
                    self._fail(g, t_mono, e)
            for g in self._gpus:
                if g.twin_of is not None:
                    g.twin_base_ticks = g.twin_of.last_ticks  # the reads decide (bracketed)

    def _split(self, g: _Gpu, why: str) -> None:
        """A withheld die has its own counter after all: report it from now on."""
        primary = g.twin_of
        g.twin_of = None
        if primary is not None and g.twin_reads:
            self.warn(
                f"{g.info.device} and {primary.info.device} have separate energy counters "
                f"({why}): both are counted"
            )

    def _check_twin(self, g: _Gpu) -> None:
        """Compare a withheld die with its primary; decide when clear.

        The die's counter is read between two reads of the primary's: one counter lies between
        them (± :data:`SHARED_TOL_J`), however long this thread was preempted in between.
        """
        primary = g.twin_of
        assert primary is not None
        if primary.failed:
            return
        g.twin_reads += 1
        if not self._same_counter(primary, g):
            self._split(g, f"{g.last_ticks} vs {primary.last_ticks} ticks")
            return
        moved_j = (primary.last_ticks - g.twin_base_ticks) * primary.res_uj * 1e-6
        if g.twin_reads >= SHARED_READS and moved_j >= SHARED_DECIDE_J:
            self._gpus.remove(g)
            primary.shared_with = [*(primary.shared_with or []), g.info.device]
            self.warn(
                f"{primary.info.device} and {g.info.device} are dies of one {primary.info.name} "
                f"(serial {primary.info.serial}) sharing one energy counter: counted once, on "
                f"{primary.info.device}"
            )

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative energy (J) per GPU since :meth:`start`, at monotonic time ``t_mono`` (s).

        ``power_w``: mean power since the previous read for ``counter`` GPUs, the power just
        sampled for ``sampled`` ones; failed GPUs keep their energy with ``power_w`` None.
        """
        with self._lock:
            if not self._started:
                raise RuntimeError("AmdSmiMeter.read() called before start()")
            for g in list(self._gpus):
                if g.failed:
                    continue
                dt_s = t_mono - g.last_t
                try:
                    if g.method == "counter":
                        ticks = self._ticks(g)
                        delta_j = self._delta_ticks(g, ticks) * g.res_uj * 1e-6
                        g.last_ticks = ticks
                        g.energy_j += delta_j
                        if dt_s > 0:
                            g.power_w = delta_j / dt_s
                    else:
                        p_w = self._power_w(g.handle, g.info.device)
                        if p_w is None:
                            raise MeterError("power became N/A")
                        if dt_s > 0:
                            g.energy_j += 0.5 * ((g.power_w or 0.0) + p_w) * dt_s
                        g.power_w = p_w
                except MeterError as e:
                    self._fail(g, t_mono, e)
                    continue
                if dt_s > 0:
                    g.last_t = t_mono
            for g in list(self._gpus):
                if g.twin_of is not None and not g.failed:
                    self._check_twin(g)
            return [
                DeviceReading("gpu", g.info.device, g.energy_j, g.power_w, g.method)
                for g in self._gpus
                if g.twin_of is None
            ]

    def close(self) -> None:
        """Release amdsmi (once)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(MeterError):
            _call("amdsmi_shut_down")


def placement_view(
    env: Mapping[str, str],
) -> tuple[list[AmdGpuInfo], list[int], dict[int, int], list[str]]:
    """What a distributed placement needs (:mod:`greentrack.meters.gpu_placement`): every AMD
    GPU of the host (by amdsmi index), those this process sees (HIP order), ``{die: first die}``
    for each die reporting an earlier die's package counter (the test :class:`AmdSmiMeter`
    pairs dies with, decided once, here), and the visible-device problems.

    Raises:
        MeterError: amdsmi cannot be imported, initialised or enumerated.
    """
    meter = AmdSmiMeter(env={})  # every GPU of the host, paired as one process pairs them
    try:
        twins = {g.info.index: g.twin_of.info.index for g in meter._gpus if g.twin_of}
        visible, problems = visible_amd_indices(env, meter._infos)
        return meter._infos, visible, twins, problems
    finally:
        meter.close()


def open_meter(ctx: OpenContext) -> Meter | None:
    """amdsmi for the visible AMD GPUs, or None (no amdgpu driver, or nothing visible).

    Where the amdgpu driver is loaded but amdsmi does not work, a device-less ``amdsmi`` meter
    carries the error and its fix to the run (the amdgpu hwmon fallback, the next line of the
    registry, measures what it can).
    """
    if not ctx.wants("gpu") or not driver_present(ctx.config.sysfs):
        return None
    try:
        meter = AmdSmiMeter()
    except MeterError as e:
        failed = NullMeter()
        failed.name = "amdsmi"
        failed.warn(
            f"AMD GPUs not measured through amdsmi (the amdgpu hwmon power sensor is used "
            f"instead where there is one): {e}"
        )
        return failed
    ctx.claimed_pci.update(meter.pci_addresses)
    warnings = meter.pop_warnings()
    for w in warnings:
        meter.warn(w)
    if meter.devices or warnings:
        ctx.covered.add("gpu")
        return meter
    meter.close()
    return None


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``amdsmi``: which AMD GPUs it measures and how, or why none (with the fix)."""
    if not driver_present(ctx.config.sysfs):
        return [
            MeterStatus(
                "amdsmi",
                False,
                f"no amdgpu driver ({Path(ctx.config.sysfs) / 'module/amdgpu'} absent): no AMD "
                "GPU to measure; set GREENTRACK_AMDSMI=1 to try amdsmi anyway",
            )
        ]
    try:
        meter = AmdSmiMeter()
    except MeterError as e:
        return [MeterStatus("amdsmi", False, f"AMD GPU energy not measured: {e}")]
    try:
        methods = meter.methods
        notes = meter.pop_warnings() + list(meter.notes().values())
        if not methods:
            why = "; ".join(notes) or "no AMD GPU visible (ROCR_/HIP_VISIBLE_DEVICES?)"
            return [MeterStatus("amdsmi", False, f"amdsmi works but no GPU is measured: {why}")]
        names = meter.describe()
        parts = [f"{d} {names[d]} ({m})" for d, m in methods.items()]
        kinds = "/".join(sorted(set(methods.values())))
        reason = "; ".join([", ".join(parts), *notes])
        return [MeterStatus("amdsmi", True, reason, list(methods), kinds)]
    finally:
        meter.close()
