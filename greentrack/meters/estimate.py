"""Estimated CPU and RAM energy, for hosts without RAPL. Method ``estimated``, always labelled.

CPU (device ``cpu:estimate``)::

    power_w = tdp_w × load        load = busy CPU time / all CPU time, machine-wide, 0..1

- ``tdp_w`` comes from CodeCarbon's shipped table ``codecarbon/data/hardware/cpu_power.csv``
  (read here with :mod:`csv`; CodeCarbon itself is not imported), matched against the CPU's
  model name (``/proc/cpuinfo``) the way CodeCarbon does: exact name, then the name without
  ``(R)``, ``(TM)``, ``CPU @ x GHz``, ``n-Core Processor``, then the most specific table entry
  whose words all appear in the model name (ties with different TDPs count as no match).
  An unknown model gets :data:`DEFAULT_TDP_W` (85 W, CodeCarbon's historic constant), and the
  meter says so in a warning.
- ``load`` is machine-wide, from ``psutil.cpu_times()`` deltas between two reads — the same
  quantity ``psutil.cpu_percent()`` reports, but without its shared module state. Machine-wide,
  not per-process, to be consistent with RAPL and NVML, which measure whole devices.
- Energy is ``tdp_w × load × Δt`` summed over read intervals: exact for the model, because
  ``load`` is the mean over exactly that interval. The model itself is crude: it ignores idle
  power (0 W at 0 % load) and the non-linearity of real CPUs.

RAM (device ``ram:estimate``): a constant :data:`RAM_W_PER_GIB` = 0.375 W per GiB installed,
CodeCarbon's historic 3 W per 8 GB, whatever the memory traffic.

Both meters take their clock only from the ``t_mono`` passed to ``start``/``read``.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from greentrack.meters.base import DeviceReading, Meter
from greentrack.meters.proctree import ProcessTree

__all__ = [
    "DEFAULT_TDP_W",
    "RAM_W_PER_GIB",
    "CpuEstimateMeter",
    "RamEstimateMeter",
    "TdpMatch",
    "cpu_power_table_path",
    "load_tdp_table",
    "match_tdp",
    "system_cpu_times",
]

DEFAULT_TDP_W = 85.0
"""TDP assumed for a CPU model missing from the table. Units: W (CodeCarbon's constant)."""

RAM_W_PER_GIB = 0.375
"""Modelled RAM power per GiB installed. Units: W/GiB (CodeCarbon's historic 3 W per 8 GB)."""


def cpu_power_table_path() -> Path | None:
    """Where CodeCarbon's ``cpu_power.csv`` lies, without importing CodeCarbon; None if absent."""
    import importlib.util

    spec = importlib.util.find_spec("codecarbon")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "data" / "hardware" / "cpu_power.csv"
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=4)
def load_tdp_table(path: Path) -> dict[str, float]:
    """CPU model name -> TDP (W) from a ``Name,TDP`` CSV. Rows that do not parse are skipped."""
    table: dict[str, float] = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        try:
            i_name, i_tdp = header.index("Name"), header.index("TDP")
        except ValueError:
            return table
        for row in rows:
            try:
                name, tdp = row[i_name].strip(), float(row[i_tdp])
            except (IndexError, ValueError):
                continue
            if name and tdp > 0:
                table.setdefault(name, tdp)
    return table


_NOISE = [
    r"\((?:r|tm)\)",  # Intel(R) Core(TM)
    r"\bcpu\s*@\s*[\d.]+\s*ghz\b",  # CPU @ 2.40GHz
    r"@\s*[\d.]+\s*ghz\b",
    r"\b\d+-core\b",  # 64-Core
    r"\bprocessor\b",
    r"\bcpu\b",
    r"\bwith radeon .*$",  # AMD Ryzen 7 5800U with Radeon Graphics
]


_NOISE_RE = re.compile("|".join(f"(?:{p})" for p in _NOISE))


def _normalise(name: str) -> str:
    return " ".join(_NOISE_RE.sub(" ", name.lower()).split())


@dataclass(frozen=True, slots=True)
class TdpMatch:
    """The TDP chosen for a CPU model.

    Attributes:
        model: the model name as detected.
        tdp_w: thermal design power. Units: W.
        matched: the table entry used, or None when :data:`DEFAULT_TDP_W` was assumed.
        source: where ``tdp_w`` comes from, in words (for warnings and ``detect``).
    """

    model: str
    tdp_w: float
    matched: str | None
    source: str


