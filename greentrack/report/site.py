"""``greentrack dashboard``: a static, self-contained HTML site of the whole store.

Layout of the output folder::

    index.html          totals, a table per project, and every run in one sortable, filterable
                        table (the runs are one JSON blob in the page, rendered by ~150 lines of
                        vanilla JS; no CDN, no request)
    runs/<id>.html      one page per run: its price tag, power / energy / intensity charts (SVG),
                        phases, metrics, parameters, tags, events and method notes

Per-run pages are written for the latest ``latest`` runs (default 100) — the index of a store of
10,000 runs stays fast to build and to load — or for every run with ``all_pages=True``
(``--all``). Charts are drawn by :mod:`greentrack.report.svgchart` (about a millisecond each, not
matplotlib). The index reads its initial filter and sort from the query string
(``index.html?q=resnet&project=cifar&status=finished&sort=energy_kwh&dir=asc``), so a filtered
view can be bookmarked and shared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from greentrack.report.data import envelope, iso_to_s
from greentrack.report.svgchart import Band, Line, line_chart, time_ticks
from greentrack.security import is_run_id, safe_filename
from greentrack.store.reads import DeviceSeries

log = logging.getLogger("greentrack")

__all__ = ["DEFAULT_LATEST", "SiteResult", "build_site", "run_charts", "run_page"]

CHART_BUCKETS = 500
"""Time buckets of a run page's power chart (long runs are read reduced by the database)."""
DEFAULT_LATEST = 100
"""Runs that get their own page unless ``--all`` is given (the newest ones)."""
INDEX_COLUMNS = (
    "id",
    "project",
    "name",
    "status",
    "started_at",
    "duration_s",
    "energy_kwh",
    "facility_energy_kwh",
    "co2e_g",
    "embodied_g",
    "methods",
    "region",
    "final",
    "metrics",
    "tags",
    "page",
)


@dataclass
class SiteResult:
    """What :func:`build_site` wrote: the index, how many runs and run pages, how long it took."""

    index: Path
    runs: int
    pages: int
    seconds: float


