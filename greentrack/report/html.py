"""The price tag as one self-contained HTML page: inline CSS, inline SVG plots, no requests.

The page holds the same table, notes and run list as the Markdown report, plus figures drawn by
:mod:`greentrack.report.runplots`, :mod:`~greentrack.report.gridplots` and
:mod:`~greentrack.report.pareto`, inlined as SVG (text kept as text): power, cumulative energy
and carbon intensity of the final runs (or of the latest runs when none is final), and accuracy
versus energy across runs. Nothing is fetched: no fonts, scripts, styles or images from
anywhere, so the file can be mailed, archived or attached to a paper's supplement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from greentrack.report.pareto import pareto_points, pick_metric, plot_pareto
from greentrack.report.table import (
    assumption_lines,
    cell_text,
    groups_table,
    runs_table,
    summary_sentence,
    table_rows,
)

__all__ = ["css", "html_assumptions", "html_page", "html_pricetag", "render", "render_html"]

MAX_RUN_FIGURES = 4
"""Runs whose power / energy / intensity figures an HTML report draws (final runs first)."""


def css() -> str:
    """The report's stylesheet (inlined in every page)."""
    from importlib.resources import files

    return files("greentrack.report").joinpath("templates/report.css").read_text("utf-8")


def html_page(title: str, body: str, *, script: str = "", extra_css: str = "") -> str:
    """A complete HTML5 document with inline CSS (and an inline script, if any)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>\n{css()}{extra_css}</style>",
        "</head>",
        "<body>",
        body,
    ]
    if script:
        parts.append(f"<script>\n{script}\n</script>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "", cls: str = ""
) -> str:
    align = align or "l" * len(headers)
    head = "".join(
        f'<th class="{"num" if a == "r" else ""}">{escape(h)}</th>'
        for h, a in zip(headers, align, strict=False)
    )
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="{"num" if a == "r" else ""}">{escape(str(c))}</td>'
            for c, a in zip(r, align, strict=False)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def html_pricetag(report: Mapping[str, Any]) -> str:
    """The price-tag table (with the "how it was obtained" column) as an HTML fragment.

    A text row with the same value in every column (hardware, PUE) is shown once, spanning them.
    """
    cols, rows = table_rows(report)
    head = "<th>Item</th>" + "".join(f'<th class="num">{escape(c)}</th>' for c in cols)
    out = [
        f'<table class="pricetag"><thead><tr>{head}<th>How it was obtained</th></tr></thead><tbody>'
    ]
    for r in rows:
        cells = [cell_text(r, v) for v in r.values]
        if r.kind == "text" and len({c for c in cells if c}) == 1 and len(cols) > 1:
            value = next(c for c in cells if c)
            tds = f'<td colspan="{len(cols)}" class="text">{escape(value)}</td>'
        else:
            cls = "text" if r.kind == "text" else "num"
            tds = "".join(f'<td class="{cls}">{escape(c)}</td>' for c in cells)
        out.append(
            f'<tr><th scope="row">{escape(r.label)}</th>{tds}'
            f'<td class="how">{escape(r.how)}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def html_assumptions(report: Mapping[str, Any]) -> str:
    """The report's assumptions (every one behind a figure) as a titled list; "" when none."""
    lines = assumption_lines(report)
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<h2>Assumptions</h2><ul class="assumptions">{items}</ul>'


