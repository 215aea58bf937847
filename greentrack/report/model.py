"""The price tag's data model: the figures of one run, and the constants every format shares.

:func:`price_tag` turns one run object (the store's JSON contract,
:func:`greentrack.store.queries.run_objects`) into its derived figures; the report assembly
(:mod:`greentrack.report.pricetag`) and every format module (:mod:`greentrack.report.render`)
read the names and texts defined here, and nothing here imports a format.

* **Measured or estimated**: a component counts as "measured" only when every one of its methods
  is a measurement (counter, sampled power); "estimated" when none is; mixed, which part is which
  (:func:`energy_basis`, :func:`basis_phrase`).
* **Assumptions**: every assumption behind a figure is listed once (:func:`assumptions`): each
  device's stored note (``components.note``; an estimate without one says so), phases whose
  energy came from another method (``phases.method``), ranks whose devices another rank
  measured, and the warnings recorded on the run.
* **Device-hours**: wall time × the number of GPUs tracked (across processes); for runs without
  a GPU, × the number of CPU packages tracked (measured or estimated).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greentrack.meters.nodepower import node_vs_components
from greentrack.units import J_PER_KWH

__all__ = [
    "COMPONENT_NAMES",
    "MEASURED_METHODS",
    "METHOD_TEXT",
    "NA",
    "NO_NOTE",
    "REPORT_SCHEMA",
    "assumptions",
    "basis_phrase",
    "energy_basis",
    "finite",
    "is_final",
    "methods_label",
    "names_text",
    "price_tag",
]

REPORT_SCHEMA = "greentrack.report/1"
FINAL_VALUES = ("true", "1", "yes")
NA = "n/a"
COMPONENT_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM", "ram": "RAM", "node": "Node"}
METHOD_TEXT = {
    "counter": "the device's cumulative energy counter",
    "sampled": "sampled power integrated over time",
    "estimated": "a power model (no meter)",
}
MEASURED_METHODS = frozenset({"counter", "sampled"})
"""Methods that measure the device (anything else, ``estimated`` included, is an estimate)."""
NO_NOTE = (
    "estimated by a power model; the store holds no note of its assumptions (recorded before "
    "schema 0003)"
)
PHASE_METHOD_TEXT = {
    "sampled": "sampled power, not the counter (the window is shorter than the counter's "
    "update period)",
}


# --------------------------------------------------------------------------------------------
# Per-run figures
# --------------------------------------------------------------------------------------------


def is_final(run: Mapping[str, Any], final_ids: Iterable[str] = ()) -> bool:
    """Whether a run is a final run: tagged ``final=true|1|yes`` or named in ``final_ids``."""
    if run["id"] in set(final_ids):
        return True
    return str((run.get("tags") or {}).get("final", "")).strip().lower() in FINAL_VALUES


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number or not finite."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def energy_basis(energy_by_component: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Whether the energy was measured, estimated or both: ``{basis, measured, estimated}``.

    ``basis`` is ``measured`` when every component's methods are in :data:`MEASURED_METHODS`
    (counter, sampled power), ``estimated`` when none is, ``mixed`` otherwise, ``none`` without
    components; ``measured`` / ``estimated`` list the component kinds (``gpu``, ``cpu``, ...):
    a component estimated anywhere (one run, one device) is listed as estimated.
    """
    measured, estimated = [], []
    for c in energy_by_component:
        if all(m in MEASURED_METHODS for m in c["methods"]):
            measured.append(c["component"])
        else:
            estimated.append(c["component"])
    if not measured and not estimated:
        basis = "none"
    elif not estimated:
        basis = "measured"
    elif not measured:
        basis = "estimated"
    else:
        basis = "mixed"
    return {"basis": basis, "measured": measured, "estimated": estimated}


def names_text(components: Sequence[str]) -> str:
    names = [COMPONENT_NAMES.get(c, c) for c in components]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def basis_phrase(basis: Mapping[str, Any]) -> str:
    """``measured`` | ``estimated (no energy meter)`` | ``GPU measured, CPU and RAM estimated``."""
    if basis["basis"] == "measured":
        return "measured"
    if basis["basis"] == "estimated":
        return "estimated with power models (no energy meter)"
    if basis["basis"] == "mixed":
        return (
            f"{names_text(basis['measured'])} measured, {names_text(basis['estimated'])} estimated"
        )
    return "nothing measured"


