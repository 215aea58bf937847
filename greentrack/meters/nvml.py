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

Only the GPUs this process can see are measured (``CUDA_VISIBLE_DEVICES``, MIG entries, the
``CUDA_DEVICE_ORDER`` rule): :mod:`greentrack.meters.nvml_devices` finds them, and translates
every NVML error into a :class:`~greentrack.errors.MeterError` with its fix. A GPU that fails
mid-run keeps its last energy (frozen), is no longer read, and the failure is recorded with
:meth:`Meter.warn`; the other GPUs continue.

NVML failing to initialise on a host that has the NVIDIA driver (e.g. a library/driver version
mismatch after an upgrade) is not silent: :func:`open_meter` (what
:func:`greentrack.meters.open_meters` calls) puts the error and its fix on the run, and
``greentrack detect`` prints it (:func:`detect_meter`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greentrack.errors import MeterError
from greentrack.meters.base import (
    DeviceReading,
    Meter,
    MeterStatus,
    NullMeter,
    device_failed_warning,
)
from greentrack.meters.nvml_devices import (
    GpuInfo,
    all_gpus,
    driver_present,
    init_failure_is_expected,
    nvml_call,
    nvml_code,
    pynvml_module,
    resolve_visible,
)

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = ["NvmlMeter", "detect_meter", "open_meter"]

COUNTER_PERIOD_PRIOR_S = 0.1
"""Assumed energy-counter update period until reads show otherwise. Units: s (~100 ms on
A100/V100-class GPUs: Zeus documentation; Yang et al., "Part-time Power Measurements", 2023)."""
CROSS_CHECK_REL = 0.2
"""Counter and integrated power disagreeing by more than this (of the larger) is recorded."""
CROSS_CHECK_MIN_S = 10.0
"""The cross-check starts after this much of the run (and 10 reads). Units: s."""
_CROSS_CHECK_MIN_READS = 10
_SAMPLES_KEPT = 256  # (t, power) per GPU, for short windows

# errors of nvmlDeviceGetTotalEnergyConsumption that just mean "no counter here"
_COUNTER_UNAVAILABLE = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")


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
        nvml_call("nvmlInit")
        try:
            gpus = all_gpus()
            vis = resolve_visible(env, gpus)
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
        nv = pynvml_module()
        dev = info.device
        try:
            handle = nvml_call("nvmlDeviceGetHandleByIndex", info.index, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) cannot be opened, not measured: {e}")
            return None
        counter_error: MeterError | None = None
        try:
            nvml_call("nvmlDeviceGetTotalEnergyConsumption", handle, what=dev)
            return _Gpu(info=info, handle=handle, method="counter")
        except MeterError as e:
            counter_error = e
        try:
            nvml_call("nvmlDeviceGetPowerUsage", handle, what=dev)
        except MeterError as e:
            self.warn(f"{dev} ({info.name}) reports neither energy nor power, not measured: {e}")
            return None
        unavailable = {getattr(nv, n, None) for n in _COUNTER_UNAVAILABLE}
        if nvml_code(counter_error) not in unavailable:
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
        return int(nvml_call("nvmlDeviceGetTotalEnergyConsumption", g.handle, what=g.info.device))

    def _power_w(self, g: _Gpu) -> float:
        return int(nvml_call("nvmlDeviceGetPowerUsage", g.handle, what=g.info.device)) / 1000.0

    def _sample(self, g: _Gpu, t_mono: float) -> float | None:
        """Counter GPUs: sample power now (W), or None (this read, or for good once power has
        proved unsupported). Never fails the GPU: the counter decides that."""
        if not g.power_ok:
            return None
        try:
            p_w = self._power_w(g)
        except MeterError as e:
            nv = pynvml_module()
            if nvml_code(e) in {getattr(nv, n, None) for n in _COUNTER_UNAVAILABLE}:
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
            device_failed_warning(
                g.info.device, g.info.name, t_mono - self._t_start, g.energy_j, err
            )
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
            nvml_call("nvmlShutdown")
        except MeterError:
            pass


# -- the registry's hooks (greentrack.meters.registry) --------------------------------------------
def open_meter(ctx: OpenContext) -> Meter | None:
    """NVML for the visible GPUs, or None where there is no driver or no GPU to measure.

    NVML failing to initialise where an NVIDIA driver is present (library/driver mismatch,
    ...) gives a device-less ``nvml`` meter whose warning is the error and its fix.
    """
    if not ctx.wants("gpu") or not driver_present():
        return None
    try:
        nvml = NvmlMeter()
    except MeterError as e:
        if init_failure_is_expected(e):
            return None
        failed = NullMeter()  # a driver, yet NVML fails: say so
        failed.name = "nvml"
        failed.warn(f"GPU energy not measured: {e}")
        return failed
    warnings = nvml.pop_warnings()
    for w in warnings:
        nvml.warn(w)
    if nvml.devices or warnings:
        ctx.covered.add("gpu")
        return nvml
    nvml.close()
    return None


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``nvml``: which GPUs it measures and how, or why none."""
    return [_detect()]


def _detect() -> MeterStatus:
    if not driver_present():
        return MeterStatus(
            "nvml",
            False,
            "no NVIDIA driver (/proc/driver/nvidia absent): no GPU to measure; "
            "set GREENTRACK_NVML=1 to try NVML anyway",
        )
    try:
        meter = NvmlMeter()
    except MeterError as e:
        if init_failure_is_expected(e):
            return MeterStatus("nvml", False, f"GPU energy not measured: {e}")
        return MeterStatus(
            "nvml",
            False,
            f"NVIDIA driver present but NVML does not work, GPU energy not measured: {e}",
        )
    try:
        methods = meter.methods
        notes = meter.pop_warnings() + list(meter.notes().values())
        if not methods:
            why = "; ".join(notes) or "no NVIDIA GPU visible (CUDA_VISIBLE_DEVICES?)"
            return MeterStatus("nvml", False, f"NVML works but no GPU is measured: {why}")
        names = meter.describe()
        parts = [f"{d} {names[d]} ({m})" for d, m in methods.items()]
        kinds = sorted(set(methods.values()))
        reason = "; ".join([", ".join(parts), *notes])
        return MeterStatus("nvml", True, reason, list(methods), "/".join(kinds))
    finally:
        meter.close()
