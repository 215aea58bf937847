"""Estimated CPU and RAM energy, for hosts without RAPL. Method ``estimated``, always labelled.

Every rule below is stated, with its source, in the note each meter returns from
:meth:`~greentrack.meters.base.Meter.notes` (stored in ``components.note``, printed on the price
tag), e.g. ``"TDP 280 W (codecarbon cpu_power.csv: AMD EPYC 7763) scaled to 4 of 128 threads
(Boavizta cpu_specs.csv; VM: hypervisor flag); load curve ..."``.

CPU (device ``cpu:estimate``)::

    power_w = full_w × f(load)         load = busy CPU time / all CPU time, 0..1
    f       = Boavizta's TDP ratios 0.12, 0.32, 0.75, 1.02 at 0, 10, 50, 100 % load, linear between

1. **What the machine sees of the package** (``full_w``, :func:`cpu_power_model`), from
   ``<procfs>/cpuinfo``: the visible logical CPUs (``processor`` entries), the sockets
   (distinct ``physical id``), the threads per package the kernel reports (``siblings``) and the
   ``hypervisor`` flag.

   - TDP known, bare metal: ``full_w = TDP × visible threads / threads per package`` — the
     package count (a 2-socket server counts twice). Threads per package: ``siblings``, else
     the thread table, else one package is assumed (said in the note).
   - TDP known, VM (``hypervisor`` flag): ``siblings`` there is the virtual topology, so the
     threads of the model come from the thread table: ``full_w = TDP × vCPUs / threads of the
     model`` ("TDP 280 W scaled to 4 of 128 threads"). TDP and threads then come from the
     same row of the thread table where it gives both (the two tables disagree on a few parts:
     one row with a 2-socket TDP and thread count, halved if mixed with a 1-socket TDP). If
     the thread table does not know the model, the per-thread default below is used instead
     (a whole package's TDP never is).
   - TDP unknown: ``full_w = DEFAULT_W_PER_THREAD × visible threads`` (4 W per thread),
     labelled ``default`` in the note and in a warning.

   TDP per package: CodeCarbon's shipped ``codecarbon/data/hardware/cpu_power.csv`` (MIT; read
   here with :mod:`csv`, CodeCarbon itself is not imported), else the ``tdp_w`` of the thread
   table. Threads per model: ``greentrack/data/cpu_specs.csv``, a subset of Boavizta's
   ``boaviztapi/data/crowdsourcing/cpu_specs.csv`` (AGPL-3.0; name, cores, threads, TDP).
   Names are matched as CodeCarbon matches them: exact name, then the name without ``(R)``,
   ``(TM)``, ``CPU @ x GHz``, ``n-Core Processor``, then the most specific table entry whose
   words all appear in the model name (ties with different values count as no match).
   The default of 4 W per thread is CodeCarbon's ``DEFAULT_POWER_PER_CORE`` ("4 W per
   thread", ``codecarbon/core/cpu.py``, introduced in CodeCarbon PR #316 without a source); it
   agrees with the shipped table: the median TDP per thread of its 1,015 parts with both
   figures is 4.06 W (quartiles 2.8 and 7.5 W; ``tests/test_estimate_model.py`` recomputes it).
2. **Load curve** ``f``: Boavizta's CPU consumption profile "from TDP"
   (``boaviztapi/models/consumption_profile/consumption_profile.py``, ``_TDP_RATIOS``):
   Teads' average measured power per unit of TDP (B. Davy, "Building an AWS EC2 carbon
   emissions dataset", Teads Engineering, 2021, from SPECpower_ssj2008 results): 0.12 at idle,
   0.32 at 10 %, 0.75 at 50 %, 1.02 at 100 % load. Boavizta fits a log curve through these
   four points; greentrack interpolates linearly between them (exact at the published points).
   An idle CPU draws 12 % of ``full_w``, not 0 W.
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

import csv
import functools
import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from greentrack.errors import MeterError
from greentrack.meters.base import DeviceReading, Meter
from greentrack.meters.proctree import ProcessTree, procfs_root

__all__ = [
    "DEFAULT_W_PER_THREAD",
    "LOAD_CURVE",
    "RAM_W_PER_GIB",
    "CpuEstimateMeter",
    "CpuPowerModel",
    "CpuSpec",
    "CpuTopology",
    "RamEstimateMeter",
    "TdpMatch",
    "cpu_power_model",
    "cpu_power_table_path",
    "cpu_specs_path",
    "host_cpu_power_model",
    "load_factor",
    "load_tdp_table",
    "load_thread_table",
    "lookup_cpu_spec",
    "match_tdp",
    "procfs_root",
    "ram_total_gib",
    "read_cpuinfo",
    "system_cpu_times",
]

DEFAULT_W_PER_THREAD = 4.0
"""TDP-equivalent assumed per visible thread for a CPU model of unknown TDP. Units: W/thread
(CodeCarbon's ``DEFAULT_POWER_PER_CORE``; ≈ the median TDP per thread of the shipped table)."""

LOAD_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02))
"""``(load, power / TDP)`` points: Boavizta's ``_TDP_RATIOS`` (Teads, from SPECpower results)."""

