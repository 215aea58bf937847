"""The price tag of a piece of ML work: what it took, and how each figure was obtained.

Green AI (Schwartz, Dodge, Smith & Etzioni, CACM 2020) asks every paper to report the cost of its
results next to their accuracy — hardware, time, energy, emissions, FLOPs — for the final model
*and* for the whole development, tuning included. :func:`build_report` turns run objects (the
store's JSON contract) into that price tag; ``render_*`` print it as Markdown, LaTeX, JSON or CSV
(HTML lives in :mod:`greentrack.report.html`).

Rules (all documented in the report's own method notes):

* **Final runs** are those tagged ``final=true`` (also ``1``/``yes``) or named with ``--final RUN``.
  Every other run in the report counts as development ("tuning"); the tuning share is its part
  of the total energy and CO₂e. Without a final run no share is computed, and the report says so.
* **Seeds**: runs with the same project, name and parameters apart from ``seed`` (configurable)
  form a group; groups of two or more runs get mean ± sample standard deviation (n − 1).
* **Device-hours**: wall time × the number of GPUs measured (across processes); for runs without
  a GPU, × the number of CPU packages measured.
* Every run counts, whatever its status: a failed or crashed run used energy up to its last
  checkpoint.
* Nothing is invented: a figure the store does not hold (no intensity data, no FLOPs logged) is
  shown as "n/a", never estimated here.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError

__all__ = [
    "FORMATS",
    "REPORT_SCHEMA",
    "build_report",
    "is_final",
    "make_report",
    "price_tag",
    "render",
    "render_csv",
    "render_json",
    "render_latex",
    "render_markdown",
]

J_PER_KWH = 3.6e6
REPORT_SCHEMA = "greentrack.report/1"
FORMATS = ("markdown", "latex", "html", "json", "csv")
FINAL_VALUES = ("true", "1", "yes")
NA = "n/a"
_COMPONENT_NAMES = {"gpu": "GPU", "cpu": "CPU", "dram": "DRAM", "ram": "RAM"}
_METHOD_TEXT = {
    "counter": "the device's cumulative energy counter",
    "sampled": "sampled power integrated over time",
    "estimated": "a power model (no meter)",
}


# --------------------------------------------------------------------------------------------
# Per-run figures
# --------------------------------------------------------------------------------------------


def is_final(run: Mapping[str, Any], final_ids: Iterable[str] = ()) -> bool:
    """Whether a run is a final run: tagged ``final=true|1|yes`` or named in ``final_ids``."""
    if run["id"] in set(final_ids):
        return True
    return str((run.get("tags") or {}).get("final", "")).strip().lower() in FINAL_VALUES


def _float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def price_tag(run: Mapping[str, Any], *, final: bool = False) -> dict[str, Any]:
    """The derived figures of one run object (JSON-ready). Energies in kWh, times in s/h.

    Keys: ``hardware`` ({cpu_model, cpu_packages, gpus: [{model, count}], hosts, world_size}),
    ``duration_s``, ``device_hours``, ``device_kind`` (gpu|cpu|none), ``energy_by_component``
    ([{component, devices, energy_kwh, methods}]), ``energy_kwh``, ``pue``,
    ``facility_energy_kwh``, ``region``, ``intensity`` ({source, zone, kind, period, detail,
    time_weighted_g_per_kwh, annual_average_g_per_kwh}), ``co2e_g``, ``co2e_g_annual_average``,
    ``flops``, ``params_total``, ``metrics``, ``final``.
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
            kind, {"component": kind, "devices": 0, "energy_kwh": 0.0, "methods": []}
        )
        entry["devices"] += 1
        entry["energy_kwh"] += float(c["energy_j"] or 0.0) / J_PER_KWH
        if c["method"] not in entry["methods"]:
            entry["methods"].append(c["method"])
        if kind == "gpu":
            model = models.get((c.get("rank", 0), c["device"])) or "GPU (model unknown)"
            gpus[model] = gpus.get(model, 0) + 1
        elif kind == "cpu":
            cpu_packages += 1
    for e in by_comp.values():
        e["methods"].sort()
    order = {"gpu": 0, "cpu": 1, "dram": 2, "ram": 3}
    energy_by_component = sorted(by_comp.values(), key=lambda e: (order.get(e["component"], 9),
                                                                   e["component"]))  # fmt: skip
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
    co2e = _float(run.get("co2e_g"))
    annual = _float(run.get("co2e_g_annual_average"))
    src = run.get("intensity_source") or {}
    intensity = None
    if src or co2e is not None:
        intensity = {
            "source": src.get("name"),
            "zone": src.get("zone") or run.get("region"),
            "kind": src.get("kind"),
            "period": src.get("period"),
            "detail": src.get("detail"),
            "time_weighted_g_per_kwh": co2e / facility_kwh
            if co2e is not None and facility_kwh > 0
            else None,
            "annual_average_g_per_kwh": annual / facility_kwh
            if annual is not None and facility_kwh > 0
            else None,
        }
    hosts = sorted({p.get("host") or "?" for p in run.get("processes") or []} or
                   ({run["host"]} if run.get("host") else set()))  # fmt: skip
    return {
        "final": final,
        "hardware": {
            "cpu_model": meta.get("cpu_model"),
            "cpu_packages": cpu_packages,
            "gpus": [{"model": m, "count": n} for m, n in sorted(gpus.items())],
            "hosts": hosts,
            "world_size": run.get("world_size") or 1,
        },
        "duration_s": duration_s,
        "device_kind": device_kind,
        "device_hours": duration_s / 3600.0 * n_dev,
        "energy_by_component": energy_by_component,
        "energy_kwh": energy_kwh,
        "pue": pue,
        "facility_energy_kwh": facility_kwh,
        "region": run.get("region"),
        "intensity": intensity,
        "co2e_g": co2e,
        "co2e_g_annual_average": annual,
        "flops": _float(run.get("flops")),
        "params_total": _float((run.get("params") or {}).get("params_total")),
        "metrics": dict(run.get("metrics") or {}),
    }


