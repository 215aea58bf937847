"""A simulated Linux powercap RAPL tree: real files in a temp dir, counters driven by a script.

    fake = FakePowercap(tmp_path / "sys", domains=standard_domains(sockets=2, psys=True))
    # GREENTRACK_SYSFS=<tmp_path/sys>  ->  <tmp_path/sys>/class/powercap/intel-rapl:0/energy_uj
    fake.advance(2.5)                        # explicit clock: exact ground truth
    fake.expected_energy_j("intel-rapl:0")   # J since t = 0
    with fake:                               # wall clock: a thread rewrites the files every 2 ms
        ...

The tree looks like the kernel's: zone directories nested under
``devices/virtual/powercap/<control type>/`` and symlinked flat from ``class/powercap/``
(``layout="nested"`` drops the flat sub-zone links). Each zone has ``name``, ``energy_uj`` and
``max_energy_range_uj``. A counter holds ``int(E_uj) mod max_energy_range_uj`` where ``E_uj`` is
the exact integral of the zone's piecewise-constant power script (W) since t = 0, so the files
carry integer µJ like the real ones (a read truncates < 1 µJ).

Files are replaced atomically (``os.replace``), so a reader never sees half a number. Tests run as
root, where ``chmod 000`` does not stop reads: :meth:`FakePowercap.deny` also patches
``greentrack.meters.rapl._read_uj`` to refuse files without read bits, as the kernel does for
non-root users.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes.clock import RewritingClock

__all__ = ["FakeDomain", "FakePowercap", "Script", "integrate_j", "standard_domains"]

Script = float | Sequence[tuple[float, float]]
"""A constant power (W) or ``[(t_s, power_w), ...]``: power from each t on (0 W before)."""

DEFAULT_MAX_RANGE_UJ = 100_000_000  # 100 J: wraps every 2 s at 50 W, so tests see wraps


def _segments(script: Script) -> list[tuple[float, float]]:
    if isinstance(script, int | float):
        return [(0.0, float(script))]
    return sorted((float(t), float(p)) for t, p in script)


def integrate_j(script: Script, t0_s: float, t1_s: float) -> float:
    """Exact energy of a piecewise-constant power script between t0 and t1 (s). Units: J."""
    segs = _segments(script)
    total = 0.0
    for i, (t, p) in enumerate(segs):
        end = segs[i + 1][0] if i + 1 < len(segs) else float("inf")
        lo, hi = max(t, t0_s), min(end, t1_s)
        if hi > lo:
            total += p * (hi - lo)
    return total


def power_at_w(script: Script, t_s: float) -> float:
    """The script's power at time t (s). Units: W."""
    p = 0.0
    for t, w in _segments(script):
        if t <= t_s:
            p = w
    return p


@dataclass
class FakeDomain:
    """One zone of the fake tree.

    Attributes:
        zone: directory name, e.g. ``intel-rapl:0``, ``intel-rapl:0:2``, ``intel-rapl-mmio:0``.
        name: content of its ``name`` file: ``package-0``, ``core``, ``dram``, ``psys``...
        power_w: its power script (W); see :data:`Script`.
        device: the device id greentrack must report for it, or None if it must be ignored
            (core/uncore, psys, duplicates). Ground truth by construction.
        mirror_of: zone whose counter this one repeats (an MMIO duplicate of a package, the
            second die of an AMD package). Its ``energy_uj`` is a symlink to that zone's, so a
            read of either sees the one counter's current value, as both read one MSR.
        max_energy_range_uj: wrap point (default: the fake's). Units: µJ.
        initial_uj: counter offset at t = 0 (so tests do not start at 0). Units: µJ.
        energy_file: whether the zone has an ``energy_uj`` file at all.
    """

    zone: str
    name: str
    power_w: Script = 0.0
    device: str | None = None
    mirror_of: str | None = None
    max_energy_range_uj: int | None = None
    initial_uj: int = 0
    energy_file: bool = True

    @property
    def control(self) -> str:
        return self.zone.split(":", 1)[0]

    @property
    def parent(self) -> str | None:
        parts = self.zone.split(":")
        return ":".join(parts[:2]) if len(parts) > 2 else None