RAM_W_PER_GIB = 0.375
"""Modelled RAM power per GiB installed. Units: W/GiB (CodeCarbon's historic 3 W per 8 GB)."""

_CURVE_TEXT = (
    "load curve 0.12/0.32/0.75/1.02 × TDP at 0/10/50/100 % load, linear between "
    "(Boavizta's from-TDP profile, Teads' SPECpower averages)"
)


def load_factor(load: float) -> float:
    """Modelled power / TDP at CPU ``load`` (0..1, clamped): :data:`LOAD_CURVE`, linear between."""
    x = min(max(load, 0.0), 1.0)
    for (x0, y0), (x1, y1) in itertools.pairwise(LOAD_CURVE):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return LOAD_CURVE[-1][1]


# -- tables ------------------------------------------------------------------------------------
def cpu_power_table_path() -> Path | None:
    """Where CodeCarbon's ``cpu_power.csv`` lies, without importing CodeCarbon; None if absent."""
    import importlib.util

    spec = importlib.util.find_spec("codecarbon")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "data" / "hardware" / "cpu_power.csv"
        if path.is_file():
            return path
    return None


def cpu_specs_path() -> Path:
    """``greentrack/data/cpu_specs.csv``: threads (and TDP) per CPU model, from Boavizta."""
    return Path(__file__).resolve().parent.parent / "data" / "cpu_specs.csv"


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