# --------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    n = len(values)
    if not n:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def _sum_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _aggregate(tags: Sequence[dict[str, Any]], price: float | None) -> dict[str, Any]:
    """Totals over price tags: energies, time, emissions, FLOPs, hardware, sources."""
    comps: dict[str, dict[str, Any]] = {}
    for t in tags:
        for c in t["energy_by_component"]:
            e = comps.setdefault(c["component"], {"component": c["component"], "energy_kwh": 0.0,
                                                  "methods": []})  # fmt: skip
            e["energy_kwh"] += c["energy_kwh"]
            e["methods"] = sorted(set(e["methods"]) | set(c["methods"]))
    order = {"gpu": 0, "cpu": 1, "dram": 2, "ram": 3}
    gpus: dict[str, int] = {}
    for t in tags:
        for g in t["hardware"]["gpus"]:
            gpus[g["model"]] = max(gpus.get(g["model"], 0), g["count"])
    sources = _source_labels([t["intensity"] for t in tags if t["intensity"]])
    facility = sum(t["facility_energy_kwh"] for t in tags)
    co2e = _sum_known(t["co2e_g"] for t in tags)
    annual = _sum_known(t["co2e_g_annual_average"] for t in tags)
    with_co2e = [t for t in tags if t["co2e_g"] is not None]
    facility_with = sum(t["facility_energy_kwh"] for t in with_co2e)
    with_annual = [t for t in tags if t["co2e_g_annual_average"] is not None]
    facility_annual = sum(t["facility_energy_kwh"] for t in with_annual)
    metrics: dict[str, list[float]] = {}
    for t in tags:
        for k, v in t["metrics"].items():
            if _float(v) is not None:
                metrics.setdefault(k, []).append(float(v))
    params_totals = sorted({t["params_total"] for t in tags if t["params_total"] is not None})
    kinds = sorted({t["device_kind"] for t in tags if t["device_kind"] != "none"})
    return {
        "runs": len(tags),
        "duration_s": sum(t["duration_s"] for t in tags),
        "device_hours": sum(t["device_hours"] for t in tags),
        "device_kinds": kinds,
        "energy_by_component": sorted(
            comps.values(), key=lambda e: (order.get(e["component"], 9), e["component"])
        ),  # fmt: skip
        "energy_kwh": sum(t["energy_kwh"] for t in tags),
        "pue": sorted({t["pue"] for t in tags}),
        "facility_energy_kwh": facility,
        "co2e_g": co2e,
        "co2e_g_annual_average": annual,
        "runs_without_co2e": len(tags) - len(with_co2e),
        "time_weighted_g_per_kwh": co2e / facility_with
        if co2e is not None and facility_with
        else None,
        "annual_average_g_per_kwh": annual / facility_annual
        if annual is not None and facility_annual
        else None,
        "intensity_sources": sources,
        "flops": _sum_known(t["flops"] for t in tags),
        "runs_without_flops": sum(t["flops"] is None for t in tags),
        "params_total": params_totals[0] if len(params_totals) == 1 else None,
        "metrics": {k: _mean_std(v) for k, v in sorted(metrics.items())},
        "gpus": [{"model": m, "count": n} for m, n in sorted(gpus.items())],
        "cpu_models": sorted(
            {t["hardware"]["cpu_model"] for t in tags if t["hardware"]["cpu_model"]}
        ),  # fmt: skip
        "cpu_packages": max((t["hardware"]["cpu_packages"] for t in tags), default=0),
        "cost": None if price is None else facility * price,
    }


def _source_labels(intensities: Sequence[Mapping[str, Any]]) -> list[str]:
    """``source zone kind period`` labels; periods of one source/zone/kind merged into a span."""
    periods: dict[tuple[str, str, str], list[str]] = {}
    for i in intensities:
        key = (str(i.get("source") or ""), str(i.get("zone") or ""), str(i.get("kind") or ""))
        p = str(i.get("period") or "")
        if p not in periods.setdefault(key, []):
            periods[key].append(p)
    labels = []
    for key, ps in periods.items():
        ps = [p for p in ps if p]
        if len(ps) > 1 and all("/" in p for p in ps):
            period = min(p.split("/")[0] for p in ps) + "/" + max(p.split("/")[1] for p in ps)
        else:
            period = ", ".join(ps)
        labels.append(" ".join(x for x in (*key, period) if x))
    return labels


def _groups(runs: Sequence[dict[str, Any]], seed_keys: Sequence[str]) -> list[dict[str, Any]]:
    buckets: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        params = {k: v for k, v in (r.get("params") or {}).items() if k not in seed_keys}
        key = (r["project"], r["name"], tuple(sorted(params.items())))
        buckets.setdefault(key, []).append(r)
    out = []
    for (project, name, params), members in buckets.items():
        if len(members) < 2:
            continue
        tags = [m["pricetag"] for m in members]
        metrics: dict[str, list[float]] = {}
        for t in tags:
            for k, v in t["metrics"].items():
                if _float(v) is not None:
                    metrics.setdefault(k, []).append(float(v))
        co2e = [t["co2e_g"] for t in tags if t["co2e_g"] is not None]
        out.append(
            {
                "project": project,
                "name": name,
                "params": dict(params),
                "seeds": [
                    next((m["params"][k] for k in seed_keys if k in m["params"]), None)
                    for m in members
                ],  # fmt: skip
                "run_ids": [m["id"] for m in members],
                "n": len(members),
                "energy_kwh": _mean_std([t["energy_kwh"] for t in tags]),
                "co2e_g": _mean_std(co2e) if len(co2e) == len(tags) else _mean_std([]),
                "duration_s": _mean_std([t["duration_s"] for t in tags]),
                "metrics": {k: _mean_std(v) for k, v in sorted(metrics.items())},
            }
        )
    return out


