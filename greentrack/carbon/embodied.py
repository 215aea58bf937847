"""Embodied emissions and the Software Carbon Intensity (SCI).

The embodied share of a run follows the Green Software Foundation's SCI specification
(ISO/IEC 21031:2024)::

    M   = TE × (TiR / EL) × (RR / ToR)        per device
    SCI = ((E × I) + M) / R

``TE`` is the device's total embodied emissions (a row of ``greentrack/data/embodied.csv``,
each with its source, year, scope and uncertainty), ``TiR`` the time the run reserved it,
``EL`` its expected lifespan, ``RR / ToR`` the share of it the run reserved (2 of 8 GPUs is
counted as two devices at share 1; a VM's 4 of 64 vCPUs of a socket is share 4/64), ``E`` the
energy, ``I`` the intensity and ``R`` the functional unit (a run, 1,000 inferences, an image).

``utilisation`` (default 1.0: the specification has no such factor) is the fraction of its
lifespan a device is in use; Luccioni et al. (2022) amortise BLOOM's hardware over
6 years × 85 % in use, i.e. ``EL × utilisation`` in-use hours. Defaults: lifespan 4 years
(Cloud Carbon Footprint's ``RACK_SERVER_LIFESPAN``), utilisation 1.0.

Nothing here touches the network or imports anything heavy; the records are immutable
:class:`typing.NamedTuple` s rather than frozen dataclasses, which cost ~0.5 ms each to define
(six of them: ~3 ms of every tracked run's stop). Units: grams CO2e unless a name says ``kg``;
seconds; kWh; GiB.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from greentrack.errors import ConfigError

__all__ = [
    "DEFAULT_LIFETIME_YEARS",
    "DEFAULT_UTILISATION",
    "SCI",
    "SECONDS_PER_YEAR",
    "DeviceUse",
    "Embodied",
    "EmbodiedRow",
    "EmbodiedShare",
    "EmbodiedTable",
    "account_embodied",
    "amortised_g",
    "devices_from_run",
    "embodied_for_run",
    "load_table",
    "saving_sentence",
    "sci",
]

#: Expected lifespan of a device when none is configured, years. Source: Cloud Carbon
#: Footprint coefficients, ``ccfcoef/constants.py`` ``RACK_SERVER_LIFESPAN = 4``.
DEFAULT_LIFETIME_YEARS = 4.0
#: Fraction of its lifespan a device is in use (SCI has no such factor: 1.0).
DEFAULT_UTILISATION = 1.0
#: 365 days (the year Luccioni et al. use: 6 × 8,760 h). Seconds.
SECONDS_PER_YEAR = 365.0 * 86400.0

UNITS = ("per_device", "per_socket", "per_gib", "per_mm2")
#: What the run says of a device the table has no figure for (it adds 0 g for it).
MISSING_NOTE = "not counted (no embodied figure for this model; add one with [embodied.kg])"
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


class EmbodiedRow(NamedTuple):
    """One row of the embodied table. ``kg_co2e`` is per ``unit`` (a device, a socket, a GiB,
    a mm² of die)."""

    kind: str
    model: str
    unit: str
    kg_co2e: float
    source: str
    year: int | None
    scope: str
    uncertainty: str
    notes: str = ""

    @property
    def key(self) -> str:
        """``kind:model``, the name a config override uses (``gpu:a100``)."""
        return f"{self.kind}:{self.model}"

    def matches(self, model: str) -> int:
        """How many words of this row's match key occur, in order and contiguous, in
        ``model`` (0: no match; ``*`` matches anything with the lowest score, 1)."""
        if self.model == "*":
            return 1  # the lowest positive score: any model
        key = _words(self.model)
        words = _words(model)
        n = len(key)
        for i in range(len(words) - n + 1):
            if words[i : i + n] == key:
                return 1 + n
        return 0


class EmbodiedTable(NamedTuple):
    """The rows greentrack knows, with config overrides applied."""

    rows: tuple[EmbodiedRow, ...]
    path: str = "greentrack/data/embodied.csv"

    def lookup(self, kind: str, model: str | None = None) -> EmbodiedRow | None:
        """The row of ``kind`` whose match key fits ``model`` best (longest key wins; ``*``
        last); None when no row fits: the device is then left out, and said so. An
        ``[embodied.kg]`` row whose words match wins over shipped rows with longer keys."""
        best: tuple[tuple[bool, int], EmbodiedRow] | None = None
        for row in self.rows:
            if row.kind != kind:
                continue
            score = row.matches(model or "")
            rank = (row.uncertainty == "user-supplied" and row.model != "*", score)
            if score and (best is None or rank > best[0]):
                best = (rank, row)
        return best[1] if best else None

    def with_overrides(self, kg: Mapping[str, Any], origin: str = "config") -> EmbodiedTable:
        """A copy where ``kind:model`` keys of ``kg`` replace (or add) rows' ``kg_co2e``."""
        rows = list(self.rows)
        for key, value in kg.items():
            kind, sep, model = str(key).partition(":")
            if not sep or not kind or not model:
                raise ConfigError(
                    f'[embodied.kg] key {key!r} is not kind:model; write e.g. "gpu:h100" = 350'
                )
            try:
                kg_value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"[embodied.kg] {key!r} = {value!r} is not a number of kg"
                ) from None
            if not (math.isfinite(kg_value) and kg_value >= 0):
                raise ConfigError(f"[embodied.kg] {key!r} = {value!r} must be >= 0 kg CO2e")
            model = model.strip().lower()
            source = f'{origin}: [embodied.kg] "{key}"'
            for i, row in enumerate(rows):
                if row.kind == kind and row.model == model:
                    rows[i] = row._replace(
                        kg_co2e=kg_value,
                        source=source,
                        year=None,
                        uncertainty="user-supplied",
                        notes=f"replaces {row.kg_co2e:g} kg ({row.source})",
                    )
                    break
            else:
                unit = {"dram": "per_gib", "cpu": "per_socket", "cpu_die": "per_mm2"}.get(
                    kind, "per_device"
                )
                rows.append(
                    EmbodiedRow(
                        kind, model, unit, kg_value, source, None, "as supplied", "user-supplied"
                    )
                )
        return EmbodiedTable(tuple(rows), self.path)