def _hatch_index(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


def run_charts(
    run: Mapping[str, Any], samples: Sequence[DeviceSeries], *, buckets: int = 500
) -> list[tuple[str, str]]:
    """(caption, SVG) of a run's power, cumulative energy and intensity charts."""
    import numpy as np

    from greentrack.report.plotting import time_unit
    from greentrack.report.runplots import top_phases

    out = []
    start = iso_to_s(run.get("started_at"))
    series = [s for s in samples if s.t_s.size]
    uid = "r" + run["id"][:8]
    if series:
        t0 = start if start is not None else min(float(s.t_s[0]) for s in series)
        span = max(float(s.t_s[-1]) for s in series) - t0
        scale, unit = time_unit(span)
        names: list[str] = []
        bands = [
            Band((a - t0) / scale, (b - t0) / scale, f"phase: {n}", _hatch_index(names, n))
            for n, a, b in top_phases(run.get("phases") or [])
        ]
        lines, note = [], ""
        points = sum(max(d.points, d.t_s.size) for d in series)
        for s in series:
            if s.reduced:  # read in buckets by the database: each point ends its bucket
                lines.append(
                    Line(s.label, (s.t_s - t0) / scale, s.power_w, s.low, s.high, step="pre")
                )
                width = (s.t_s[-1] - s.t_s[0]) / max(s.t_s.size - 1, 1)
                note = f"min–max band and mean per {width:.3g} s bucket ({points:,} samples)"
                continue
            env = envelope(s.t_s, s.power_w, buckets)
            x = (env.t_s - t0) / scale
            if env.reduced:
                lines.append(Line(s.label, x, env.mean, env.low, env.high))
                note = f"min–max band and mean per {env.bucket_s:.3g} s bucket ({points:,} samples)"
            else:  # each point is the mean power since the previous one; the first since t0
                x, y = (s.t_s - t0) / scale, s.power_w
                if s.t_s[0] > t0 and np.isfinite(s.energy_j[0]):
                    first_w = float(s.energy_j[0]) / (float(s.t_s[0]) - t0)
                    x, y = np.concatenate(([0.0], x)), np.concatenate(([first_w], y))
                lines.append(Line(s.label, x, y, step="pre"))
        out.append(
            (
                "Power per device (phases hatched along the top).",
                line_chart(
                    lines,
                    title="Power",
                    x_label=f"time since start ({unit})",
                    y_label="power (W)",
                    bands=bands,
                    uid=uid + "p",
                    note=note,
                ),
            )
        )
        lines = []
        from greentrack.meters.nodepower import is_node  # its own line, never in the total

        total_j = max(
            sum(float(s.energy_j[-1]) for s in series if not is_node(s.device)),
            max(float(s.energy_j[-1]) for s in series),
        )
        e_scale, e_unit = (
            (3.6e6, "kWh") if total_j >= 3.6e5 else ((1e3, "kJ") if total_j >= 1e3 else (1.0, "J"))
        )
        grid = np.linspace(t0, t0 + span, 400) if span > 0 else np.array([t0])
        total = np.zeros_like(grid)
        for s in series:
            keep = (
                np.unique(np.linspace(0, s.t_s.size - 1, 400).astype(np.int64))
                if s.t_s.size > 400
                else np.arange(s.t_s.size)
            )
            x, y = (s.t_s[keep] - t0) / scale, s.energy_j[keep] / e_scale
            if s.t_s[0] > t0:  # cumulative energy is 0 at the start by definition
                x, y = np.concatenate(([0.0], x)), np.concatenate(([0.0], y))
            lines.append(Line(s.label, x, y))
            if not is_node(s.device):
                total += np.interp(grid, s.t_s, s.energy_j, left=0.0)
        if sum(not is_node(s.device) for s in series) > 1:
            lines.insert(0, Line("total of the components", (grid - t0) / scale, total / e_scale))
        out.append(
            (
                "Cumulative device energy.",
                line_chart(
                    lines,
                    title="Energy",
                    x_label=f"time since start ({unit})",
                    y_label=f"energy ({e_unit})",
                    bands=bands,
                    uid=uid + "e",
                ),
            )
        )
    ser = run.get("intensity_series") or {}
    values = ser.get("g_per_kwh") or []
    if values:
        step = float(ser.get("step_s") or 3600.0)
        t = float(ser["start_s"]) + step * np.arange(len(values) + 1)
        y = [*values, values[-1]]
        lines = [Line("grid intensity", t, y, step="post")]
        tag = (run.get("pricetag") or {}).get("intensity") or {}
        lo, hi = float(t[0]), float(t[-1])
        end = iso_to_s(run.get("ended_at"))
        if start is not None:
            lo, hi = min(lo, start), max(hi, end or start)
        for key, label in (
            ("time_weighted_g_per_kwh", "run, time-weighted"),
            ("annual_average_g_per_kwh", "annual average"),
        ):
            if tag.get(key) is not None:
                lines.append(Line(f"{label} {tag[key]:.4g}", [lo, hi], [tag[key]] * 2))
        bands = [Band(start, end, "the run", 0)] if start is not None and end else []
        ticks = time_ticks(lo, hi)
        src = run.get("intensity_source") or {}
        label = " ".join(str(src[k]) for k in ("name", "zone", "kind", "period") if src.get(k))
        out.append(
            (
                f"Grid carbon intensity ({label}).",
                line_chart(
                    lines,
                    title="Carbon intensity",
                    x_label="time (UTC)",
                    y_label="g CO₂e/kWh",
                    bands=bands,
                    x_ticks=ticks,
                    uid=uid + "i",
                ),
            )
        )
    return out


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><th scope='row'>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs
    )
    return f"<table class='kv'><tbody>{rows}</tbody></table>"


def run_page(run: Mapping[str, Any], samples: Sequence[DeviceSeries]) -> str:
    """One run's page (self-contained HTML)."""
    from greentrack.report.html import html_assumptions, html_page, html_pricetag
    from greentrack.report.pricetag import build_report
    from greentrack.report.table import fmt_duration, fmt_num, summary_sentence

    report = build_report([dict(run)])
    obj = report["runs"][0]
    body = [
        "<main>",
        '<nav class="crumbs"><a href="../index.html">← all runs</a></nav>',
        f"<h1>{escape(run['project'])} / {escape(run['name'])} "
        f"<span class='muted'>run {escape(run['id'][:8])}</span></h1>",
        f"<p class='muted'>status {escape(run['status'])} · started "
        f"{escape(str(run.get('started_at') or ''))} · host {escape(str(run.get('host') or '-'))}"
        + (f" · error: {escape(str(run['error']))}" if run.get("error") else "")
        + "</p>",
        f"<p class='summary'>{escape(summary_sentence(report))}</p>",
        html_pricetag(report),
        html_assumptions(report),
    ]
    charts = run_charts(obj, samples)
    if charts:
        body.append(
            '<h2>Charts</h2><div class="figures">'
            + "".join(
                f"<figure>{svg}<figcaption>{escape(c)}</figcaption></figure>" for c, svg in charts
            )
            + "</div>"
        )
    if run.get("phase_totals"):
        body.append(
            "<h2>Phases</h2><table><thead><tr><th>Phase</th><th class='num'>Count</th>"
            "<th class='num'>Time</th><th class='num'>Energy (kWh)</th>"
            "<th class='num'>CO₂e (g)</th></tr></thead><tbody>"
        )
        for p in run["phase_totals"]:
            body.append(
                f"<tr><td>{escape(p['name'])}</td><td class='num'>{p['count']}</td>"
                f"<td class='num'>{fmt_duration(p['duration_s'])}</td>"
                f"<td class='num'>{fmt_num((p['energy_j'] or 0) / 3.6e6)}</td>"
                f"<td class='num'>{fmt_num(p['co2e_g'])}</td></tr>"
            )
        body.append("</tbody></table>")
    for title, mapping in (
        ("Metrics (last value)", run.get("metrics")),
        ("Parameters", run.get("params")),
        ("Tags", run.get("tags")),
    ):
        if mapping:
            pairs = [
                (k, f"{v:.6g}" if isinstance(v, float) else v) for k, v in sorted(mapping.items())
            ]
            body += [f"<h2>{title}</h2>", _kv_table(pairs)]
    comps = [
        (
            f"{c['device']} (rank {c['rank']}, {c['host']})",
            f"{fmt_num(c['energy_j'] / 3.6e6)} kWh [{c['method']}]",
        )
        for c in run.get("components") or []
    ]
    if comps:
        body += ["<h2>Devices</h2>", _kv_table(comps)]
    if run.get("events"):
        body.append(
            "<h2>Events</h2><ul>"
            + "".join(
                f"<li>{escape(e['level'])}: [{escape(e['source'])}] {escape(e['message'])}</li>"
                for e in run["events"]
            )
            + "</ul>"
        )
    body.append(
        "<h2>Method notes</h2><ol class='notes'>"
        + "".join(f"<li>{escape(n)}</li>" for n in report["method_notes"])
        + "</ol>"
    )
    body.append("</main>")
    return html_page(f"{run['project']} / {run['name']} ({run['id'][:8]})", "\n".join(body))