def build_report(
    runs: Sequence[dict[str, Any]],
    *,
    final: Iterable[str] = (),
    seed_keys: Sequence[str] = ("seed",),
    price_per_kwh: float | None = None,
    currency: str = "EUR",
    flops: bool = False,
    title: str | None = None,
) -> dict[str, Any]:
    """The report (the ``--format json`` contract) for run objects.

    Args:
        runs: run objects (from :func:`greentrack.report.data.load_runs`; ``meta`` adds the CPU).
        final: full ids of the final runs, besides those tagged ``final=true``.
        seed_keys: parameters that only change the seed (runs differing only there are grouped).
        price_per_kwh: electricity price per facility kWh, in ``currency`` (no cost without it).
        flops: whether the human formats show FLOPs (JSON always has them).
        title: heading of the human formats (default from the runs).

    Returns:
        ``{schema, title, runs, totals, final, tuning, groups, options, method_notes}``; each
        run object gains ``pricetag`` (see :func:`price_tag`).
    """
    if not runs:
        raise ConfigError("no runs to report on; list runs with `greentrack runs`")
    if price_per_kwh is not None and (not math.isfinite(price_per_kwh) or price_per_kwh < 0):
        raise ConfigError(f"--price-per-kwh {price_per_kwh} must be a number >= 0")
    final_ids = set(final)
    objs = []
    for r in runs:
        obj = dict(r)
        obj["pricetag"] = price_tag(r, final=is_final(r, final_ids))
        if price_per_kwh is not None:
            obj["pricetag"]["cost"] = obj["pricetag"]["facility_energy_kwh"] * price_per_kwh
        objs.append(obj)
    tags = [o["pricetag"] for o in objs]
    totals = _aggregate(tags, price_per_kwh)
    finals = [o for o in objs if o["pricetag"]["final"]]
    tuning = [o for o in objs if not o["pricetag"]["final"]]
    final_part = tuning_part = None
    if finals:
        final_part = _aggregate([o["pricetag"] for o in finals], price_per_kwh)
        final_part["run_ids"] = [o["id"] for o in finals]
        tuning_part = _aggregate([o["pricetag"] for o in tuning], price_per_kwh)
        tuning_part["run_ids"] = [o["id"] for o in tuning]
        for part in (final_part, tuning_part):
            part["share_energy_pct"] = (
                100.0 * part["facility_energy_kwh"] / totals["facility_energy_kwh"]
                if totals["facility_energy_kwh"] > 0
                else None
            )
            part["share_co2e_pct"] = (
                100.0 * part["co2e_g"] / totals["co2e_g"]
                if part["co2e_g"] is not None and totals["co2e_g"]
                else None
            )
    if title is None:
        projects = sorted({o["project"] for o in objs})
        if len(objs) == 1:
            title = f"{objs[0]['project']} / {objs[0]['name']} (run {objs[0]['id'][:8]})"
        elif len(projects) == 1:
            title = f"project {projects[0]} ({len(objs)} runs)"
        else:
            title = f"{len(objs)} runs of {', '.join(projects)}"
    report = {
        "schema": REPORT_SCHEMA,
        "title": title,
        "runs": objs,
        "totals": totals,
        "final": final_part,
        "tuning": tuning_part,
        "groups": _groups(objs, seed_keys),
        "options": {
            "final_rule": "tag final=true (or 1/yes) or --final RUN",
            "seed_keys": list(seed_keys),
            "price_per_kwh": price_per_kwh,
            "currency": currency if price_per_kwh is not None else None,
            "show_flops": bool(flops),
        },
    }
    report["method_notes"] = method_notes(report)
    return report


# --------------------------------------------------------------------------------------------
# Method notes
# --------------------------------------------------------------------------------------------


