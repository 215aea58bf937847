"""``greentrack plot``: load what a figure needs from the store, then call a pure plot function.

Kinds: ``power``, ``energy`` and ``intensity`` (one run), ``pareto`` (several runs, or a project),
``schedule`` (a plan — from ``greentrack schedule --format json`` or a run scheduled with it —
over the intensity series it was planned on, from ``--csv`` files or the plan's source).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError

__all__ = ["KINDS", "make_plot"]

KINDS = ("power", "energy", "intensity", "pareto", "schedule")


def make_plot(
    kind: str,
    output: str | Path,
    run_ids: Sequence[str] = (),
    *,
    db_url: str | None = None,
    project: str | None = None,
    metric: str | None = None,
    lower_is_better: bool = False,
    plan_file: str | Path | None = None,
    csv: Sequence[str] = (),
    region: str | None = None,
    source: str | None = None,
    title: str | None = None,
) -> Path:
    """Draw one figure into ``output`` (``.svg``, ``.png`` or ``.pdf``); returns the path."""
    from greentrack.report import gridplots, pareto, runplots
    from greentrack.report.data import iso_to_s, store
    from greentrack.report.plotting import DEFAULT_BUCKETS
    from greentrack.store.reads import load_runs, load_samples

    if kind not in KINDS:
        raise ConfigError(f"unknown plot kind {kind!r}; choose one of {', '.join(KINDS)}")
    out = Path(output)
    if kind == "schedule" and plan_file is not None:
        plan = _read_plan(plan_file)
        gridplots.plot_schedule(_plan_series(plan, csv, region, source), plan, out, title=title)
        return out
    with store(db_url) as conn:
        if kind == "pareto":
            runs = load_runs(conn, run_ids, project=project, detail=False)
        else:
            if len(run_ids) > 1:
                raise ConfigError(f"a {kind} plot shows one run; give one RUN (got {len(run_ids)})")
            runs = load_runs(conn, run_ids)
        samples = None
        if kind in ("power", "energy"):
            samples = load_samples(conn, runs[0]["id"], buckets=DEFAULT_BUCKETS)
    run = runs[0]
    name = f"{run['project']} / {run['name']} ({run['id'][:8]})"
    start = iso_to_s(run.get("started_at"))
    if kind == "power":
        runplots.plot_power(
            samples, out, start_s=start, phases=run["phases"], title=title or f"Power: {name}"
        )
    elif kind == "energy":
        runplots.plot_energy(
            samples, out, start_s=start, phases=run["phases"], title=title or f"Energy: {name}"
        )
    elif kind == "intensity":
        from greentrack.report.model import price_tag

        if not (run.get("intensity_series") or {}).get("g_per_kwh"):
            raise ConfigError(
                f"run {run['id'][:8]} has no stored intensity series (it ended without carbon "
                "data); nothing to plot"
            )
        inten = price_tag(run)["intensity"] or {}
        gridplots.plot_intensity(
            run["intensity_series"],
            out,
            run_start_s=start,
            run_end_s=iso_to_s(run.get("ended_at")),
            time_weighted_g_per_kwh=inten.get("time_weighted_g_per_kwh"),
            annual_g_per_kwh=inten.get("annual_average_g_per_kwh"),
            provenance=run.get("intensity_source"),
            title=title,
        )
    elif kind == "pareto":
        key = pareto.pick_metric(runs, metric)
        if key is None:
            raise ConfigError("these runs logged no metric; log one with run.log(accuracy=...)")
        pareto.plot_pareto(
            pareto.pareto_points(runs, key),
            out,
            metric=key,
            higher_is_better=not lower_is_better,
            title=title,
        )
    else:  # schedule plan stored on a run
        if not run.get("plan"):
            raise ConfigError(
                f"run {run['id'][:8]} was not scheduled; pass --plan plan.json (from "
                "`greentrack schedule --format json`)"
            )
        plan = run["plan"]
        gridplots.plot_schedule(_plan_series(plan, csv, region, source), plan, out, title=title)
    return out


def _read_plan(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no plan file {path}; write one with `greentrack schedule --format json > plan.json`"
        ) from None
    except ValueError as e:
        raise ConfigError(
            f"{path} is not JSON ({e}); use `greentrack schedule --format json`"
        ) from None
    if not isinstance(data, dict) or not (data.get("segments_s") or data.get("segments")):
        raise ConfigError(f"{path} has no plan segments; use `greentrack schedule --format json`")
    return data


def _plan_series(
    plan: dict[str, Any], csv: Sequence[str], region: str | None, source: str | None
) -> Any:
    """The intensity series behind a plan: CSV files, else the plan's source (history only)."""
    from greentrack.report.data import iso_to_s

    src = plan.get("source") or {}
    zone = region or src.get("zone")
    if csv:
        from greentrack.carbon.csvsource import load_csv
        from greentrack.carbon.regions import canonical_zone

        return load_csv(list(csv), zone=canonical_zone(zone)) if zone else load_csv(list(csv))
    if src.get("name") == "csv":
        raise ConfigError("the plan was made on CSV data: pass the same file(s) with --csv")
    if not zone:
        raise ConfigError("the plan names no zone: pass --region or --csv")
    from greentrack.carbon.registry import get_source

    t0 = iso_to_s(plan.get("submitted")) or min(a for a, _ in plan.get("segments_s") or [[0, 0]])
    t1 = iso_to_s(plan.get("deadline")) or max(b for _, b in plan.get("segments_s") or [[0, 0]])
    return get_source(source or src.get("name")).series(zone, t0 - 3600.0, t1 + 3600.0)