@functools.lru_cache(maxsize=4)
def load_thread_table(path: Path) -> dict[str, tuple[int, float | None]]:
    """CPU model name -> ``(threads per package, TDP in W or None)`` from ``cpu_specs.csv``."""
    table: dict[str, tuple[int, float | None]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            try:
                name, threads = (row["name"] or "").strip(), int(row["threads"])
                tdp = float(row["tdp_w"]) if row.get("tdp_w") else None
            except (KeyError, TypeError, ValueError):
                continue
            if name and threads > 0:
                table.setdefault(name, (threads, tdp if tdp and tdp > 0 else None))
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


def _match_name(model: str, table: Mapping[str, object]) -> str | None:
    """The entry of ``table`` naming ``model`` (see the module docstring), or None."""
    lowered = {name.lower(): name for name in table}
    if (hit := lowered.get(model.strip().lower())) is not None:
        return hit
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
        return hit
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
    if best and len({repr(table[n]) for n in best}) == 1:
        return best[0]
    return None


@dataclass(frozen=True, slots=True)
class TdpMatch:
    """The TDP found for a CPU model in CodeCarbon's table.

    Attributes:
        model: the model name as detected.
        tdp_w: thermal design power of one package, or None when the table lacks the model.
            Units: W.
        matched: the table entry used, or None.
        source: where ``tdp_w`` comes from, in words.
    """

    model: str
    tdp_w: float | None
    matched: str | None
    source: str


def match_tdp(model: str, table: Mapping[str, float]) -> TdpMatch:
    """Find ``model``'s TDP in ``table`` (see the module docstring); ``tdp_w`` None if absent."""
    hit = _match_name(model, table)
    if hit is None:
        return TdpMatch(model, None, None, "model not in codecarbon cpu_power.csv")
    return TdpMatch(model, table[hit], hit, f"codecarbon cpu_power.csv: {hit}")


@dataclass(frozen=True, slots=True)
class CpuSpec:
    """What the tables say about one CPU model (one package).

    Attributes:
        model: the model name as detected.
        tdp_w: TDP of one package, or None when no table knows it. Units: W.
        tdp_source: the table and entry ``tdp_w`` comes from, or why there is none.
        threads: hardware threads of one package, or None when the thread table lacks it.
        threads_source: the table and entry ``threads`` comes from, or why there is none.
        threads_tdp_w: the TDP in the same row of the thread table, or None: a VM's share is
            taken from one row (TDP and threads of the same source). Units: W.
    """

    model: str
    tdp_w: float | None
    tdp_source: str
    threads: int | None
    threads_source: str
    threads_tdp_w: float | None = None


def _lookup(model: str, cc_path: Path | None, specs_path: Path) -> CpuSpec:
    tdp = match_tdp(model, load_tdp_table(cc_path)) if cc_path else None
    specs = load_thread_table(specs_path) if specs_path.is_file() else {}
    hit = _match_name(model, specs) if specs else None
    threads = specs[hit][0] if hit else None
    row_tdp = specs[hit][1] if hit else None
    t_src = f"Boavizta cpu_specs.csv: {hit}" if hit else "model not in Boavizta cpu_specs.csv"
    if tdp is not None and tdp.tdp_w is not None:
        return CpuSpec(model, tdp.tdp_w, tdp.source, threads, t_src, row_tdp)
    if row_tdp is not None:
        return CpuSpec(model, row_tdp, t_src, threads, t_src, row_tdp)
    why = "codecarbon cpu_power.csv not found" if cc_path is None else tdp.source  # type: ignore[union-attr]
    return CpuSpec(model, None, f"{why}, nor a TDP in Boavizta cpu_specs.csv", threads, t_src)


@functools.lru_cache(maxsize=16)
def lookup_cpu_spec(model: str) -> CpuSpec:
    """TDP and threads of ``model`` from the two tables (see the module docstring).

    Matching against the ~5,000-row table takes tens of milliseconds, so the result is kept in
    memory for the process and in ``$GREENTRACK_HOME/cache/cpu_spec.json``, keyed by the model
    and both table files' paths and modification times.
    """
    cc_path = cpu_power_table_path()
    specs_path = cpu_specs_path()
    stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in (cc_path, specs_path) if p and p.exists()]
    key = "|".join([model, *stamps])
    home = Path(os.environ.get("GREENTRACK_HOME") or Path.home() / ".greentrack").expanduser()
    cache = home / "cache" / "cpu_spec.json"
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
        got = entries[key]
        return CpuSpec(model, got["tdp_w"], got["tdp_source"], got["threads"],
                       got["threads_source"], got["threads_tdp_w"])  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        entries = None
    spec = _lookup(model, cc_path, specs_path)
    try:
        if not isinstance(entries, dict):
            entries = {}
        entries = {k: v for k, v in list(entries.items())[-15:]}  # a few models (tests, hosts)
        entries[key] = {"tdp_w": spec.tdp_w, "tdp_source": spec.tdp_source,
                        "threads": spec.threads, "threads_source": spec.threads_source,
                        "threads_tdp_w": spec.threads_tdp_w}  # fmt: skip
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the lookup next time
    return spec


# -- procfs ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CpuTopology:
    """What ``<procfs>/cpuinfo`` says about the CPUs this machine sees.

    Attributes:
        model: the first ``model name`` ("unknown" when there is none).
        threads: visible logical CPUs (``processor`` entries; ``os.cpu_count()`` if none).
        packages: distinct ``physical id`` values (1 when absent).
        siblings: threads per package as the kernel reports them, or None.
        hypervisor: the ``hypervisor`` CPU flag: this is a virtual machine.
        source: the file read.
    """

    model: str
    threads: int
    packages: int
    siblings: int | None
    hypervisor: bool
    source: str


def read_cpuinfo(procfs: str | os.PathLike[str] | None = None) -> CpuTopology:
    """Parse ``<procfs>/cpuinfo`` (default root :func:`procfs_root`). Never raises."""
    root = Path(procfs) if procfs is not None else procfs_root()
    path = root / "cpuinfo"
    model = ""
    processors = 0
    physical: set[str] = set()
    siblings: int | None = None
    hypervisor = False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key, value = key.strip(), value.strip()
                if key == "processor":
                    processors += 1
                elif key == "model name" and not model and value:
                    model = " ".join(value.split())
                elif key == "physical id":
                    physical.add(value)
                elif key == "siblings" and siblings is None:
                    siblings = int(value) if value.isdigit() and int(value) > 0 else None
                elif key == "flags" and not hypervisor:
                    hypervisor = "hypervisor" in value.split()
    except OSError:
        pass
    if not model and root == Path("/proc"):
        import platform

        model = platform.processor().strip()
    if processors == 0 and root == Path("/proc"):
        processors = os.cpu_count() or 1
    return CpuTopology(model or "unknown", max(processors, 1), max(len(physical), 1), siblings,
                       hypervisor, str(path))  # fmt: skip


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