def method_notes(report: Mapping[str, Any]) -> list[str]:
    """How every figure of the report was obtained, in plain sentences (only what applies)."""
    runs = report["runs"]
    tags = [r["pricetag"] for r in runs]
    totals = report["totals"]
    notes = []
    methods = sorted({m for t in tags for c in t["energy_by_component"] for m in c["methods"]})
    per = "; ".join(
        f"{_COMPONENT_NAMES.get(c['component'], c['component'])}: {', '.join(c['methods'])}"
        for c in totals["energy_by_component"]
    )
    notes.append(
        "Energy is the device energy measured by greentrack over each run's wall time (meter "
        "baseline to final read), per component"
        + (f" ({per})" if per else "")
        + ". Methods: "
        + "; ".join(f"{m} = {_METHOD_TEXT.get(m, m)}" for m in methods)
        + "."
        if methods
        else "Energy: no component was measured (0 kWh)."
    )
    if "estimated" in methods:
        notes.append(
            "Estimated components are modelled, not measured: CPU = TDP x machine-wide load "
            "(CodeCarbon's TDP table), RAM = 0.375 W per GiB installed; treat them as rough."
        )
    pues = totals["pue"]
    notes.append(
        "Facility energy = device energy x PUE ("
        + ", ".join(f"{p:g}" for p in pues)
        + "); a PUE of 1 leaves data-centre overhead (cooling, power delivery) out."
    )
    if totals["co2e_g"] is not None:
        srcs = "; ".join(totals["intensity_sources"]) or "unknown source"
        notes.append(
            "CO2e (time-weighted) = the facility energy of every interval between two samples x "
            f"the mean grid carbon intensity over that interval ({srcs}); the intensity shown is "
            "CO2e / facility energy."
        )
        notes.append(
            "CO2e (annual average) = facility energy x the zone's static annual average intensity "
            "(CodeCarbon's energy-mix data), for comparison with reports that use yearly figures."
        )
    if totals["runs_without_co2e"]:
        notes.append(
            f"{totals['runs_without_co2e']} run(s) have no CO2e (no intensity data when they "
            "ended); totals of CO2e leave them out."
        )
    kinds = totals["device_kinds"]
    if kinds:
        notes.append(
            "Device-hours = wall time x number of GPUs measured (x CPU packages for runs without "
            "a GPU)."
        )
    if totals["flops"] is not None or report["options"]["show_flops"]:
        notes.append(
            "FLOPs are as logged by the run (run.log_flops, e.g. from gt.count_flops: PyTorch's "
            "FlopCounterMode, matrix products, convolutions and attention only, 2 FLOPs per "
            "multiply-add); greentrack does not measure them."
            + (
                f" {totals['runs_without_flops']} run(s) logged none."
                if totals["runs_without_flops"] and totals["flops"] is not None
                else ""
            )  # fmt: skip
        )
    if totals["params_total"] is not None or any(t["params_total"] is not None for t in tags):
        notes.append("Parameters are the run parameter params_total as logged by the run.")
    if any(t["metrics"] for t in tags):
        notes.append("Metrics are the last value each run logged (run.log).")
    if len(runs) > 1:
        if report["final"]:
            notes.append(
                "Final runs are those tagged final=true or named with --final; every other run "
                "in the report counts as development/tuning. Shares are of facility energy and "
                "of CO2e. Failed, interrupted and crashed runs count (energy to their last "
                "checkpoint)."
            )
        else:
            notes.append(
                "No run is marked final (tag final=true or pass --final RUN), so the tuning "
                "share is not computed; totals cover every run, whatever its status."
            )
        if report["groups"]:
            keys = ", ".join(report["options"]["seed_keys"])
            notes.append(
                f"Mean ± std over seeds: runs with the same project, name and parameters apart "
                f"from {keys}; std is the sample standard deviation (n - 1)."
            )
    price = report["options"]["price_per_kwh"]
    if price is not None:
        notes.append(
            f"Electricity cost = facility energy x {price:g} {report['options']['currency']}/kWh "
            "as given on the command line (not a tariff lookup)."
        )
    return notes