def _parse_table(text: str, where: str) -> tuple[EmbodiedRow, ...]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = []
    for n, rec in enumerate(csv.DictReader(lines), start=2):
        try:
            unit = rec["unit"].strip()
            if unit not in UNITS:
                raise ValueError(f"unit {unit!r} is not one of {', '.join(UNITS)}")
            kg = float(rec["kg_co2e"])
            if not (math.isfinite(kg) and kg >= 0):
                raise ValueError(f"kg_co2e {rec['kg_co2e']!r} must be >= 0")
            year = int(rec["year"]) if (rec.get("year") or "").strip() else None
            rows.append(
                EmbodiedRow(
                    kind=rec["kind"].strip(),
                    model=rec["model"].strip().lower(),
                    unit=unit,
                    kg_co2e=kg,
                    source=rec["source"].strip(),
                    year=year,
                    scope=rec["scope"].strip(),
                    uncertainty=(rec.get("uncertainty") or "").strip(),
                    notes=(rec.get("notes") or "").strip(),
                )
            )
        except (KeyError, ValueError, AttributeError) as e:
            raise ConfigError(f"{where}: data row {n - 1}: {e}; fix the row or remove it") from None
    return tuple(rows)


@functools.cache
def _default_rows() -> tuple[EmbodiedRow, ...]:
    path = Path(__file__).resolve().parent.parent / "data" / "embodied.csv"
    return _parse_table(path.read_text(encoding="utf-8"), str(path))


def load_table(
    path: str | Path | None = None, kg: Mapping[str, Any] | None = None
) -> EmbodiedTable:
    """The shipped table (or the CSV at ``path``, same columns), with ``kg`` overrides
    (``{"gpu:h100": 350}``) applied. Bad rows are a one-line :class:`ConfigError`."""
    if path is None:
        table = EmbodiedTable(_default_rows())
    else:
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"embodied table {p}: {e.strerror}; fix [embodied] table") from None
        table = EmbodiedTable(_parse_table(text, str(p)), str(p))
    return table.with_overrides(kg) if kg else table


def amortised_g(
    te_kg: float, time_reserved_s: float, lifetime_s: float, share: float = 1.0
) -> float:
    """SCI's ``M = TE × (TiR / EL) × (RR / ToR)`` for one device, in grams.

    ``te_kg``: total embodied emissions, kg CO2e. ``time_reserved_s``: TiR, seconds.
    ``lifetime_s``: EL (already multiplied by utilisation where one applies), seconds.
    ``share``: RR / ToR, 0..1.
    """
    if lifetime_s <= 0:
        raise ValueError(f"lifetime must be > 0 s (got {lifetime_s})")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share reserved must be 0..1 (got {share})")
    if time_reserved_s < 0:
        raise ValueError(f"time reserved must be >= 0 s (got {time_reserved_s})")
    return te_kg * 1000.0 * (time_reserved_s / lifetime_s) * share