# -- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CpuPowerModel:
    """The modelled CPU of this machine: ``power_w(load) = tdp_w × load_factor(load)``.

    Attributes:
        model: the CPU model name.
        tdp_w: the TDP of what this machine sees (scaled, or the per-thread default). Units: W.
        threads: visible logical CPUs (the ``u`` of ``cpu_share="process"`` divides by them).
        default: True when ``tdp_w`` is the per-thread default (the model's TDP is unknown).
        basis: how ``tdp_w`` was obtained, in words, with sources (the start of the note).
        short: the same in a few words, e.g. ``"280 W scaled to 4 of 128 threads"``.
    """

    model: str
    tdp_w: float
    threads: int
    default: bool
    basis: str
    short: str = ""

    def power_w(self, load: float) -> float:
        """Modelled power at machine load ``load`` (0..1). Units: W."""
        return self.tdp_w * load_factor(load)


def _default(topo: CpuTopology, why: str) -> CpuPowerModel:
    tdp_w = DEFAULT_W_PER_THREAD * topo.threads
    basis = (
        f"default TDP {DEFAULT_W_PER_THREAD:g} W per thread × {topo.threads} threads = "
        f"{tdp_w:g} W ({why}; 4 W per thread: CodeCarbon's DEFAULT_POWER_PER_CORE, ≈ the "
        "median TDP per thread of Boavizta's cpu_specs.csv)"
    )
    short = f"default {DEFAULT_W_PER_THREAD:g} W per thread × {topo.threads} threads"
    return CpuPowerModel(topo.model, tdp_w, topo.threads, True, basis, short)


def cpu_power_model(topo: CpuTopology, spec: CpuSpec) -> CpuPowerModel:
    """Apply the scaling rules of the module docstring (point 1) to a machine and its model."""
    vm = "VM: hypervisor flag" if topo.hypervisor else "bare metal"
    if spec.tdp_w is None:
        return _default(topo, f"TDP of {topo.model!r} unknown: {spec.tdp_source}")
    if topo.hypervisor:
        if spec.threads is None:
            return _default(
                topo, f"TDP {spec.tdp_w:g} W ({spec.tdp_source}) but {spec.threads_source}, "
                f"so the share of the package this VM sees is unknown",
            )  # fmt: skip
        per_pkg, t_src = spec.threads, spec.threads_source
        if spec.threads_tdp_w is not None and spec.threads_tdp_w != spec.tdp_w:
            # one row for both: the tables disagree on some parts (a 2-socket figure in one)
            spec = CpuSpec(spec.model, spec.threads_tdp_w, spec.threads_source, spec.threads,
                           spec.threads_source, spec.threads_tdp_w)  # fmt: skip
    elif topo.siblings is not None:
        per_pkg, t_src = topo.siblings, "siblings in cpuinfo"
    elif spec.threads is not None:
        per_pkg, t_src = spec.threads, spec.threads_source
    else:
        per_pkg, t_src = topo.threads, "threads per package unknown: 1 package assumed"
    tdp_w = spec.tdp_w * topo.threads / per_pkg
    if not topo.hypervisor and topo.threads % per_pkg == 0:  # whole packages
        n_pkg = topo.threads // per_pkg
        scaled = f"× {n_pkg} package{'s' if n_pkg > 1 else ''} ({topo.threads} threads"
        scaled += f", {per_pkg} per package: {t_src}; {vm})"
        basis = f"TDP {spec.tdp_w:g} W ({spec.tdp_source}) {scaled} = {tdp_w:.4g} W"
        short = f"{spec.tdp_w:g} W × {n_pkg} package{'s' if n_pkg > 1 else ''}"
    else:
        basis = (
            f"TDP {spec.tdp_w:g} W ({spec.tdp_source}) scaled to {topo.threads} of {per_pkg} "
            f"threads = {tdp_w:.4g} W (threads of the model: {t_src}; {vm})"
        )
        short = f"{spec.tdp_w:g} W scaled to {topo.threads} of {per_pkg} threads"
    return CpuPowerModel(topo.model, tdp_w, topo.threads, False, basis, short)


def host_cpu_power_model(procfs: str | os.PathLike[str] | None = None) -> CpuPowerModel:
    """This machine's modelled CPU: ``<procfs>/cpuinfo`` + the (cached) table lookup."""
    topo = read_cpuinfo(procfs)
    return cpu_power_model(topo, lookup_cpu_spec(topo.model))


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
        return {self.device: f"{self.power.basis}; {_CURVE_TEXT}; {load}"}

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