# --------------------------------------------------------------------------------------------
# The table model shared by the human formats
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of the price-tag table: label, one value per column, how it was obtained."""

    label: str
    values: list[Any]
    how: str
    kind: str = "num"  # num | text | int | pct | stat | dur
    unit: str = ""
    digits: int = 3
    extras: dict[str, Any] = field(default_factory=dict)


def _columns(report: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if len(report["runs"]) == 1:
        return [("Value", report["totals"])]
    if report["final"]:
        return [
            ("Final", report["final"]),
            ("Tuning", report["tuning"]),
            ("All runs", report["totals"]),
        ]
    return [("All runs", report["totals"])]


def _hardware(agg: Mapping[str, Any]) -> str:
    parts = [f"{g['count']} x {g['model']}" for g in agg["gpus"]]
    for m in agg["cpu_models"]:
        n = agg["cpu_packages"]
        parts.append(f"{m}" + (f" ({n} packages)" if n > 1 else ""))
    return "; ".join(parts) or NA


def table_rows(report: Mapping[str, Any]) -> tuple[list[str], list[Row]]:
    """Column names and rows of the price-tag table."""
    cols = _columns(report)
    aggs = [a for _, a in cols]
    rows: list[Row] = []
    if len(report["runs"]) > 1:
        rows.append(Row("Runs", [a["runs"] for a in aggs], "runs in the report", kind="int"))
    rows.append(Row("Hardware", [_hardware(a) for a in aggs], "run metadata (CPU model name; "
                    "GPU names from the meters)", kind="text"))  # fmt: skip
    rows.append(Row("Wall time", [a["duration_s"] for a in aggs],
                    "wall clock, meter baseline to final read", kind="dur"))  # fmt: skip
    kinds = sorted({k for a in aggs for k in a["device_kinds"]})
    unit = {"gpu": "GPU-h", "cpu": "CPU-h"}.get(kinds[0], "device-h") if len(kinds) == 1 else (
        "device-h")  # fmt: skip
    rows.append(Row("Device-hours", [a["device_hours"] for a in aggs],
                    "wall time x devices (GPUs, else CPU packages)", unit=unit))  # fmt: skip
    comp_names = [c["component"] for c in report["totals"]["energy_by_component"]]
    for comp in comp_names:
        vals, methods = [], []
        for a in aggs:
            c = next((c for c in a["energy_by_component"] if c["component"] == comp), None)
            vals.append(c["energy_kwh"] if c else None)
            if c:
                methods += [m for m in c["methods"] if m not in methods]
        rows.append(Row(f"Energy, {_COMPONENT_NAMES.get(comp, comp)}", vals,
                        "method: " + ", ".join(sorted(methods)), unit="kWh"))  # fmt: skip
    rows.append(Row("Energy, devices", [a["energy_kwh"] for a in aggs], "sum of the components",
                    unit="kWh"))  # fmt: skip
    rows.append(Row("PUE", [", ".join(f"{p:g}" for p in a["pue"]) or NA for a in aggs],
                    "configured facility overhead (GREENTRACK_PUE)", kind="text"))  # fmt: skip
    rows.append(Row("Energy, facility", [a["facility_energy_kwh"] for a in aggs],
                    "device energy x PUE", unit="kWh"))  # fmt: skip
    regions = sorted({r["region"] for r in report["runs"] if r.get("region")})
    rows.append(Row("Region", [", ".join(regions) or NA] + [""] * (len(aggs) - 1),
                    "grid zone of the run", kind="text"))  # fmt: skip
    srcs = "; ".join(report["totals"]["intensity_sources"]) or "no intensity data"
    rows.append(Row("Carbon intensity, time-weighted", [a["time_weighted_g_per_kwh"] for a in aggs],
                    f"{srcs}; CO2e / facility energy", unit="g/kWh"))  # fmt: skip
    rows.append(Row("Carbon intensity, annual average",
                    [a["annual_average_g_per_kwh"] for a in aggs],
                    "static annual average of the zone", unit="g/kWh"))  # fmt: skip
    rows.append(Row("CO2e, time-weighted", [a["co2e_g"] for a in aggs],
                    "Σ interval energy x interval intensity", unit="g"))  # fmt: skip
    rows.append(Row("CO2e, annual average", [a["co2e_g_annual_average"] for a in aggs],
                    "facility energy x annual average", unit="g"))  # fmt: skip
    if report["final"] and len(report["runs"]) > 1:
        rows.append(Row("Share of facility energy", [a.get("share_energy_pct") for a in aggs[:2]]
                        + [100.0], "part of all runs' facility energy", kind="pct"))  # fmt: skip
        if report["totals"]["co2e_g"] is not None:
            rows.append(Row("Share of CO2e", [a.get("share_co2e_pct") for a in aggs[:2]] + [100.0],
                            "part of all runs' CO2e", kind="pct"))  # fmt: skip
    if report["options"]["show_flops"]:
        rows.append(Row("FLOPs", [a["flops"] for a in aggs], "logged by the run (log_flops)"))
    if any(a["params_total"] is not None for a in aggs):
        rows.append(Row("Parameters", [a["params_total"] for a in aggs],
                        "param params_total logged by the run", kind="int"))  # fmt: skip
    metric_keys = sorted({k for a in aggs for k in a["metrics"]})
    for k in metric_keys:
        stats = [a["metrics"].get(k) for a in aggs]
        single = len(report["runs"]) == 1
        rows.append(Row(k, stats, "last logged value" if single else
                        "mean ± std over the runs (n)", kind="stat", digits=4))  # fmt: skip
    price = report["options"]["price_per_kwh"]
    if price is not None:
        cur = report["options"]["currency"]
        rows.append(Row("Electricity cost", [a["cost"] for a in aggs],
                        f"facility energy x {price:g} {cur}/kWh (given)", unit=cur))  # fmt: skip
    return [c for c, _ in cols], rows


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def fmt_num(x: float | None, sig: int = 3) -> str:
    """A number with ``sig`` significant digits; e-notation for very large or small values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return NA
    x = float(x)
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e7 or ax < 1e-3:
        return f"{x:.{sig - 1}e}"
    if ax >= 10 ** (sig - 1):
        return f"{x:,.0f}"
    decimals = max(0, sig - 1 - math.floor(math.log10(ax)))
    return f"{x:.{decimals}f}"


def fmt_int(x: float | None) -> str:
    if x is None:
        return NA
    x = float(x)
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.2f}M" if abs(x) < 1e9 else f"{x / 1e9:,.2f}G"
    return f"{x:,.0f}"


def fmt_duration(s: float | None) -> str:
    if s is None:
        return NA
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def fmt_stat(st: Mapping[str, Any] | None, digits: int = 4) -> str:
    if not st or st.get("mean") is None:
        return NA
    text = fmt_num(st["mean"], digits)
    if st.get("std") is not None:
        text += f" ± {fmt_num(st['std'], 2)} (n={st['n']})"
    return text


def _cell(row: Row, value: Any) -> str:
    if row.kind == "text":
        return str(value) if value not in (None, "") else ("" if value == "" else NA)
    if row.kind == "int":
        return fmt_int(value)
    if row.kind == "pct":
        return NA if value is None else f"{value:.1f} %"
    if row.kind == "stat":
        return fmt_stat(value, row.digits)
    if row.kind == "dur":
        return fmt_duration(value)
    text = fmt_num(value, row.digits)
    return text if text == NA or not row.unit else f"{text} {row.unit}"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    align = align or "l" * len(headers)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def summary_sentence(report: Mapping[str, Any]) -> str:
    """One plain-text sentence: the final model (or all runs) and the whole development."""
    t = report["totals"]
    scope = report["final"] or t
    what = "The final model" if report["final"] else (
        "This run" if len(report["runs"]) == 1 else f"These {t['runs']} runs")  # fmt: skip
    text = (
        f"{what} took {fmt_duration(scope['duration_s'])} of wall time on "
        f"{_hardware(scope)} ({fmt_num(scope['device_hours'])} device-hours) and used "
        f"{fmt_num(scope['facility_energy_kwh'])} kWh"
    )
    if scope["co2e_g"] is not None:
        text += f", emitting {fmt_num(scope['co2e_g'])} g CO2e (time-weighted)"
    text += "."
    if report["final"] and report["tuning"]["runs"]:
        tu = report["tuning"]
        text += (
            f" The whole development ({t['runs']} runs) used {fmt_num(t['facility_energy_kwh'])} "
            f"kWh"
            + (f" and {fmt_num(t['co2e_g'])} g CO2e" if t["co2e_g"] is not None else "")
            + f"; tuning took {fmt_num(tu['share_energy_pct'])} % of the energy."
        )
    return text


