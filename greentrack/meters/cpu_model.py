"""The modelled CPU of this machine: its TDP, scaled to what the machine sees, × a load curve.

Used by :class:`~greentrack.meters.estimate.CpuEstimateMeter` (which says how load is read and
energy integrated)::

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

   TDP and threads per package come from :func:`greentrack.meters.cpu_spec.lookup_cpu_spec`
   (CodeCarbon's ``cpu_power.csv`` and Boavizta's ``cpu_specs.csv``; the sources and the
   matching rules are in that module). The default of 4 W per thread is CodeCarbon's
   ``DEFAULT_POWER_PER_CORE`` ("4 W per thread", ``codecarbon/core/cpu.py``, introduced in
   CodeCarbon PR #316 without a source); it agrees with the shipped table: the median TDP per
   thread of its 1,015 parts with both figures is 4.06 W (quartiles 2.8 and 7.5 W;
   ``tests/test_estimate_model.py`` recomputes it).
2. **Load curve** ``f``: Boavizta's CPU consumption profile "from TDP"
   (``boaviztapi/models/consumption_profile/consumption_profile.py``, ``_TDP_RATIOS``):
   Teads' average measured power per unit of TDP (B. Davy, "Building an AWS EC2 carbon
   emissions dataset", Teads Engineering, 2021, from SPECpower_ssj2008 results): 0.12 at idle,
   0.32 at 10 %, 0.75 at 50 %, 1.02 at 100 % load. Boavizta fits a log curve through these
   four points; greentrack interpolates linearly between them (exact at the published points).
   An idle CPU draws 12 % of ``full_w``, not 0 W.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import NamedTuple

from greentrack.meters.cpu_spec import CpuSpec, lookup_cpu_spec
from greentrack.meters.proctree import procfs_root

__all__ = [
    "DEFAULT_W_PER_THREAD",
    "LOAD_CURVE",
    "LOAD_CURVE_NOTE",
    "CpuPowerModel",
    "CpuTopology",
    "cpu_power_model",
    "host_cpu_power_model",
    "load_factor",
    "read_cpuinfo",
]

DEFAULT_W_PER_THREAD = 4.0
"""TDP-equivalent assumed per visible thread for a CPU model of unknown TDP. Units: W/thread
(CodeCarbon's ``DEFAULT_POWER_PER_CORE``; ≈ the median TDP per thread of the shipped table)."""

LOAD_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02))
"""``(load, power / TDP)`` points: Boavizta's ``_TDP_RATIOS`` (Teads, from SPECpower results)."""

LOAD_CURVE_NOTE = (
    "load curve 0.12/0.32/0.75/1.02 × TDP at 0/10/50/100 % load, linear between "
    "(Boavizta's from-TDP profile, Teads' SPECpower averages)"
)
""":data:`LOAD_CURVE` and its source in words (part of every CPU estimate's note)."""


def load_factor(load: float) -> float:
    """Modelled power / TDP at CPU ``load`` (0..1, clamped): :data:`LOAD_CURVE`, linear between."""
    x = min(max(load, 0.0), 1.0)
    for (x0, y0), (x1, y1) in itertools.pairwise(LOAD_CURVE):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return LOAD_CURVE[-1][1]


# -- procfs ------------------------------------------------------------------------------------
class CpuTopology(NamedTuple):
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


# -- the model ---------------------------------------------------------------------------------
class CpuPowerModel(NamedTuple):
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