def assumptions(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every assumption behind the figures of one run object, one line each.

    Items are ``{kind, text, ...}``: ``component`` (a device's note from ``components.note``;
    an estimated device without a note says the store holds none), ``phase`` (windows whose
    energy came from another method, ``phases.method``), ``rank`` (a distributed rank and who
    measured its devices) and ``warning`` (every warning recorded on the run, once).
    """
    out: list[dict[str, Any]] = []
    multi = (run.get("world_size") or 1) > 1
    # the node's own figure (its BMC) too: its note says how it was read, and that it is beside
    for c in [*(run.get("components") or []), *(run.get("node_power") or [])]:
        note = c.get("note")
        if not note and c.get("method") not in MEASURED_METHODS:
            note = NO_NOTE
        if note:
            where = f", rank {c.get('rank', 0)}" if multi else ""
            out.append(
                {
                    "kind": "component",
                    "component": c["component"],
                    "device": c["device"],
                    "rank": c.get("rank", 0),
                    "text": f"{COMPONENT_NAMES.get(c['component'], c['component'])} "
                    f"({c['device']}{where}): {note}",
                }
            )
    windows: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}
    for p in run.get("phases") or []:
        counts[p["path"]] = counts.get(p["path"], 0) + 1
        method = p.get("method")
        if method:
            windows[(p["path"], method)] = windows.get((p["path"], method), 0) + 1
    for (path, method), n in windows.items():
        how = "/".join(PHASE_METHOD_TEXT.get(m, m) for m in method.split("/"))
        out.append(
            {
                "kind": "phase",
                "phase": path,
                "method": method,
                "text": f"phase {path}: {n} of {counts[path]} windows from {how}",
            }
        )
    if multi:
        for p in run.get("processes") or []:
            if p.get("note"):
                out.append(
                    {
                        "kind": "rank",
                        "rank": p["rank"],
                        "host": p.get("host"),
                        "text": f"rank {p['rank']}@{p.get('host') or '?'}: "
                        f"{format_j(p.get('energy_j') or 0.0)} itself; {p['note']}",
                    }
                )
    seen = set()
    for e in run.get("events") or []:
        if e.get("level") != "warning" or e.get("source") == "rank":
            continue
        key = (e.get("source"), e["message"])
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "kind": "warning",
                "source": e.get("source"),
                "text": f"warning [{e.get('source')}]: {e['message']}",
            }
        )
    return out


def format_j(energy_j: float) -> str:
    """``0 J``, ``12.3 kJ``: joules with an SI prefix (3 significant digits)."""
    from greentrack.units import format_energy

    return format_energy(energy_j)


def price_tag(run: Mapping[str, Any], *, final: bool = False) -> dict[str, Any]:
    """The derived figures of one run object (JSON-ready). Energies in kWh, times in s/h.

    Keys: ``hardware`` ({cpu_model, cpu_count, cpu_packages, gpus: [{model, count}], hosts,
    world_size, ranks}), ``duration_s``, ``device_hours``, ``device_kind`` (gpu|cpu|none),
    ``energy_by_component`` ([{component, devices, energy_kwh, methods, notes}]),
    ``energy_basis`` (:func:`energy_basis`), ``assumptions`` (:func:`assumptions`),
    ``energy_kwh``, ``pue``, ``facility_energy_kwh``, ``node_energy_kwh`` (the node's BMC,
    beside the components; None without one), ``node_line``, ``co2e_basis`` (``node``,
    ``components``...), ``co2e_facility_energy_kwh`` (the energy × PUE the CO2e is of),
    ``region``, ``intensity`` ({source, zone,
    kind, period, detail, time_weighted_g_per_kwh, annual_average_g_per_kwh}), ``co2e_g``,
    ``co2e_g_annual_average``, ``flops``, ``params_total``, ``metrics``, ``final``.
    """
    comps = run.get("components") or []
    meta = run.get("meta") or {}
    gpus: dict[str, int] = {}
    models = {
        (p["rank"], c["device"]): c.get("model")
        for p in run.get("processes") or []
        for c in p.get("components") or []
    }
    by_comp: dict[str, dict[str, Any]] = {}
    cpu_packages = 0
    for c in comps:
        kind = c["component"]
        entry = by_comp.setdefault(
            kind, {"component": kind, "devices": 0, "energy_kwh": 0.0, "methods": [], "notes": []}
        )
        entry["devices"] += 1
        entry["energy_kwh"] += float(c["energy_j"] or 0.0) / J_PER_KWH
        if c["method"] not in entry["methods"]:
            entry["methods"].append(c["method"])
        if c.get("note") and c["note"] not in entry["notes"]:
            entry["notes"].append(c["note"])
        if kind == "gpu":
            model = models.get((c.get("rank", 0), c["device"])) or "GPU (model unknown)"
            gpus[model] = gpus.get(model, 0) + 1
        elif kind == "cpu":
            cpu_packages += 1
    for e in by_comp.values():
        e["methods"].sort()
    order = {"gpu": 0, "cpu": 1, "dram": 2, "ram": 3}
    energy_by_component = sorted(
        by_comp.values(), key=lambda e: (order.get(e["component"], 9), e["component"])
    )
    n_gpu = sum(gpus.values())
    duration_s = float(run.get("duration_s") or 0.0)
    if n_gpu:
        device_kind, n_dev = "gpu", n_gpu
    elif cpu_packages:
        device_kind, n_dev = "cpu", cpu_packages
    else:
        device_kind, n_dev = "none", 0
    energy_kwh = float(run.get("energy_j") or 0.0) / J_PER_KWH
    pue = float(run.get("pue") or 1.0)
    facility_kwh = energy_kwh * pue
    node_j = finite(run.get("node_energy_j"))  # the node's BMC: beside the components
    basis_j = finite(run.get("co2e_energy_j"))  # what the CO2e is of (node or components)
    co2e_facility_kwh = basis_j * pue / J_PER_KWH if basis_j is not None else facility_kwh
    co2e = finite(run.get("co2e_g"))
    annual = finite(run.get("co2e_g_annual_average"))
    src = run.get("intensity_source") or {}
    intensity = None
    if src or co2e is not None:
        intensity = {
            "source": src.get("name"),
            "zone": src.get("zone") or run.get("region"),
            "kind": src.get("kind"),
            "period": src.get("period"),
            "detail": src.get("detail"),
            "time_weighted_g_per_kwh": co2e / co2e_facility_kwh
            if co2e is not None and co2e_facility_kwh > 0
            else None,
            "annual_average_g_per_kwh": annual / co2e_facility_kwh
            if annual is not None and co2e_facility_kwh > 0
            else None,
        }
    hosts = sorted(
        {p.get("host") or "?" for p in run.get("processes") or []}
        or ({run["host"]} if run.get("host") else set())
    )
    return {
        "final": final,
        "hardware": {
            "cpu_model": meta.get("cpu_model"),
            "cpu_count": meta.get("cpu_count"),
            "cpu_packages": cpu_packages,
            "gpus": [{"model": m, "count": n} for m, n in sorted(gpus.items())],
            "hosts": hosts,
            "world_size": run.get("world_size") or 1,
            "ranks": len(run.get("processes") or []),
        },
        "duration_s": duration_s,
        "device_kind": device_kind,
        "device_hours": duration_s / 3600.0 * n_dev,
        "energy_by_component": energy_by_component,
        "energy_basis": energy_basis(energy_by_component),
        "assumptions": assumptions(run),
        "energy_kwh": energy_kwh,
        "pue": pue,
        "facility_energy_kwh": facility_kwh,
        # whole-node power from the BMC (None without one): beside the components, not in them
        "node_energy_kwh": node_j / J_PER_KWH if node_j is not None else None,
        "node_line": node_vs_components(node_j, energy_kwh * J_PER_KWH)
        if node_j is not None
        else None,
        "co2e_basis": run.get("co2e_basis"),
        "co2e_facility_energy_kwh": co2e_facility_kwh,
        "region": run.get("region"),
        "intensity": intensity,
        "co2e_g": co2e,
        "co2e_g_annual_average": annual,
        # Embodied share (schema 0004, greentrack.carbon.embodied) and the table rows used.
        "embodied_g": finite(run.get("embodied_g")),
        "embodied_rows": [
            {"row": d.get("row"), "count": d.get("count"), "source": d.get("source")}
            for d in (run.get("embodied") or {}).get("devices") or []
        ],
        "embodied_missing": list((run.get("embodied") or {}).get("missing") or []),
        "total_co2e_g": co2e + float(run["embodied_g"])
        if co2e is not None and finite(run.get("embodied_g")) is not None
        else None,
        "flops": finite(run.get("flops")),
        "params_total": finite((run.get("params") or {}).get("params_total")),
        "metrics": dict(run.get("metrics") or {}),
    }


def methods_label(run: Mapping[str, Any]) -> str:
    """How a run's energy was obtained: its components' methods, e.g. ``counter,estimated``."""
    return ",".join(sorted({c["method"] for c in run.get("components") or []}))