def _runs_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    metric_keys = sorted({k for r in report["runs"] for k in r["pricetag"]["metrics"]})
    headers = ["Run", "Name", "Status", "Final", "Started (UTC)", "Wall time", "Energy (kWh)",
               "Methods", "CO2e (g)", *metric_keys]  # fmt: skip
    rows = []
    for r in report["runs"]:
        t = r["pricetag"]
        methods = sorted({m for c in t["energy_by_component"] for m in c["methods"]})
        rows.append([
            r["id"][:8], r["name"], r["status"], "yes" if t["final"] else "",
            (r.get("started_at") or "")[:19].replace("T", " "), fmt_duration(t["duration_s"]),
            fmt_num(t["energy_kwh"]), ", ".join(methods) or NA, fmt_num(t["co2e_g"]),
            *[fmt_num(t["metrics"].get(k), 4) for k in metric_keys],
        ])  # fmt: skip
    return headers, rows, "lllllrrlr" + "r" * len(metric_keys)


def _groups_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    metric_keys = sorted({k for g in report["groups"] for k in g["metrics"]})
    headers = ["Group", "n", "Seeds", "Energy (kWh)", "CO2e (g)", "Wall time (s)", *metric_keys]
    rows = []
    for g in report["groups"]:
        params = ", ".join(f"{k}={v}" for k, v in sorted(g["params"].items()))
        rows.append([
            f"{g['project']}/{g['name']}" + (f" ({params})" if params else ""), str(g["n"]),
            ", ".join(str(s) for s in g["seeds"]), fmt_stat(g["energy_kwh"], 3),
            fmt_stat(g["co2e_g"], 3), fmt_stat(g["duration_s"], 3),
            *[fmt_stat(g["metrics"].get(k), 4) for k in metric_keys],
        ])  # fmt: skip
    return headers, rows, "lrlrrr" + "r" * len(metric_keys)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The price tag as GitHub-flavoured Markdown."""
    cols, rows = table_rows(report)
    out = [f"# Price tag: {report['title']}", "", summary_sentence(report), ""]
    out.append(_md_table(["Item", *cols, "How it was obtained"],
                         [[r.label, *(_cell(r, v) for v in r.values), r.how] for r in rows],
                         "l" + "r" * len(cols) + "l"))  # fmt: skip
    if len(report["runs"]) > 1:
        headers, body, align = _runs_table(report)
        out += ["", "## Runs", "", _md_table(headers, body, align)]
    if report["groups"]:
        headers, body, align = _groups_table(report)
        out += ["", "## Mean ± std over seeds", "", _md_table(headers, body, align)]
    out += ["", "## Method notes", ""]
    out += [f"{i}. {n}" for i, n in enumerate(report["method_notes"], 1)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "Σ": r"$\Sigma$", "×": r"$\times$", "≥": r"$\geq$",
}  # fmt: skip


def tex_escape(text: Any) -> str:
    """Plain text -> LaTeX (special characters escaped; CO2e typeset as CO$_2$e)."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    return out.replace("CO2e", r"CO$_2$e").replace(" x ", r" $\times$ ")


def _tex_num(text: str) -> str:
    """``1.10e-05`` -> ``$1.10\\times10^{-5}$``; other text escaped."""
    import re

    m = re.fullmatch(r"(-?[\d.]+)e([+-])(\d+)(.*)", text)
    if m:
        exp = int(m.group(3)) * (-1 if m.group(2) == "-" else 1)
        return f"${m.group(1)}\\times10^{{{exp}}}${tex_escape(m.group(4))}"
    return tex_escape(text)


BIB_KEYS = ("schwartz2020green", "dodge2022measuring", "strubell2019energy", "henderson2020towards")


def bibtex() -> str:
    """The BibTeX of the methodology the LaTeX statement cites."""
    from importlib.resources import files

    return files("greentrack.report").joinpath("templates/methodology.bib").read_text("utf-8")