def standard_domains(
    *,
    sockets: int = 2,
    dram: bool = True,
    core: bool = True,
    uncore: bool = False,
    mmio_duplicate: bool = False,
    psys: bool = False,
    package_w: Script = 50.0,
    dram_w: Script = 7.0,
    initial_uj: int = 12_345_678,
) -> list[FakeDomain]:
    """A server-like tree: ``sockets`` packages, each with core (30 W) / uncore / DRAM sub-zones,
    an optional MMIO duplicate of package-0 and an optional psys zone (120 W) after the packages.

    Each socket's counters start at a different value (``initial_uj`` plus a per-socket offset),
    as separate counters do on real hardware: with equal powers and equal starts two sockets
    would be indistinguishable from one mirrored counter (see ``RaplMeter``'s mirror rule).
    """
    out: list[FakeDomain] = []
    for s in range(sockets):
        z = f"intel-rapl:{s}"
        out.append(
            FakeDomain(
                z,
                f"package-{s}",
                package_w,
                f"cpu:package-{s}",
                initial_uj=initial_uj + s * 7_654_321,
            )
        )
        sub = 0
        if core:
            out.append(FakeDomain(f"{z}:{sub}", "core", 30.0))
            sub += 1
        if uncore:
            out.append(FakeDomain(f"{z}:{sub}", "uncore", 5.0))
            sub += 1
        if dram:
            out.append(
                FakeDomain(
                    f"{z}:{sub}",
                    "dram",
                    dram_w,
                    f"dram:package-{s}",
                    initial_uj=999 + s * 3_333_333,
                )
            )
    if psys:
        out.append(FakeDomain(f"intel-rapl:{sockets}", "psys", 120.0))
    if mmio_duplicate:
        out.append(FakeDomain("intel-rapl-mmio:0", "package-0", mirror_of="intel-rapl:0"))
    return out


