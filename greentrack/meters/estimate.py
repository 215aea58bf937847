"""Estimated CPU and RAM energy, for hosts without RAPL. Method ``estimated``, always labelled.

Every rule below is stated, with its source, in the note each meter returns from
:meth:`~greentrack.meters.base.Meter.notes` (stored in ``components.note``, printed on the price
tag), e.g. ``"TDP 280 W (codecarbon cpu_power.csv: AMD EPYC 7763) scaled to 4 of 128 threads
(Boavizta cpu_specs.csv; VM: hypervisor flag); load curve ..."``.

CPU (device ``cpu:estimate``)::

    power_w = full_w × f(load)         load = busy CPU time / all CPU time, 0..1
    f       = Boavizta's TDP ratios 0.12, 0.32, 0.75, 1.02 at 0, 10, 50, 100 % load, linear between

1. **What the machine sees of the package** (``full_w``) and 2. **the load curve** ``f``: in
   :mod:`greentrack.meters.cpu_model` (TDP × visible threads / threads per package, or 4 W per
   thread when the TDP is unknown; Boavizta's from-TDP profile), from the tables of
   :mod:`greentrack.meters.cpu_spec` (CodeCarbon's ``cpu_power.csv``, Boavizta's
   ``cpu_specs.csv``).
3. **Load**, ``cpu_share="machine"``: machine-wide, from ``<procfs>/stat`` deltas between two
   reads (busy = total − idle − iowait, over user..steal; guest time is inside user/nice) —
   what ``psutil.cpu_percent()`` reports.
4. ``cpu_share="process"``: this process tree's share of the machine's modelled power. Per
   read interval of ``dt_s`` seconds, with ``u`` = the tree's CPU time / (``dt_s`` × visible
   threads) and ``L`` = the machine-wide load of point 3::

       Lm      = min(1, max(L, u))        (the tree's time is part of the machine's busy time)
       power_w = full_w × f(Lm) × u / Lm  (0 W when u = 0)

   i.e. the machine's whole modelled power, *idle power included*, is shared among the busy
   CPU time in proportion to it: a job alone on the machine gets exactly the machine figure;
   two jobs splitting the busy time split the power, idle part too, without double counting;
   while no process uses the CPU, nobody is charged its idle power. ``max(L, u)`` absorbs
   ``/proc/stat``'s 10 ms ticks and a child's CPU time booked when it is reaped.

Energy is ``power_w × dt_s`` summed over read intervals: exact for the model, because the load
is the mean over exactly that interval (an interval in which ``/proc/stat`` did not move is
carried into the next one; with ``cpu_share="process"`` it takes the last load instead, so that
a tree's CPU time read at the final read is never dropped). The model is an estimate: real
CPUs differ from the Teads average by tens of percent, and TDP is a thermal, not an electrical,
rating.

RAM (device ``ram:estimate``): a constant :data:`RAM_W_PER_GIB` = 0.375 W per GiB installed
(``<procfs>/meminfo`` ``MemTotal``), CodeCarbon's historic 3 W per 8 GB (from Crucial's
guidance "3 W per 8 GB of DDR3/DDR4"), whatever the memory traffic; ``cpu_share="process"``:
per GiB resident in this process tree.

``GREENTRACK_PROCFS`` (default ``/proc``) points every read here — ``cpuinfo``, ``stat``,
``meminfo`` and the process tree — at another procfs root (tests, a container with the host's
``/proc`` mounted elsewhere). Both meters take their clock only from the ``t_mono`` passed to
``start``/``read``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter, MeterStatus
from greentrack.meters.cpu_model import LOAD_CURVE_NOTE, CpuPowerModel, host_cpu_power_model
from greentrack.meters.proctree import ProcessTree, procfs_root

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = [
    "RAM_W_PER_GIB",
    "CpuEstimateMeter",
    "RamEstimateMeter",
    "detect_cpu_estimate",
    "detect_ram_estimate",
    "open_cpu_estimate",
    "open_ram_estimate",
    "ram_total_gib",
    "system_cpu_times",
]

RAM_W_PER_GIB = 0.375
"""Modelled RAM power per GiB installed. Units: W/GiB (CodeCarbon's historic 3 W per 8 GB)."""


# -- procfs ------------------------------------------------------------------------------------
def system_cpu_times(procfs: str | os.PathLike[str] | None = None) -> tuple[float, float]:
    """Machine-wide ``(busy_s, total_s)`` CPU time since boot, summed over all CPUs. Units: s.

    From ``<procfs>/stat``, as ``psutil.cpu_percent`` counts it: busy = total − idle − iowait;
    guest time is already inside user/nice and is not counted twice. Where the real ``/proc``
    has no such file (not Linux), psutil's figures; a scripted root without it is a MeterError.
    """
    root = Path(procfs) if procfs is not None else procfs_root()
    try:  # /proc/stat directly: what psutil reads, without its ~30 ms import
        with open(root / "stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = [float(v) for v in fields[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal [guest guest_nice] (in ticks)
        total = sum(ticks[:8])  # guest time is already inside user/nice
        busy = total - ticks[3] - ticks[4]
        return busy / hz, total / hz
    except (OSError, ValueError, IndexError) as e:
        if root != Path("/proc"):
            raise MeterError(f"cannot read CPU times from {root / 'stat'} ({e})") from None
    import psutil

    t = psutil.cpu_times()
    total = sum(t)
    busy = total - t.idle - getattr(t, "iowait", 0.0)
    return busy, total


def ram_total_gib(procfs: str | os.PathLike[str] | None = None) -> float:
    """Installed (usable) RAM: ``MemTotal`` of ``<procfs>/meminfo``. Units: GiB (2**30 bytes)."""
    root = Path(procfs) if procfs is not None else procfs_root()
    if root == Path("/proc"):
        from greentrack.hardware import ram_total_gib as host_ram_gib

        return host_ram_gib()
    try:
        with open(root / "meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / 2**30
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


# -- meters ------------------------------------------------------------------------------------
class CpuEstimateMeter(Meter):
    """Modelled CPU energy: ``tdp_w × f(load)`` integrated over time (``estimated``).

    Args:
        power: the modelled CPU (:func:`host_cpu_power_model` of ``procfs`` by default).
        cpu_times: returns the machine's cumulative ``(busy_s, total_s)`` CPU time (default
            :func:`system_cpu_times` of ``procfs``); tests pass a scripted one.
        tree: charge only this process tree's share (``cpu_share="process"``, module
            docstring point 4).
        procfs: procfs root (default :func:`procfs_root`, i.e. ``GREENTRACK_PROCFS``).
    """

    name = "cpu-estimate"
    device = "cpu:estimate"

    def __init__(
        self,
        power: CpuPowerModel | None = None,
        *,
        cpu_times: Callable[[], tuple[float, float]] | None = None,
        tree: ProcessTree | None = None,
        procfs: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        root = Path(procfs) if procfs is not None else procfs_root()
        self.power = power if power is not None else host_cpu_power_model(root)
        self.tree = tree
        self._cpu_times = cpu_times or functools.partial(system_cpu_times, root)
        self._stat_path = root / "stat"
        self._lock = threading.Lock()
        self._started = False
        self._energy_j = 0.0
        self._power_w: float | None = None
        self._last_t = 0.0
        self._last_times = (0.0, 0.0)
        self._last_tree_s = 0.0
        self._last_load = 0.0
        if self.power.default:
            self.warn(f"CPU energy estimated with a {self.power.basis}")

    @property
    def tdp_w(self) -> float:
        """The (scaled or default) TDP the model uses. Units: W."""
        return self.power.tdp_w

    def describe(self) -> dict[str, str]:
        """``{"cpu:estimate": "<model> (TDP <w> W: <how>[, share])"}``, e.g. ``"AMD EPYC 7763
        64-Core Processor (TDP 8.75 W: 280 W scaled to 4 of 128 threads)"``."""
        p = self.power
        share = ", × this process tree's share of the CPU time" if self.tree is not None else ""
        return {self.device: f"{p.model} (TDP {p.tdp_w:.4g} W: {p.short or p.basis}{share})"}

    def notes(self) -> dict[str, str]:
        """``{"cpu:estimate": every assumption behind the figure, in one line}``."""
        if self.tree is not None:
            load = (
                "this process tree's share: its CPU time / the machine's busy CPU time × the "
                f"machine's modelled power at load max(machine load from {self._stat_path}, "
                "the tree's), idle power included"
            )
        else:
            load = f"machine-wide load from {self._stat_path}"
        return {self.device: f"{self.power.basis}; {LOAD_CURVE_NOTE}; {load}"}

    def start(self, t_mono: float) -> None:
        """Start integrating at monotonic time ``t_mono`` (s)."""
        with self._lock:
            self._started, self._energy_j, self._power_w = True, 0.0, None
            self._last_t, self._last_times = t_mono, self._cpu_times()
            self._last_tree_s = self.tree.cpu_s() if self.tree is not None else 0.0
            self._last_load = 0.0

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative modelled energy (J) since :meth:`start`; ``power_w``: last interval's mean."""
        with self._lock:
            if not self._started:
                raise RuntimeError("CpuEstimateMeter.read() called before start()")
            busy_s, total_s = self._cpu_times()
            tree_s = self.tree.cpu_s() if self.tree is not None else 0.0
            d_busy, d_total = busy_s - self._last_times[0], total_s - self._last_times[1]
            dt_s = t_mono - self._last_t
            # /proc/stat moves in 10 ms ticks: an interval in which it did not move is carried
            # into the next one, except with a tree, whose CPU time (a reaped child's, booked at
            # once) must not wait for the next read, which may never come: the last load stands.
            if dt_s > 0 and (d_total > 0 or self.tree is not None):
                load = min(max(d_busy / d_total, 0.0), 1.0) if d_total > 0 else self._last_load
                self._last_load = load
                if self.tree is None:
                    power_w = self.power.power_w(load)
                else:
                    u = max(tree_s - self._last_tree_s, 0.0) / (dt_s * self.power.threads)
                    lm = min(1.0, max(load, u))
                    power_w = self.power.power_w(lm) * u / lm if u > 0 else 0.0
                self._power_w = power_w
                self._energy_j += power_w * dt_s
                self._last_t, self._last_times = t_mono, (busy_s, total_s)
                self._last_tree_s = tree_s
            return [DeviceReading("cpu", self.device, self._energy_j, self._power_w, "estimated")]


class RamEstimateMeter(Meter):
    """Modelled RAM energy: ``w_per_gib × GiB`` integrated over time (``estimated``).

    Args:
        total_gib: installed RAM (default: ``MemTotal`` of ``<procfs>/meminfo``). Units: GiB.
        w_per_gib: modelled power per GiB (default :data:`RAM_W_PER_GIB`). Units: W/GiB.
        tree: count the memory this process tree uses instead (``cpu_share="process"``), read
            at every reading and integrated with the trapezoid rule.
        procfs: procfs root (default :func:`procfs_root`, i.e. ``GREENTRACK_PROCFS``).
    """

    name = "ram-estimate"
    device = "ram:estimate"

    def __init__(
        self,
        total_gib: float | None = None,
        *,
        w_per_gib: float = RAM_W_PER_GIB,
        tree: ProcessTree | None = None,
        procfs: str | os.PathLike[str] | None = None,
    ):
        super().__init__()
        root = Path(procfs) if procfs is not None else procfs_root()
        self._meminfo = root / "meminfo"
        if total_gib is None and tree is None:
            total_gib = ram_total_gib(root)
        self.tree = tree
        self.total_gib = float(total_gib or 0.0)
        self.w_per_gib = float(w_per_gib)
        self.power_w = self.w_per_gib * self.total_gib
        self._t_start: float | None = None
        self._t_last = 0.0
        self._energy_j = 0.0

    def describe(self) -> dict[str, str]:
        """``{"ram:estimate": "<n> GiB RAM (0.375 W/GiB model)"}`` or the process-tree text."""
        if self.tree is not None:
            return {self.device: f"memory of this process tree ({self.w_per_gib:g} W/GiB model)"}
        return {self.device: f"{self.total_gib:.1f} GiB RAM ({self.w_per_gib:g} W/GiB model)"}

    def notes(self) -> dict[str, str]:
        """``{"ram:estimate": every assumption behind the figure, in one line}``."""
        if self.tree is not None:
            what = f"the resident memory of this process tree ({self.tree.proc}/<pid>/statm)"
        else:
            what = f"{self.total_gib:.1f} GiB installed (MemTotal in {self._meminfo})"
        return {self.device: (
            f"{self.w_per_gib:g} W per GiB × {what}, whatever the memory traffic "
            "(CodeCarbon's historic 3 W per 8 GB, from Crucial's DDR3/DDR4 guidance)"
        )}  # fmt: skip

    def _gib(self) -> float:
        return self.tree.memory_gib() if self.tree is not None else self.total_gib

    def start(self, t_mono: float) -> None:
        """Start integrating at monotonic time ``t_mono`` (s)."""
        self._t_start = self._t_last = t_mono
        self._energy_j = 0.0
        self.power_w = self.w_per_gib * self._gib()

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Energy in J since :meth:`start` (a ``t_mono`` before the last read counts as it)."""
        if self._t_start is None:
            raise RuntimeError("RamEstimateMeter.read() called before start()")
        dt_s = max(0.0, t_mono - self._t_last)
        power_w = self.w_per_gib * self._gib() if self.tree is not None else self.power_w
        self._energy_j += (self.power_w + power_w) / 2 * dt_s
        self.power_w, self._t_last = power_w, max(self._t_last, t_mono)
        return [DeviceReading("ram", self.device, self._energy_j, self.power_w, "estimated")]


# -- the registry's hooks (greentrack.meters.registry) --------------------------------------------
def open_cpu_estimate(ctx: OpenContext) -> CpuEstimateMeter | None:
    """The CPU estimate when no meter before it measures the CPU; it carries the problems of
    the meters that could not open (e.g. RAPL's permission fix)."""
    if not ctx.needs("cpu"):
        return None
    est = CpuEstimateMeter(tree=ctx.tree(), procfs=ctx.config.procfs)
    for problem in ctx.take_problems():
        est.warn(problem)
    ctx.covered.add("cpu")
    return est


def open_ram_estimate(ctx: OpenContext) -> RamEstimateMeter | None:
    """The RAM estimate when no meter before it measures memory; it carries the problems the CPU
    estimate did not (said once per run, not per meter)."""
    if not ctx.needs("ram"):
        return None
    est = RamEstimateMeter(tree=ctx.tree(), procfs=ctx.config.procfs)
    for problem in ctx.take_problems():
        est.warn(problem)
    ctx.covered.add("ram")
    return est


def _load_text(ctx: DetectContext) -> str:
    if ctx.config.cpu_share == "process":
        return "this process tree's share of all CPUs' time (cpu_share=process)"
    return (
        "machine-wide load (cpu_share=machine, the default; "
        "cpu_share=process would count only this job's processes)"
    )


def detect_cpu_estimate(ctx: DetectContext) -> list[MeterStatus]:
    """``cpu-estimate``: always available; whether it is used, and the model behind it."""
    by = ctx.measured_by("cpu")
    use = f"not used: {by} measures the CPU" if by else f"in use: no usable {ctx.before('cpu')}"
    model = host_cpu_power_model(ctx.config.procfs)
    return [
        MeterStatus(
            "cpu-estimate",
            True,
            f"{use}; {model.model!r}: {model.basis}; load curve with idle power "
            f"(Boavizta/Teads) × {_load_text(ctx)}",
            [CpuEstimateMeter.device],
            "estimated",
        )
    ]


def detect_ram_estimate(ctx: DetectContext) -> list[MeterStatus]:
    """``ram-estimate``: always available; whether it is used, and the model behind it."""
    by = ctx.measured_by("ram")
    use = f"not used: {by} measures DRAM" if by else f"in use: no {ctx.before('ram')} DRAM domain"
    est = RamEstimateMeter(procfs=ctx.config.procfs)
    if ctx.config.cpu_share == "process":
        what = "GiB used by this process tree (cpu_share=process)"
    else:
        what = f"{est.total_gib:.1f} GiB = {est.power_w:.1f} W"
    return [
        MeterStatus(
            "ram-estimate",
            True,
            f"{use}; {est.w_per_gib:g} W/GiB × {what}",
            [RamEstimateMeter.device],
            "estimated",
        )
    ]