def match_tdp(model: str, table: Mapping[str, float]) -> TdpMatch:
    """Find ``model``'s TDP in ``table`` (see the module docstring); default if not found."""
    src = "codecarbon's cpu_power.csv"
    lowered = {name.lower(): name for name in table}
    if (hit := lowered.get(model.strip().lower())) is not None:
        return TdpMatch(model, table[hit], hit, src)
    norm = _normalise(model)
    words = set(norm.split())
    # Only entries that can match are normalised (the slow part): every word of a normalised
    # name is a substring of the lowercased name, so an entry equal to ``norm`` contains all of
    # its words, and a subset entry contains one of its words that has a digit.
    numbered = [w for w in words if any(c.isdigit() for c in w)]
    by_norm: dict[str, str] = {}
    for name in table:
        low = name.lower()
        if any(w in low for w in numbered) or all(w in low for w in words):
            by_norm.setdefault(_normalise(name), name)
    if norm and (hit := by_norm.get(norm)) is not None:
        return TdpMatch(model, table[hit], hit, src)
    best: list[str] = []
    best_len = 0
    for cand_norm, name in by_norm.items():
        cand = cand_norm.split()
        # the table entry's words all in the model name, and one of them a model number
        if cand and set(cand) <= words and any(c.isdigit() for c in cand_norm):
            if len(cand) > best_len:
                best, best_len = [name], len(cand)
            elif len(cand) == best_len:
                best.append(name)
    if best and len({table[n] for n in best}) == 1:
        return TdpMatch(model, table[best[0]], best[0], src)
    return TdpMatch(model, DEFAULT_TDP_W, None, "default: model not in codecarbon's cpu_power.csv")


@functools.lru_cache(maxsize=1)
def host_tdp() -> TdpMatch:
    """The TDP of this host's CPU (model from ``/proc/cpuinfo``).

    Matching against the ~5,000-row table takes tens of milliseconds, so the result is kept in
    memory for the process and in ``$GREENTRACK_HOME/cache/tdp.json``, keyed by the CPU model and
    the table file's path and modification time.
    """
    from greentrack.hardware import cpu_model

    model = cpu_model()
    path = cpu_power_table_path()
    if path is None:
        return TdpMatch(model, DEFAULT_TDP_W, None, "default: codecarbon's cpu_power.csv not found")
    key = f"{model}|{path}|{path.stat().st_mtime_ns}"
    home = Path(os.environ.get("GREENTRACK_HOME") or Path.home() / ".greentrack").expanduser()
    cache = home / "cache" / "tdp.json"
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return TdpMatch(model, float(cached["tdp_w"]), cached["matched"], cached["source"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    match = match_tdp(model, load_tdp_table(path))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "tdp_w": match.tdp_w, "matched": match.matched,
                                   "source": match.source}), encoding="utf-8")  # fmt: skip
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the lookup next time
    return match