def render_latex(report: Mapping[str, Any], *, standalone: bool = False) -> str:
    """A booktabs table, a one-paragraph statement with citations, and (standalone) a document.

    The citations use the keys in :data:`BIB_KEYS`; :func:`bibtex` gives the entries (written
    beside the ``.tex`` file by ``greentrack report --format latex -o FILE``).
    """
    cols, rows = table_rows(report)
    lines = []
    if standalone:
        lines += [r"\documentclass{article}", r"\usepackage[T1]{fontenc}",
                  r"\usepackage{booktabs}", r"\begin{document}", ""]  # fmt: skip
    lines += [
        "% Price tag (Schwartz et al. 2020, Green AI) generated by greentrack from its run store.",
        "% Needs \\usepackage{booktabs}; cites " + ", ".join(BIB_KEYS) + ".",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{Price tag of " + tex_escape(report["title"]) + r" \cite{schwartz2020green}.}",
        r"\label{tab:pricetag}",
        r"\begin{tabular}{l" + "r" * len(cols) + "}",
        r"\toprule",
        " & ".join(["Item", *(tex_escape(c) for c in cols)]) + r" \\",
        r"\midrule",
    ]
    for r in rows:
        unit = "h" if r.kind == "dur" else r.unit
        label = tex_escape(r.label) + (f" ({tex_escape(unit)})" if unit else "")
        if r.kind == "text" and len({v for v in r.values if v}) == 1 and len(cols) > 1:
            value = next(v for v in r.values if v)  # the same for every column: say it once
            lines.append(f"{label} & \\multicolumn{{{len(cols)}}}{{r}}{{{tex_escape(value)}}} \\\\")
            continue
        cells = []
        for v in r.values:
            if r.kind == "dur":
                text = fmt_num(None if v is None else v / 3600.0)
            else:
                text = _cell(r, v)
            if r.unit and text.endswith(" " + r.unit):
                text = text[: -len(r.unit) - 1]
            cells.append(_tex_num(text) if r.kind != "text" else tex_escape(text))
        lines.append(" & ".join([label, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines.append(r"\par\smallskip\footnotesize " + tex_escape(
        " ".join(f"{r.label}: {r.how}." for r in rows if r.label.startswith(("Energy,", "Carbon")))
    ))  # fmt: skip
    lines += [r"\end{table}", "", _tex_statement(report), ""]
    lines += ["% Method notes:"] + [f"% - {n}" for n in report["method_notes"]]
    if standalone:
        lines += ["", r"\bibliographystyle{plain}", r"\bibliography{greentrack}",
                  r"\end{document}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _tex_statement(report: Mapping[str, Any]) -> str:
    t = report["totals"]
    scope = report["final"] or t
    comps = "; ".join(
        f"{_COMPONENT_NAMES.get(c['component'], c['component'])}: "
        + ", ".join(_METHOD_TEXT.get(m, m) for m in c["methods"])
        for c in scope["energy_by_component"]
    )
    who = "the final model" if report["final"] else (
        "this run" if t["runs"] == 1 else f"these {t['runs']} runs")  # fmt: skip
    parts = [
        "Following the recommendation to report the computational cost of results "
        r"\cite{schwartz2020green,henderson2020towards}, we measured the energy of our "
        "experiments with greentrack.",
        f" Training {who} took {fmt_duration(scope['duration_s'])} of wall time on "
        f"{_hardware(scope)} ({fmt_num(scope['device_hours'])} device-hours) and consumed "
        f"{fmt_num(scope['energy_kwh'])} kWh of device energy ({comps}), "
        f"{fmt_num(scope['facility_energy_kwh'])} kWh at the facility "
        f"(PUE {', '.join(f'{p:g}' for p in scope['pue'])}).",
    ]
    if scope["co2e_g"] is not None:
        srcs = "; ".join(scope["intensity_sources"]) or "unknown source"
        parts.append(
            f" With the time-weighted carbon intensity of the grid ({srcs}) "
            r"\cite{dodge2022measuring} this amounts to "
            f"{_mass(scope['co2e_g'])} CO2e"
            + (
                f" ({_mass(scope['co2e_g_annual_average'])} at the annual average intensity)"
                if scope["co2e_g_annual_average"] is not None
                else ""
            )  # fmt: skip
            + "."
        )
    if scope["flops"] is not None and report["options"]["show_flops"]:
        parts.append(f" It took {fmt_num(scope['flops'])} FLOPs (as logged).")
    if report["final"] and report["tuning"]["runs"]:
        tu = report["tuning"]
        parts.append(
            f" The whole development, {t['runs']} runs including hyper-parameter tuning "
            r"\cite{strubell2019energy}, used "
            f"{fmt_num(t['facility_energy_kwh'])} kWh"
            + (f" and emitted {_mass(t['co2e_g'])} CO2e" if t["co2e_g"] is not None else "")
            + f"; tuning accounted for {fmt_num(tu['share_energy_pct'])}% of the energy."
        )
    elif t["runs"] > 1 and not report["final"]:
        parts.append(
            f" All {t['runs']} runs together used {fmt_num(t['facility_energy_kwh'])} kWh"
            r" \cite{strubell2019energy}."
        )
    if report["options"]["price_per_kwh"] is not None:
        parts.append(
            f" At {report['options']['price_per_kwh']:g} {report['options']['currency']}/kWh "
            f"the electricity cost {fmt_num(t['cost'])} {report['options']['currency']}."
        )
    return "".join(tex_escape(p) if "\\cite" not in p else _tex_keep_cite(p) for p in parts)


def _tex_keep_cite(text: str) -> str:
    import re

    pieces = re.split(r"(\\cite\{[^}]*\})", text)
    return "".join(p if p.startswith("\\cite{") else tex_escape(p) for p in pieces)


def _mass(g: float | None) -> str:
    if g is None:
        return NA
    return f"{fmt_num(g / 1000)} kg" if g >= 1000 else f"{fmt_num(g)} g"


# --------------------------------------------------------------------------------------------
# JSON and CSV
# --------------------------------------------------------------------------------------------


def render_json(report: Mapping[str, Any]) -> str:
    """The report as JSON (schema ``greentrack.report/1``, see the README)."""
    return json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n"


CSV_COLUMNS = [
    "scope", "id", "project", "name", "status", "final", "started_at", "duration_s",
    "device_hours", "hardware", "energy_kwh", "energy_gpu_kwh", "energy_cpu_kwh",
    "energy_dram_kwh", "energy_ram_kwh", "methods", "pue", "facility_energy_kwh", "region",
    "intensity_sources", "time_weighted_g_per_kwh", "annual_average_g_per_kwh", "co2e_g",
    "co2e_g_annual_average", "flops", "params_total", "cost",
]  # fmt: skip


def render_csv(report: Mapping[str, Any]) -> str:
    """One row per run (``scope=run``) then ``total``, ``final`` and ``tuning`` rows."""
    metric_keys = sorted({k for r in report["runs"] for k in r["pricetag"]["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS + [f"metric_{k}" for k in metric_keys])

    def comp(parts: Sequence[Mapping[str, Any]], name: str) -> float | None:
        c = next((c for c in parts if c["component"] == name), None)
        return None if c is None else c["energy_kwh"]

    def opt(x: Any) -> Any:
        return "" if x is None else x

    for r in report["runs"]:
        t = r["pricetag"]
        i = t["intensity"] or {}
        hw = _hardware({"gpus": t["hardware"]["gpus"], "cpu_packages":
                        t["hardware"]["cpu_packages"], "cpu_models":
                        [t["hardware"]["cpu_model"]] if t["hardware"]["cpu_model"] else []})  # fmt: skip
        src = " ".join(str(i[k]) for k in ("source", "zone", "kind", "period") if i.get(k))
        w.writerow([
            "run", r["id"], r["project"], r["name"], r["status"], t["final"], r["started_at"],
            t["duration_s"], t["device_hours"], hw, t["energy_kwh"],
            *(opt(comp(t["energy_by_component"], c)) for c in ("gpu", "cpu", "dram", "ram")),
            ";".join(sorted({m for c in t["energy_by_component"] for m in c["methods"]})),
            t["pue"], t["facility_energy_kwh"], opt(t["region"]), src,
            opt(i.get("time_weighted_g_per_kwh")), opt(i.get("annual_average_g_per_kwh")),
            opt(t["co2e_g"]), opt(t["co2e_g_annual_average"]), opt(t["flops"]),
            opt(t["params_total"]), opt(t.get("cost")),
            *(opt(t["metrics"].get(k)) for k in metric_keys),
        ])  # fmt: skip
    for scope in ("totals", "final", "tuning"):
        a = report[scope]
        if not a:
            continue
        w.writerow([
            "total" if scope == "totals" else scope, "", "", "", "", "", "", a["duration_s"],
            a["device_hours"], _hardware(a), a["energy_kwh"],
            *(opt(comp(a["energy_by_component"], c)) for c in ("gpu", "cpu", "dram", "ram")),
            ";".join(sorted({m for c in a["energy_by_component"] for m in c["methods"]})),
            ";".join(f"{p:g}" for p in a["pue"]), a["facility_energy_kwh"], "",
            "; ".join(a["intensity_sources"]), opt(a["time_weighted_g_per_kwh"]),
            opt(a["annual_average_g_per_kwh"]), opt(a["co2e_g"]),
            opt(a["co2e_g_annual_average"]), opt(a["flops"]), opt(a["params_total"]),
            opt(a["cost"]),
            *(opt((a["metrics"].get(k) or {}).get("mean")) for k in metric_keys),
        ])  # fmt: skip
    return buf.getvalue()


def render(report: Mapping[str, Any], fmt: str, **options: Any) -> str:
    """Render ``report`` in one of :data:`FORMATS`."""
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "latex":
        return render_latex(report, standalone=bool(options.get("standalone")))
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        from greentrack.report.html import render_html

        return render_html(report, db_url=options.get("db_url"), plots=options.get("plots", True))
    raise ConfigError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------------------------
# The one library call behind `greentrack report`
# --------------------------------------------------------------------------------------------


@dataclass
class ReportOutput:
    """What :func:`make_report` produced: the text, and the files it wrote (if ``output``)."""

    text: str
    files: list[Path]
    report: dict[str, Any]


def make_report(
    run_ids: Sequence[str] = (),
    *,
    db_url: str | None = None,
    project: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    since: str | None = None,
    fmt: str = "markdown",
    output: str | Path | None = None,
    final: Sequence[str] = (),
    seed_keys: Sequence[str] = ("seed",),
    price_per_kwh: float | None = None,
    currency: str = "EUR",
    flops: bool = False,
    standalone: bool = False,
    plots: bool = True,
) -> ReportOutput:
    """Load runs (ids, or a project/tags/since selection, or the latest run) and render a report.

    With ``output``, writes the file (and, for LaTeX, the BibTeX beside it as ``<stem>.bib``).
    ``final`` are run id prefixes of the final runs; they are added to the report if the
    selection did not include them.
    """
    from greentrack.report.data import load_runs, store
    from greentrack.store.queries import parse_since, resolve_run_id

    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    with store(db_url) as conn:
        runs = load_runs(
            conn, run_ids, project=project, tags=tags,
            since=parse_since(since) if since else None,
        )  # fmt: skip
        final_ids = [resolve_run_id(conn, f) for f in final]
        missing = [f for f in final_ids if f not in {r["id"] for r in runs}]
        if missing:
            runs += load_runs(conn, missing)
        report = build_report(
            runs, final=final_ids, seed_keys=seed_keys, price_per_kwh=price_per_kwh,
            currency=currency, flops=flops,
        )  # fmt: skip
    from greentrack.report.data import db_url as resolve_db

    text = render(report, fmt, standalone=standalone, db_url=resolve_db(db_url), plots=plots)
    files: list[Path] = []
    if output is not None:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        files.append(path)
        if fmt == "latex":
            bib = path.with_suffix(".bib") if not standalone else path.with_name("greentrack.bib")
            bib.write_text(bibtex(), encoding="utf-8")
            files.append(bib)
    return ReportOutput(text=text, files=files, report=report)