class DeviceUse(NamedTuple):
    """What a run reserved of one kind of device.

    ``count``: devices (GPUs, nodes, drives), sockets (``cpu``) or GiB (``dram``), as the
    row's unit says. ``share``: RR / ToR of each (a VM's 8 of 64 vCPUs: 0.125).
    ``time_reserved_s``: TiR. ``lifetime_years`` / ``utilisation``: None for the defaults.
    ``kg_each``: TE per unit, overriding the table (``source`` then says where it came from).
    """

    kind: str
    model: str | None
    count: float
    time_reserved_s: float
    share: float = 1.0
    lifetime_years: float | None = None
    utilisation: float | None = None
    kg_each: float | None = None
    source: str | None = None
    die_mm2: float | None = None
    assumption: str = ""


class EmbodiedShare(NamedTuple):
    """The embodied grams of one :class:`DeviceUse`, with the row behind it."""

    kind: str
    model: str | None
    count: float
    share: float
    time_reserved_s: float
    lifetime_years: float
    utilisation: float
    te_kg_each: float
    embodied_g: float
    row: str
    source: str
    scope: str
    uncertainty: str
    assumption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "assumption": self.assumption,
            "kind": self.kind,
            "model": self.model,
            "count": self.count,
            "share": self.share,
            "time_reserved_s": self.time_reserved_s,
            "lifetime_years": self.lifetime_years,
            "utilisation": self.utilisation,
            "te_kg_each": self.te_kg_each,
            "embodied_g": self.embodied_g,
            "row": self.row,
            "source": self.source,
            "scope": self.scope,
            "uncertainty": self.uncertainty,
        }


class Embodied(NamedTuple):
    """A run's embodied emissions: the sum, each device's share, and what was left out."""

    embodied_g: float
    shares: tuple[EmbodiedShare, ...]
    missing: tuple[str, ...] = ()
    method: str = "SCI M = TE x (TiR / EL) x (RR / ToR) per device"
    table: str = "greentrack/data/embodied.csv"

    def to_dict(self) -> dict[str, Any]:
        """The provenance stored on the run (``runs.embodied``): plain JSON."""
        return {
            "embodied_g": self.embodied_g,
            "method": self.method,
            "table": self.table,
            "devices": [s.to_dict() for s in self.shares],
            "missing": list(self.missing),
        }

    def note(self) -> str:
        """One line: which rows were used and what was left out."""
        used = "; ".join(
            f"{s.count:g} x {s.row} ({s.te_kg_each:g} kg, {s.lifetime_years:g} y"
            f"{f' x {s.utilisation:g} in use' if s.utilisation != 1 else ''}"
            f"{f', share {s.share:g}' if s.share != 1 else ''})"
            for s in self.shares
        )
        left = f"; {MISSING_NOTE}: {', '.join(self.missing)}" if self.missing else ""
        return f"embodied {self.embodied_g:.4g} g: {used or 'no device'}{left}"


def _years(value: float | None, default: float, what: str) -> float:
    x = default if value is None else float(value)
    if not (math.isfinite(x) and x > 0):
        raise ConfigError(f"{what}={value!r} must be a positive number of years")
    return x