def _index_row(o: Mapping[str, Any], pages: set[str]) -> list[Any]:
    from greentrack.report.model import is_final, methods_label

    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((o.get("metrics") or {}).items()))
    tags = " ".join(f"{k}={v}" for k, v in sorted((o.get("tags") or {}).items()))
    methods = methods_label(o)

    def r(x: Any, nd: int = 6) -> Any:
        return None if x is None else round(float(x), nd)

    return [
        o["id"],
        o["project"],
        o["name"],
        o["status"],
        o.get("started_at"),
        r(o.get("duration_s"), 3),
        r(o.get("energy_kwh"), 9),
        r(o.get("facility_energy_kwh"), 9),
        r(o.get("co2e_g"), 6),
        r(o.get("embodied_g"), 6),
        methods,
        o.get("region"),
        1 if is_final(o) else 0,
        metrics,
        tags,
        1 if o["id"] in pages else 0,
    ]


def _projects_table(runs: Sequence[Mapping[str, Any]]) -> str:
    from greentrack.report.model import is_final, price_tag
    from greentrack.report.pricetag import aggregate
    from greentrack.report.table import fmt_num

    by: dict[str, list[dict[str, Any]]] = {}
    for o in runs:
        by.setdefault(o["project"], []).append(price_tag(o, final=is_final(o)))
    rows = []
    for project in sorted(by):
        tags = by[project]
        total = aggregate(tags, None)
        finals = [t for t in tags if t["final"]]
        share = None
        if finals and total["facility_energy_kwh"] > 0:
            share = 100.0 * (
                1 - sum(t["facility_energy_kwh"] for t in finals) / total["facility_energy_kwh"]
            )
        rows.append(
            f"<tr><td>{escape(project)}</td><td class='num'>{total['runs']}</td>"
            f"<td class='num'>{len(finals)}</td>"
            f"<td class='num'>{fmt_num(total['duration_s'] / 3600)}</td>"
            f"<td class='num'>{fmt_num(total['device_hours'])}</td>"
            f"<td class='num'>{fmt_num(total['facility_energy_kwh'])}</td>"
            f"<td class='num'>{fmt_num(total['co2e_g'])}</td>"
            f"<td class='num'>{'n/a' if share is None else f'{share:.1f} %'}</td></tr>"
        )
    return (
        "<table class='projects'><thead><tr><th>Project</th><th class='num'>Runs</th>"
        "<th class='num'>Final</th><th class='num'>Wall time (h)</th>"
        "<th class='num'>Device-hours</th><th class='num'>Facility energy (kWh)</th>"
        "<th class='num'>CO₂e (g, time-weighted)</th><th class='num'>Tuning share</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def index_page(
    runs: Sequence[Mapping[str, Any]], pages: set[str], *, title: str, latest: int | None
) -> str:
    """The index: totals, projects, and the runs table (JSON blob + inline JS)."""
    from importlib.resources import files

    from greentrack.report.html import html_page
    from greentrack.report.table import fmt_num

    energy = sum(o.get("facility_energy_kwh") or 0.0 for o in runs)
    co2e = sum(o.get("co2e_g") or 0.0 for o in runs)
    n_co2e = sum(o.get("co2e_g") is not None for o in runs)
    data = {"columns": list(INDEX_COLUMNS), "rows": [_index_row(o, pages) for o in runs]}
    # "<" as \u003c: nothing in the data can close the script element or open a tag
    from greentrack.jsonout import dumps

    blob = dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    projects = sorted({o["project"] for o in runs})
    statuses = sorted({o["status"] for o in runs})
    options = lambda xs: "".join(f"<option>{escape(x)}</option>" for x in xs)  # noqa: E731
    pages_note = (
        f"Runs with a link have their own page (the latest {latest}; build with --all "
        "for every run)."
        if latest is not None
        else "Every run has its own page."
    )
    body = f"""<main>
<h1>{escape(title)}</h1>
<div class="cards">
<div class="card"><div class="v" id="n-runs">{len(runs):,}</div><div class="k">runs</div></div>
<div class="card"><div class="v">{len(projects):,}</div><div class="k">projects</div></div>
<div class="card"><div class="v">{fmt_num(energy)} kWh</div>
<div class="k">facility energy</div></div>
<div class="card"><div class="v">{fmt_num(co2e)} g</div><div class="k">CO₂e, time-weighted
({n_co2e:,} runs with intensity data)</div></div>
</div>
<h2>Projects</h2>
{_projects_table(runs)}
<h2>Runs</h2>
<div class="controls">
<input id="filter" type="search" placeholder="filter: id, name, project, tag, metric…"
 aria-label="filter runs">
<select id="project" aria-label="project"><option value="">all projects</option>
{options(projects)}</select>
<select id="status" aria-label="status"><option value="">any status</option>
{options(statuses)}</select>
<span id="count" class="muted"></span>
</div>
<p class="muted">{escape(pages_note)} Click a column to sort. Energy is facility energy (device
energy × PUE); CO₂e is operational and time-weighted; embodied is the hardware's manufacturing
share for the run's time (not included in CO₂e); methods: counter, sampled, estimated.</p>
<table id="runs"><thead><tr>
<th class="sortable" data-key="id">Run</th><th class="sortable" data-key="project">Project</th>
<th class="sortable" data-key="name">Name</th><th class="sortable" data-key="status">Status</th>
<th class="sortable" data-key="started_at">Started (UTC)</th>
<th class="sortable num" data-key="duration_s">Wall time (s)</th>
<th class="sortable num" data-key="facility_energy_kwh">Energy (kWh)</th>
<th class="sortable num" data-key="co2e_g">CO₂e (g)</th>
<th class="sortable num" data-key="embodied_g">Embodied (g)</th>
<th class="sortable" data-key="methods">Methods</th>
<th class="sortable" data-key="region">Region</th>
<th class="sortable" data-key="metrics">Metrics</th>
</tr></thead><tbody></tbody></table>
<script id="runs-data" type="application/json">{blob}</script>
<p class="foot">Generated by greentrack; this page loads nothing from the network.</p>
</main>"""
    script = files("greentrack.report").joinpath("templates/site.js").read_text("utf-8")
    return html_page(title, body, script=script)


