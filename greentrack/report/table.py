"""The table model shared by the human formats: rows, number formatting, the summary sentence.

:func:`table_rows` turns a report (:func:`greentrack.report.pricetag.build_report`) into rows of
(label, one value per column, how it was obtained); Markdown, LaTeX and HTML all print those
rows, so the three always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrack.report.model import COMPONENT_NAMES, NA, basis_phrase

__all__ = [
    "Row",
    "assumption_lines",
    "cell_text",
    "fmt_duration",
    "fmt_int",
    "fmt_num",
    "fmt_stat",
    "groups_table",
    "hardware_text",
    "runs_table",
    "summary_sentence",
    "table_rows",
]


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


def cpu_text(model: str, agg: Mapping[str, Any]) -> str:
    """``AMD EPYC 7742 (2 packages, 128 logical CPUs)``: a CPU model with what the runs saw.

    The logical CPU count is the host's (``os.cpu_count()`` recorded at run start); several
    counts of one model (different machines) are listed.
    """
    extra = []
    n = agg.get("cpu_packages") or 0
    if n > 1:
        extra.append(f"{n} packages")
    counts = (agg.get("cpu_counts") or {}).get(model) or []
    if counts:
        extra.append("/".join(str(c) for c in counts) + " logical CPUs")
    return model + (f" ({', '.join(extra)})" if extra else "")


def hardware_text(agg: Mapping[str, Any], sep: str = "; ") -> str:
    """``2 × NVIDIA A100; AMD EPYC 7742 (128 logical CPUs)`` (GPUs with counts, then CPUs)."""
    parts = [f"{g['count']} × {g['model']}" for g in agg["gpus"]]
    parts += [cpu_text(m, agg) for m in agg["cpu_models"]]
    return sep.join(parts) or NA


def table_rows(report: Mapping[str, Any]) -> tuple[list[str], list[Row]]:
    """Column names and rows of the price-tag table."""
    cols = _columns(report)
    aggs = [a for _, a in cols]
    rows: list[Row] = []
    if len(report["runs"]) > 1:
        rows.append(Row("Runs", [a["runs"] for a in aggs], "runs in the report", kind="int"))
    gpus = [", ".join(f"{g['count']} × {g['model']}" for g in a["gpus"]) or "none" for a in aggs]
    rows.append(Row("GPUs", gpus, "names from the GPU meters; most used by one run", kind="text"))
    cpus = ["; ".join(cpu_text(m, a) for m in a["cpu_models"]) or NA for a in aggs]
    rows.append(Row("CPU", cpus, "model and logical CPU count recorded at run start", kind="text"))
    rows.append(
        Row(
            "Wall time",
            [a["duration_s"] for a in aggs],
            "wall clock, meter baseline to final read",
            kind="dur",
        )
    )
    kinds = sorted({k for a in aggs for k in a["device_kinds"]})
    unit = (
        {"gpu": "GPU-h", "cpu": "CPU-h"}.get(kinds[0], "device-h")
        if len(kinds) == 1
        else ("device-h")
    )
    rows.append(
        Row(
            "Device-hours",
            [a["device_hours"] for a in aggs],
            "wall time × devices (GPUs, else CPU packages)",
            unit=unit,
        )
    )
    comp_names = [c["component"] for c in report["totals"]["energy_by_component"]]
    for comp in comp_names:
        vals, methods = [], []
        for a in aggs:
            c = next((c for c in a["energy_by_component"] if c["component"] == comp), None)
            vals.append(c["energy_kwh"] if c else None)
            if c:
                methods += [m for m in c["methods"] if m not in methods]
        noted = any(
            a["kind"] == "component" and a.get("component") == comp
            for r in report["runs"]
            for a in r["pricetag"]["assumptions"]
        )
        rows.append(
            Row(
                f"Energy, {COMPONENT_NAMES.get(comp, comp)}",
                vals,
                "method: "
                + ", ".join(sorted(methods))
                + ("; assumptions listed below" if noted else ""),
                unit="kWh",
            )
        )
    rows.append(
        Row("Energy, devices", [a["energy_kwh"] for a in aggs], "sum of the components", unit="kWh")
    )
    rows.append(
        Row(
            "PUE",
            [", ".join(f"{p:g}" for p in a["pue"]) or NA for a in aggs],
            "configured facility overhead (GREENTRACK_PUE)",
            kind="text",
        )
    )
    rows.append(
        Row(
            "Energy, facility",
            [a["facility_energy_kwh"] for a in aggs],
            "device energy × PUE",
            unit="kWh",
        )
    )
    if any(a.get("node_energy_kwh") is not None for a in aggs):
        rows.append(
            Row(
                "Energy, measured at the node",
                [a.get("node_energy_kwh") for a in aggs],
                "the node's BMC (IPMI DCMI / Redfish): fans, PSU losses and every part; shown "
                "beside the components, not added to them",
                unit="kWh",
            )
        )
        rows.append(
            Row(
                "Components' share of the node",
                [a.get("node_components_pct") for a in aggs],
                "devices' energy / the node's, runs with a BMC reading",
                kind="pct",
            )
        )
    regions = sorted({r["region"] for r in report["runs"] if r.get("region")})
    rows.append(
        Row(
            "Region",
            [", ".join(regions) or NA] + [""] * (len(aggs) - 1),
            "grid zone of the run",
            kind="text",
        )
    )
    srcs = "; ".join(report["totals"]["intensity_sources"]) or "no intensity data"
    on_node = any("node" in (a.get("co2e_basis") or "") for a in aggs)
    of_node = " (the node's × PUE where its BMC measured it)" if on_node else ""
    rows.append(
        Row(
            "Carbon intensity, time-weighted",
            [a["time_weighted_g_per_kwh"] for a in aggs],
            f"{srcs}; CO₂e / facility energy{of_node}",
            unit="g/kWh",
        )
    )
    rows.append(
        Row(
            "Carbon intensity, annual average",
            [a["annual_average_g_per_kwh"] for a in aggs],
            "static annual average of the zone",
            unit="g/kWh",
        )
    )
    rows.append(
        Row(
            "CO₂e, time-weighted",
            [a["co2e_g"] for a in aggs],
            "Σ interval energy × interval intensity"
            + ("; of the node's energy × PUE where its BMC measured it" if on_node else ""),
            unit="g",
        )
    )
    rows.append(
        Row(
            "CO₂e, annual average",
            [a["co2e_g_annual_average"] for a in aggs],
            f"facility energy{of_node} × annual average",
            unit="g",
        )
    )
    rows += _embodied_rows(report, aggs)
    if report["final"] and len(report["runs"]) > 1:
        rows.append(
            Row(
                "Share of facility energy",
                [a.get("share_energy_pct") for a in aggs[:2]] + [100.0],
                "part of all runs' facility energy",
                kind="pct",
            )
        )
        if report["totals"]["co2e_g"] is not None:
            rows.append(
                Row(
                    "Share of CO₂e",
                    [a.get("share_co2e_pct") for a in aggs[:2]] + [100.0],
                    "part of all runs' CO₂e",
                    kind="pct",
                )
            )
    if report["options"]["show_flops"]:
        rows.append(Row("FLOPs", [a["flops"] for a in aggs], "logged by the run (log_flops)"))
    if any(a["params_total"] is not None for a in aggs):
        rows.append(
            Row(
                "Parameters",
                [a["params_total"] for a in aggs],
                "param params_total logged by the run",
                kind="int",
            )
        )
    metric_keys = sorted({k for a in aggs for k in a["metrics"]})
    for k in metric_keys:
        stats = [a["metrics"].get(k) for a in aggs]
        single = len(report["runs"]) == 1
        rows.append(
            Row(
                k,
                stats,
                "last logged value" if single else "mean ± std over the runs (n)",
                kind="stat",
                digits=4,
            )
        )
    price = report["options"]["price_per_kwh"]
    if price is not None:
        cur = report["options"]["currency"]
        rows.append(
            Row(
                "Electricity cost",
                [a["cost"] for a in aggs],
                f"facility energy × {price:g} {cur}/kWh (given)",
                unit=cur,
            )
        )
    return [c for c, _ in cols], rows


def _embodied_rows(report: Mapping[str, Any], aggs: Sequence[Mapping[str, Any]]) -> list[Row]:
    """CO₂e, embodied (the table rows used, README: Embodied) and operational + embodied."""
    if all(a.get("embodied_g") is None for a in aggs):
        return []
    used: dict[str, str] = {}
    missing: list[str] = []
    for r in report["runs"]:
        for e in r["pricetag"].get("embodied_rows") or []:
            used.setdefault(str(e["row"]), str(e["source"]))
        missing += [m for m in r["pricetag"].get("embodied_missing") or [] if m not in missing]
    how = "SCI M = TE × (TiR / EL) × (RR / ToR); rows: " + "; ".join(
        f"{k} ({v})" for k, v in used.items()
    )
    if missing:
        how += "; not counted (no embodied figure for this model; add one with [embodied.kg]): "
        how += ", ".join(missing)
    return [
        Row("CO₂e, embodied", [a.get("embodied_g") for a in aggs], how, unit="g"),
        Row(
            "CO₂e, total",
            [a.get("total_co2e_g") for a in aggs],
            "operational (time-weighted) + embodied",
            unit="g",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def fmt_num(x: float | None, sig: int = 3) -> str:
    """A number with ``sig`` significant digits (:func:`greentrack.units.format_sig`)."""
    from greentrack.units import format_sig

    return format_sig(x, sig, na=NA)


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


def cell_text(row: Row, value: Any) -> str:
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
# Sentences and tables of the report
# --------------------------------------------------------------------------------------------


def summary_sentence(report: Mapping[str, Any]) -> str:
    """One plain-text sentence: the final model (or all runs) and the whole development."""
    t = report["totals"]
    scope = report["final"] or t
    what = (
        "The final model"
        if report["final"]
        else ("This run" if len(report["runs"]) == 1 else f"These {t['runs']} runs")
    )
    text = (
        f"{what} took {fmt_duration(scope['duration_s'])} of wall time "
        f"({fmt_num(scope['device_hours'])} device-hours) on {hardware_text(scope, ' with ')} "
        f"and used "
        f"{fmt_num(scope['facility_energy_kwh'])} kWh ({basis_phrase(scope['energy_basis'])})"
    )
    if scope["co2e_g"] is not None:
        text += f", emitting {fmt_num(scope['co2e_g'])} g CO₂e (time-weighted"
        text += ", of the node's energy)" if scope.get("co2e_basis") == "node" else ")"
    text += "."
    if scope.get("node_energy_kwh") is not None:
        share = scope.get("node_components_pct")
        text += (
            f" Measured at the node: {fmt_num(scope['node_energy_kwh'])} kWh; components: "
            f"{fmt_num(scope['node_energy_kwh'] * share / 100.0)} kWh ({share:.0f} % of the node)."
            if share is not None
            else f" Measured at the node: {fmt_num(scope['node_energy_kwh'])} kWh."
        )
    if report["final"] and report["tuning"]["runs"]:
        tu = report["tuning"]
        text += (
            f" The whole development ({t['runs']} runs) used {fmt_num(t['facility_energy_kwh'])} "
            f"kWh"
            + (f" and {fmt_num(t['co2e_g'])} g CO₂e" if t["co2e_g"] is not None else "")
            + f"; tuning took {fmt_num(tu['share_energy_pct'])} % of the energy."
        )
    return text


def runs_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    metric_keys = sorted({k for r in report["runs"] for k in r["pricetag"]["metrics"]})
    headers = [
        "Run",
        "Name",
        "Status",
        "Final",
        "Started (UTC)",
        "Wall time",
        "Energy (kWh)",
        "Methods",
        "CO₂e (g)",
        *metric_keys,
    ]
    rows = []
    for r in report["runs"]:
        t = r["pricetag"]
        methods = sorted({m for c in t["energy_by_component"] for m in c["methods"]})
        rows.append(
            [
                r["id"][:8],
                r["name"],
                r["status"],
                "yes" if t["final"] else "",
                (r.get("started_at") or "")[:19].replace("T", " "),
                fmt_duration(t["duration_s"]),
                fmt_num(t["energy_kwh"]),
                ", ".join(methods) or NA,
                fmt_num(t["co2e_g"]),
                *[fmt_num(t["metrics"].get(k), 4) for k in metric_keys],
            ]
        )
    return headers, rows, "lllllrrlr" + "r" * len(metric_keys)


def groups_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    metric_keys = sorted({k for g in report["groups"] for k in g["metrics"]})
    headers = ["Group", "n", "Seeds", "Energy (kWh)", "CO₂e (g)", "Wall time (s)", *metric_keys]
    rows = []
    for g in report["groups"]:
        params = ", ".join(f"{k}={v}" for k, v in sorted(g["params"].items()))
        rows.append(
            [
                f"{g['project']}/{g['name']}" + (f" ({params})" if params else ""),
                str(g["n"]),
                ", ".join(str(s) for s in g["seeds"]),
                fmt_stat(g["energy_kwh"], 3),
                fmt_stat(g["co2e_g"], 3),
                fmt_stat(g["duration_s"], 3),
                *[fmt_stat(g["metrics"].get(k), 4) for k in metric_keys],
            ]
        )
    return headers, rows, "lrlrrr" + "r" * len(metric_keys)


def assumption_lines(report: Mapping[str, Any]) -> list[str]:
    """The report's assumptions as plain lines; with several runs, each says which runs
    (``runs 3f2a1b2c, 9b1c0d3e`` or ``all runs``)."""
    n_runs = len(report["runs"])
    out = []
    for a in report.get("assumptions") or []:
        text = a["text"]
        if n_runs > 1:
            ids = a["run_ids"]
            which = (
                "all runs"
                if len(ids) == n_runs
                else ("run " if len(ids) == 1 else "runs ")
                + ", ".join(i[:8] for i in ids[:6])
                + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
            )
            text += f" ({which})"
        out.append(text)
    return out