def embodied_for_run(
    devices: Iterable[DeviceUse],
    *,
    table: EmbodiedTable | None = None,
    lifetime_years: float | None = None,
    utilisation: float | None = None,
) -> Embodied:
    """Each device's amortised embodied share and their sum (see the module docstring).

    A device with no table row (and no ``kg_each``) is left out and named in ``missing``:
    greentrack never guesses a figure. Units: grams CO2e.
    """
    table = table or load_table()
    default_life = _years(lifetime_years, DEFAULT_LIFETIME_YEARS, "lifetime_years")
    default_util = DEFAULT_UTILISATION if utilisation is None else float(utilisation)
    shares: list[EmbodiedShare] = []
    missing: list[str] = []
    for d in devices:
        life = _years(d.lifetime_years, default_life, f"lifetime_years of {d.kind}")
        util = default_util if d.utilisation is None else float(d.utilisation)
        if not (math.isfinite(util) and 0 < util <= 1):
            raise ConfigError(f"utilisation={util!r} must be in (0, 1]")
        if d.kg_each is not None:
            te_kg, row_key = float(d.kg_each), f"{d.kind}:{d.model or '*'} (given)"
            source, scope, unc = d.source or "given by the caller", "as supplied", "user-supplied"
        elif d.kind == "cpu" and d.die_mm2:
            base, die = table.lookup("cpu_die_base", d.model), table.lookup("cpu_die", d.model)
            if base is None or die is None:
                missing.append(f"cpu {d.model or '?'}")
                continue
            te_kg = base.kg_co2e + die.kg_co2e * float(d.die_mm2)
            row_key = f"{base.key} + {die.key} x {float(d.die_mm2):g} mm2"
            source, scope, unc = die.source, die.scope, die.uncertainty
        else:
            row = table.lookup(d.kind, d.model)
            if row is None:
                missing.append(f"{d.kind} {d.model or '?'}")
                continue
            te_kg, row_key, source, scope, unc = (
                row.kg_co2e,
                row.key,
                row.source,
                row.scope,
                row.uncertainty,
            )
        lifetime_s = life * SECONDS_PER_YEAR * util
        g = d.count * amortised_g(te_kg, d.time_reserved_s, lifetime_s, d.share)
        shares.append(
            EmbodiedShare(
                kind=d.kind,
                model=d.model,
                count=d.count,
                share=d.share,
                time_reserved_s=d.time_reserved_s,
                lifetime_years=life,
                utilisation=util,
                te_kg_each=te_kg,
                embodied_g=g,
                row=row_key,
                source=source,
                scope=scope,
                uncertainty=unc,
                assumption=d.assumption,
            )
        )
    return Embodied(
        embodied_g=sum(s.embodied_g for s in shares),
        shares=tuple(shares),
        missing=tuple(missing),
        table=table.path,
    )


def devices_from_run(
    components: Iterable[Mapping[str, Any]],
    meta: Mapping[str, Any] | None,
    duration_s: float,
    settings: Mapping[str, Any] | None = None,
) -> list[DeviceUse]:
    """What a run reserved, from its component dicts (``component``, ``device``, ``model``)
    and metadata (``cpu_model``, ``ram_total_gib``, ``cpu_count``), for ``duration_s``.

    ``settings`` is the ``[embodied]`` section: ``cpu_sockets`` (default 1 when a CPU was
    metered), ``cpu_socket_share`` (a VM's share of its sockets, default 1), ``cpu_die_mm2``,
    ``ram_gib`` (default: ``ram_total_gib`` of the metadata), ``node`` (a server row's model,
    e.g. ``"hpe apollo 6500 gen10 plus"``, or ``"*"`` for the generic rack server; counted
    only when set), ``node_share`` (default 1).
    """
    s = dict(settings or {})
    meta = dict(meta or {})
    out: list[DeviceUse] = []
    gpus: dict[str, int] = {}
    seen: set[tuple[Any, Any]] = set()
    has_cpu = False
    for c in components:
        kind = str(c.get("component") or c.get("kind") or "")
        key = (c.get("host"), c.get("device"))
        if kind == "gpu":
            if key in seen:
                continue
            seen.add(key)
            model = str(c.get("model") or "unknown GPU")
            gpus[model] = gpus.get(model, 0) + 1
        elif kind == "cpu":
            has_cpu = True
    for model, n in sorted(gpus.items()):
        out.append(DeviceUse("gpu", model, n, duration_s, assumption="metered GPUs, whole boards"))
    if has_cpu or "cpu_sockets" in s:
        sockets = s.get("cpu_sockets")
        out.append(
            DeviceUse(
                "cpu",
                str(meta.get("cpu_model") or ""),
                float(sockets or 1),
                duration_s,
                share=float(s.get("cpu_socket_share", 1.0)),
                die_mm2=float(s["cpu_die_mm2"]) if s.get("cpu_die_mm2") else None,
                assumption="sockets from [embodied] cpu_sockets"
                if sockets
                else "1 socket assumed (set [embodied] cpu_sockets)",
            )
        )
    ram = s.get("ram_gib", meta.get("ram_total_gib"))
    if ram:
        origin = "[embodied] ram_gib" if "ram_gib" in s else "installed RAM (metadata)"
        out.append(DeviceUse("dram", None, float(ram), duration_s, assumption=origin))
    if s.get("node"):
        out.append(
            DeviceUse(
                "server",
                str(s["node"]),
                1,
                duration_s,
                share=float(s.get("node_share", 1.0)),
                assumption="node from [embodied] node",
            )
        )
    return out