def build_site(
    out_dir: str | Path,
    *,
    db_url: str | None = None,
    project: str | None = None,
    latest: int = DEFAULT_LATEST,
    all_pages: bool = False,
    title: str = "greentrack runs",
) -> SiteResult:
    """Write the static site of the store (or of one project) into ``out_dir``.

    Args:
        latest: runs (newest first) that get their own page; ignored with ``all_pages``.
        all_pages: a page for every run.
    """
    from greentrack.report.data import store
    from greentrack.store import queries
    from greentrack.store.reads import add_detail, load_samples

    t_start = time.perf_counter()
    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    with store(db_url) as conn:
        rows = queries.list_runs(conn, project=project, limit=None)
        runs = queries.run_objects(conn, rows)
        chosen = runs if all_pages else runs[: max(0, latest)]
        add_detail(conn, chosen)
        pages: set[str] = set()
        for o in chosen:
            if not is_run_id(o["id"]):  # written into a shared store by hand: no file named by it
                log.warning(
                    "greentrack: run id %r is not [A-Za-z0-9_-]{1,32}: listed, without a page",
                    o["id"][:80],
                )
                continue
            samples = load_samples(conn, o["id"], buckets=CHART_BUCKETS)
            page = out / "runs" / f"{safe_filename(o['id'])}.html"
            page.write_text(run_page(o, samples), "utf-8")
            pages.add(o["id"])
    index = out / "index.html"
    index.write_text(
        index_page(
            runs,
            pages,
            title=title + (f": {project}" if project else ""),
            latest=None if all_pages else latest,
        ),
        "utf-8",
    )
    return SiteResult(
        index=index, runs=len(runs), pages=len(pages), seconds=time.perf_counter() - t_start
    )
