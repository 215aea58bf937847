"""``greentrack report --sci``: the Software Carbon Intensity of stored runs.

``SCI = ((E × I) + M) / R`` (Green Software Foundation, ISO/IEC 21031:2024), per run and, for a
project, per final model and for the whole development (tuning included):

* E: facility energy, kWh (device energy × PUE), measured by the run;
* I: the intensity the run was accounted with (time-weighted: operational g / E);
* M: the embodied share stored on the run (:mod:`greentrack.carbon.embodied`, schema 0004);
* R: ``--per N`` functional units (``--unit inference``), or the units the run counted with
  ``run.log_units(n, unit)`` (the metric ``units/<unit>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrack.carbon.accounting import J_PER_KWH
from greentrack.carbon.embodied import SCI, sci
from greentrack.errors import ConfigError

__all__ = ["SciReport", "sci_from_store", "sci_report"]


@dataclass
class SciReport:
    """The rows (one per run, then the project's totals) and their text."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""


def _units(run: dict[str, Any], per: float | None, unit: str | None) -> tuple[float, str, str]:
    if per is not None:
        return float(per), unit or "run", "given (--per)"
    metrics = run.get("metrics") or {}
    logged = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("units/")}
    if unit and unit in logged:
        return float(logged[unit]), unit, f"logged by the run (run.log_units, units/{unit})"
    if not unit and len(logged) == 1:
        ((name, value),) = logged.items()
        return float(value), name, f"logged by the run (run.log_units, units/{name})"
    if not unit:
        return 1.0, "run", "one run (no --per, no units logged)"
    raise ConfigError(
        f"run {run['id'][:8]} logged no {unit!r} units; give --per N or call "
        f'run.log_units(n, "{unit}") in the run'
    )


def _score(run: dict[str, Any], per: float | None, unit: str | None) -> SCI:
    if run.get("co2e_g") is None:
        raise ConfigError(f"run {run['id'][:8]} has no CO2e (no region): SCI needs E x I")
    units, name, how = _units(run, per, unit)
    if units <= 0:
        raise ConfigError(f"run {run['id'][:8]}: R is {units:g} {name}; SCI needs R > 0")
    emb = run.get("embodied") or {}
    return sci(
        run["energy_j"] * (run.get("pue") or 1.0) / J_PER_KWH,
        run.get("embodied_g") or 0.0,
        units,
        name,
        operational_g=run["co2e_g"],
        methods={
            "E": "measured device energy x PUE (see the run's components)",
            "I": f"time-weighted: {(run.get('intensity_source') or {}).get('name', '?')} "
            f"{run.get('region') or ''}".strip(),
            "M": emb.get("method", "not stored: runs before schema 0004 count no embodied")
            if run.get("embodied_g") is not None
            else "not stored: runs before schema 0004 count no embodied",
            "R": how,
        },
    )


def sci_report(
    runs: Sequence[dict[str, Any]],
    *,
    per: float | None = None,
    unit: str | None = None,
    final: Sequence[str] = (),
) -> SciReport:
    """SCI of each run (``runs`` as :func:`greentrack.store.queries.get_run` returns them);
    with several, also the final models' and the whole development's (every run's E, I·E and
    M over the final runs' R)."""
    if per is not None and not per > 0:
        raise ConfigError(f"--per {per:g}: R must be > 0, e.g. --per 1000")
    report = SciReport()
    lines = [
        "| run | E (kWh) | I (g/kWh) | E x I (g) | M (g) | R | SCI (g per unit) |",
        "|---|---|---|---|---|---|---|",
    ]
    scores = []
    for run in runs:
        s = _score(run, per, unit)
        scores.append((run, s))
        report.rows.append({"run": run["id"], "name": run.get("name"), **s.to_dict()})
        lines.append(_line(f"{run['id'][:8]} {run.get('name') or ''}".strip(), s))
    finals = [
        (r, s)
        for r, s in scores
        if r["id"] in final
        or any(r["id"].startswith(f) for f in final)
        or (r.get("tags") or {}).get("final") == "true"
    ]
    if len(scores) > 1 and finals:
        e = sum(s.energy_kwh for _, s in scores)
        op = sum(s.operational_g for _, s in scores)
        m = sum(s.embodied_g for _, s in scores)
        r_units = sum(s.units for _, s in finals)
        whole = sci(
            e,
            m,
            r_units,
            finals[0][1].unit,
            operational_g=op,
            methods={"R": "the final runs' units; E, I and M of every run"},
        )
        report.rows.append({"run": "whole development", **whole.to_dict()})
        lines.append(_line("whole development (tuning included)", whole))
    notes = ["", "Method: SCI = ((E x I) + M) / R (ISO/IEC 21031:2024)."]
    for run, s in scores:
        notes.append(f"- {run['id'][:8]}: " + "; ".join(f"{k}: {v}" for k, v in s.methods.items()))
    report.text = "\n".join(lines + notes) + "\n"
    return report


def _line(label: str, s: SCI) -> str:
    i = "-" if s.intensity_g_per_kwh is None else f"{s.intensity_g_per_kwh:.4g}"
    return (
        f"| {label} | {s.energy_kwh:.4g} | {i} | {s.operational_g:.4g} | {s.embodied_g:.4g} | "
        f"{s.units:g} {s.unit} | {s.sci_g_per_unit:.4g} |"
    )


def sci_from_store(
    run_ids: Sequence[str],
    *,
    db_url: str | None,
    project: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    since: str | None = None,
    per: float | None = None,
    unit: str | None = None,
    final: Sequence[str] = (),
) -> SciReport:
    """The runs named (prefixes or ``latest``), else every run of ``project`` (with
    ``tags``/``since``), else the latest run: read from the store, then :func:`sci_report`."""
    from greentrack.config import load_config
    from greentrack.store import queries
    from greentrack.timefmt import parse_since

    conn = queries.open_store(db_url or load_config().db_url)
    try:
        if run_ids:
            ids = [queries.resolve_run_id(conn, r) for r in run_ids]
        elif project:
            rows = queries.list_runs(
                conn,
                project=project,
                tags=list(tags),
                since=parse_since(since) if since else None,
                limit=None,
            )
            ids = [r["id"] for r in rows]
            if not ids:
                raise ConfigError(f"project {project!r} has no runs matching the filters")
        else:
            ids = [queries.resolve_run_id(conn, "latest")]
        runs = [queries.get_run(conn, i, detail=False) for i in ids]
    finally:
        conn.close()
    return sci_report(runs, per=per, unit=unit, final=final)