def _figure_runs(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    runs = report["runs"]
    finals = [r for r in runs if r["pricetag"]["final"]]
    chosen = finals or sorted(runs, key=lambda r: r.get("started_at") or "", reverse=True)
    return list(chosen[:MAX_RUN_FIGURES])


def run_figures(run: Mapping[str, Any], samples: Any) -> list[tuple[str, str]]:
    """(caption, inline SVG) of a run's power, energy and intensity figures (what it has)."""
    from greentrack.report import gridplots, runplots
    from greentrack.report.data import iso_to_s
    from greentrack.report.plotting import svg_text

    out = []
    start = iso_to_s(run.get("started_at"))
    if samples:
        out.append(
            (
                "Power per device; phases hatched along the top.",
                svg_text(
                    runplots.plot_power,
                    samples,
                    start_s=start,
                    phases=run.get("phases") or [],
                    title="Power",
                ),
            )
        )
        out.append(
            (
                "Cumulative device energy.",
                svg_text(
                    runplots.plot_energy,
                    samples,
                    start_s=start,
                    phases=run.get("phases") or [],
                    title="Energy",
                ),
            )
        )
    series = run.get("intensity_series")
    if series and series.get("g_per_kwh"):
        tag = run.get("pricetag") or {}
        inten = tag.get("intensity") or {}
        out.append(
            (
                "Grid carbon intensity during the run (the stored series).",
                svg_text(
                    gridplots.plot_intensity,
                    series,
                    run_start_s=start,
                    run_end_s=iso_to_s(run.get("ended_at")),
                    time_weighted_g_per_kwh=inten.get("time_weighted_g_per_kwh"),
                    annual_g_per_kwh=inten.get("annual_average_g_per_kwh"),
                    provenance=run.get("intensity_source"),
                ),
            )
        )
    return out


def _figure_html(caption: str, svg: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def render_html(
    report: Mapping[str, Any],
    *,
    db_url: str | None = None,
    plots: bool = True,
    metric: str | None = None,
) -> str:
    """The report as a self-contained HTML page (figures need the store: ``db_url``)."""
    body = [
        "<main>",
        f"<h1>Price tag: {escape(report['title'])}</h1>",
        f'<p class="summary">{escape(summary_sentence(report))}</p>',
        html_pricetag(report),
        html_assumptions(report),
    ]
    runs = report["runs"]
    if plots:
        body += _figures(report, db_url, metric)
    if len(runs) > 1:
        headers, rows, align = runs_table(report)
        body += ["<h2>Runs</h2>", _table(headers, rows, align)]
    if report["groups"]:
        headers, rows, align = groups_table(report)
        body += ["<h2>Mean ± std over seeds</h2>", _table(headers, rows, align)]
    body.append('<h2>Method notes</h2><ol class="notes">')
    body += [f"<li>{escape(n)}</li>" for n in report["method_notes"]]
    body += [
        "</ol>",
        '<p class="foot">Generated by greentrack from its run store. Figures are '
        "inline SVG; this page loads nothing from the network.</p>",
        "</main>",
    ]
    return html_page(f"Price tag: {report['title']}", "\n".join(body))


def _figures(report: Mapping[str, Any], db_url: str | None, metric: str | None) -> list[str]:
    from greentrack.report.data import store
    from greentrack.report.plotting import DEFAULT_BUCKETS, svg_text
    from greentrack.store.reads import load_samples

    out = []
    runs = report["runs"]
    chosen = _figure_runs(report)
    samples: dict[str, Any] = {}
    if db_url is not None:
        with store(db_url) as conn:
            for r in chosen:
                samples[r["id"]] = load_samples(conn, r["id"], buckets=DEFAULT_BUCKETS)
    for r in chosen:
        figs = run_figures(r, samples.get(r["id"]))
        if figs:
            out.append(
                f"<h2>Run {escape(r['id'][:8])}: {escape(r['project'])} / {escape(r['name'])}</h2>"
            )
            out.append(
                '<div class="figures">' + "".join(_figure_html(c, s) for c, s in figs) + "</div>"
            )
    key = pick_metric(runs, metric)
    if len(runs) > 1 and key:
        pts = pareto_points(runs, key)
        if sum(p["value"] is not None for p in pts) >= 2:
            lower = any(w in key.lower() for w in ("loss", "error", "perplexity"))
            svg = svg_text(plot_pareto, pts, metric=key, higher_is_better=not lower)
            out.append("<h2>Accuracy versus energy</h2>")
            out.append(
                '<div class="figures">'
                + _figure_html(
                    f"{key} versus facility energy per run; the dashed line is the Pareto front "
                    "(no run is better on both).",
                    svg,
                )
                + "</div>"
            )
    return out


def render(
    report: Mapping[str, Any],
    *,
    db_url: str | None = None,
    plots: bool = True,
    **_options: Any,
) -> str:
    """The format's entry point (:mod:`greentrack.report.render`): :func:`render_html`."""
    return render_html(report, db_url=db_url, plots=plots)
