"""The price tag of a piece of ML work: what it took, and how each figure was obtained.

Green AI (Schwartz, Dodge, Smith & Etzioni, CACM 2020) asks every paper to report the cost of its
results next to their accuracy — hardware, time, energy, emissions, FLOPs — for the final model
*and* for the whole development, tuning included. This module assembles that price tag:
:func:`build_report` turns run objects (the store's JSON contract) into the report object, from
the per-run figures of :mod:`greentrack.report.model`; :func:`make_report` loads the runs and
prints the report in any registered format (:mod:`greentrack.report.render`).

Rules (all documented in the report's own method notes):

* **Final runs** are those tagged ``final=true`` (also ``1``/``yes``) or named with ``--final RUN``.
  Every other run in the report counts as development ("tuning"); the tuning share is its part
  of the total energy and CO₂e. Without a final run no share is computed, and the report says so.
* **Seeds**: runs with the same project, name and parameters apart from ``seed`` (configurable)
  form a group; groups of two or more runs get mean ± sample standard deviation (n − 1).
* **Device-hours**, **measured or estimated** and **assumptions**: see
  :mod:`greentrack.report.model`.
* Every run counts, whatever its status: a failed or crashed run used energy up to its last
  checkpoint.
* Nothing is invented: a figure the store does not hold (no intensity data, no FLOPs logged) is
  shown as "n/a", never estimated here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError
from greentrack.report.model import (
    COMPONENT_NAMES,
    METHOD_TEXT,
    REPORT_SCHEMA,
    energy_basis,
    finite,
    is_final,
    names_text,
    price_tag,
)

__all__ = [
    "ReportOutput",
    "aggregate",
    "build_report",
    "make_report",
    "method_notes",
    "report_assumptions",
]


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


def aggregate(tags: Sequence[dict[str, Any]], price: float | None) -> dict[str, Any]:
    """Totals over price tags: energies, time, emissions, FLOPs, hardware, sources."""
    comps: dict[str, dict[str, Any]] = {}
    for t in tags:
        for c in t["energy_by_component"]:
            e = comps.setdefault(
                c["component"], {"component": c["component"], "energy_kwh": 0.0, "methods": []}
            )
            e["energy_kwh"] += c["energy_kwh"]
            e["methods"] = sorted(set(e["methods"]) | set(c["methods"]))
            e.setdefault("notes", [])
            e["notes"] += [n for n in c.get("notes") or [] if n not in e["notes"]]
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
    facility_with = sum(t["co2e_facility_energy_kwh"] for t in with_co2e)
    with_annual = [t for t in tags if t["co2e_g_annual_average"] is not None]
    facility_annual = sum(t["co2e_facility_energy_kwh"] for t in with_annual)
    with_node = [t for t in tags if t["node_energy_kwh"] is not None]
    node_kwh = sum(t["node_energy_kwh"] for t in with_node) if with_node else None
    bases = sorted({t["co2e_basis"] for t in with_co2e if t.get("co2e_basis")})
    metrics: dict[str, list[float]] = {}
    for t in tags:
        for k, v in t["metrics"].items():
            if finite(v) is not None:
                metrics.setdefault(k, []).append(float(v))
    params_totals = sorted({t["params_total"] for t in tags if t["params_total"] is not None})
    kinds = sorted({t["device_kind"] for t in tags if t["device_kind"] != "none"})
    by_component = sorted(
        comps.values(), key=lambda e: (order.get(e["component"], 9), e["component"])
    )
    cpu_counts: dict[str, set[int]] = {}
    for t in tags:
        hw = t["hardware"]
        if hw["cpu_model"] and hw.get("cpu_count"):
            cpu_counts.setdefault(hw["cpu_model"], set()).add(int(hw["cpu_count"]))
    return {
        "runs": len(tags),
        "duration_s": sum(t["duration_s"] for t in tags),
        "device_hours": sum(t["device_hours"] for t in tags),
        "device_kinds": kinds,
        "energy_by_component": by_component,
        "energy_basis": energy_basis(by_component),
        "energy_kwh": sum(t["energy_kwh"] for t in tags),
        "pue": sorted({t["pue"] for t in tags}),
        "facility_energy_kwh": facility,
        # the nodes' own figures (BMC) and the components of those runs, beside each other
        "node_energy_kwh": node_kwh,
        "node_runs": len(with_node),
        "node_components_pct": 100.0 * sum(t["energy_kwh"] for t in with_node) / node_kwh
        if node_kwh
        else None,
        "co2e_basis": "+".join(bases) or None,
        "co2e_g": co2e,
        "co2e_g_annual_average": annual,
        "embodied_g": _sum_known(t.get("embodied_g") for t in tags),
        "total_co2e_g": _sum_known(t.get("total_co2e_g") for t in tags)
        if all(t.get("total_co2e_g") is not None for t in tags)
        else None,
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
        ),
        "cpu_packages": max((t["hardware"]["cpu_packages"] for t in tags), default=0),
        "cpu_counts": {m: sorted(n) for m, n in sorted(cpu_counts.items())},
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
                if finite(v) is not None:
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
                ],
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
        runs: run objects (from :func:`greentrack.store.reads.load_runs`; ``meta`` adds the CPU).
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
    totals = aggregate(tags, price_per_kwh)
    finals = [o for o in objs if o["pricetag"]["final"]]
    tuning = [o for o in objs if not o["pricetag"]["final"]]
    final_part = tuning_part = None
    if finals:
        final_part = aggregate([o["pricetag"] for o in finals], price_per_kwh)
        final_part["run_ids"] = [o["id"] for o in finals]
        tuning_part = aggregate([o["pricetag"] for o in tuning], price_per_kwh)
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
    report["assumptions"] = report_assumptions(objs)
    report["method_notes"] = method_notes(report)
    return report


def report_assumptions(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs' :func:`assumptions`, each distinct line once: ``[{kind, text, run_ids}]``
    (``run_ids`` the full ids of the runs it applies to, in report order)."""
    by_text: dict[str, dict[str, Any]] = {}
    for r in runs:
        for a in r["pricetag"]["assumptions"]:
            entry = by_text.setdefault(
                a["text"], {"kind": a["kind"], "text": a["text"], "run_ids": []}
            )
            if r["id"] not in entry["run_ids"]:
                entry["run_ids"].append(r["id"])
    order = {"component": 0, "phase": 1, "rank": 2, "warning": 3}
    return sorted(by_text.values(), key=lambda a: order.get(a["kind"], 9))


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
        f"{COMPONENT_NAMES.get(c['component'], c['component'])}: {', '.join(c['methods'])}"
        for c in totals["energy_by_component"]
    )
    basis = totals["energy_basis"]
    verb = {"measured": "measured", "estimated": "estimated"}.get(
        basis["basis"], "measured or estimated"
    )
    notes.append(
        f"Energy is the device energy greentrack {verb} over each run's wall time (meter "
        "baseline to final read), per component"
        + (f" ({per})" if per else "")
        + ". Methods: "
        + "; ".join(f"{m} = {METHOD_TEXT.get(m, m)}" for m in methods)
        + "."
        if methods
        else "Energy: no component was measured (0 kWh)."
    )
    if basis["estimated"]:
        notes.append(
            f"{names_text(basis['estimated'])} energy is estimated, not measured"
            + (
                f" ({names_text(basis['measured'])} energy is measured)"
                if basis["measured"]
                else " (no energy meter)"
            )
            + ", by a power model whose every assumption (TDP and its source, the share of the "
            "CPU counted, the load curve) is listed under Assumptions; treat it as rough."
        )
    if report.get("assumptions"):
        notes.append(
            "Assumptions lists, once each, every assumption behind a figure: the note each "
            "meter stored with its device, phases whose energy came from another method, ranks "
            "whose devices another rank measured, and the warnings recorded on the runs."
        )
    pues = totals["pue"]
    notes.append(
        "Facility energy = device energy × PUE ("
        + ", ".join(f"{p:g}" for p in pues)
        + "); a PUE of 1 leaves data-centre overhead (cooling, power delivery) out."
    )
    if totals["co2e_g"] is not None:
        srcs = "; ".join(totals["intensity_sources"]) or "unknown source"
        notes.append(
            "CO₂e (time-weighted) = the facility energy of every interval between two samples × "
            f"the mean grid carbon intensity over that interval ({srcs}); the intensity shown is "
            "CO₂e / facility energy."
        )
        notes.append(
            "CO₂e (annual average) = facility energy × the zone's static annual average intensity "
            "(CodeCarbon's energy-mix data), for comparison with reports that use yearly figures."
        )
    if totals.get("node_energy_kwh") is not None:
        notes.append(
            f"{totals['node_runs']} run(s) read the whole node's power from its BMC (IPMI DCMI "
            "or Redfish, sampled): that energy includes fans, PSU losses and every part no "
            "meter reads, and is shown beside the components, never added to them. Where the "
            "BMC measured the whole run, that run's CO₂e is of the node's energy × PUE (its "
            "facility energy in the intensity above), not of the components'."
        )
    if totals["runs_without_co2e"]:
        notes.append(
            f"{totals['runs_without_co2e']} run(s) have no CO₂e (no intensity data when they "
            "ended); totals of CO₂e leave them out."
        )
    kinds = totals["device_kinds"]
    if kinds:
        notes.append(
            "Device-hours = wall time × number of GPUs tracked (× CPU packages for runs without "
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
            )
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
                "of CO₂e. Failed, interrupted and crashed runs count (energy to their last "
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
            f"Electricity cost = facility energy × {price:g} {report['options']['currency']}/kWh "
            "as given on the command line (not a tariff lookup)."
        )
    return notes


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

    With ``output``, writes the file (and, for LaTeX, the BibTeX beside it as ``<stem>.bib``,
    which a ``--standalone`` document's ``\\bibliography`` names).
    ``final`` are run id prefixes of the final runs; they are added to the report if the
    selection did not include them.
    """
    from greentrack.report import render
    from greentrack.report.data import db_url as resolve_db
    from greentrack.report.data import store
    from greentrack.store.queries import resolve_run_id
    from greentrack.store.reads import load_runs
    from greentrack.timefmt import parse_since

    render.get_format(fmt)
    with store(db_url) as conn:
        runs = load_runs(
            conn,
            run_ids,
            project=project,
            tags=tags,
            since=parse_since(since) if since else None,
        )
        final_ids = [resolve_run_id(conn, f) for f in final]
        missing = [f for f in final_ids if f not in {r["id"] for r in runs}]
        if missing:
            runs += load_runs(conn, missing)
        report = build_report(
            runs,
            final=final_ids,
            seed_keys=seed_keys,
            price_per_kwh=price_per_kwh,
            currency=currency,
            flops=flops,
        )
    path = Path(output) if output is not None else None
    text = render.render(
        report,
        fmt,
        output=path,
        standalone=standalone,
        db_url=resolve_db(db_url),
        plots=plots,
    )
    files: list[Path] = []
    if path is not None:
        extra = render.companions(fmt, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        files.append(path)
        for companion, companion_text in extra:
            companion.write_text(companion_text, encoding="utf-8")
            files.append(companion)
    return ReportOutput(text=text, files=files, report=report)
