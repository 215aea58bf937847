"""CPU package and DRAM energy from Linux powercap RAPL counters (Intel and AMD).

Layout read, under ``<sysfs>/class/powercap`` (``sysfs`` = ``Config.sysfs`` /
``GREENTRACK_SYSFS``, default ``/sys``)::

    intel-rapl:0/            name = package-0     -> component cpu,  device cpu:package-0
      intel-rapl:0:0/        name = core          (ignored: inside the package)
      intel-rapl:0:1/        name = uncore        (ignored: inside the package)
      intel-rapl:0:2/        name = dram          -> component dram, device dram:package-0
    intel-rapl:1/            name = package-1     (second socket) or psys (ignored: platform
                                                  power, overlaps package + DRAM)
    intel-rapl-mmio:0/       name = package-0     (same package through MMIO: deduplicated)

Each zone has ``energy_uj`` (a counter, µJ) and ``max_energy_range_uj`` (where it wraps to 0).
Rules:

- A top-level zone whose name starts with ``package`` (``package-0``, ``package-0-die-1``; the
  AMD driver uses the same names and tree) is a CPU package; its sub-zone named ``dram`` is
  that package's DRAM. Every other zone (``core``, ``uncore``, ``psys``) is ignored. The kernel
  registers DRAM only as a package sub-zone, so a top-level ``dram`` zone is not looked for.
- Duplicates are dropped by name: the first zone called ``package-0`` wins, the ``intel-rapl``
  (MSR) control type being looked at before others such as ``intel-rapl-mmio``.
- Mirrored zones are merged by their counters, not their names. On AMD Zen 1/2 the kernel
  exposes ``package-0-die-0`` and ``package-0-die-1`` that read *the same* package counter
  (adding both doubles the package: CodeCarbon issue #1274). Two zones of the same component
  and wrap range are *candidates* when their counters are within :data:`MIRROR_TOL_UJ`
  (0.5 J) of each other at :meth:`RaplMeter.start`. The later one is then withheld (read, not
  reported) until the counters decide: they are one counter if, at every read until the earlier
  one has moved :data:`MIRROR_DECIDE_UJ` (10 J) over at least :data:`MIRROR_READS` (3) reads,
  the later value lies between the earlier counter read just before it and read again just
  after it (± 0.5 J: robust to this thread being preempted between the two files); the later
  zone is then dropped, and the run gets a warning and a note naming both zones. The first
  read where they are further apart shows two counters, and the later zone is reported from
  then on with all its energy since start (nothing lost). 0.5 J covers reading the two files
  on either side of one counter update (~1 ms of a 400 W package); mirrors never drift
  further, while separate counters drift apart at the difference of their powers. So two
  sockets whose values happen to be equal at one instant diverge and are never merged;
  separate counters are merged only if they start within 0.5 J of each other (chance ~4e-6 on
  a 262 kJ counter) *and* draw the same power to within ~5 % for the first 10 J.
- Energy is the sum of counter deltas, a negative delta meaning one wrap (``+
  max_energy_range_uj``). That is exact when less than ``max_energy_range_uj`` of energy passes
  between two reads (the counter wraps at most once and does not overtake its previous value):
  a full range takes ``max_energy_range_uj / power`` (typically 262 kJ / 200 W ≈ 22 min), so at
  1 s sampling this always holds. More than a range between two reads cannot be detected and
  loses a whole range. (The kernel's counter really wraps one counter unit, ~61 µJ, after
  ``max_energy_range_uj``; like other tools we ignore that < 1e-9 relative error.)

Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root only; opening the meter then
raises :class:`~greentrack.errors.MeterPermissionError` whose message is the one-line fix.

All file reads of counters go through :func:`_read_uj` (tests patch it to simulate permissions).
Paths are found once, when the meter is opened; a read opens one small file per domain.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import DeviceReading, Meter, MeterStatus
from greentrack.meters.presence import POWERCAP_CLASS

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext, OpenContext

__all__ = [
    "RaplDomain",
    "RaplMeter",
    "detect_meter",
    "discover_domains",
    "open_meter",
    "permission_fix",
    "powercap_dir",
]

_ZONE = re.compile(r"^(?P<ctl>[A-Za-z][\w-]*):(?P<idx>\d+)$")
_PRIMARY_CONTROL = "intel-rapl"

MIRROR_TOL_UJ = 500_000
"""Two counters this close are one (mirrored) counter; further apart, two. Units: µJ (0.5 J)."""
MIRROR_READS = 3
"""Reads in which the first counter moved that must agree before two zones are merged."""
MIRROR_DECIDE_UJ = 10_000_000
"""...and the first counter must have moved this much since start. Units: µJ (10 J)."""


def _read_uj(path: str) -> int:
    """Read one counter file (``energy_uj`` or ``max_energy_range_uj``). Units: µJ.

    The only function that reads counters: raises ``OSError`` (``PermissionError`` when the file
    is not readable by this user) or ``ValueError`` (garbage) for the caller to translate.
    """
    with open(path, "rb") as f:
        return int(f.read().strip())


def _read_name(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except FileNotFoundError:
        return None


def powercap_dir(sysfs: str | os.PathLike[str]) -> Path:
    """``<sysfs>/class/powercap`` (the registry's :func:`greentrack.meters.presence.powercap`
    checks it exists before importing this module)."""
    return Path(sysfs) / POWERCAP_CLASS


@dataclass(frozen=True, slots=True)
class RaplDomain:
    """One RAPL zone that greentrack measures.

    Attributes:
        component: ``cpu`` (package) or ``dram``.
        device: ``cpu:<package name>`` or ``dram:<package name>``.
        zone: the powercap zone, e.g. ``intel-rapl:0`` or ``intel-rapl:0:2``.
        energy_path: path of its ``energy_uj`` counter (µJ).
        max_energy_range_uj: the counter wraps to 0 here. Units: µJ.
    """

    component: str
    device: str
    zone: str
    energy_path: str
    max_energy_range_uj: int


def _zone_key(entry: str) -> tuple[int, str, int]:
    m = _ZONE.match(entry)
    assert m is not None, entry
    return (0 if m["ctl"] == _PRIMARY_CONTROL else 1, m["ctl"], int(m["idx"]))


def _subzones(root: Path, zone_dir: Path, zone: str) -> list[Path]:
    """Sub-zones of ``zone``: nested directories and/or flat entries ``<zone>:<n>``."""
    pat = re.compile(re.escape(zone) + r":\d+$")
    found: dict[str, Path] = {}
    for base in (zone_dir, root):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for n in names:
            if pat.match(n) and n not in found and (base / n).is_dir():
                found[n] = base / n
    return [found[n] for n in sorted(found, key=lambda s: int(s.rsplit(":", 1)[1]))]


def _domain(zone_dir: Path, zone: str, component: str, device: str) -> RaplDomain | None:
    energy = zone_dir / "energy_uj"
    if not energy.exists():
        return None
    try:
        max_uj = _read_uj(str(zone_dir / "max_energy_range_uj"))
    except (FileNotFoundError, ValueError):
        max_uj = 0
    return RaplDomain(component, device, zone, str(energy), max_uj)


def discover_domains(
    sysfs: str | os.PathLike[str], components: Iterable[str] = ("cpu", "dram")
) -> list[RaplDomain]:
    """The package (``cpu``) and ``dram`` zones to measure, deduplicated; ``[]`` if none.

    Reads only ``name`` and ``max_energy_range_uj`` files (world-readable), never a counter.

    Raises:
        MeterPermissionError: a ``name`` or ``max_energy_range_uj`` file cannot be read.
    """
    wanted = set(components)
    root = powercap_dir(sysfs)
    try:
        entries = sorted((e for e in os.listdir(root) if _ZONE.match(e)), key=_zone_key)
    except FileNotFoundError:
        return []
    except PermissionError as e:
        raise MeterPermissionError(f"{root} is not readable by this user ({e})") from e
    out: list[RaplDomain] = []
    seen: set[tuple[str, str]] = set()
    try:
        for zone in entries:
            zdir = root / zone
            pkg = _read_name(zdir / "name")
            if pkg is None or not pkg.lower().startswith("package"):
                continue
            d = _domain(zdir, zone, "cpu", f"cpu:{pkg}") if (pkg, "") not in seen else None
            if d is not None:
                seen.add((pkg, ""))
                if "cpu" in wanted:
                    out.append(d)
            if "dram" not in wanted or (pkg, "dram") in seen:
                continue
            for sub in _subzones(root, zdir, zone):
                is_dram = (_read_name(sub / "name") or "").lower() == "dram"
                if is_dram and (d := _domain(sub, sub.name, "dram", f"dram:{pkg}")):
                    seen.add((pkg, "dram"))
                    out.append(d)
                    break
    except PermissionError as e:
        raise MeterPermissionError(
            f"RAPL files under {root} are not readable by this user ({e}); "
            f"fix: sudo chmod -R a+r {root}/"
        ) from e
    return out


def permission_fix(root: Path, domains: Sequence[RaplDomain]) -> str:
    """The one-line message for counters that exist but cannot be read, with the exact fix."""
    real = os.path.realpath(root)
    globs: list[str] = []
    for ctl in dict.fromkeys(d.zone.split(":", 1)[0] for d in domains):
        globs.append(f"{real}/{ctl}:*/energy_uj")
        if any(d.component == "dram" and d.zone.startswith(ctl + ":") for d in domains):
            globs.append(f"{real}/{ctl}:*/{ctl}:*/energy_uj")
    return (
        "RAPL energy counters exist but are not readable by this user (root-only since Linux "
        f"5.10, CVE-2020-8694). Fix: sudo chmod a+r {' '.join(globs)} "
        "(until reboot; or a udev rule / group — see README)"
    )


@dataclass(slots=True)
class _State:
    domain: RaplDomain
    last_uj: int = 0
    total_uj: int = 0
    power_base_uj: int = 0  # total_uj at last_t, for power_w
    power_w: float | None = None
    last_t: float = 0.0
    failed: bool = False
    last_move_uj: int = 0  # delta of the last read, for the mirror decision
    mirror_of: int | None = None  # candidate: index of the earlier zone it may mirror
    agreed: int = 0  # reads so far in which it agreed with mirror_of
    merged: bool = False  # confirmed mirror: not reported, not read


def _circular_diff_uj(a_uj: int, b_uj: int, range_uj: int) -> int:
    """|a − b| on a counter wrapping at ``range_uj`` (plain |a − b| when the range is unknown)."""
    d = abs(a_uj - b_uj)
    return min(d, range_uj - d) if range_uj > 0 else d


class RaplMeter(Meter):
    """CPU package(s) and DRAM energy from RAPL counters. Method ``counter``.

    Build it with :meth:`open` (which checks the counters can be read) or from a list of
    :class:`RaplDomain`. ``energy_j`` is exact to 1 µJ (the counter's unit in sysfs).
    """

    name = "rapl"

    def __init__(self, domains: Sequence[RaplDomain], *, root: Path | None = None) -> None:
        super().__init__()
        self._root = root
        self._states = [_State(d) for d in domains]
        self._lock = threading.Lock()
        self._started = False
        self._t_start = 0.0
        self._notes: dict[str, str] = {}

    @classmethod
    def open(
        cls, sysfs: str | os.PathLike[str], *, components: Iterable[str] = ("cpu", "dram")
    ) -> RaplMeter:
        """Find the domains under ``<sysfs>/class/powercap`` and check each counter reads.

        Args:
            sysfs: sysfs root (``/sys``).
            components: which of ``cpu`` and ``dram`` to measure.

        Raises:
            MeterPermissionError: the counters exist but this user cannot read them (message:
                the chmod fix with the real paths).
            MeterError: no RAPL powercap interface or no package domain here.
        """
        root = powercap_dir(sysfs)
        if not root.is_dir():
            raise MeterError(
                f"no RAPL powercap interface at {root} (not Linux, a VM without RAPL, or the "
                "driver is not loaded: try `sudo modprobe intel_rapl_msr`)"
            )
        domains = discover_domains(sysfs, components)
        if not domains:
            raise MeterError(
                f"no RAPL {' or '.join(components)} domain under {root} "
                "(only core/uncore/psys zones, or none)"
            )
        for d in domains:
            try:
                _read_uj(d.energy_path)
            except PermissionError as e:
                raise MeterPermissionError(permission_fix(root, domains)) from e
            except (OSError, ValueError) as e:
                raise MeterError(f"RAPL counter {d.energy_path} cannot be read: {e}") from e
        return cls(domains, root=root)

    @property
    def domains(self) -> list[RaplDomain]:
        """The zones measured (a zone merged into its mirror is no longer listed)."""
        return [s.domain for s in self._states if not s.merged]

    @property
    def devices(self) -> list[str]:
        """Device ids, e.g. ``["cpu:package-0", "dram:package-0"]``."""
        return [s.domain.device for s in self._states if not s.merged]

    @property
    def merged(self) -> dict[str, str]:
        """Zone dropped as a mirror -> the zone kept for it, e.g.
        ``{"intel-rapl:1": "intel-rapl:0"}``."""
        return {
            s.domain.zone: self._states[s.mirror_of].domain.zone
            for s in self._states
            if s.merged and s.mirror_of is not None
        }

    def mirror_candidates(self) -> dict[str, str]:
        """Zone still being checked as a possible mirror -> the zone it may mirror, e.g.
        ``{"intel-rapl:1": "intel-rapl:0"}``. Empty once every candidate is decided."""
        return {
            s.domain.zone: self._states[s.mirror_of].domain.zone
            for s in self._states
            if s.mirror_of is not None and not s.merged
        }

    def notes(self) -> dict[str, str]:
        """Device id -> note, for devices that stand for a merged mirror zone."""
        with self._lock:
            return dict(self._notes)

    def describe(self) -> dict[str, str]:
        """Device id -> what it is: the CPU model for packages, ``DRAM (<zone>)`` for DRAM."""
        from greentrack.hardware import cpu_model

        model = cpu_model()
        return {
            s.domain.device: model if s.domain.component == "cpu" else f"DRAM ({s.domain.zone})"
            for s in self._states
        }

    def _fail(self, s: _State, t_mono: float, err: Exception) -> None:
        s.failed, s.power_w = True, None
        self.warn(
            f"{s.domain.device} RAPL counter {s.domain.energy_path} failed "
            f"{t_mono - self._t_start:.1f} s after the meter started ({err}); its energy stays "
            f"at {s.total_uj / 1e6:.3f} J and it is no longer read"
        )

    def start(self, t_mono: float) -> None:
        """Baseline every counter at monotonic time ``t_mono`` (s)."""
        with self._lock:
            self._started, self._t_start = True, t_mono
            self._notes = {}
            for s in self._states:
                s.total_uj, s.power_base_uj, s.power_w = 0, 0, None
                s.last_t, s.failed, s.last_move_uj = t_mono, False, 0
                s.mirror_of, s.agreed, s.merged = None, 0, False
                try:
                    s.last_uj = _read_uj(s.domain.energy_path)
                except (OSError, ValueError) as e:
                    self._fail(s, t_mono, e)
            self._find_mirror_candidates()

    def _find_mirror_candidates(self) -> None:
        """Mark each zone whose counter is within 0.5 J of an earlier zone's (same component)."""
        for j, s in enumerate(self._states):
            if s.failed:
                continue
            for i, first in enumerate(self._states[:j]):
                same_kind = first.domain.component == s.domain.component
                same_range = first.domain.max_energy_range_uj == s.domain.max_energy_range_uj
                if first.failed or first.mirror_of is not None or not same_kind or not same_range:
                    continue
                gap = _circular_diff_uj(s.last_uj, first.last_uj, s.domain.max_energy_range_uj)
                if gap <= MIRROR_TOL_UJ:
                    s.mirror_of = i
                    break

    def _bracketed(self, first: _State, s: _State) -> bool:
        """Whether ``s``'s latest value is one counter with ``first``'s: it must lie between
        ``first``'s value read just before it and ``first`` read again now (± 0.5 J). A
        mirror always does, however long this thread was preempted between the reads;
        a separate counter does only while the two are within that span of each other."""
        range_uj = s.domain.max_energy_range_uj
        try:
            again_uj = _read_uj(first.domain.energy_path)
        except (OSError, ValueError):
            again_uj = first.last_uj
        span_uj, ahead_uj = again_uj - first.last_uj, s.last_uj - first.last_uj
        if range_uj > 0:  # forward distances on a wrapping counter
            span_uj, ahead_uj = span_uj % range_uj, ahead_uj % range_uj
        if 0 <= ahead_uj <= max(span_uj, 0) + MIRROR_TOL_UJ:
            return True
        return _circular_diff_uj(s.last_uj, first.last_uj, range_uj) <= MIRROR_TOL_UJ

    def _decide_mirrors(self) -> None:
        """One step of the mirror decision for every candidate (see the module docstring)."""
        for s in self._states:
            if s.mirror_of is None or s.merged:
                continue
            first = self._states[s.mirror_of]
            if s.failed or first.failed:
                s.mirror_of = None  # undecidable: report it as its own counter
                continue
            if not self._bracketed(first, s):
                s.mirror_of = None  # two counters: reported from now on
                continue
            if first.last_move_uj > 0:
                s.agreed += 1
            if s.agreed >= MIRROR_READS and first.total_uj >= MIRROR_DECIDE_UJ:
                s.merged = True
                a, b = first.domain, s.domain
                self._notes[a.device] = (
                    f"{a.zone} ({a.device.split(':', 1)[1]}) and {b.zone} "
                    f"({b.device.split(':', 1)[1]}) read the same counter: counted once"
                )
                self.warn(
                    f"RAPL zones {a.zone} ({a.device}) and {b.zone} ({b.device}) read the same "
                    f"counter (within {MIRROR_TOL_UJ / 1e6:g} J of each other over their first "
                    f"{first.total_uj / 1e6:.0f} J, e.g. the dies of one AMD package): counted "
                    f"once, as {a.device}"
                )

    def read(self, t_mono: float) -> Sequence[DeviceReading]:
        """Cumulative energy (J) per domain since :meth:`start`, at monotonic ``t_mono`` (s).

        ``power_w`` is the mean power since the previous read (None before the first).
        """
        with self._lock:
            if not self._started:
                raise RuntimeError("RaplMeter.read() called before start()")
            for s in self._states:
                if s.failed or s.merged:
                    continue
                try:
                    uj = _read_uj(s.domain.energy_path)
                except (OSError, ValueError) as e:
                    self._fail(s, t_mono, e)
                    continue
                delta_uj = uj - s.last_uj
                if delta_uj < 0:  # wrapped (at most once: see the module docstring)
                    delta_uj += s.domain.max_energy_range_uj
                s.last_uj = uj
                s.last_move_uj = max(delta_uj, 0)
                s.total_uj += max(delta_uj, 0)
                dt_s = t_mono - s.last_t
                if dt_s > 0:
                    s.power_w = (s.total_uj - s.power_base_uj) / 1e6 / dt_s
                    s.last_t, s.power_base_uj = t_mono, s.total_uj
            self._decide_mirrors()
            return [
                DeviceReading(
                    s.domain.component, s.domain.device, s.total_uj / 1e6, s.power_w, "counter"
                )
                for s in self._states
                if not s.merged and s.mirror_of is None
            ]


# -- the registry's hooks (greentrack.meters.registry) --------------------------------------------
def open_meter(ctx: OpenContext) -> RaplMeter | None:
    """RAPL for the CPU packages and DRAM ``ctx`` needs, or None; a permission problem goes to
    ``ctx.problems`` (the estimate standing in puts the fix on the run)."""
    wanted = [c for c, need in (("cpu", ctx.needs("cpu")), ("dram", ctx.needs("ram"))) if need]
    if not wanted:
        return None
    try:
        rapl = RaplMeter.open(ctx.config.sysfs, components=wanted)
    except MeterPermissionError as e:
        ctx.problems.append(str(e))
        return None
    except MeterError:
        return None
    have = {d.component for d in rapl.domains}
    ctx.covered.update("ram" if c == "dram" else c for c in have)
    if ctx.config.cpu_share == "process":
        rapl.warn(
            "cpu_share=process applies to the estimates only: RAPL measures whole CPU "
            "packages and DRAM, which other programs on this machine share"
        )
    return rapl


def _detect(ctx: DetectContext, component: str, name: str) -> MeterStatus:
    root = powercap_dir(ctx.config.sysfs)
    try:
        meter = RaplMeter.open(ctx.config.sysfs, components=[component])
    except MeterError as e:  # includes MeterPermissionError, whose message is the fix
        return MeterStatus(name, False, str(e))
    what = "CPU package" if component == "cpu" else "DRAM"
    zones = ", ".join(f"{d.device} ({d.zone})" for d in meter.domains)
    meter.start(0.0)  # one read of each counter: which zones may mirror another
    twins = [f"{z} may mirror {first}" for z, first in meter.mirror_candidates().items()]
    note = (
        f"; {', '.join(twins)} (equal now: counted once if they move together over a run's "
        "first reads)"
        if twins
        else ""
    )
    return MeterStatus(
        name,
        True,
        f"{what} energy counters readable under {root}: {zones}{note}",
        meter.devices,
        "counter",
    )


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``rapl`` (CPU packages) and ``rapl-dram``: readable here or not, and why."""
    return [_detect(ctx, "cpu", "rapl"), _detect(ctx, "dram", "rapl-dram")]