class FakePowercap(RewritingClock):
    """A powercap tree under ``root/class/powercap`` whose counters follow power scripts.

    Args:
        root: the fake sysfs root (what ``GREENTRACK_SYSFS`` points to); created if missing.
        domains: the zones (default :func:`standard_domains` with an MMIO duplicate and psys).
        trace: per-zone power scripts overriding the domains' ``power_w``.
        max_energy_range_uj: default wrap point of every counter. Units: µJ.
        layout: ``"symlinks"`` (like the kernel) or ``"nested"`` (no flat sub-zone links).
        period_s: how often the wall-clock thread rewrites the counters. Units: s.
    """

    def __init__(
        self,
        root: Path,
        domains: Iterable[FakeDomain] | None = None,
        trace: Mapping[str, Script] | None = None,
        *,
        max_energy_range_uj: int = DEFAULT_MAX_RANGE_UJ,
        layout: str = "symlinks",
        period_s: float = 0.002,
    ) -> None:
        self.sysfs = Path(root)
        self.powercap = self.sysfs / "class" / "powercap"
        doms = (
            list(domains)
            if domains is not None
            else standard_domains(mmio_duplicate=True, psys=True)
        )
        for zone, script in (trace or {}).items():
            next(d for d in doms if d.zone == zone).power_w = script
        self.domains = {d.zone: d for d in doms}
        self.max_energy_range_uj = max_energy_range_uj
        super().__init__(period_s, "fake-powercap")  # the clock: advance(), start(), now_s()
        self._denied: set[str] = set()
        self._broken: set[str] = set()
        self._dirs: dict[str, Path] = {}
        self._build(layout)
        self._write_all()

    # ---- tree -----------------------------------------------------------------------------

    def _build(self, layout: str) -> None:
        devroot = self.sysfs / "devices" / "virtual" / "powercap"
        self.powercap.mkdir(parents=True, exist_ok=True)
        for ctl in dict.fromkeys(d.control for d in self.domains.values()):
            cdir = devroot / ctl
            cdir.mkdir(parents=True, exist_ok=True)
            (cdir / "enabled").write_text("1\n")
            _link(self.powercap / ctl, cdir)
        for d in sorted(self.domains.values(), key=lambda d: d.zone.count(":")):
            parent = self._dirs[d.parent] if d.parent else devroot / d.control
            zdir = parent / d.zone
            zdir.mkdir(parents=True, exist_ok=True)
            self._dirs[d.zone] = zdir
            (zdir / "name").write_text(d.name + "\n")
            if d.energy_file:
                (zdir / "max_energy_range_uj").write_text(f"{self._max(d)}\n")
            if d.parent is None or layout == "symlinks":
                _link(self.powercap / d.zone, zdir)
        for d in self.domains.values():
            if d.energy_file and d.mirror_of:
                _link(self._dirs[d.zone] / "energy_uj", self._dirs[d.mirror_of] / "energy_uj")

    def _max(self, d: FakeDomain) -> int:
        src = self.domains[d.mirror_of] if d.mirror_of else d
        return src.max_energy_range_uj or self.max_energy_range_uj

    def path(self, zone: str, file: str = "energy_uj") -> Path:
        """Path of a zone's file as greentrack sees it (through ``class/powercap``)."""
        return self.powercap / zone / file

    # ---- ground truth ---------------------------------------------------------------------

    def _script(self, zone: str) -> tuple[FakeDomain, Script]:
        d = self.domains[zone]
        src = self.domains[d.mirror_of] if d.mirror_of else d
        return src, src.power_w

    def energy_uj(self, zone: str, t_s: float | None = None) -> float:
        """Exact (unwrapped, untruncated) counter value of ``zone`` at fake time t. Units: µJ."""
        src, script = self._script(zone)
        t = self.t_s if t_s is None else t_s
        return src.initial_uj + integrate_j(script, 0.0, t) * 1e6

    def counter_uj(self, zone: str) -> int:
        """What ``energy_uj`` holds now: truncated to an integer, wrapped. Units: µJ."""
        return int(self.energy_uj(zone)) % self._max(self.domains[zone])

    def expected_energy_j(
        self, zone_or_device: str, since_s: float = 0.0, until_s: float | None = None
    ) -> float:
        """Scripted energy of a zone (or of the zone behind a device id) in [since, until].

        ``until_s`` defaults to the fake's current time (the time of the last file write).
        Units: J.
        """
        zone = self._zone(zone_or_device)
        _, script = self._script(zone)
        with self._lock:
            until = self.t_s if until_s is None else until_s
        return integrate_j(script, since_s, until)

    def expected_by_device(self, since_s: float = 0.0, until_s: float | None = None) -> dict:
        """``{device: J}`` for every zone greentrack must report (see :attr:`FakeDomain.device`)."""
        return {
            d.device: self.expected_energy_j(d.zone, since_s, until_s)
            for d in self.domains.values()
            if d.device
        }

    def power_w(self, zone_or_device: str, t_s: float | None = None) -> float:
        """Scripted power at fake time t (default now). Units: W."""
        _, script = self._script(self._zone(zone_or_device))
        return power_at_w(script, self.t_s if t_s is None else t_s)

    def _zone(self, key: str) -> str:
        if key in self.domains:
            return key
        for d in self.domains.values():
            if d.device == key:
                return d.zone
        raise KeyError(f"no fake zone or device {key!r}")

    # ---- files ----------------------------------------------------------------------------

    def _write_all(self) -> None:
        for zone, d in self.domains.items():
            if d.energy_file and not d.mirror_of and zone not in self._broken:
                mode = 0 if zone in self._denied else 0o444
                _atomic_write(self._dirs[zone] / "energy_uj", f"{self.counter_uj(zone)}\n", mode)

    def deny(self, monkeypatch: Any, zones: Iterable[str] | None = None) -> None:
        """Make ``energy_uj`` of ``zones`` (default: all) unreadable, as for a non-root user.

        ``chmod 000`` for real, plus a patch of ``greentrack.meters.rapl._read_uj`` that raises
        ``PermissionError`` for a file without read bits (root ignores modes otherwise).
        """
        from greentrack.meters import rapl

        with self._lock:
            for zone in zones if zones is not None else self.domains:
                if self.domains[zone].energy_file:
                    self._denied.add(zone)
                    os.chmod(self._dirs[zone] / "energy_uj", 0)
        real_read = rapl._read_uj

        def read_as_user(path: str) -> int:
            if os.stat(path).st_mode & 0o444 == 0:
                raise PermissionError(13, "Permission denied", path)
            return real_read(path)

        monkeypatch.setattr(rapl, "_read_uj", read_as_user)

    def allow(self) -> None:
        """Undo :meth:`deny` for the files (the patch itself then lets reads through)."""
        with self._lock:
            for zone in self._denied:
                os.chmod(self._dirs[zone] / "energy_uj", 0o444)
            self._denied.clear()

    def break_zone(self, zone: str) -> None:
        """Make a zone's counter vanish (reads then fail with ``FileNotFoundError``)."""
        with self._lock:
            self._broken.add(zone)
            (self._dirs[zone] / "energy_uj").unlink(missing_ok=True)


def _link(link: Path, target: Path) -> None:
    if not link.exists():
        link.symlink_to(os.path.relpath(target, link.parent))


def _atomic_write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