def account_embodied(
    components: Iterable[Mapping[str, Any]],
    meta: Mapping[str, Any] | None,
    duration_s: float,
    settings: Mapping[str, Any] | None = None,
) -> Embodied:
    """A run's embodied share at stop: :func:`devices_from_run` then
    :func:`embodied_for_run`, with the ``[embodied]`` section's table, overrides, lifetime and
    utilisation. Installed RAM is read from the host when the metadata lacks it."""
    s = dict(settings or {})
    meta = dict(meta or {})
    if "ram_gib" not in s and not meta.get("ram_total_gib"):
        from greentrack.hardware import ram_total_gib

        meta["ram_total_gib"] = ram_total_gib()
    table = load_table(s.get("table"), s.get("kg"))
    return embodied_for_run(
        devices_from_run(components, meta, duration_s, s),
        table=table,
        lifetime_years=s.get("lifetime_years"),
        utilisation=s.get("utilisation"),
    )


class SCI(NamedTuple):
    """``SCI = ((E × I) + M) / R``, each term with how it was obtained.

    ``energy_kwh`` E (facility energy), ``intensity_g_per_kwh`` I (time-weighted when the run
    had a series: operational grams / E), ``embodied_g`` M, ``units`` R in ``unit``.
    """

    energy_kwh: float
    intensity_g_per_kwh: float | None
    operational_g: float
    embodied_g: float
    units: float
    unit: str
    methods: Mapping[str, str] = MappingProxyType({})

    @property
    def total_g(self) -> float:
        """Operational + embodied. Grams CO2e."""
        return self.operational_g + self.embodied_g

    @property
    def sci_g_per_unit(self) -> float:
        """Grams CO2e per one ``unit``."""
        return self.total_g / self.units

    def to_dict(self) -> dict[str, Any]:
        return {
            "E_kwh": self.energy_kwh,
            "I_g_per_kwh": self.intensity_g_per_kwh,
            "operational_g": self.operational_g,
            "M_g": self.embodied_g,
            "total_g": self.total_g,
            "R": self.units,
            "unit": self.unit,
            "sci_g_per_unit": self.sci_g_per_unit,
            "methods": dict(self.methods),
        }


def sci(
    energy_kwh: float,
    embodied_g: float,
    units: float,
    unit: str = "run",
    *,
    intensity_g_per_kwh: float | None = None,
    operational_g: float | None = None,
    methods: Mapping[str, str] | None = None,
) -> SCI:
    """The SCI score. Give either ``intensity_g_per_kwh`` (then ``E × I``) or the run's
    ``operational_g`` (time-weighted; I is then reported as ``operational_g / E``).

    ``units`` (R) must be > 0: a clear error says so. Units: kWh, g/kWh, grams.
    """
    if not (isinstance(units, (int, float)) and math.isfinite(units) and units > 0):
        raise ValueError(f"R (units) must be a positive number (got {units!r}); e.g. --per 1000")
    if energy_kwh < 0 or embodied_g < 0:
        raise ValueError("E and M must be >= 0")
    if operational_g is None:
        if intensity_g_per_kwh is None:
            raise ValueError("give intensity_g_per_kwh or operational_g")
        operational_g = energy_kwh * intensity_g_per_kwh
        intensity = float(intensity_g_per_kwh)
    else:
        intensity = operational_g / energy_kwh if energy_kwh > 0 else intensity_g_per_kwh
    return SCI(
        energy_kwh=energy_kwh,
        intensity_g_per_kwh=intensity,
        operational_g=float(operational_g),
        embodied_g=float(embodied_g),
        units=float(units),
        unit=unit,
        methods=dict(methods or {}),
    )


def saving_sentence(
    saving_g: float, operational_g: float, embodied_g: float | None, subject: str = "run"
) -> str:
    """ "saves X g of Y g; embodied Z g unchanged": what a move in place or time changes and
    what it does not (embodied emissions do not depend on where or when a run happens)."""
    total = operational_g + (embodied_g or 0.0)
    text = f"saves {saving_g:.4g} g of {total:.4g} g"
    if embodied_g is not None:
        text += f"; embodied {embodied_g:.4g} g unchanged"
    else:
        text += f" (operational only; no embodied figure for this {subject})"
    return text
