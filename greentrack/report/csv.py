"""The report as CSV (``greentrack report --format csv``): one row per run, then the totals."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from greentrack.report.table import hardware_text

__all__ = ["CSV_COLUMNS", "render", "render_csv"]


CSV_COLUMNS = [
    "scope",
    "id",
    "project",
    "name",
    "status",
    "final",
    "started_at",
    "duration_s",
    "device_hours",
    "hardware",
    "energy_kwh",
    "energy_gpu_kwh",
    "energy_cpu_kwh",
    "energy_dram_kwh",
    "energy_ram_kwh",
    "methods",
    "pue",
    "facility_energy_kwh",
    "node_energy_kwh",
    "region",
    "intensity_sources",
    "time_weighted_g_per_kwh",
    "annual_average_g_per_kwh",
    "co2e_g",
    "co2e_basis",
    "co2e_g_annual_average",
    "embodied_g",
    "total_co2e_g",
    "flops",
    "params_total",
    "cost",
    "energy_basis",
    "assumptions",
]


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
        hw = hardware_text(
            {
                "gpus": t["hardware"]["gpus"],
                "cpu_packages": t["hardware"]["cpu_packages"],
                "cpu_models": [t["hardware"]["cpu_model"]] if t["hardware"]["cpu_model"] else [],
            }
        )
        src = " ".join(str(i[k]) for k in ("source", "zone", "kind", "period") if i.get(k))
        w.writerow(
            [
                "run",
                r["id"],
                r["project"],
                r["name"],
                r["status"],
                t["final"],
                r["started_at"],
                t["duration_s"],
                t["device_hours"],
                hw,
                t["energy_kwh"],
                *(opt(comp(t["energy_by_component"], c)) for c in ("gpu", "cpu", "dram", "ram")),
                ";".join(sorted({m for c in t["energy_by_component"] for m in c["methods"]})),
                t["pue"],
                t["facility_energy_kwh"],
                opt(t.get("node_energy_kwh")),  # the node's BMC: beside, never in energy_kwh
                opt(t["region"]),
                src,
                opt(i.get("time_weighted_g_per_kwh")),
                opt(i.get("annual_average_g_per_kwh")),
                opt(t["co2e_g"]),
                opt(t.get("co2e_basis")),
                opt(t["co2e_g_annual_average"]),
                opt(t.get("embodied_g")),
                opt(t.get("total_co2e_g")),
                opt(t["flops"]),
                opt(t["params_total"]),
                opt(t.get("cost")),
                t["energy_basis"]["basis"],
                " | ".join(a["text"] for a in t["assumptions"]),
                *(opt(t["metrics"].get(k)) for k in metric_keys),
            ]
        )
    for scope in ("totals", "final", "tuning"):
        a = report[scope]
        if not a:
            continue
        w.writerow(
            [
                "total" if scope == "totals" else scope,
                "",
                "",
                "",
                "",
                "",
                "",
                a["duration_s"],
                a["device_hours"],
                hardware_text(a),
                a["energy_kwh"],
                *(opt(comp(a["energy_by_component"], c)) for c in ("gpu", "cpu", "dram", "ram")),
                ";".join(sorted({m for c in a["energy_by_component"] for m in c["methods"]})),
                ";".join(f"{p:g}" for p in a["pue"]),
                a["facility_energy_kwh"],
                opt(a.get("node_energy_kwh")),
                "",
                "; ".join(a["intensity_sources"]),
                opt(a["time_weighted_g_per_kwh"]),
                opt(a["annual_average_g_per_kwh"]),
                opt(a["co2e_g"]),
                opt(a.get("co2e_basis")),
                opt(a["co2e_g_annual_average"]),
                opt(a.get("embodied_g")),
                opt(a.get("total_co2e_g")),
                opt(a["flops"]),
                opt(a["params_total"]),
                opt(a["cost"]),
                a["energy_basis"]["basis"],
                "",
                *(opt((a["metrics"].get(k) or {}).get("mean")) for k in metric_keys),
            ]
        )
    return buf.getvalue()


def render(report: Mapping[str, Any], **_options: Any) -> str:
    """The format's entry point (:mod:`greentrack.report.render`): :func:`render_csv`."""
    return render_csv(report)