def system_cpu_times() -> tuple[float, float]:
    """Machine-wide ``(busy_s, total_s)`` CPU time since boot, summed over all CPUs. Units: s.

    As ``psutil.cpu_percent`` counts it: busy = total − idle − iowait; on Linux guest time is
    already inside user/nice and is not counted twice.
    """
    if sys.platform.startswith("linux"):
        try:  # /proc/stat directly: what psutil reads, without its ~30 ms import
            with open("/proc/stat", encoding="ascii") as f:
                fields = f.readline().split()
            ticks = [float(v) for v in fields[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            # user nice system idle iowait irq softirq steal [guest guest_nice] (in ticks)
            total = sum(ticks[:8])  # guest time is already inside user/nice
            busy = total - ticks[3] - ticks[4]
            return busy / hz, total / hz
        except (OSError, ValueError, IndexError):
            pass
    import psutil

    t = psutil.cpu_times()
    total = sum(t)
    if sys.platform.startswith("linux"):
        total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    busy = total - t.idle - getattr(t, "iowait", 0.0)
    return busy, total


class CpuEstimateMeter(Meter):
    """Modelled CPU energy: ``tdp_w × load`` integrated over time (``estimated``).

    Args:
        tdp: the CPU's TDP and where it comes from (:func:`host_tdp` by default).
        cpu_times: returns cumulative ``(busy_s, total_s)`` CPU time (default
            :func:`system_cpu_times`); tests pass a scripted one.
        tree: count only this process tree's CPU time (``cpu_share="process"``): the load is
            its CPU time over all CPUs' time. Not capped at 1, so that the time of a child found
            late (booked at once) is not lost.
    """

    name = "cpu-estimate"
    device = "cpu:estimate"

    def __init__(
        self,
        tdp: TdpMatch | None = None,
        *,
        cpu_times: Callable[[], tuple[float, float]] = system_cpu_times,
        tree: ProcessTree | None = None,
    ) -> None:
        super().__init__()
        self.tdp = tdp if tdp is not None else host_tdp()
        self.tree = tree
        if tree is not None:
            cpu_times = functools.partial(_tree_cpu_times, tree)
        self._cpu_times = cpu_times
        self._max_load = 1.0 if tree is None else float("inf")
        self._lock = threading.Lock()
        self._started = False
        self._energy_j = 0.0
        self._power_w: float | None = None
        self._last_t = 0.0
        self._last_times = (0.0, 0.0)
        if self.tdp.matched is None:
            self.warn(
                f"CPU model {self.tdp.model!r} has no known TDP ({self.tdp.source}): CPU energy "
                f"is estimated with a default TDP of {self.tdp.tdp_w:g} W × load"
            )

    @property
    def tdp_w(self) -> float:
        """The TDP used. Units: W."""
        return self.tdp.tdp_w

    def describe(self) -> dict[str, str]:
        """``{"cpu:estimate": "<model> (TDP <w> W, <source>[, share])"}``."""
        share = ", x this process tree's share of the CPU time" if self.tree is not None else ""
        text = f"{self.tdp.model} (TDP {self.tdp.tdp_w:g} W, {self.tdp.source}{share})"
        return {self.device: text}

    def start(self, t_mono: float) -> None:
        """Start integrating at monotonic time ``t_mono`` (s)."""
        with self._lock:
            self._started, self._energy_j, self._power_w = True, 0.0, None
            self._last_t, self._last_times = t_mono, self._cpu_times()

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative modelled energy (J) since :meth:`start`; ``power_w``: last interval's mean."""
        with self._lock:
            if not self._started:
                raise RuntimeError("CpuEstimateMeter.read() called before start()")
            busy_s, total_s = self._cpu_times()
            d_busy, d_total = busy_s - self._last_times[0], total_s - self._last_times[1]
            dt_s = t_mono - self._last_t
            if dt_s > 0 and d_total > 0:
                load = min(max(d_busy / d_total, 0.0), self._max_load)
                self._power_w = self.tdp.tdp_w * load
                self._energy_j += self._power_w * dt_s
                self._last_t, self._last_times = t_mono, (busy_s, total_s)
            return [DeviceReading("cpu", self.device, self._energy_j, self._power_w, "estimated")]


class RamEstimateMeter(Meter):
    """Modelled RAM energy: ``w_per_gib × GiB`` integrated over time (``estimated``).

    Args:
        total_gib: installed RAM (default: this host's), the GiB counted. Units: GiB.
        w_per_gib: modelled power per GiB (default :data:`RAM_W_PER_GIB`). Units: W/GiB.
        tree: count the memory this process tree uses instead (``cpu_share="process"``), read
            at every reading and integrated with the trapezoid rule.
    """

    name = "ram-estimate"
    device = "ram:estimate"

    def __init__(
        self,
        total_gib: float | None = None,
        *,
        w_per_gib: float = RAM_W_PER_GIB,
        tree: ProcessTree | None = None,
    ):
        super().__init__()
        if total_gib is None and tree is None:
            from greentrack.hardware import ram_total_gib

            total_gib = ram_total_gib()
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


def _tree_cpu_times(tree: ProcessTree) -> tuple[float, float]:
    """``(this process tree's CPU time, all CPUs' time)``. Units: s.

    All CPUs' time is the elapsed time × the logical CPUs, not ``/proc/stat``'s total: that
    counts in 10 ms ticks, and a child's whole CPU time booked at once into a short interval
    (when it ends) would be divided by a quantised total.
    """
    return tree.cpu_s(), time.monotonic() * (os.cpu_count() or 1)
